//! A cloud run's state and the task-output cache in the metadata table
//! (docs/storage.md): the `RunStore` of the node protocol
//! (`updraft_core::execution::steps`) and the `CacheStore`. Every protocol step
//! is one conditional or atomic write, so concurrent arms and completions of a
//! run (separate Lambda invocations) keep the protocol's guarantees.

use crate::dynamo::Item;
use crate::meter::Meter;
use crate::registry::{now, s};
use crate::sdk_error::port_error;
use aws_sdk_dynamodb::Client as Dynamo;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use std::collections::HashMap;
use updraft_core::execution::failure::FailureCode;
use updraft_core::execution::node::NodeFailure;
use updraft_core::execution::node::Outputs;
use updraft_core::execution::steps::{Claim, NodeEnd, NodeSlot, RecordedEnd, RunStore, RunValues, moved_on};
use updraft_core::execution::stop::{LiveJob, StopCause, StoppableRun};
use updraft_core::ports::{CacheEntry, CacheStore, Eviction, LaunchOrigin, PortError};
use updraft_core::proto::core::{ExecutionId, Identifier, LiteralMap, NodePhase, RunUsage, WorkflowPhase};

fn outputs_json(outputs: &Outputs) -> String {
    let map = LiteralMap { values: outputs.iter().map(|(k, v)| (k.clone(), v.clone())).collect() };
    serde_json::to_string(&map).expect("literals serialize")
}

fn outputs_from(item: &Item, attribute: &str) -> Result<Outputs, PortError> {
    let Some(text) = item.get(attribute).and_then(|v| v.as_s().ok()) else {
        return Ok(Outputs::new());
    };
    let map: LiteralMap = serde_json::from_str(text)
        .map_err(|e| PortError::Permanent(format!("a stored {attribute} is not a LiteralMap: {e}")))?;
    Ok(map.values.into_iter().collect())
}

/// The by-owner partition of the runs in flight (the reconciler's one Query).
pub const IN_FLIGHT: &str = "INFLIGHT";

/// What every write of a run's end adds: the run leaves the runs in flight.
pub const LEAVE_IN_FLIGHT: &str = " REMOVE gsi2pk, gsi2sk";

/// The partition of one execution: its item and one item per node.
pub fn execution_key(id: &ExecutionId) -> String {
    format!("EXEC#{}#{}#{}", id.project, id.domain, id.name)
}

fn node_key(node: &str) -> String {
    format!("NODE#{node}")
}

/// An item's attributes as JSON (the API shapes them into the IDL), without keys and tokens.
fn attributes_json(item: &Item) -> serde_json::Map<String, serde_json::Value> {
    item.iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "pk" | "task_token"
                    | "claimed_at"
                    | "gathering_at"
                    | "ended_upstream"
                    | "settled"
                    | "gsi1pk"
                    | "gsi1sk"
                    | "gsi2pk"
                    | "gsi2sk"
            )
        })
        .map(|(k, v)| {
            let value = match v {
                AttributeValue::S(text) => serde_json::Value::String(text.clone()),
                // Counters are integers; metered seconds are not.
                AttributeValue::N(n) => match n.parse::<i64>() {
                    Ok(integer) => serde_json::json!(integer),
                    Err(_) => serde_json::json!(n.parse::<f64>().unwrap_or_default()),
                },
                AttributeValue::Bool(b) => serde_json::Value::Bool(*b),
                _ => serde_json::Value::Null,
            };
            (k.clone(), value)
        })
        .collect()
}

/// Items a filtered listing reads at most for one page: a filter that matches little
/// of a long history answers a short page and a token (reading on is the caller's
/// choice) rather than reading the whole history within one API call.
const FILTERED_READ_MAX: i32 = 2_000;

/// A page of a project's runs that `filter` keeps, newest first, and the next page's
/// token: (execution name, its record) each. `since` is a condition on the by-time
/// index's key (created time first), so it reads only the runs it keeps; phase,
/// workflow and plan are filters on the items read (bounded by [`FILTERED_READ_MAX`] a page).
pub async fn list_runs(
    dynamo: &Dynamo,
    table: &str,
    project: &str,
    domain: &str,
    filter: &updraft_core::ports::RunFilter,
    page: &updraft_core::ports::PageRequest,
) -> Result<(Vec<(String, serde_json::Value)>, Option<String>), PortError> {
    let partition = format!("EXECS#{project}#{domain}");
    let mut start =
        page.token.as_deref().map(|t| crate::registry::decode_token(t, ("gsi1pk", &partition))).transpose()?;
    let limit = page.limit.clamp(1, 1000);
    let mut key_condition = "gsi1pk = :pk".to_string();
    let mut values = vec![(":pk", s(&partition))];
    if let Some(since) = filter.since {
        key_condition.push_str(" AND gsi1sk >= :since");
        values.push((":since", s(since.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())));
    }
    let mut conditions = Vec::new();
    if let Some(phase) = filter.phase {
        conditions.push("run_phase = :phase");
        values.push((":phase", s(stored_phase(phase))));
    }
    if let Some(workflow) = &filter.workflow {
        conditions.push("workflow_name = :workflow");
        values.push((":workflow", s(workflow)));
    }
    if let Some(plan) = &filter.launch_plan {
        conditions.push("plan_name = :plan");
        values.push((":plan", s(plan)));
    }
    let filtered = !conditions.is_empty();
    let (mut kept, mut read, mut next) = (Vec::new(), 0, None);
    loop {
        let mut query = dynamo
            .query()
            .table_name(table)
            .index_name("by-time")
            .key_condition_expression(&key_condition)
            .scan_index_forward(false)
            // DynamoDB's limit counts the items read, before the filter.
            .limit(if filtered { (limit as i32).max(100) } else { limit as i32 })
            .set_exclusive_start_key(start.take());
        if filtered {
            query = query.filter_expression(conditions.join(" AND "));
        }
        for (name, value) in &values {
            query = query.expression_attribute_values(*name, value.clone());
        }
        let answer = query.send().await.map_err(|e| port_error("listing runs", &e))?;
        read += answer.scanned_count;
        let items = answer.items.unwrap_or_default();
        let more = answer.last_evaluated_key.is_some();
        let count = items.len();
        for (index, item) in items.into_iter().enumerate() {
            kept.push(item);
            if kept.len() == limit {
                // The page is full: the next one starts after its last run, unless that was the last.
                let last = kept.last().expect("a run was kept");
                next = if more || index + 1 < count { index_key(last) } else { None };
                break;
            }
        }
        if kept.len() == limit {
            break;
        }
        start = answer.last_evaluated_key;
        if start.is_none() || read >= FILTERED_READ_MAX {
            next = start.as_ref().and_then(|key| crate::registry::encode_token(Some(key)));
            break;
        }
    }
    let runs = kept
        .iter()
        .map(|item| {
            let name = item.get("gsi1sk").and_then(|v| v.as_s().ok()).and_then(|k| k.split_once('#')).map(|(_, n)| n);
            (name.unwrap_or_default().to_string(), serde_json::Value::Object(attributes_json(item)))
        })
        .collect();
    Ok((runs, next))
}

/// The page token that continues a by-time listing after `item`.
fn index_key(item: &Item) -> Option<String> {
    let key: Item = ["pk", "sk", "gsi1pk", "gsi1sk"]
        .into_iter()
        .filter_map(|name| Some((name.to_string(), item.get(name)?.clone())))
        .collect();
    crate::registry::encode_token(Some(&key))
}

