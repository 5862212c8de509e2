//! What a function's invocation uses, counted as it goes: its DynamoDB request
//! units and S3 requests (an interceptor on each client) and its billed time.
//! The node function adds it to the run's records in writes it makes anyway
//! (`runs::DynamoRun::with_meter`), so a run can say what it cost (docs/cost.md)
//! without a write of its own.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_sdk_dynamodb::operation as ddb;
use aws_sdk_s3::operation as s3;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use updraft_core::proto::core::RunUsage;

/// The usage of the invocation in progress not yet written anywhere.
#[derive(Debug)]
pub struct Meter {
    memory_mb: f64,
    pending: Mutex<Pending>,
}

#[derive(Debug)]
struct Pending {
    usage: RunUsage,
    /// Billed time is counted up to here.
    since: Instant,
    /// Whether this invocation was counted already.
    counted: bool,
}

impl Meter {
    /// A meter for a function of `memory_mb` MB (Lambda bills GB-seconds of it).
    pub fn new(memory_mb: u32) -> Meter {
        let pending = Pending { usage: RunUsage::default(), since: Instant::now(), counted: false };
        Meter { memory_mb: memory_mb as f64, pending: Mutex::new(pending) }
    }

    /// The function's memory as Lambda sets it in the environment.
    pub fn from_env() -> Meter {
        let memory = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").ok().and_then(|m| m.parse().ok());
        Meter::new(memory.unwrap_or(128))
    }

    /// An invocation starts: what an earlier one left unwritten is dropped (it
    /// wrote nothing of the run it served, or served none).
    pub fn begin(&self) {
        let mut pending = self.lock();
        *pending = Pending { usage: RunUsage::default(), since: Instant::now(), counted: false };
    }

    /// The usage since the last take (the invocation itself once), to be written.
    pub fn take(&self) -> RunUsage {
        let mut pending = self.lock();
        let now = Instant::now();
        let seconds = now.duration_since(pending.since).as_secs_f64();
        let mut usage = std::mem::take(&mut pending.usage);
        usage.lambda_gb_seconds += seconds * self.memory_mb / 1024.0;
        usage.lambda_invocations = u64::from(!pending.counted);
        (pending.since, pending.counted) = (now, true);
        usage
    }

    /// A taken usage whose write did not happen, back for the next write.
    pub fn give_back(&self, usage: RunUsage) {
        let mut pending = self.lock();
        pending.counted &= usage.lambda_invocations == 0;
        let mut back = usage;
        back.lambda_invocations = 0;
        updraft_core::cost::add(&mut pending.usage, &back);
    }

    fn count(&self, usage: RunUsage) {
        updraft_core::cost::add(&mut self.lock().usage, &usage);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Counts a client's requests into a [`Meter`]: DynamoDB in request units (one per
/// item read — a query's or scan's as it answers — or written, two in a
/// transaction; items here are small), S3 in
/// requests as S3 prices them (GET and HEAD apart from the rest; DELETE is free).
#[derive(Debug, Clone)]
pub struct Metered(pub Arc<Meter>);

impl Intercept for Metered {
    fn name(&self) -> &'static str {
        "UpdraftMeter"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input();
        let is = |found: bool| u64::from(found);
        let usage = if let Some(batch) = input.downcast_ref::<ddb::batch_get_item::BatchGetItemInput>() {
            let keys = batch.request_items().into_iter().flatten().map(|(_, k)| k.keys().len() as u64).sum();
            RunUsage { dynamodb_read_units: keys, ..RunUsage::default() }
        } else if let Some(batch) = input.downcast_ref::<ddb::batch_write_item::BatchWriteItemInput>() {
            let writes = batch.request_items().into_iter().flatten().map(|(_, w)| w.len() as u64).sum();
            RunUsage { dynamodb_write_units: writes, ..RunUsage::default() }
        } else if let Some(transaction) = input.downcast_ref::<ddb::transact_write_items::TransactWriteItemsInput>() {
            RunUsage { dynamodb_write_units: 2 * transaction.transact_items().len() as u64, ..RunUsage::default() }
        } else if let Some(transaction) = input.downcast_ref::<ddb::transact_get_items::TransactGetItemsInput>() {
            RunUsage { dynamodb_read_units: 2 * transaction.transact_items().len() as u64, ..RunUsage::default() }
        } else {
            // A query's or a scan's items are counted when it answers (below).
            let read = is(input.downcast_ref::<ddb::get_item::GetItemInput>().is_some());
            let write = is(input.downcast_ref::<ddb::update_item::UpdateItemInput>().is_some()
                || input.downcast_ref::<ddb::put_item::PutItemInput>().is_some()
                || input.downcast_ref::<ddb::delete_item::DeleteItemInput>().is_some());
            let s3_read = is(input.downcast_ref::<s3::get_object::GetObjectInput>().is_some()
                || input.downcast_ref::<s3::head_object::HeadObjectInput>().is_some());
            let s3_write = is(input.downcast_ref::<s3::put_object::PutObjectInput>().is_some()
                || input.downcast_ref::<s3::copy_object::CopyObjectInput>().is_some()
                || input.downcast_ref::<s3::list_objects_v2::ListObjectsV2Input>().is_some());
            RunUsage {
                dynamodb_read_units: read,
                dynamodb_write_units: write,
                s3_read_requests: s3_read,
                s3_write_requests: s3_write,
                ..RunUsage::default()
            }
        };
        self.0.count(usage);
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Ok(output)) = context.output_or_error() else { return Ok(()) };
        let items = if let Some(query) = output.downcast_ref::<ddb::query::QueryOutput>() {
            query.scanned_count()
        } else if let Some(scan) = output.downcast_ref::<ddb::scan::ScanOutput>() {
            scan.scanned_count()
        } else {
            return Ok(());
        };
        // A page read no item still costs a unit.
        self.0.count(RunUsage { dynamodb_read_units: items.max(1) as u64, ..RunUsage::default() });
        Ok(())
    }
}

/// `client` with its requests counted into `meter`.
pub fn metered_dynamodb(client: &aws_sdk_dynamodb::Client, meter: &Arc<Meter>) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(client.config().to_builder().interceptor(Metered(meter.clone())).build())
}

/// `client` with its requests counted into `meter`.
pub fn metered_s3(client: &aws_sdk_s3::Client, meter: &Arc<Meter>) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(client.config().to_builder().interceptor(Metered(meter.clone())).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invocation_is_counted_once_and_a_usage_given_back_is_taken_again() {
        let meter = Meter::new(1024);
        meter.count(RunUsage { dynamodb_write_units: 2, ..RunUsage::default() });
        let first = meter.take();
        assert_eq!((first.lambda_invocations, first.dynamodb_write_units), (1, 2));
        meter.give_back(first);
        let again = meter.take();
        assert_eq!((again.lambda_invocations, again.dynamodb_write_units), (1, 2), "its write did not happen");
        assert!(again.lambda_gb_seconds >= first.lambda_gb_seconds);
        let later = meter.take();
        assert_eq!((later.lambda_invocations, later.dynamodb_write_units), (0, 0), "taken and written");
        meter.begin();
        assert_eq!(meter.take().lambda_invocations, 1, "the next invocation");
    }
}
