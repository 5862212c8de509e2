//! In-memory implementations of the ports, for unit tests of the logic above
//! them (and as the reference for each contract: the tests below state it).

use super::*;
use crate::proto::core::WorkflowPhase;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

#[derive(Default)]
pub struct MemoryCache {
    entries: Mutex<HashMap<String, Outputs>>,
}

impl CacheStore for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Outputs>, PortError> {
        Ok(self.entries.lock().expect("cache lock").get(key).cloned())
    }

    async fn put(&self, key: &str, outputs: &Outputs) -> Result<(), PortError> {
        self.entries.lock().expect("cache lock").insert(key.to_string(), outputs.clone());
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), PortError> {
        self.entries.lock().expect("cache lock").remove(key);
        Ok(())
    }
}

#[derive(Default)]
pub struct MemoryExecutions {
    executions: Mutex<BTreeMap<String, Execution>>,
    nodes: Mutex<HashMap<String, BTreeMap<usize, NodeExecution>>>,
}

fn name_of(execution: &Execution) -> String {
    execution.id.as_ref().map(|i| i.name.clone()).unwrap_or_default()
}

impl ExecutionStore for MemoryExecutions {
    async fn create(&self, execution: &Execution) -> Result<(), PortError> {
        let mut executions = self.executions.lock().expect("executions lock");
        let name = name_of(execution);
        if executions.contains_key(&name) {
            return Err(PortError::Conflict(format!("an execution named {name} exists already")));
        }
        executions.insert(name, execution.clone());
        Ok(())
    }

    async fn update(&self, execution: &Execution) -> Result<(), PortError> {
        let mut executions = self.executions.lock().expect("executions lock");
        match executions.get_mut(&name_of(execution)) {
            Some(existing) => {
                *existing = execution.clone();
                Ok(())
            }
            None => Err(PortError::Permanent(format!("no execution named {}", name_of(execution)))),
        }
    }

    async fn put_node(&self, node: &NodeExecution, position: usize) -> Result<(), PortError> {
        let execution = node.id.as_ref().and_then(|i| i.execution_id.as_ref()).map(|e| e.name.clone());
        let mut nodes = self.nodes.lock().expect("nodes lock");
        nodes.entry(execution.unwrap_or_default()).or_default().insert(position, node.clone());
        Ok(())
    }

    async fn get(&self, name: &str) -> Result<Option<(Execution, Vec<NodeExecution>)>, PortError> {
        let Some(execution) = self.executions.lock().expect("executions lock").get(name).cloned() else {
            return Ok(None);
        };
        let nodes = self.nodes.lock().expect("nodes lock").get(name).map(|n| n.values().cloned().collect());
        Ok(Some((execution, nodes.unwrap_or_default())))
    }

    async fn list(&self, limit: usize) -> Result<Vec<Execution>, PortError> {
        let mut all: Vec<Execution> = self.executions.lock().expect("executions lock").values().cloned().collect();
        all.sort_by_key(|e| std::cmp::Reverse(e.created_at.map(|t| (t.seconds, t.nanos))));
        all.truncate(limit);
        Ok(all)
    }
}

/// The content digest the registry compares: sha256 of the entity's canonical JSON.
pub fn entity_digest(entity: &Entity) -> String {
    let json = match entity {
        Entity::Task(t) => serde_json::to_vec(t),
        Entity::Workflow(w) => serde_json::to_vec(w),
        Entity::LaunchPlan(l) => serde_json::to_vec(l),
    }
    .expect("entities serialize");
    crate::execution::contract::digest_string(&hex::encode(Sha256::digest(json)))
}

fn key_of(id: &Identifier) -> String {
    format!("{}/{}/{}/{}/{}", id.resource_type, id.project, id.domain, id.name, id.version)
}

#[derive(Default)]
pub struct MemoryRegistry {
    entities: Mutex<HashMap<String, (String, Entity)>>,
}

impl Registry for MemoryRegistry {
    async fn register(&self, entities: &[Entity]) -> Result<Vec<Registration>, PortError> {
        let mut stored = self.entities.lock().expect("registry lock");
        let mut outcomes = Vec::with_capacity(entities.len());
        // Check everything first: all or nothing.
        for entity in entities {
            let id = entity.id().cloned().unwrap_or_default();
            let digest = entity_digest(entity);
            match stored.get(&key_of(&id)) {
                Some((existing, _)) if *existing == digest => outcomes.push(Registration::AlreadyRegistered),
                Some((existing, _)) => {
                    return Err(PortError::Conflict(format!(
                        "{} {} version {} is registered with content {existing}; this one is {digest}",
                        id.project, id.name, id.version
                    )));
                }
                None => outcomes.push(Registration::Created),
            }
        }
        for entity in entities {
            let id = entity.id().cloned().unwrap_or_default();
            stored.entry(key_of(&id)).or_insert_with(|| (entity_digest(entity), entity.clone()));
        }
        Ok(outcomes)
    }