/// One page of a table partition's items, newest (highest sort key) first (`key`: the
/// partition key's attribute and value); and the next page's token.
async fn newest_first(
    dynamo: &Dynamo,
    table: &str,
    key: (&str, &str),
    page: &updraft_core::ports::PageRequest,
    what: &str,
) -> Result<(Vec<Item>, Option<String>), PortError> {
    let start = page.token.as_deref().map(|t| crate::registry::decode_token(t, key)).transpose()?;
    let answer = dynamo
        .query()
        .table_name(table)
        .key_condition_expression("#pk = :pk")
        .expression_attribute_names("#pk", key.0)
        .expression_attribute_values(":pk", s(key.1))
        .scan_index_forward(false)
        .limit(page.limit.clamp(1, 1000) as i32)
        .set_exclusive_start_key(start)
        .send()
        .await
        .map_err(|e| port_error(what, &e))?;
    let next = crate::registry::encode_token(answer.last_evaluated_key());
    Ok((answer.items.unwrap_or_default(), next))
}

/// The partition of a launch plan's ticks (every version's), one item per scheduled time.
fn ticks_key(plan: &Identifier) -> String {
    format!("TICKS#{}#{}#{}", plan.project, plan.domain, plan.name)
}

/// Records a tick of `plan`'s schedule; the same tick again replaces its record.
pub async fn record_tick(
    dynamo: &Dynamo,
    table: &str,
    plan: &Identifier,
    tick: &updraft_core::proto::api::ScheduleTick,
) -> Result<(), PortError> {
    dynamo
        .put_item()
        .table_name(table)
        .item("pk", s(ticks_key(plan)))
        .item("sk", s(&tick.scheduled_time))
        .item("version", s(&tick.version))
        .item("outcome", s(&tick.outcome))
        .item("execution", s(&tick.execution))
        .item("message", s(&tick.message))
        .item("recorded_at", s(&tick.recorded_at))
        .item("trigger", s(&tick.trigger))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| port_error("recording a tick", &e))
}

/// A launch plan's ticks, newest first, and the next page's token.
pub async fn list_ticks(
    dynamo: &Dynamo,
    table: &str,
    plan: &Identifier,
    page: &updraft_core::ports::PageRequest,
) -> Result<(Vec<updraft_core::proto::api::ScheduleTick>, Option<String>), PortError> {
    let partition = ticks_key(plan);
    let (items, next) = newest_first(dynamo, table, ("pk", &partition), page, "listing ticks").await?;
    let text = |item: &Item, name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
    let ticks = items
        .iter()
        .map(|item| updraft_core::proto::api::ScheduleTick {
            scheduled_time: text(item, "sk"),
            version: text(item, "version"),
            outcome: text(item, "outcome"),
            execution: text(item, "execution"),
            message: text(item, "message"),
            recorded_at: text(item, "recorded_at"),
            trigger: text(item, "trigger"),
        })
        .collect();
    Ok((ticks, next))
}

/// A run in flight, as the by-owner index lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct InFlight {
    pub execution: ExecutionId,
    pub workflow: Identifier,
    /// When it was recorded (epoch milliseconds).
    pub created_ms: u64,
}

/// Every run in flight: one Query of the sparse by-owner partition (more pages only
/// past a megabyte of them).
pub async fn list_in_flight(dynamo: &Dynamo, table: &str) -> Result<Vec<InFlight>, PortError> {
    let items: Vec<Item> = dynamo
        .query()
        .table_name(table)
        .index_name("by-owner")
        .key_condition_expression("gsi2pk = :pk")
        .expression_attribute_values(":pk", s(IN_FLIGHT))
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| port_error("listing the runs in flight", &e))?;
    let text = |item: &Item, name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
    Ok(items
        .iter()
        .filter_map(|item| {
            let partition = text(item, "pk");
            let mut parts = partition.strip_prefix("EXEC#")?.splitn(3, '#');
            let (project, domain, name) = (parts.next()?, parts.next()?, parts.next()?);
            let created_ms = chrono::DateTime::parse_from_rfc3339(&text(item, "created_at"))
                .map(|t| t.timestamp_millis().max(0) as u64)
                .unwrap_or(0);
            Some(InFlight {
                execution: ExecutionId { project: project.into(), domain: domain.into(), name: name.into() },
                workflow: Identifier {
                    resource_type: updraft_core::proto::core::ResourceType::Workflow as i32,
                    project: project.into(),
                    domain: domain.into(),
                    name: text(item, "workflow_name"),
                    version: text(item, "workflow_version"),
                },
                created_ms,
            })
        })
        .collect())
}

/// What the reconciler reads of a node: (node, its slot).
pub type NodeState = (String, NodeSlot);

/// What a launch writes.
pub struct Launch<'a> {
    pub workflow: &'a updraft_core::proto::core::Identifier,
    pub inputs: &'a Outputs,
    pub overwrite_cache: bool,
    pub origin: &'a LaunchOrigin,
}

/// One run's state: the execution item and its node items.
#[derive(Clone)]
pub struct DynamoRun {
    dynamo: Dynamo,
    table: String,
    execution: ExecutionId,
    partition: String,
    meter: Option<std::sync::Arc<Meter>>,
    values: Option<ValuesBucket>,
}

/// Where node outputs too large for their item are kept: the stack's bucket.
#[derive(Clone)]
pub struct ValuesBucket {
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
}

impl DynamoRun {
    pub fn new(dynamo: Dynamo, table: impl Into<String>, execution: &ExecutionId) -> Self {
        let (table, partition) = (table.into(), execution_key(execution));
        DynamoRun { dynamo, table, execution: execution.clone(), partition, meter: None, values: None }
    }

    /// Node outputs and run inputs over [`INLINE_OUTPUTS_LIMIT`] are kept in
    /// `bucket` (by digest, under the run's prefix) and read back from it; without
    /// one they must fit their item ([`RECORD_VALUES_LIMIT`]).
    pub fn with_values_bucket(self, values: ValuesBucket) -> Self {
        DynamoRun { values: Some(values), ..self }
    }

    /// Items whose values are kept in the bucket get them back (`node_outputs`,
    /// `run_inputs`), checked against the digest their item recorded.
    async fn resolve_values(&self, items: &mut [Item]) -> Result<(), PortError> {
        for item in items.iter_mut() {
            for kept in [KEPT_OUTPUTS, KEPT_INPUTS] {
                let Some(uri) = item.get(kept.uri).and_then(|v| v.as_s().ok()).cloned() else { continue };
                let recorded = item.get(kept.digest).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                let text = self.read_kept(&uri, &recorded, kept.what).await?;
                item.insert(kept.value.into(), AttributeValue::S(text));
            }
        }
        Ok(())
    }

