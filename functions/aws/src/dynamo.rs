//! DynamoDB reads shared by the registry and the runs.

use crate::sdk_error::port_error;
use aws_sdk_dynamodb::Client as Dynamo;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use std::collections::HashMap;
use updraft_core::ports::PortError;

pub type Item = HashMap<String, AttributeValue>;

/// BatchGetItem's most keys in one request.
const BATCH_GET_KEYS: usize = 100;

/// How often keys DynamoDB left unprocessed (throttled) are asked for again
/// before the read is reported as transient.
const BATCH_GET_TRIES: u32 = 8;

/// The items of `keys` that exist (in no particular order), read consistently
/// with BatchGetItem, 100 keys a request; keys left unprocessed are asked for
/// again after a growing backoff. `keys` must be distinct (DynamoDB refuses a
/// request that repeats one); `what` names the read in errors.
pub async fn batch_get(
    dynamo: &Dynamo,
    table: &str,
    keys: Vec<Item>,
    projection: Option<&str>,
    what: &str,
) -> Result<Vec<Item>, PortError> {
    let mut found = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(BATCH_GET_KEYS) {
        let mut pending = chunk.to_vec();
        for tries in 1.. {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(pending))
                .consistent_read(true)
                .set_projection_expression(projection.map(str::to_string))
                .build()
                .map_err(|e| PortError::Invalid(format!("{what}: {e}")))?;
            let answer =
                dynamo.batch_get_item().request_items(table, request).send().await.map_err(|e| port_error(what, &e))?;
            found.extend(answer.responses().and_then(|r| r.get(table)).into_iter().flatten().cloned());
            pending =
                answer.unprocessed_keys().and_then(|u| u.get(table)).map(|k| k.keys().to_vec()).unwrap_or_default();
            if pending.is_empty() {
                break;
            }
            if tries == BATCH_GET_TRIES {
                return Err(PortError::Transient(format!("{what}: {} keys still unprocessed", pending.len())));
            }
            tokio::time::sleep(std::time::Duration::from_millis(25 << tries.min(6))).await;
        }
    }
    Ok(found)
}