    async fn get(&self, id: &Identifier) -> Result<Option<Entity>, PortError> {
        Ok(self.entities.lock().expect("registry lock").get(&key_of(id)).map(|(_, e)| e.clone()))
    }
}

/// Runs nothing: records what was started and stopped.
#[derive(Default)]
pub struct MemoryEngine {
    pub started: Mutex<BTreeMap<String, (Identifier, String, WorkflowPhase)>>,
}

impl WorkflowEngine for MemoryEngine {
    async fn start(&self, workflow: &Identifier, execution_name: &str, inputs_uri: &str) -> Result<String, PortError> {
        let mut started = self.started.lock().expect("engine lock");
        match started.get(execution_name) {
            Some((_, uri, _)) if uri == inputs_uri => {}
            Some(_) => {
                return Err(PortError::Conflict(format!("{execution_name} was started with other inputs")));
            }
            None => {
                started.insert(
                    execution_name.to_string(),
                    (workflow.clone(), inputs_uri.to_string(), WorkflowPhase::WorkflowRunning),
                );
            }
        }
        Ok(format!("memory:{execution_name}"))
    }

    async fn stop(&self, run: &str, _reason: &str) -> Result<(), PortError> {
        let name = run.trim_start_matches("memory:");
        if let Some(entry) = self.started.lock().expect("engine lock").get_mut(name) {
            entry.2 = WorkflowPhase::WorkflowAborted;
        }
        Ok(())
    }
}

/// Polls a future that never waits (every fake here) to its end.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::literal;
    use crate::proto::core::{ExecutionId, ResourceType};

    fn task(version: &str, image: &str) -> Entity {
        Entity::Task(TaskTemplate {
            id: Some(Identifier {
                resource_type: ResourceType::Task as i32,
                project: "p".into(),
                domain: "development".into(),
                name: "fit".into(),
                version: version.into(),
            }),
            container: Some(crate::proto::core::Container { image: image.into(), ..Default::default() }),
            ..Default::default()
        })
    }

    #[test]
    fn registration_is_idempotent_and_refuses_changed_content_all_or_nothing() {
        let registry = MemoryRegistry::default();
        assert_eq!(block_on(registry.register(&[task("v1", "a")])), Ok(vec![Registration::Created]));
        assert_eq!(block_on(registry.register(&[task("v1", "a")])), Ok(vec![Registration::AlreadyRegistered]));
        let conflict = block_on(registry.register(&[task("v2", "a"), task("v1", "b")])).unwrap_err();
        assert!(matches!(&conflict, PortError::Conflict(m) if m.contains("sha256:")), "{conflict}");
        let v2 = task("v2", "a");
        assert_eq!(block_on(registry.get(v2.id().unwrap())), Ok(None), "nothing of a refused call is written");
    }

    #[test]
    fn execution_names_are_never_reused() {
        let store = MemoryExecutions::default();
        let execution = |principal: &str| Execution {
            id: Some(ExecutionId { name: "e1".into(), ..Default::default() }),
            principal: principal.into(),
            ..Default::default()
        };
        block_on(store.create(&execution("first"))).unwrap();
        assert!(matches!(block_on(store.create(&execution("second"))), Err(PortError::Conflict(_))));
        assert_eq!(block_on(store.get("e1")).unwrap().unwrap().0.principal, "first");
    }

    #[test]
    fn the_cache_replaces_and_deletes_entries() {
        let cache = MemoryCache::default();
        let outputs: Outputs = [("y".to_string(), literal::integer(1))].into();
        block_on(cache.put("k", &outputs)).unwrap();
        assert_eq!(block_on(cache.get("k")), Ok(Some(outputs)));
        block_on(cache.delete("k")).unwrap();
        block_on(cache.delete("k")).unwrap();
        assert_eq!(block_on(cache.get("k")), Ok(None));
    }

    #[test]
    fn launches_are_idempotent_by_name_and_inputs() {
        let engine = MemoryEngine::default();
        let id = Identifier::default();
        let run = block_on(engine.start(&id, "e1", "s3://b/i.json")).unwrap();
        assert_eq!(block_on(engine.start(&id, "e1", "s3://b/i.json")), Ok(run.clone()));
        assert!(matches!(block_on(engine.start(&id, "e1", "s3://b/other.json")), Err(PortError::Conflict(_))));
        block_on(engine.stop(&run, "test")).unwrap();
        assert_eq!(engine.started.lock().unwrap()["e1"].2, WorkflowPhase::WorkflowAborted);
    }
}