    /// The JSON kept at `uri`, if it still has the digest its record gives;
    /// `NotFound` when the object is gone (the bucket keeps run data for the
    /// stack's RunDataDays, the records stay).
    async fn read_kept(&self, uri: &str, recorded: &str, what: &str) -> Result<String, PortError> {
        let Some(values) = &self.values else {
            return Err(PortError::Permanent(format!("{what} kept in {uri}, and no bucket to read them from")));
        };
        let at = crate::s3::S3Uri::parse(uri).map_err(PortError::Permanent)?;
        let bytes = match crate::s3::get_bytes(&values.s3, &at).await {
            Ok(bytes) => bytes,
            Err(e) if !e.is_retryable() && matches!(crate::s3::exists(&values.s3, &at).await, Ok(false)) => {
                return Err(PortError::NotFound(format!(
                    "the {what} kept at {uri} are gone: the stack keeps run data for its RunDataDays"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        if digest != recorded {
            return Err(PortError::Permanent(format!(
                "{uri} holds {what} of digest {digest}, its record says {recorded}: it was changed after it was written"
            )));
        }
        String::from_utf8(bytes).map_err(|e| PortError::Permanent(format!("{uri}: {e}")))
    }

    /// Keeps `json` in the bucket at `runs/<project>/<domain>/<run>/<under>-<sha256>.json`
    /// (a repeat writes the same object again); its URI and digest, for the record.
    async fn keep(&self, bucket: &ValuesBucket, under: &str, json: String) -> Result<(String, String), PortError> {
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(json.as_bytes()));
        let e = &self.execution;
        let key = format!("runs/{}/{}/{}/{under}-{digest}.json", e.project, e.domain, e.name);
        let at = crate::s3::S3Uri { bucket: bucket.bucket.clone(), key };
        crate::s3::put_bytes(&bucket.s3, &at, json.into_bytes(), "application/json").await.map_err(PortError::from)?;
        Ok((at.to_string(), digest))
    }

    /// This run's writes that end an invocation's work on it (a node armed, its
    /// job recorded, a node settled) also add what the invocation used so far.
    pub fn with_meter(self, meter: std::sync::Arc<Meter>) -> Self {
        DynamoRun { meter: Some(meter), ..self }
    }

    /// What the invocation used so far, taken from the meter to be added by a
    /// write: an `ADD` clause for its expression and the clause's values (none
    /// without a meter).
    fn usage_update(&self) -> (Option<RunUsage>, &'static str, Vec<(&'static str, AttributeValue)>) {
        let Some(meter) = &self.meter else { return (None, "", Vec::new()) };
        let usage = meter.take();
        let number = |n: f64| AttributeValue::N(format!("{n}"));
        let values = vec![
            (":u_inv", number(usage.lambda_invocations as f64)),
            (":u_gbs", number(usage.lambda_gb_seconds)),
            (":u_ddb_r", number(usage.dynamodb_read_units as f64)),
            (":u_ddb_w", number(usage.dynamodb_write_units as f64)),
            (":u_s3_r", number(usage.s3_read_requests as f64)),
            (":u_s3_w", number(usage.s3_write_requests as f64)),
        ];
        let clause = " ADD u_invocations :u_inv, u_lambda_gb_s :u_gbs, u_ddb_reads :u_ddb_r, \
                      u_ddb_writes :u_ddb_w, u_s3_reads :u_s3_r, u_s3_writes :u_s3_w";
        (Some(usage), clause, values)
    }

    /// [`update`](Self::update) of a `SET` expression that also adds what the
    /// invocation used so far.
    async fn update_with_usage(
        &self,
        node: &str,
        expression: &str,
        mut values: Vec<(&str, AttributeValue)>,
    ) -> Result<NodeSlot, PortError> {
        let (usage, clause, metered) = self.usage_update();
        values.extend(metered);
        let written = self.update(node, &format!("{expression}{clause}"), values).await;
        if written.is_err() {
            self.unwritten(usage);
        }
        written
    }

    /// A usage taken by [`usage_update`](Self::usage_update) whose write did not happen.
    fn unwritten(&self, usage: Option<RunUsage>) {
        if let (Some(meter), Some(usage)) = (&self.meter, usage) {
            meter.give_back(usage);
        }
    }

    /// Writes a new run: one item, its inputs (its nodes' items come with their first
    /// writes). A run of that name exists already: `Conflict` (names are never reused),
    /// and nothing is written. Inputs its record cannot hold: `Invalid`, saying so.
    pub async fn create(&self, launch: &Launch<'_>) -> Result<(), PortError> {
        let inputs = outputs_json(launch.inputs);
        let limit = if self.values.is_some() { STORED_OUTPUTS_LIMIT } else { RECORD_VALUES_LIMIT };
        if inputs.len() > limit {
            return Err(PortError::Invalid(format!(
                "the run's inputs are {} bytes as JSON; a run keeps at most {limit} bytes of inputs: pass large \
                 data as a file or directory input (an s3:// URI) instead",
                inputs.len()
            )));
        }
        // Inputs over 64 KiB are kept in the bucket before the record names them, so a record
        // never names a missing object. A launch refused below (the name is taken) leaves an
        // object no record names, under that run's prefix; the run data's lifecycle removes it.
        let inputs = match &self.values {
            Some(bucket) if inputs.len() > INLINE_OUTPUTS_LIMIT => {
                let (uri, digest) = self.keep(bucket, "record/inputs", inputs).await?;
                InputsAttributes::Kept { uri, digest }
            }
            _ => InputsAttributes::Inline(inputs),
        };
        let workflow = launch.workflow;
        // Fixed width, so that the text sorts as the time does.
        let created_at = now();
        let origin = launch.origin;
        let mut put = self.dynamo.put_item();
        if let Some(plan) = &origin.launch_plan {
            put = put.item("plan_name", s(&plan.name)).item("plan_version", s(&plan.version));
        }
        if let Some(at) = origin.scheduled_at {
            put = put.item("scheduled_at", s(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
        }
        if !origin.principal.is_empty() {
            put = put.item("principal", s(&origin.principal));
        }
        if !origin.recovered_from.is_empty() {
            put = put.item("recovered_from", s(&origin.recovered_from));
        }
        put = match inputs {
            InputsAttributes::Inline(json) => put.item(KEPT_INPUTS.value, s(json)),
            InputsAttributes::Kept { uri, digest } => {
                put.item(KEPT_INPUTS.uri, s(uri)).item(KEPT_INPUTS.digest, s(digest))
            }
        };
        let created = put
            .table_name(&self.table)
            .item("pk", s(&self.partition))
            .item("sk", s("EXEC"))
            .item("workflow_name", s(&workflow.name))
            .item("workflow_version", s(&workflow.version))
            .item("run_phase", s("RUNNING"))
            .item("created_at", s(&created_at))
            // The by-time index lists a project's runs newest first.
            .item("gsi1pk", s(format!("EXECS#{}#{}", self.execution.project, self.execution.domain)))
            .item("gsi1sk", s(format!("{created_at}#{}", self.execution.name)))
            .item("overwrite_cache", AttributeValue::Bool(launch.overwrite_cache))
            .item("launch_mode", s(origin.mode.as_str_name()))
            // The runs in flight, sparse on the by-owner index: every end of the run removes it.
            .item("gsi2pk", s(IN_FLIGHT))
            .item("gsi2sk", s(format!("{created_at}#{}", self.partition)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                return Err(PortError::Conflict(format!("the execution {} exists already", self.partition)));
            }
            Err(e) => return Err(port_error("creating the execution", &e)),
        }
        // No node items: a node's first write (its arm, or an upstream node's end) makes its
        // item, so a launch costs one write however many nodes the workflow has.
        Ok(())
    }

    /// How the run was launched, as its steps need it: whether it overwrites the
    /// cache, and the run it recovers (a RECOVER run; empty otherwise).
    pub async fn launch_settings(&self) -> Result<(bool, String), PortError> {
        let item = self.execution_item().await?.unwrap_or_default();
        let overwrite = item.get("overwrite_cache").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false);
        let recovered_from = item.get("recovered_from").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        Ok((overwrite, recovered_from))
    }

    async fn execution_item(&self) -> Result<Option<Item>, PortError> {
        let answer = self
            .dynamo
            .get_item()
            .table_name(&self.table)
            .key("pk", s(&self.partition))
            .key("sk", s("EXEC"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error("reading the execution", &e))?;
        Ok(answer.item)
    }

    /// The run as stored: the execution item and its node items, as JSON objects
    /// of their attributes (the API shapes them into the IDL), with the values
    /// kept in the bucket read back.
    pub async fn record(&self) -> Result<Option<(serde_json::Value, Vec<serde_json::Value>)>, PortError> {
        let mut items = self.items().await?;
        self.resolve_values(&mut items).await?;
        Ok(Self::record_of(items))
    }

    /// `node`'s item, read consistently; `None` before its first write.
    async fn node_item(&self, node: &str) -> Result<Option<Item>, PortError> {
        let answer = self
            .dynamo
            .get_item()
            .table_name(&self.table)
            .key("pk", s(&self.partition))
            .key("sk", s(node_key(node)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error("reading a node", &e))?;
        Ok(answer.item)
    }

    /// The record of one node, its values read back, or `None` before its first write.
    pub async fn node_record(&self, node: &str) -> Result<Option<serde_json::Value>, PortError> {
        let Some(item) = self.node_item(node).await? else { return Ok(None) };
        let mut items = [item];
        self.resolve_values(&mut items).await?;
        Ok(Some(serde_json::Value::Object(attributes_json(&items[0]))))
    }

    /// [`record`](Self::record) without reading back the values kept in the bucket
    /// (their items only name them): for what needs phases, jobs and logs, not values.
    pub async fn record_without_values(
        &self,
    ) -> Result<Option<(serde_json::Value, Vec<serde_json::Value>)>, PortError> {
        Ok(Self::record_of(self.items().await?))
    }

    fn record_of(items: Vec<Item>) -> Option<(serde_json::Value, Vec<serde_json::Value>)> {
        let mut execution = None;
        let mut nodes = Vec::new();
        for item in items {
            let object = serde_json::Value::Object(attributes_json(&item));
            match item.get("sk").and_then(|v| v.as_s().ok()).map(String::as_str) {
                Some("EXEC") => execution = Some(object),
                _ => nodes.push(object),
            }
        }
        execution.map(|e| (e, nodes))
    }

    /// Every item of the run's partition (its execution item first), read consistently.
    async fn items(&self) -> Result<Vec<Item>, PortError> {
        self.dynamo
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(&self.partition))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| port_error("reading the run", &e))
    }

    fn slot_of(item: &Item) -> NodeSlot {
        let number = |name: &str| item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<u64>().ok());
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let flag = |name: &str| item.get(name).and_then(|v| v.as_bool().ok()).copied().unwrap_or(false);
        // Each upstream node's end is one member of the set, however often it was told.
        let ended_upstream = item.get("ended_upstream").and_then(|v| v.as_ss().ok()).cloned().unwrap_or_default();
        let end = text("node_phase").map(|phase| RecordedEnd {
            phase: NodePhase::from_str_name(&phase).unwrap_or(NodePhase::Failed),
            failure: text("failure_code").map(|code| {
                let code =
                    FailureCode::ALL.into_iter().find(|c| c.as_str() == code).unwrap_or(FailureCode::SystemError);
                NodeFailure::new(code, text("failure_message").unwrap_or_default())
            }),
        });
        NodeSlot {
            ended_upstream,
            token: text("task_token"),
            skip: flag("upstream_failed"),
            claimed_at: number("claimed_at"),
            job: text("job_id"),
            end,
            settled: flag("settled"),
        }
    }

    /// An update of the run's item `sort_key` (`EXEC`, or a node's) with these values.
    fn item_update(
        &self,
        sort_key: String,
        expression: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        let mut update = self
            .dynamo
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&self.partition))
            .key("sk", s(sort_key))
            .update_expression(expression);
        for (name, value) in values {
            update = update.expression_attribute_values(name, value);
        }
        update
    }

    /// An update of `node`'s item with these values.
    fn node_update(
        &self,
        node: &str,
        expression: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.item_update(node_key(node), expression, values)
    }

    async fn update(
        &self,
        node: &str,
        expression: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<NodeSlot, PortError> {
        // A node's first write makes its item (the run's creation writes none), naming it.
        let answer = self
            .node_update(node, &naming_node(expression), values)
            .expression_attribute_names("#node_name", "node")
            .expression_attribute_values(":node", s(node))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| port_error("updating a node", &e))?;
        Ok(answer.attributes.as_ref().map(Self::slot_of).unwrap_or_default())
    }

    /// Whether a conditional update of the item `sort_key` lost its condition
    /// (`Ok(false)`) or was made; `what` names it in errors.
    async fn conditional_item(
        &self,
        what: &str,
        sort_key: String,
        expression: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, PortError> {
        match self.item_update(sort_key, expression, values).condition_expression(condition).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(port_error(what, &e)),
        }
    }

    /// [`conditional_item`](Self::conditional_item) on `node`'s item.
    async fn conditional(
        &self,
        node: &str,
        expression: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, PortError> {
        self.conditional_item("updating a node", node_key(node), expression, condition, values).await
    }

    /// The check, in a claim's transaction, that the run is RUNNING.
    fn run_is_running(&self) -> Result<aws_sdk_dynamodb::types::ConditionCheck, PortError> {
        aws_sdk_dynamodb::types::ConditionCheck::builder()
            .table_name(&self.table)
            .key("pk", s(&self.partition))
            .key("sk", s("EXEC"))
            .condition_expression("run_phase = :running")
            .expression_attribute_values(":running", s("RUNNING"))
            .build()
            .map_err(building_a_claim)
    }

    /// A write of `node`'s item (`set`, a `SET` clause; `adds`, what its `ADD` clause adds)
    /// that also claims its start, in one transaction with the check that the run is
    /// RUNNING, when `condition` (a prefix ending in `AND `) and the claim's own hold, as
    /// [`claim`](RunStore::claim) checks them. Whether it was made: when not, nothing was
    /// written and the caller makes its write alone. What the invocation used goes with it.
    #[allow(clippy::too_many_arguments)]
    async fn claiming(
        &self,
        node: &str,
        set: &str,
        adds: &str,
        condition: &str,
        mut values: Vec<(&str, AttributeValue)>,
        now: u64,
        stale_before: u64,
    ) -> Result<bool, PortError> {
        use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
        let running = self.run_is_running()?;
        let (usage, clause, metered) = self.usage_update();
        values.extend(metered);
        values.extend([
            (":now", AttributeValue::N(now.to_string())),
            (":stale", AttributeValue::N(stale_before.to_string())),
            (":at", s(chrono::Utc::now().to_rfc3339())),
            (":node", s(node)),
        ]);
        let adds = if adds.is_empty() { clause.to_string() } else { adding(adds, clause) };
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(&self.partition))
            .key("sk", s(node_key(node)))
            .update_expression(naming_node(&format!("{set}, claimed_at = :now, started_at = :at{adds}")))
            .condition_expression(format!(
                "{condition}attribute_not_exists(node_phase) AND attribute_not_exists(job_id) \
                 AND (attribute_not_exists(claimed_at) OR claimed_at < :stale)"
            ))
            .expression_attribute_names("#node_name", "node");
        for (name, value) in values {
            update = update.expression_attribute_values(name, value);
        }
        let written = self
            .dynamo
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().condition_check(running).build())
            .transact_items(TransactWriteItem::builder().update(update.build().map_err(building_a_claim)?).build())
            .send()
            .await;
        match written {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_transaction_canceled_exception()) => {
                self.unwritten(usage);
                Ok(false)
            }
            Err(e) => {
                self.unwritten(usage);
                Err(port_error("claiming a node", &e))
            }
        }
    }

    /// [`conditional_item`](Self::conditional_item) on the execution item.
    async fn update_execution(
        &self,
        expression: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, PortError> {
        self.conditional_item("updating the execution", "EXEC".to_string(), expression, condition, values).await
    }
}

