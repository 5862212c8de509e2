//! What a cloud run cost: the usage its records hold (docs/cost.md), priced by a
//! dated table of list prices. The table can be replaced (`--prices FILE`) where
//! prices differ: another region, a discount, a later price change.

use crate::proto::core::{RunCost, RunUsage};

/// Fargate bills every task for at least one minute.
pub const FARGATE_MINIMUM_SECONDS: f64 = 60.0;

/// List prices in USD, per unit, of what a run uses.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    /// Where and when these prices hold, shown with every estimate.
    pub name: String,
    /// Step Functions Standard workflows.
    pub state_transition: f64,
    pub lambda_request: f64,
    /// arm64, the stack's functions' architecture.
    pub lambda_gb_second: f64,
    /// DynamoDB on-demand.
    pub dynamodb_read_unit: f64,
    pub dynamodb_write_unit: f64,
    /// S3 Standard: PUT, COPY, POST, LIST; GET and the rest.
    pub s3_write_request: f64,
    pub s3_read_request: f64,
    /// Fargate, Linux on x86.
    pub fargate_vcpu_second: f64,
    pub fargate_gb_second: f64,
    /// One GPU's share of a GPU instance (its vCPUs and memory included).
    pub gpu_second: f64,
}

impl Default for PriceTable {
    /// AWS's public on-demand prices in us-east-1 as their pricing pages listed
    /// them in 2025: aws.amazon.com/step-functions/pricing, /lambda/pricing,
    /// /dynamodb/pricing/on-demand, /s3/pricing, /fargate/pricing and
    /// /ec2/pricing/on-demand (g5.xlarge: one A10G GPU, 4 vCPUs, 16 GiB).
    fn default() -> PriceTable {
        PriceTable {
            name: "AWS list prices, us-east-1, 2025".into(),
            state_transition: 0.025 / 1_000.0,
            lambda_request: 0.20 / 1_000_000.0,
            lambda_gb_second: 0.000_013_333_4,
            dynamodb_read_unit: 0.125 / 1_000_000.0,
            dynamodb_write_unit: 0.625 / 1_000_000.0,
            s3_write_request: 0.005 / 1_000.0,
            s3_read_request: 0.000_4 / 1_000.0,
            fargate_vcpu_second: 0.040_48 / 3_600.0,
            fargate_gb_second: 0.004_445 / 3_600.0,
            gpu_second: 1.006 / 3_600.0,
        }
    }
}

impl PriceTable {
    /// A table from its JSON (every field named, none unknown), checked for sense.
    pub fn from_json(text: &str) -> Result<PriceTable, String> {
        let table: PriceTable = serde_json::from_str(text).map_err(|e| format!("not a price table: {e}"))?;
        let prices = [
            ("state_transition", table.state_transition),
            ("lambda_request", table.lambda_request),
            ("lambda_gb_second", table.lambda_gb_second),
            ("dynamodb_read_unit", table.dynamodb_read_unit),
            ("dynamodb_write_unit", table.dynamodb_write_unit),
            ("s3_write_request", table.s3_write_request),
            ("s3_read_request", table.s3_read_request),
            ("fargate_vcpu_second", table.fargate_vcpu_second),
            ("fargate_gb_second", table.fargate_gb_second),
            ("gpu_second", table.gpu_second),
        ];
        match prices.iter().find(|(_, price)| !price.is_finite() || *price < 0.0) {
            Some((name, price)) => Err(format!("price {name} is {price}: prices are non-negative numbers")),
            None => Ok(table),
        }
    }
}

/// One attempt of a Batch job: how long it ran and on what.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobAttempt {
    pub seconds: f64,
    pub vcpus: f64,
    pub memory_mib: f64,
    pub gpus: f64,
}

/// What `attempt` adds to a run's usage, as billed: a CPU job runs on Fargate (at
/// least a minute, vCPU and memory apart); a GPU job on an instance, whose share
/// per GPU covers its vCPUs and memory.
pub fn attempt_usage(attempt: &JobAttempt) -> RunUsage {
    let seconds = attempt.seconds.max(0.0);
    let mut usage = RunUsage { batch_attempts: 1, ..RunUsage::default() };
    if attempt.gpus > 0.0 {
        usage.batch_gpu_seconds = seconds * attempt.gpus;
    } else {
        let billed = seconds.max(FARGATE_MINIMUM_SECONDS);
        usage.batch_vcpu_seconds = billed * attempt.vcpus;
        usage.batch_gb_seconds = billed * attempt.memory_mib / 1024.0;
    }
    usage
}

