//! The registry in the stack's metadata table (DynamoDB, single-table design:
//! docs/storage.md has every key and the access pattern it serves). Entity
//! bodies over [`INLINE_BODY_LIMIT`] live in the data bucket under
//! `specs/<sha256>.json`, named by their digest.

use crate::dynamo::Item;
use crate::sdk_error::{describe, is_retryable, port_error};
use aws_sdk_dynamodb::Client as Dynamo;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem, Update};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use updraft_core::execution::contract;
use updraft_core::ports::{Entity, Page, PageRequest, PortError, Registration, Registry, registration_conflict};
use updraft_core::proto::Timestamp;
use updraft_core::proto::api::{EntitySummary, NamedEntity, Project};
use updraft_core::proto::core::{Identifier, ResourceType};

/// Bodies up to this size stay in the item (DynamoDB items hold 400 KB; a
/// transaction 4 MB, which [`MAX_NEW_ENTITIES`] bodies of this size fit).
pub const INLINE_BODY_LIMIT: usize = 64 * 1024;

/// TransactWriteItems takes 100 actions; each new entity needs two (its
/// version item and its name item).
pub const MAX_NEW_ENTITIES: usize = 50;

/// How often a registration that lost a race re-reads and tries again before
/// answering a retryable error.
const ATTEMPTS: usize = 4;

/// The registry over one table and the data bucket (the stack's).
#[derive(Clone)]
pub struct DynamoRegistry {
    dynamo: Dynamo,
    s3: aws_sdk_s3::Client,
    table: String,
    bucket: String,
}

/// The keys of the single-table design.
mod key {
    use updraft_core::proto::core::{Identifier, ResourceType};

    pub const PROJECTS: &str = "PROJECTS";

    pub fn kind(kind: ResourceType) -> &'static str {
        match kind {
            ResourceType::Workflow => "workflow",
            ResourceType::LaunchPlan => "launch-plan",
            _ => "task",
        }
    }

    fn kind_of(id: &Identifier) -> &'static str {
        kind(ResourceType::try_from(id.resource_type).unwrap_or_default())
    }

    /// Every version of one entity shares a partition.
    pub fn entity(id: &Identifier) -> String {
        format!("ENT#{}#{}#{}#{}", kind_of(id), id.project, id.domain, id.name)
    }

    pub fn version(version: &str) -> String {
        format!("VER#{version}")
    }

    /// One item per name, sorted by name within a kind, project and domain.
    pub fn names(kind: ResourceType, project: &str, domain: &str) -> String {
        format!("NAMES#{}#{project}#{domain}", self::kind(kind))
    }

    pub fn names_of(id: &Identifier) -> String {
        names(ResourceType::try_from(id.resource_type).unwrap_or_default(), &id.project, &id.domain)
    }
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn text<'a>(item: &'a Item, name: &str) -> &'a str {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str).unwrap_or_default()
}