impl RunStore for DynamoRun {
    async fn arm(&self, node: &str, token: &str) -> Result<NodeSlot, PortError> {
        self.update_with_usage(node, "SET task_token = :token", vec![(":token", s(token))]).await
    }

    async fn upstream_ended(
        &self,
        node: &str,
        upstream: &str,
        failed: bool,
        upstream_total: u32,
    ) -> Result<NodeSlot, PortError> {
        // A set, not a counter: telling the same edge twice (a replayed end) counts once.
        let (usage, clause, mut values) = self.usage_update();
        let (set, edge) = edge_write(upstream, failed, upstream_total);
        values.extend(edge);
        let written = self.update(node, &format!("{set}{}", adding("ended_upstream :edge", clause)), values).await;
        if written.is_err() {
            self.unwritten(usage);
        }
        written
    }

    async fn arm_claiming(
        &self,
        node: &str,
        token: &str,
        told: Option<(&str, bool)>,
        now: u64,
        stale_before: u64,
    ) -> Result<(NodeSlot, bool), PortError> {
        let mut values = vec![(":token", s(token))];
        let (set, adds) = match told {
            Some((upstream, failed)) => {
                let (set, edge) = edge_write(upstream, failed, 1);
                values.extend(edge);
                (format!("{set}, task_token = :token"), "ended_upstream :edge")
            }
            None => ("SET task_token = :token".to_string(), ""),
        };
        if self.claiming(node, &set, adds, "", values, now, stale_before).await? {
            let slot = NodeSlot {
                ended_upstream: told.iter().map(|(upstream, _)| upstream.to_string()).collect(),
                token: Some(token.into()),
                skip: told.is_some_and(|(_, failed)| failed),
                claimed_at: Some(now),
                ..NodeSlot::default()
            };
            return Ok((slot, true));
        }
        // Not claimable (a repeated arm, a fresh claim, the run ended): the plain writes.
        let slot = self.arm(node, token).await?;
        match told {
            Some((upstream, failed)) => Ok((self.upstream_ended(node, upstream, failed, 1).await?, false)),
            None => Ok((slot, false)),
        }
    }

