//! DynamoDB reads shared by the registry and the runs.

use crate::sdk_error::port_error;
use aws_sdk_dynamodb::Client as Dynamo;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};
use std::collections::HashMap;
use updraft_core::ports::PortError;

pub type Item = HashMap<String, AttributeValue>;

/// BatchGetItem's most keys in one request.
const BATCH_GET_KEYS: usize = 100;

/// BatchWriteItem's most writes in one request.
const BATCH_WRITE_ITEMS: usize = 25;

/// How often keys or writes DynamoDB left unprocessed (throttled) are sent
/// again before the call is reported as transient.
const BATCH_TRIES: u32 = 8;

/// The wait before sending what was left unprocessed again: 50 ms, doubling.
fn backoff(tries: u32) -> std::time::Duration {
    std::time::Duration::from_millis(25 << tries.min(6))
}

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
            if tries == BATCH_TRIES {
                return Err(PortError::Transient(format!("{what}: {} keys still unprocessed", pending.len())));
            }
            tokio::time::sleep(backoff(tries)).await;
        }
    }
    Ok(found)
}

/// Puts every item with BatchWriteItem, 25 a request; writes left unprocessed
/// are sent again after a growing backoff. Items must have distinct keys.
pub async fn batch_put(dynamo: &Dynamo, table: &str, items: Vec<Item>, what: &str) -> Result<(), PortError> {
    for chunk in items.chunks(BATCH_WRITE_ITEMS) {
        let mut pending: Vec<WriteRequest> = chunk
            .iter()
            .map(|item| {
                let put = PutRequest::builder().set_item(Some(item.clone())).build().expect("the item is set");
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        for tries in 1.. {
            let answer = dynamo
                .batch_write_item()
                .request_items(table, pending)
                .send()
                .await
                .map_err(|e| port_error(what, &e))?;
            pending = answer.unprocessed_items.and_then(|mut u| u.remove(table)).unwrap_or_default();
            if pending.is_empty() {
                break;
            }
            if tries == BATCH_TRIES {
                return Err(PortError::Transient(format!("{what}: {} writes still unprocessed", pending.len())));
            }
            tokio::time::sleep(backoff(tries)).await;
        }
    }
    Ok(())
}