/// `other` added to `total`.
pub fn add(total: &mut RunUsage, other: &RunUsage) {
    total.state_transitions += other.state_transitions;
    total.lambda_invocations += other.lambda_invocations;
    total.lambda_gb_seconds += other.lambda_gb_seconds;
    total.dynamodb_read_units += other.dynamodb_read_units;
    total.dynamodb_write_units += other.dynamodb_write_units;
    total.s3_write_requests += other.s3_write_requests;
    total.s3_read_requests += other.s3_read_requests;
    total.batch_vcpu_seconds += other.batch_vcpu_seconds;
    total.batch_gb_seconds += other.batch_gb_seconds;
    total.batch_gpu_seconds += other.batch_gpu_seconds;
    total.batch_attempts += other.batch_attempts;
}

/// `usage` priced by `prices`.
pub fn estimate(usage: &RunUsage, prices: &PriceTable) -> RunCost {
    let orchestration = usage.state_transitions as f64 * prices.state_transition
        + usage.lambda_invocations as f64 * prices.lambda_request
        + usage.lambda_gb_seconds * prices.lambda_gb_second
        + usage.dynamodb_read_units as f64 * prices.dynamodb_read_unit
        + usage.dynamodb_write_units as f64 * prices.dynamodb_write_unit
        + usage.s3_write_requests as f64 * prices.s3_write_request
        + usage.s3_read_requests as f64 * prices.s3_read_request;
    let compute = usage.batch_vcpu_seconds * prices.fargate_vcpu_second
        + usage.batch_gb_seconds * prices.fargate_gb_second
        + usage.batch_gpu_seconds * prices.gpu_second;
    RunCost {
        usage: Some(*usage),
        orchestration_usd: orchestration,
        compute_usd: compute,
        total_usd: orchestration + compute,
        prices: prices.name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_cpu_attempt_is_billed_fargates_minute_and_a_gpu_attempt_its_instance_share() {
        let cpu = attempt_usage(&JobAttempt { seconds: 5.0, vcpus: 0.25, memory_mib: 512.0, gpus: 0.0 });
        assert_eq!((cpu.batch_vcpu_seconds, cpu.batch_gb_seconds, cpu.batch_gpu_seconds), (15.0, 30.0, 0.0));
        let long = attempt_usage(&JobAttempt { seconds: 120.0, vcpus: 2.0, memory_mib: 4096.0, gpus: 0.0 });
        assert_eq!((long.batch_vcpu_seconds, long.batch_gb_seconds), (240.0, 480.0));
        let gpu = attempt_usage(&JobAttempt { seconds: 10.0, vcpus: 4.0, memory_mib: 16384.0, gpus: 2.0 });
        assert_eq!((gpu.batch_vcpu_seconds, gpu.batch_gpu_seconds, gpu.batch_attempts), (0.0, 20.0, 1));
    }

    #[test]
    fn an_estimate_prices_each_use_and_splits_orchestration_from_compute() {
        let mut usage = RunUsage { state_transitions: 1_000, lambda_invocations: 1_000_000, ..RunUsage::default() };
        add(&mut usage, &attempt_usage(&JobAttempt { seconds: 3_600.0, vcpus: 1.0, memory_mib: 1024.0, gpus: 0.0 }));
        add(&mut usage, &RunUsage { dynamodb_write_units: 2_000_000, s3_write_requests: 1_000, ..RunUsage::default() });
        let cost = estimate(&usage, &PriceTable::default());
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        // 0.025 (transitions) + 0.20 (requests) + 1.25 (writes) + 0.005 (PUTs)
        assert!(close(cost.orchestration_usd, 1.48), "{cost:?}");
        assert!(close(cost.compute_usd, 0.040_48 + 0.004_445), "{cost:?}");
        assert!(close(cost.total_usd, cost.orchestration_usd + cost.compute_usd));
        assert_eq!(cost.usage.unwrap().batch_attempts, 1);
    }

    #[test]
    fn a_price_table_names_every_price_and_refuses_nonsense() {
        let table = serde_json::to_string(&PriceTable { name: "eu-west-1".into(), ..PriceTable::default() }).unwrap();
        assert_eq!(PriceTable::from_json(&table).unwrap().name, "eu-west-1");
        let negative = table.replace("\"gpu_second\":", "\"gpu_second\":-1.0,\"x\":");
        assert!(PriceTable::from_json(&negative).unwrap_err().contains("not a price table"), "unknown field");
        let negative = serde_json::to_string(&PriceTable { gpu_second: -1.0, ..PriceTable::default() }).unwrap();
        assert!(PriceTable::from_json(&negative).unwrap_err().contains("gpu_second is -1"));
        assert!(PriceTable::from_json("{}").unwrap_err().contains("missing field"));
    }
}