    async fn only_upstream_ended(
        &self,
        node: &str,
        upstream: &str,
        failed: bool,
        now: u64,
        stale_before: u64,
    ) -> Result<(NodeSlot, bool), PortError> {
        let (set, values) = edge_write(upstream, failed, 1);
        // Armed, and told for the first time (its one upstream node): this edge makes it ready.
        let condition = "attribute_exists(task_token) AND attribute_not_exists(ended_upstream) AND ";
        if self.claiming(node, set, "ended_upstream :edge", condition, values, now, stale_before).await? {
            let slot = NodeSlot {
                ended_upstream: vec![upstream.to_string()],
                skip: failed,
                claimed_at: Some(now),
                ..NodeSlot::default()
            };
            return Ok((slot, true));
        }
        Ok((self.upstream_ended(node, upstream, failed, 1).await?, false))
    }

    async fn slot(&self, node: &str) -> Result<NodeSlot, PortError> {
        Ok(self.node_item(node).await?.as_ref().map(Self::slot_of).unwrap_or_default())
    }

    async fn claim(&self, node: &str, now: u64, stale_before: u64) -> Result<Claim, PortError> {
        use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
        // The run's phase and the node's claim in one atomic write: once a run has
        // ended, no claim can start anything.
        let running = self.run_is_running()?;
        let claim = Update::builder()
            .table_name(&self.table)
            .key("pk", s(&self.partition))
            .key("sk", s(node_key(node)))
            .update_expression("SET claimed_at = :now, started_at = :at")
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(node_phase) AND attribute_not_exists(job_id) \
                 AND (attribute_not_exists(claimed_at) OR claimed_at < :stale)",
            )
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(":stale", AttributeValue::N(stale_before.to_string()))
            .expression_attribute_values(":at", s(chrono::Utc::now().to_rfc3339()))
            .build()
            .map_err(building_a_claim)?;
        let written = self
            .dynamo
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().condition_check(running).build())
            .transact_items(TransactWriteItem::builder().update(claim).build())
            .send()
            .await;
        match written {
            Ok(_) => Ok(Claim::Won),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_transaction_canceled_exception()) => {
                // Which condition failed: the run's phase tells.
                let phase =
                    self.execution_item().await?.and_then(|i| i.get("run_phase").and_then(|v| v.as_s().ok()).cloned());
                Ok(if phase.as_deref() == Some("RUNNING") { Claim::Held } else { Claim::RunEnded })
            }
            Err(e) => Err(port_error("claiming a node", &e)),
        }
    }

    async fn release(&self, node: &str, claimed_at: u64) -> Result<(), PortError> {
        let condition = "claimed_at = :ours AND attribute_not_exists(job_id) AND attribute_not_exists(node_phase)";
        let values = vec![(":ours", AttributeValue::N(claimed_at.to_string()))];
        self.conditional(node, "REMOVE claimed_at, started_at", condition, values).await.map(|_| ())
    }

    async fn lease_gather(
        &self,
        node: &str,
        now: u64,
        stale_before: u64,
        ours: Option<u64>,
    ) -> Result<bool, PortError> {
        let condition = "attribute_exists(pk) AND attribute_not_exists(node_phase) \
                         AND (attribute_not_exists(gathering_at) OR gathering_at < :stale OR gathering_at = :ours)";
        let values = vec![
            (":now", AttributeValue::N(now.to_string())),
            (":stale", AttributeValue::N(stale_before.to_string())),
            // No lease is taken at 0 ms: without one of its own, nothing matches.
            (":ours", AttributeValue::N(ours.unwrap_or_default().to_string())),
        ];
        self.conditional(node, "SET gathering_at = :now", condition, values).await
    }

    async fn release_gather(&self, node: &str, leased_at: u64) -> Result<(), PortError> {
        let values = vec![(":ours", AttributeValue::N(leased_at.to_string()))];
        self.conditional(node, "REMOVE gathering_at", "gathering_at = :ours", values).await.map(|_| ())
    }

    async fn started(&self, node: &str, job: &str) -> Result<(), PortError> {
        let condition = "attribute_exists(pk) AND attribute_not_exists(job_id)";
        let (usage, clause, mut values) = self.usage_update();
        values.push((":job", s(job)));
        let written = self.conditional(node, &format!("SET job_id = :job{clause}"), condition, values).await;
        if !matches!(written, Ok(true)) {
            self.unwritten(usage);
        }
        written.map(|_| ())
    }

    async fn run_running(&self) -> Result<bool, PortError> {
        let item = self.execution_item().await?;
        Ok(item.and_then(|i| i.get("run_phase").and_then(|v| v.as_s().ok()).cloned()).as_deref() == Some("RUNNING"))
    }

    /// A succeeded end whose outputs cannot be held by the node's item (DynamoDB's
    /// 400 KB) is recorded as a BadOutputs failure saying so: the node ends, the
    /// run with it, instead of a write that fails on every retry.
    async fn end(&self, node: &str, end: &NodeEnd) -> Result<(NodeSlot, bool), PortError> {
        let oversized;
        let size = outputs_json(&end.outputs).len();
        let limit = if self.values.is_some() { STORED_OUTPUTS_LIMIT } else { RECORD_VALUES_LIMIT };
        let end = if size > limit {
            let message = format!(
                "node {node}'s outputs are {size} bytes as JSON; a cloud run keeps at most {limit} bytes of a node's \
                 value outputs: return large data as a file or directory output (it stays in S3 and only its \
                 reference is kept), or map over fewer items"
            );
            let failure = Some(NodeFailure::new(FailureCode::BadOutputs, message));
            oversized = NodeEnd {
                phase: NodePhase::Failed,
                outputs: Outputs::new(),
                failure,
                cache_key: String::new(),
                ..end.clone()
            };
            &oversized
        } else {
            end
        };
        let phase = end.phase.as_str_name().to_string();
        let mut values = vec![(":phase", s(phase)), (":at", s(chrono::Utc::now().to_rfc3339())), (":node", s(node))];
        values.push((":attempts", AttributeValue::N(end.attempts.to_string())));
        let mut expression =
            "SET node_phase = :phase, ended_at = :at, node_attempts = :attempts, #node_name = :node".to_string();
        if end.downstream > 0 {
            // Settled once each of these downstream nodes has moved on with this end (the reconciler counts).
            expression.push_str(", downstream_total = :downstream");
            values.push((":downstream", AttributeValue::N(end.downstream.to_string())));
        }
        let outputs = outputs_json(&end.outputs);
        match &self.values {
            // Kept by digest under the node's prefix; a repeat writes the same object again.
            Some(bucket) if outputs.len() > INLINE_OUTPUTS_LIMIT => {
                let (uri, digest) = self.keep(bucket, &format!("{node}/record/outputs"), outputs).await?;
                expression.push_str(", node_outputs_uri = :outputs_uri, node_outputs_digest = :outputs_digest");
                values.push((":outputs_uri", s(uri)));
                values.push((":outputs_digest", s(digest)));
            }
            _ => {
                expression.push_str(", node_outputs = :outputs");
                values.push((":outputs", s(outputs)));
            }
        }
        if !end.cache_key.is_empty() {
            expression.push_str(", cache_key = :key");
            values.push((":key", s(&end.cache_key)));
        }
        if !end.log_uri.is_empty() {
            expression.push_str(", log_uri = :log");
            values.push((":log", s(&end.log_uri)));
        }
        if !end.branch_taken.is_empty() {
            expression.push_str(", branch_taken = :branch");
            values.push((":branch", s(&end.branch_taken)));
        }
        if !end.attempt_records.is_empty() {
            // As the IDL's JSON, as the executions API shows them: a few hundred bytes an attempt.
            let records = serde_json::to_string(&end.attempt_records).unwrap_or_default();
            expression.push_str(", attempt_records = :records");
            values.push((":records", s(records)));
        }
        if end.batch.batch_attempts > 0 {
            expression.push_str(", u_vcpu_s = :vcpu_s, u_gb_s = :gb_s, u_gpu_s = :gpu_s, u_attempts = :tries");
            values.push((":vcpu_s", AttributeValue::N(format!("{}", end.batch.batch_vcpu_seconds))));
            values.push((":gb_s", AttributeValue::N(format!("{}", end.batch.batch_gb_seconds))));
            values.push((":gpu_s", AttributeValue::N(format!("{}", end.batch.batch_gpu_seconds))));
            values.push((":tries", AttributeValue::N(end.batch.batch_attempts.to_string())));
        }
        if let Some(items) = &end.items {
            expression.push_str(", items_done = :done, items_failed = :failed, items_total = :total");
            values.push((":done", AttributeValue::N(items.done.to_string())));
            values.push((":failed", AttributeValue::N(items.failed.to_string())));
            values.push((":total", AttributeValue::N(items.total.to_string())));
        }
        if let Some(failure) = &end.failure {
            expression.push_str(", failure_code = :code, failure_message = :message");
            values.push((":code", s(failure.code.as_str())));
            values.push((":message", s(&failure.message)));
        }
        let recorded = self
            .node_update(node, &expression, values)
            .expression_attribute_names("#node_name", "node")
            .condition_expression("attribute_not_exists(node_phase)")
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match recorded {
            Ok(answer) => Ok((answer.attributes.as_ref().map(Self::slot_of).unwrap_or_default(), true)),
            // Ended before: the first end stands.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Ok((self.slot(node).await?, false))
            }
            Err(e) => Err(port_error("recording a node's end", &e)),
        }
    }

    async fn settled(&self, node: &str) -> Result<(), PortError> {
        self.update_with_usage(node, "SET settled = :yes", vec![(":yes", AttributeValue::Bool(true))]).await.map(|_| ())
    }

    async fn node_failed(&self, node: &str) -> Result<(), PortError> {
        // Finish reads this: a run with a failed node ends FAILED (finish_independent).
        let expression = "SET failed_node = if_not_exists(failed_node, :node)";
        self.update_execution(expression, "attribute_exists(pk)", vec![(":node", s(node))]).await.map(|_| ())
    }

    async fn fail_run(&self, failure: &NodeFailure) -> Result<(), PortError> {
        // The same `run_error` as the state machine's Record failure writes.
        let error = serde_json::json!({"Error": failure.code.as_str(), "Cause": failure.message}).to_string();
        let values = vec![
            (":failed", s("FAILED")),
            (":running", s("RUNNING")),
            (":at", s(chrono::Utc::now().to_rfc3339())),
            (":error", s(error)),
        ];
        let expression = format!("SET run_phase = :failed, ended_at = :at, run_error = :error{LEAVE_IN_FLIGHT}");
        // A run that has ended already keeps its phase.
        self.update_execution(&expression, "run_phase = :running", values).await.map(|_| ())
    }

    async fn values(&self, nodes: Option<&[String]>) -> Result<RunValues, PortError> {
        let mut items = match nodes {
            None => self.items().await?,
            // The execution item and the nodes' items only: one BatchGetItem, not the run's partition.
            Some(nodes) => {
                let mut sort_keys: Vec<String> = nodes.iter().map(|n| node_key(n)).collect();
                sort_keys.sort();
                sort_keys.dedup();
                sort_keys.push("EXEC".into());
                let keys = sort_keys
                    .into_iter()
                    .map(|sk| HashMap::from([("pk".to_string(), s(&self.partition)), ("sk".to_string(), s(sk))]));
                let projection = "sk, run_inputs, run_inputs_uri, run_inputs_digest, node_outputs, node_phase, \
                                  node_outputs_uri, node_outputs_digest";
                crate::dynamo::batch_get(
                    &self.dynamo,
                    &self.table,
                    keys.collect(),
                    Some(projection),
                    "reading a run's values",
                )
                .await?
            }
        };
        self.resolve_values(&mut items).await?;
        let mut values = RunValues::default();
        for item in items {
            let sk = item.get("sk").and_then(|v| v.as_s().ok()).map(String::as_str).unwrap_or_default();
            if sk == "EXEC" {
                values.inputs = outputs_from(&item, "run_inputs")?;
            } else if let Some(node) = sk.strip_prefix("NODE#")
                && item.contains_key("node_phase")
            {
                values.outputs.insert(node.to_string(), outputs_from(&item, "node_outputs")?);
            }
        }
        Ok(values)
    }
}

