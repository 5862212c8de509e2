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

/// How many batch requests one call keeps in flight: a map of 25,000 items
/// reads its cache entries in 250 requests and writes them in 1,000, which one
/// at a time would take much of the node function's 60 s.
const BATCH_IN_FLIGHT: usize = 8;

/// The items of `keys` that exist (in no particular order), read consistently
/// with BatchGetItem, 100 keys a request, [`BATCH_IN_FLIGHT`] requests at a
/// time; keys left unprocessed are asked for again after a growing backoff.
/// `keys` must be distinct (DynamoDB refuses a request that repeats one);
/// `what` names the read in errors.
pub async fn batch_get(
    dynamo: &Dynamo,
    table: &str,
    keys: Vec<Item>,
    projection: Option<&str>,
    what: &str,
) -> Result<Vec<Item>, PortError> {
    use futures_util::stream::{self, StreamExt, TryStreamExt};
    let chunks: Vec<Vec<Item>> = keys.chunks(BATCH_GET_KEYS).map(|chunk| chunk.to_vec()).collect();
    let found: Vec<Vec<Item>> = stream::iter(chunks)
        .map(|chunk| batch_get_chunk(dynamo, table, chunk, projection, what))
        .buffer_unordered(BATCH_IN_FLIGHT)
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}

/// One BatchGetItem of at most 100 keys, with what it left unprocessed asked for again.
async fn batch_get_chunk(
    dynamo: &Dynamo,
    table: &str,
    mut pending: Vec<Item>,
    projection: Option<&str>,
    what: &str,
) -> Result<Vec<Item>, PortError> {
    let mut found = Vec::with_capacity(pending.len());
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
        pending = answer.unprocessed_keys().and_then(|u| u.get(table)).map(|k| k.keys().to_vec()).unwrap_or_default();
        if pending.is_empty() {
            break;
        }
        if tries == BATCH_TRIES {
            return Err(PortError::Transient(format!("{what}: {} keys still unprocessed", pending.len())));
        }
        tokio::time::sleep(backoff(tries)).await;
    }
    Ok(found)
}

/// Puts every item with BatchWriteItem, 25 a request, [`BATCH_IN_FLIGHT`]
/// requests at a time; writes left unprocessed are sent again after a growing
/// backoff. Items must have distinct keys.
pub async fn batch_put(dynamo: &Dynamo, table: &str, items: Vec<Item>, what: &str) -> Result<(), PortError> {
    use futures_util::stream::{self, StreamExt, TryStreamExt};
    let chunks: Vec<Vec<Item>> = items.chunks(BATCH_WRITE_ITEMS).map(|chunk| chunk.to_vec()).collect();
    stream::iter(chunks)
        .map(|chunk| batch_put_chunk(dynamo, table, chunk, what))
        .buffer_unordered(BATCH_IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// One BatchWriteItem of at most 25 puts, with what it left unprocessed sent again.
async fn batch_put_chunk(dynamo: &Dynamo, table: &str, chunk: Vec<Item>, what: &str) -> Result<(), PortError> {
    let mut pending: Vec<WriteRequest> = chunk
        .into_iter()
        .map(|item| {
            let put = PutRequest::builder().set_item(Some(item)).build().expect("the item is set");
            WriteRequest::builder().put_request(put).build()
        })
        .collect();
    for tries in 1.. {
        let answer =
            dynamo.batch_write_item().request_items(table, pending).send().await.map_err(|e| port_error(what, &e))?;
        pending = answer.unprocessed_items.and_then(|mut u| u.remove(table)).unwrap_or_default();
        if pending.is_empty() {
            break;
        }
        if tries == BATCH_TRIES {
            return Err(PortError::Transient(format!("{what}: {} writes still unprocessed", pending.len())));
        }
        tokio::time::sleep(backoff(tries)).await;
    }
    Ok(())
}