pub(crate) fn now() -> String {
    // Fixed width, so that the text sorts as the time does.
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// An RFC 3339 time as the IDL's timestamp.
pub fn timestamp(text: &str) -> Option<Timestamp> {
    let time = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    Some(Timestamp { seconds: time.timestamp(), nanos: time.timestamp_subsec_nanos() as i32 })
}

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> PortError {
    PortError::Permanent(format!("cannot build a DynamoDB request: {e}"))
}

/// A page token: the listing's last evaluated key, as hex of its JSON.
pub(crate) fn encode_token(key: Option<&Item>) -> Option<String> {
    let key = key?;
    let strings: HashMap<&str, &str> =
        key.iter().filter_map(|(name, value)| Some((name.as_str(), value.as_s().ok()?.as_str()))).collect();
    Some(hex::encode(serde_json::to_vec(&strings).expect("strings serialize")))
}

/// The key a token continues after; refused unless it belongs to this
/// listing (`partition` names the attribute and value every key of it has).
pub(crate) fn decode_token(token: &str, partition: (&str, &str)) -> Result<Item, PortError> {
    let invalid = || PortError::Invalid(format!("the page token {token:.40} is not one this listing returned"));
    let bytes = hex::decode(token).map_err(|_| invalid())?;
    let strings: HashMap<String, String> = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if strings.get(partition.0).map(String::as_str) != Some(partition.1) {
        return Err(invalid());
    }
    Ok(strings.into_iter().map(|(k, v)| (k, s(v))).collect())
}

fn page_limit(page: &PageRequest) -> i32 {
    page.limit.clamp(1, 1000) as i32
}

impl DynamoRegistry {
    pub fn new(dynamo: Dynamo, s3: aws_sdk_s3::Client, table: impl Into<String>, bucket: impl Into<String>) -> Self {
        DynamoRegistry { dynamo, s3, table: table.into(), bucket: bucket.into() }
    }

    fn body_key(digest: &str) -> String {
        format!("specs/{}.json", digest.trim_start_matches("sha256:"))
    }

    /// The registered digest of each entity that has one, by position.
    async fn registered_digests(&self, entities: &[Entity]) -> Result<Vec<Option<String>>, PortError> {
        let ids: Vec<Identifier> = entities.iter().map(|e| e.id().cloned().unwrap_or_default()).collect();
        let keys: Vec<Item> = ids
            .iter()
            .map(|id| HashMap::from([("pk".into(), s(key::entity(id))), ("sk".into(), s(key::version(&id.version)))]))
            .collect();
        let items = crate::dynamo::batch_get(
            &self.dynamo,
            &self.table,
            keys,
            Some("pk, sk, digest"),
            "reading registered entities",
        )
        .await?;
        let mut found: HashMap<(String, String), String> = items
            .iter()
            .map(|item| {
                ((text(item, "pk").to_string(), text(item, "sk").to_string()), text(item, "digest").to_string())
            })
            .collect();
        Ok(ids.iter().map(|id| found.remove(&(key::entity(id), key::version(&id.version)))).collect())
    }

    /// The item of a new entity version; its body inline or (large) in S3 first.
    async fn version_item(
        &self,
        entity: &Entity,
        id: &Identifier,
        created_at: &str,
        by: &str,
    ) -> Result<Item, PortError> {
        let digest = entity.digest();
        let body = entity.to_json();
        let mut item: Item = HashMap::from([
            ("pk".into(), s(key::entity(id))),
            ("sk".into(), s(key::version(&id.version))),
            ("kind".into(), s(key::kind(entity.resource_type()))),
            ("project".into(), s(&id.project)),
            ("domain".into(), s(&id.domain)),
            ("name".into(), s(&id.name)),
            ("version".into(), s(&id.version)),
            ("digest".into(), s(&digest)),
            ("created_at".into(), s(created_at)),
            ("registered_by".into(), s(by)),
            // The by-time index lists a name's versions newest first.
            ("gsi1pk".into(), s(key::entity(id))),
            ("gsi1sk".into(), s(format!("{created_at}#{}", id.version))),
        ]);
        if body.len() <= INLINE_BODY_LIMIT {
            item.insert("body".into(), s(body));
        } else {
            // Content-addressed: a transaction that then fails leaves an unreferenced copy, never a wrong one.
            let key = Self::body_key(&digest);
            self.s3
                .put_object()
                .bucket(&self.bucket)
                .key(&key)
                .content_type("application/json")
                .body(body.into_bytes().into())
                .send()
                .await
                .map_err(|e| {
                    let message =
                        format!("storing the body of {} in s3://{}/{key}: {}", id.name, self.bucket, describe(&e));
                    if is_retryable(&e) { PortError::Transient(message) } else { PortError::Permanent(message) }
                })?;
            item.insert("body_uri".into(), s(format!("s3://{}/{key}", self.bucket)));
        }
        Ok(item)
    }

    /// The actions that write new entities: each version item only if absent
    /// (the conditional write that decides races), and its name's item.
    async fn registration_actions(&self, new: &[&Entity], by: &str) -> Result<Vec<TransactWriteItem>, PortError> {
        let created_at = now();
        let mut actions = Vec::with_capacity(new.len() * 2);
        for entity in new {
            let id = entity.id().cloned().unwrap_or_default();
            let item = self.version_item(entity, &id, &created_at, by).await?;
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(build_error)?;
            let mut set = "SET latest_version = :version, updated_at = :at, #project = :project, #domain = :domain, #name = :name, kind = :kind".to_string();
            let activates = matches!(entity, Entity::LaunchPlan(plan) if plan.active);
            if activates {
                set.push_str(", active_version = :version, active_changed_by = :by, active_changed_at = :at");
            }
            let mut update = Update::builder()
                .table_name(&self.table)
                .key("pk", s(key::names_of(&id)))
                .key("sk", s(&id.name))
                .update_expression(set)
                .expression_attribute_names("#project", "project")
                .expression_attribute_names("#domain", "domain")
                .expression_attribute_names("#name", "name")
                .expression_attribute_values(":version", s(&id.version))
                .expression_attribute_values(":at", s(&created_at))
                .expression_attribute_values(":project", s(&id.project))
                .expression_attribute_values(":domain", s(&id.domain))
                .expression_attribute_values(":name", s(&id.name))
                .expression_attribute_values(":kind", s(key::kind(entity.resource_type())));
            if activates {
                update = update.expression_attribute_values(":by", s(by));
            }
            let update = update.build().map_err(build_error)?;
            actions.push(TransactWriteItem::builder().put(put).build());
            actions.push(TransactWriteItem::builder().update(update).build());
        }
        Ok(actions)
    }

    /// The project list is an index beside the entities: written after them
    /// (idempotently, on every registration, so a lost write is repaired by the next).
    async fn record_projects(&self, entities: &[Entity]) -> Result<(), PortError> {
        let mut seen = std::collections::BTreeSet::new();
        for id in entities.iter().filter_map(Entity::id) {
            if !seen.insert((id.project.clone(), id.domain.clone())) {
                continue;
            }
            self.dynamo
                .put_item()
                .table_name(&self.table)
                .item("pk", s(key::PROJECTS))
                .item("sk", s(format!("{}#{}", id.project, id.domain)))
                .item("project", s(&id.project))
                .item("domain", s(&id.domain))
                .send()
                .await
                .map_err(|e| port_error("recording the project", &e))?;
        }
        Ok(())
    }

    async fn entity_item(&self, id: &Identifier) -> Result<Option<Item>, PortError> {
        let answer = self
            .dynamo
            .get_item()
            .table_name(&self.table)
            .key("pk", s(key::entity(id)))
            .key("sk", s(key::version(&id.version)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error("reading the entity", &e))?;
        Ok(answer.item)
    }

    async fn active_version(&self, id: &Identifier) -> Result<String, PortError> {
        let answer = self
            .dynamo
            .get_item()
            .table_name(&self.table)
            .key("pk", s(key::names_of(id)))
            .key("sk", s(&id.name))
            .projection_expression("active_version")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error("reading the launch plan's state", &e))?;
        Ok(answer.item.as_ref().map(|item| text(item, "active_version").to_string()).unwrap_or_default())
    }

    /// The entity's body, inline or from S3, checked against its registered digest:
    /// a body changed after registration (an S3 object overwritten) is refused,
    /// naming both digests, never run.
    async fn body(&self, item: &Item) -> Result<String, PortError> {
        let body = match item.get("body").and_then(|v| v.as_s().ok()) {
            Some(body) => body.clone(),
            None => self.body_from_s3(item).await?,
        };
        let (registered, found) = (text(item, "digest"), contract::digest_string(&hex::encode(Sha256::digest(&body))));
        if !registered.is_empty() && found != registered {
            let (name, version) = (text(item, "name"), text(item, "version"));
            return Err(PortError::Permanent(format!(
                "the stored body of {name} version {version} has digest {found}, but {registered} was registered: it \
                 was changed after registration and is not used; register the entity again under a new version"
            )));
        }
        Ok(body)
    }

    async fn body_from_s3(&self, item: &Item) -> Result<String, PortError> {
        let uri = text(item, "body_uri");
        let key = uri.strip_prefix(&format!("s3://{}/", self.bucket)).unwrap_or(uri);
        let object = self.s3.get_object().bucket(&self.bucket).key(key).send().await.map_err(|e| {
            let message = format!("reading {uri}: {}", describe(&e));
            if is_retryable(&e) { PortError::Transient(message) } else { PortError::Permanent(message) }
        })?;
        let bytes =
            object.body.collect().await.map_err(|e| PortError::Transient(format!("reading {uri}: {e}")))?.into_bytes();
        String::from_utf8(bytes.to_vec()).map_err(|_| PortError::Permanent(format!("{uri} is not UTF-8")))
    }
}

impl Registry for DynamoRegistry {
    async fn register(&self, entities: &[Entity], by: &str) -> Result<Vec<Registration>, PortError> {
        for _ in 0..ATTEMPTS {
            let registered = self.registered_digests(entities).await?;
            let mut outcomes = Vec::with_capacity(entities.len());
            let mut new = Vec::new();
            for (entity, existing) in entities.iter().zip(&registered) {
                let digest = entity.digest();
                match existing {
                    Some(existing) if *existing == digest => outcomes.push(Registration::AlreadyRegistered),
                    Some(existing) => {
                        return Err(registration_conflict(
                            entity.id().unwrap_or(&Identifier::default()),
                            existing,
                            &digest,
                        ));
                    }
                    None => {
                        outcomes.push(Registration::Created);
                        new.push(entity);
                    }
                }
            }
            if new.len() > MAX_NEW_ENTITIES {
                return Err(PortError::Invalid(format!(
                    "this registration has {} new entities; one registration writes at most {MAX_NEW_ENTITIES} \
                     (DynamoDB transactions take 100 writes): split the spec into several files",
                    new.len()
                )));
            }
            if !new.is_empty() {
                let actions = self.registration_actions(&new, by).await?;
                let written = self.dynamo.transact_write_items().set_transact_items(Some(actions)).send().await;
                match written {
                    Ok(_) => {}
                    // Another registration wrote one of these ids first (or held the
                    // name item): read again, which tells a conflict from an equal twin.
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_transaction_canceled_exception()) => continue,
                    Err(e) => return Err(port_error("registering", &e)),
                }
            }
            self.record_projects(entities).await?;
            return Ok(outcomes);
        }
        Err(PortError::Transient(format!(
            "the registration lost {ATTEMPTS} races with concurrent registrations of the same names"
        )))
    }

    async fn get(&self, id: &Identifier) -> Result<Option<Entity>, PortError> {
        let Some(item) = self.entity_item(id).await? else {
            return Ok(None);
        };
        let kind = ResourceType::try_from(id.resource_type).unwrap_or_default();
        let body = self.body(&item).await?;
        let mut entity = Entity::from_json(kind, &body).map_err(|e| {
            PortError::Permanent(format!("the stored body of {} {} is not valid: {e}", id.name, id.version))
        })?;
        if let Entity::LaunchPlan(plan) = &mut entity {
            plan.active = self.active_version(id).await? == id.version;
        }
        Ok(Some(entity))
    }

    async fn versions(&self, id: &Identifier, page: &PageRequest) -> Result<Page<EntitySummary>, PortError> {
        let partition = key::entity(id);
        let start = page.token.as_deref().map(|t| decode_token(t, ("gsi1pk", &partition))).transpose()?;
        let answer = self
            .dynamo
            .query()
            .table_name(&self.table)
            .index_name("by-time")
            .key_condition_expression("gsi1pk = :pk")
            .expression_attribute_values(":pk", s(&partition))
            .projection_expression("pk, sk, gsi1pk, gsi1sk, version, digest, created_at, registered_by")
            .scan_index_forward(false)
            .limit(page_limit(page))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| port_error("listing versions", &e))?;
        let items = answer
            .items()
            .iter()
            .map(|item| EntitySummary {
                id: Some(Identifier { version: text(item, "version").into(), ..id.clone() }),
                digest: text(item, "digest").into(),
                created_at: timestamp(text(item, "created_at")),
                registered_by: text(item, "registered_by").into(),
            })
            .collect();
        Ok(Page { items, next_token: encode_token(answer.last_evaluated_key()) })
    }

    async fn names(
        &self,
        kind: ResourceType,
        project: &str,
        domain: &str,
        prefix: &str,
        page: &PageRequest,
    ) -> Result<Page<NamedEntity>, PortError> {
        let partition = key::names(kind, project, domain);
        let start = page.token.as_deref().map(|t| decode_token(t, ("pk", &partition))).transpose()?;
        let mut query = self.dynamo.query().table_name(&self.table).expression_attribute_values(":pk", s(&partition));
        query = if prefix.is_empty() {
            query.key_condition_expression("pk = :pk")
        } else {
            query
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":prefix", s(prefix))
        };
        let answer = query
            .limit(page_limit(page))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| port_error("listing names", &e))?;
        let items = answer
            .items()
            .iter()
            .map(|item| NamedEntity {
                resource_type: kind as i32,
                project: project.into(),
                domain: domain.into(),
                name: text(item, "sk").into(),
                latest_version: text(item, "latest_version").into(),
                updated_at: timestamp(text(item, "updated_at")),
                active_version: text(item, "active_version").into(),
                active_changed_by: text(item, "active_changed_by").into(),
                active_changed_at: text(item, "active_changed_at").into(),
            })
            .collect();
        Ok(Page { items, next_token: encode_token(answer.last_evaluated_key()) })
    }

    async fn projects(&self) -> Result<Vec<Project>, PortError> {
        let items = self
            .dynamo
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(key::PROJECTS))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| port_error("listing projects", &e))?;
        let mut projects: Vec<Project> = Vec::new();
        // Sorted by "project#domain": a project's domains are adjacent.
        for item in &items {
            let (project, domain) = (text(item, "project"), text(item, "domain"));
            match projects.last_mut() {
                Some(last) if last.name == project => last.domains.push(domain.into()),
                _ => projects.push(Project { name: project.into(), domains: vec![domain.into()] }),
            }
        }
        Ok(projects)
    }

    async fn set_active(&self, id: &Identifier, active: bool, by: &str) -> Result<(), PortError> {
        let not_found = || {
            PortError::NotFound(format!(
                "launch plan {}/{}/{} version {} is not registered",
                id.project, id.domain, id.name, id.version
            ))
        };
        let names = || HashMap::from([("pk".to_string(), s(key::names_of(id))), ("sk".to_string(), s(&id.name))]);
        if !active {
            if self.entity_item(id).await?.is_none() {
                return Err(not_found());
            }
            let removed = self
                .dynamo
                .update_item()
                .table_name(&self.table)
                .set_key(Some(names()))
                .update_expression("REMOVE active_version SET active_changed_by = :by, active_changed_at = :at")
                .condition_expression("active_version = :version")
                .expression_attribute_values(":version", s(&id.version))
                .expression_attribute_values(":by", s(by))
                .expression_attribute_values(":at", s(now()))
                .send()
                .await;
            return match removed {
                Ok(_) => Ok(()),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(()),
                Err(e) => Err(port_error("deactivating the launch plan", &e)),
            };
        }
        // Activation is conditional on the version being registered, in one transaction.
        let registered = ConditionCheck::builder()
            .table_name(&self.table)
            .key("pk", s(key::entity(id)))
            .key("sk", s(key::version(&id.version)))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(build_error)?;
        let activate = Update::builder()
            .table_name(&self.table)
            .set_key(Some(names()))
            .update_expression("SET active_version = :version, active_changed_by = :by, active_changed_at = :at")
            .expression_attribute_values(":version", s(&id.version))
            .expression_attribute_values(":by", s(by))
            .expression_attribute_values(":at", s(now()))
            .build()
            .map_err(build_error)?;
        let written = self
            .dynamo
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().condition_check(registered).build())
            .transact_items(TransactWriteItem::builder().update(activate).build())
            .send()
            .await;
        match written {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_transaction_canceled_exception()) => {
                match self.entity_item(id).await? {
                    None => Err(not_found()),
                    Some(_) => Err(PortError::Transient("the activation raced with another; retry".into())),
                }
            }
            Err(e) => Err(port_error("activating the launch plan", &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_belong_to_one_listing() {
        let key: Item =
            HashMap::from([("pk".to_string(), s("NAMES#task#p#development")), ("sk".to_string(), s("fit"))]);
        let token = encode_token(Some(&key)).unwrap();
        assert_eq!(decode_token(&token, ("pk", "NAMES#task#p#development")).unwrap(), key);
        assert!(matches!(decode_token(&token, ("pk", "NAMES#task#other#development")), Err(PortError::Invalid(_))));
        assert!(matches!(decode_token("zz", ("pk", "x")), Err(PortError::Invalid(_))));
        assert_eq!(encode_token(None), None);
    }

    #[test]
    fn times_sort_as_text_and_read_back() {
        let (a, b) = (now(), now());
        assert!(a <= b && a.len() == b.len() && a.len() == "2026-11-27T07:32:58.000000Z".len());
        assert!(timestamp(&a).unwrap().seconds > 1_700_000_000);
    }
}