fn building_a_claim(e: aws_sdk_dynamodb::error::BuildError) -> PortError {
    PortError::Permanent(format!("building a claim: {e}"))
}

/// An edge write's `SET` clause and values (its `ADD` adds `ended_upstream :edge`): the
/// upstream node told, whether it failed, the node's upstream count.
fn edge_write(
    upstream: &str,
    failed: bool,
    upstream_total: u32,
) -> (&'static str, Vec<(&'static str, AttributeValue)>) {
    let mut values = vec![
        (":edge", AttributeValue::Ss(vec![upstream.to_string()])),
        (":total", AttributeValue::N(upstream_total.to_string())),
    ];
    if !failed {
        return ("SET upstream_total = :total", values);
    }
    values.push((":yes", AttributeValue::Bool(true)));
    ("SET upstream_total = :total, upstream_failed = :yes", values)
}

/// An `ADD` clause of `adds` and of what a usage clause (`" ADD …"` or empty) adds.
fn adding(adds: &str, usage_clause: &str) -> String {
    match usage_clause.strip_prefix(" ADD ") {
        Some(usage) => format!(" ADD {adds}, {usage}"),
        None => format!(" ADD {adds}"),
    }
}

/// `expression` that also sets the item's `node` attribute (`#node_name` = `:node`), which
/// every write that may make a node's item carries: in its `SET` clause, or one of its own.
fn naming_node(expression: &str) -> String {
    match expression.split_once("SET ") {
        Some((before, after)) => format!("{before}SET #node_name = :node, {after}"),
        None => format!("SET #node_name = :node {expression}"),
    }
}

/// A run's phase as the execution item stores it (`run_phase`).
pub fn stored_phase(phase: WorkflowPhase) -> &'static str {
    match phase {
        WorkflowPhase::WorkflowSucceeded => "SUCCEEDED",
        WorkflowPhase::WorkflowFailed => "FAILED",
        WorkflowPhase::WorkflowAborted => "ABORTED",
        WorkflowPhase::WorkflowTimedOut => "TIMED_OUT",
        WorkflowPhase::WorkflowQueued => "QUEUED",
        WorkflowPhase::WorkflowRunning | WorkflowPhase::Undefined => "RUNNING",
    }
}

/// The phase of a stored `run_phase`.
pub fn phase_of_stored(text: &str) -> WorkflowPhase {
    match text {
        "SUCCEEDED" => WorkflowPhase::WorkflowSucceeded,
        "FAILED" => WorkflowPhase::WorkflowFailed,
        "ABORTED" => WorkflowPhase::WorkflowAborted,
        "TIMED_OUT" => WorkflowPhase::WorkflowTimedOut,
        "QUEUED" => WorkflowPhase::WorkflowQueued,
        _ => WorkflowPhase::WorkflowRunning,
    }
}

impl DynamoRun {
    /// What the run was launched with: its workflow version and inputs (read
    /// back from the bucket where they are kept there); `None`: no such run.
    pub async fn launched(&self) -> Result<Option<(Identifier, Outputs)>, PortError> {
        let Some(item) = self.execution_item().await? else { return Ok(None) };
        let mut items = [item];
        self.resolve_values(&mut items).await?;
        let [item] = items;
        Ok(Some((self.workflow_of(&item), outputs_from(&item, "run_inputs")?)))
    }

    /// The workflow version the run runs, from its execution item alone; `None`: no such run.
    pub async fn workflow(&self) -> Result<Option<Identifier>, PortError> {
        Ok(self.execution_item().await?.map(|item| self.workflow_of(&item)))
    }

    fn workflow_of(&self, item: &Item) -> Identifier {
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        Identifier {
            resource_type: updraft_core::proto::core::ResourceType::Workflow as i32,
            project: self.execution.project.clone(),
            domain: self.execution.domain.clone(),
            name: text("workflow_name"),
            version: text("workflow_version"),
        }
    }
}

impl DynamoRun {
    /// Each node with an item and its slot, read consistently in one Query. An ended node
    /// that told downstream nodes is `settled` when each of them has moved on with its end
    /// (`steps::moved_on`): such an end is never marked.
    pub async fn node_states(&self) -> Result<Vec<NodeState>, PortError> {
        let number = |item: &Item, name: &str| item.get(name).and_then(|v| v.as_n().ok()?.parse::<u32>().ok());
        let nodes: Vec<(String, NodeSlot, u32, u32)> = self
            .items()
            .await?
            .iter()
            .filter_map(|item| {
                let node = item.get("node").and_then(|v| v.as_s().ok())?.clone();
                let totals =
                    (number(item, "upstream_total").unwrap_or(0), number(item, "downstream_total").unwrap_or(0));
                Some((node, Self::slot_of(item), totals.0, totals.1))
            })
            .collect();
        let moved_on_from = |upstream: &str| {
            let children = nodes.iter().filter(|(_, child, total, _)| moved_on(child, upstream, *total));
            children.count() as u32
        };
        Ok(nodes
            .iter()
            .map(|(node, slot, _, downstream)| {
                let settled =
                    slot.settled || (slot.end.is_some() && *downstream > 0 && moved_on_from(node) >= *downstream);
                (node.clone(), NodeSlot { settled, ..slot.clone() })
            })
            .collect())
    }
}

impl StoppableRun for DynamoRun {
    async fn end_run(&self, cause: &StopCause) -> Result<WorkflowPhase, PortError> {
        let (code, message) = cause.error();
        let error = serde_json::json!({"Error": code, "Cause": message}).to_string();
        let values = vec![
            (":phase", s(stored_phase(cause.phase()))),
            (":running", s("RUNNING")),
            (":at", s(chrono::Utc::now().to_rfc3339())),
            (":error", s(error)),
        ];
        let expression = format!("SET run_phase = :phase, ended_at = :at, run_error = :error{LEAVE_IN_FLIGHT}");
        if self.update_execution(&expression, "run_phase = :running", values).await? {
            return Ok(cause.phase());
        }
        // Ended before (the first end stands), or no such run.
        let item = self.execution_item().await?.ok_or_else(|| {
            PortError::NotFound(format!(
                "no execution {}/{}/{}",
                self.execution.project, self.execution.domain, self.execution.name
            ))
        })?;
        Ok(phase_of_stored(item.get("run_phase").and_then(|v| v.as_s().ok()).map_or("", String::as_str)))
    }

    async fn live_jobs(&self) -> Result<Vec<LiveJob>, PortError> {
        let items = self.items().await?;
        Ok(items
            .iter()
            .filter(|item| !item.contains_key("node_phase"))
            .filter_map(|item| {
                let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
                Some(LiveJob { node: text("node")?, job: text("job_id")? })
            })
            .collect())
    }

    async fn end_node(&self, node: &str, end: &NodeEnd) -> Result<(), PortError> {
        self.end(node, end).await.map(|_| ())
    }
}

/// The most a run's inputs or a node's outputs may take as JSON in their record:
/// DynamoDB's 400 KB item, less room for the record's other attributes (token,
/// ids, times, failure).
pub const RECORD_VALUES_LIMIT: usize = 350 * 1024;

/// Node outputs and run inputs over this many bytes of JSON are kept in the
/// bucket, by digest, and their item names them (`node_outputs_uri` and
/// `node_outputs_digest`, `run_inputs_uri` and `run_inputs_digest`).
pub const INLINE_OUTPUTS_LIMIT: usize = 64 * 1024;

/// The most a node's value outputs or a run's inputs may take as JSON when kept
/// in the bucket: what the executions API can still answer with (Lambda's 6 MB
/// response) beside the run's other nodes.
pub const STORED_OUTPUTS_LIMIT: usize = 4 * 1024 * 1024;

/// Values a record keeps in the bucket when they are over [`INLINE_OUTPUTS_LIMIT`]:
/// the attribute that holds them inline, and the two that name and check them otherwise.
struct KeptValues {
    value: &'static str,
    uri: &'static str,
    digest: &'static str,
    what: &'static str,
}

const KEPT_OUTPUTS: KeptValues =
    KeptValues { value: "node_outputs", uri: "node_outputs_uri", digest: "node_outputs_digest", what: "node outputs" };
const KEPT_INPUTS: KeptValues =
    KeptValues { value: "run_inputs", uri: "run_inputs_uri", digest: "run_inputs_digest", what: "run inputs" };

/// How a new run's record holds its inputs.
enum InputsAttributes {
    Inline(String),
    Kept { uri: String, digest: String },
}

/// Task outputs by cache key, one item per key (`CACHE#<key>`).
#[derive(Clone)]
pub struct DynamoCache {
    dynamo: Dynamo,
    table: String,
}

impl DynamoCache {
    pub fn new(dynamo: Dynamo, table: impl Into<String>) -> Self {
        DynamoCache { dynamo, table: table.into() }
    }

    /// An entry's item, indexed under its task version when one is given.
    fn entry_item(key: &str, task: Option<&Identifier>, outputs: &Outputs, created_at: &str) -> Item {
        let mut item = HashMap::from([
            ("pk".to_string(), s(format!("CACHE#{key}"))),
            ("sk".to_string(), s("CACHE")),
            ("outputs".to_string(), s(outputs_json(outputs))),
            ("created_at".to_string(), s(created_at)),
        ]);
        if let Some(task) = task {
            // The by-owner index lists a task version's entries (updraft cache list|delete).
            item.insert("gsi2pk".into(), s(cache_owner(task)));
            item.insert("gsi2sk".into(), s(format!("{created_at}#{key}")));
        }
        item
    }

    /// Stores (or replaces) an entry, indexed under its task version when one is given.
    async fn write(&self, key: &str, task: Option<&Identifier>, outputs: &Outputs) -> Result<(), PortError> {
        let item = Self::entry_item(key, task, outputs, &now());
        self.dynamo
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| port_error("writing the cache", &e))?;
        Ok(())
    }
}

impl CacheStore for DynamoCache {
    /// BatchGetItem, 100 distinct keys a request (a map of 10,000 items reads its
    /// entries in 100 round trips, not 10,000), consistent like `get`; keys left
    /// unprocessed are asked for again after a backoff.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Outputs>>, PortError> {
        let distinct: std::collections::BTreeSet<&String> = keys.iter().collect();
        let wanted: Vec<Item> = distinct
            .into_iter()
            .map(|key| [("pk".to_string(), s(format!("CACHE#{key}"))), ("sk".to_string(), s("CACHE"))].into())
            .collect();
        let mut found: HashMap<String, Outputs> = HashMap::new();
        for item in crate::dynamo::batch_get(&self.dynamo, &self.table, wanted, None, "reading the cache").await? {
            let key = item.get("pk").and_then(|v| v.as_s().ok()).map_or("", |pk| pk.trim_start_matches("CACHE#"));
            found.insert(key.to_string(), outputs_from(&item, "outputs")?);
        }
        Ok(keys.iter().map(|key| found.get(key).cloned()).collect())
    }

    async fn get(&self, key: &str) -> Result<Option<Outputs>, PortError> {
        let answer = self
            .dynamo
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("CACHE#{key}")))
            .key("sk", s("CACHE"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error("reading the cache", &e))?;
        answer.item.as_ref().map(|item| outputs_from(item, "outputs")).transpose()
    }

    async fn put(&self, key: &str, outputs: &Outputs) -> Result<(), PortError> {
        self.write(key, None, outputs).await
    }

    async fn delete(&self, key: &str) -> Result<(), PortError> {
        self.dynamo
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("CACHE#{key}")))
            .key("sk", s("CACHE"))
            .send()
            .await
            .map_err(|e| port_error("deleting a cache entry", &e))?;
        Ok(())
    }

    async fn put_for(&self, key: &str, task: &Identifier, outputs: &Outputs) -> Result<(), PortError> {
        self.write(key, Some(task), outputs).await
    }

    /// BatchWriteItem, 25 entries a request (a map of 10,000 items writes its
    /// entries in 400 requests, not 10,000); a key given twice is written once.
    async fn put_many_for(&self, entries: &[(String, Outputs)], task: &Identifier) -> Result<(), PortError> {
        let created_at = now();
        let distinct: HashMap<&str, &Outputs> = entries.iter().map(|(key, outputs)| (key.as_str(), outputs)).collect();
        let items = distinct.into_iter().map(|(key, outputs)| Self::entry_item(key, Some(task), outputs, &created_at));
        crate::dynamo::batch_put(&self.dynamo, &self.table, items.collect(), "writing the cache").await
    }

    async fn entries(&self, task: &Identifier) -> Result<Vec<CacheEntry>, PortError> {
        let items = self
            .dynamo
            .query()
            .table_name(&self.table)
            .index_name("by-owner")
            .key_condition_expression("gsi2pk = :owner")
            .expression_attribute_values(":owner", s(cache_owner(task)))
            .scan_index_forward(false)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| port_error("listing cache entries", &e))?;
        let entry = |item: &Item| {
            let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            CacheEntry { key: text("pk").trim_start_matches("CACHE#").to_string(), created_at: text("created_at") }
        };
        Ok(items.iter().map(entry).collect())
    }

    async fn evict(&self, task: &Identifier, by: &str) -> Result<Eviction, PortError> {
        // Recorded first: an eviction that dies halfway is still attributed, and repeating it finishes it.
        let at = now();
        self.dynamo
            .put_item()
            .table_name(&self.table)
            .item("pk", s(cache_owner(task)))
            .item("sk", s(EVICTION))
            .item("evicted_by", s(by))
            .item("evicted_at", s(&at))
            .send()
            .await
            .map_err(|e| port_error("recording the cache eviction", &e))?;
        let entries = self.entries(task).await?;
        for entry in &entries {
            self.delete(&entry.key).await?;
        }
        Ok(Eviction { deleted: entries.len() as u32, at })
    }

    async fn last_eviction(&self, task: &Identifier) -> Result<Option<(String, String)>, PortError> {
        let answer = self
            .dynamo
            .get_item()
            .table_name(&self.table)
            .key("pk", s(cache_owner(task)))
            .key("sk", s(EVICTION))
            .send()
            .await
            .map_err(|e| port_error("reading the last cache eviction", &e))?;
        let text = |item: &Item, name: &str| crate::registry::text(item, name).to_string();
        Ok(answer.item.map(|item| (text(&item, "evicted_by"), text(&item, "evicted_at"))))
    }
}

/// The sort key of a task version's eviction record (partition: [`cache_owner`]).
const EVICTION: &str = "EVICTION";

/// The by-owner partition of a task version's cache entries.
fn cache_owner(task: &Identifier) -> String {
    format!("CACHETASK#{}#{}#{}#{}", task.project, task.domain, task.name, task.version)
}
