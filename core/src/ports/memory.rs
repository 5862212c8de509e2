//! In-memory implementations of the ports, for unit tests of the logic above
//! them (and as the reference for each contract: the tests below state it).

use super::*;
use crate::proto::core::{NodePhase, WorkflowPhase};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

#[derive(Default)]
pub struct MemoryCache {
    entries: Mutex<HashMap<String, Outputs>>,
    /// Keys by task version, in the order they were stored.
    by_task: Mutex<BTreeMap<String, Vec<String>>>,
    /// Who evicted each task version last (no clock here: no time).
    evicted_by: Mutex<BTreeMap<String, String>>,
}

fn task_key(task: &Identifier) -> String {
    format!("{}/{}/{}/{}", task.project, task.domain, task.name, task.version)
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

    async fn put_for(&self, key: &str, task: &Identifier, outputs: &Outputs) -> Result<(), PortError> {
        self.put(key, outputs).await?;
        let mut by_task = self.by_task.lock().expect("cache lock");
        let keys = by_task.entry(task_key(task)).or_default();
        keys.retain(|k| k != key);
        keys.push(key.to_string());
        Ok(())
    }

    async fn entries(&self, task: &Identifier) -> Result<Vec<CacheEntry>, PortError> {
        let by_task = self.by_task.lock().expect("cache lock");
        let entries = self.entries.lock().expect("cache lock");
        let keys = by_task.get(&task_key(task)).cloned().unwrap_or_default();
        let live = keys.into_iter().rev().filter(|k| entries.contains_key(k));
        Ok(live.map(|key| CacheEntry { key, created_at: String::new() }).collect())
    }

    async fn evict(&self, task: &Identifier, by: &str) -> Result<super::Eviction, PortError> {
        self.evicted_by.lock().expect("cache lock").insert(task_key(task), by.to_string());
        let keys = self.by_task.lock().expect("cache lock").remove(&task_key(task)).unwrap_or_default();
        let mut entries = self.entries.lock().expect("cache lock");
        let deleted = keys.iter().filter(|k| entries.remove(*k).is_some()).count() as u32;
        Ok(super::Eviction { deleted, at: String::new() })
    }

    async fn last_eviction(&self, task: &Identifier) -> Result<Option<(String, String)>, PortError> {
        Ok(self.evicted_by.lock().expect("cache lock").get(&task_key(task)).map(|by| (by.clone(), String::new())))
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

/// (kind, project, domain, name): one entity's versions.
type NameKey = (i32, String, String, String);

/// One stored version: insertion sequence, digest, content, who registered it.
type Stored = (u64, String, Entity, String);

fn name_key(id: &Identifier) -> NameKey {
    (id.resource_type, id.project.clone(), id.domain.clone(), id.name.clone())
}

/// Registered entities in insertion order (the order stands in for time).
#[derive(Default)]
pub struct MemoryRegistry {
    state: Mutex<RegistryState>,
}

#[derive(Default)]
struct RegistryState {
    entities: BTreeMap<NameKey, BTreeMap<String, Stored>>,
    active: HashMap<NameKey, String>,
    /// Who last activated or deactivated a version of a name (there is no clock here: no time).
    active_changed_by: HashMap<NameKey, String>,
    sequence: u64,
}

fn page_of<T: Clone>(items: Vec<T>, page: &PageRequest) -> Result<Page<T>, PortError> {
    let start = match &page.token {
        Some(token) => token.parse::<usize>().map_err(|_| PortError::Invalid(format!("bad page token {token}")))?,
        None => 0,
    };
    let end = (start + page.limit.max(1)).min(items.len());
    let next_token = (end < items.len()).then(|| end.to_string());
    Ok(Page { items: items.get(start..end).unwrap_or_default().to_vec(), next_token })
}

impl Registry for MemoryRegistry {
    async fn register(&self, entities: &[Entity], by: &str) -> Result<Vec<Registration>, PortError> {
        let mut state = self.state.lock().expect("registry lock");
        let mut outcomes = Vec::with_capacity(entities.len());
        // Check everything first: all or nothing.
        for entity in entities {
            let id = entity.id().cloned().unwrap_or_default();
            let digest = entity.digest();
            match state.entities.get(&name_key(&id)).and_then(|versions| versions.get(&id.version)) {
                Some((_, existing, _, _)) if *existing == digest => outcomes.push(Registration::AlreadyRegistered),
                Some((_, existing, _, _)) => return Err(registration_conflict(&id, existing, &digest)),
                None => outcomes.push(Registration::Created),
            }
        }
        for (entity, outcome) in entities.iter().zip(&outcomes) {
            if *outcome == Registration::AlreadyRegistered {
                continue;
            }
            let id = entity.id().cloned().unwrap_or_default();
            state.sequence += 1;
            let sequence = state.sequence;
            if matches!(entity, Entity::LaunchPlan(plan) if plan.active) {
                state.active.insert(name_key(&id), id.version.clone());
                state.active_changed_by.insert(name_key(&id), by.to_string());
            }
            let versions = state.entities.entry(name_key(&id)).or_default();
            versions.insert(id.version.clone(), (sequence, entity.digest(), entity.clone(), by.to_string()));
        }
        Ok(outcomes)
    }

    async fn get(&self, id: &Identifier) -> Result<Option<Entity>, PortError> {
        let state = self.state.lock().expect("registry lock");
        let Some((_, _, entity, _)) = state.entities.get(&name_key(id)).and_then(|v| v.get(&id.version)) else {
            return Ok(None);
        };
        let mut entity = entity.clone();
        if let Entity::LaunchPlan(plan) = &mut entity {
            plan.active = state.active.get(&name_key(id)) == Some(&id.version);
        }
        Ok(Some(entity))
    }

    async fn versions(&self, id: &Identifier, page: &PageRequest) -> Result<Page<EntitySummary>, PortError> {
        let state = self.state.lock().expect("registry lock");
        let mut versions: Vec<&Stored> =
            state.entities.get(&name_key(id)).map(|v| v.values().collect()).unwrap_or_default();
        versions.sort_by_key(|(sequence, _, _, _)| std::cmp::Reverse(*sequence));
        let summaries = versions
            .into_iter()
            .map(|(sequence, digest, entity, by)| EntitySummary {
                id: entity.id().cloned(),
                digest: digest.clone(),
                created_at: Some(crate::proto::Timestamp { seconds: *sequence as i64, nanos: 0 }),
                registered_by: by.clone(),
            })
            .collect();
        page_of(summaries, page)
    }

    async fn names(
        &self,
        kind: ResourceType,
        project: &str,
        domain: &str,
        prefix: &str,
        page: &PageRequest,
    ) -> Result<Page<NamedEntity>, PortError> {
        let state = self.state.lock().expect("registry lock");
        let names = state
            .entities
            .iter()
            .filter(|((k, p, d, n), _)| *k == kind as i32 && p == project && d == domain && n.starts_with(prefix))
            .filter_map(|(key, versions)| {
                let (sequence, _, latest, _) = versions.values().max_by_key(|(sequence, _, _, _)| *sequence)?;
                Some(NamedEntity {
                    resource_type: kind as i32,
                    project: project.into(),
                    domain: domain.into(),
                    name: key.3.clone(),
                    latest_version: latest.id().map(|i| i.version.clone()).unwrap_or_default(),
                    updated_at: Some(crate::proto::Timestamp { seconds: *sequence as i64, nanos: 0 }),
                    active_version: state.active.get(key).cloned().unwrap_or_default(),
                    active_changed_by: state.active_changed_by.get(key).cloned().unwrap_or_default(),
                    ..Default::default()
                })
            })
            .collect();
        page_of(names, page)
    }

    async fn projects(&self) -> Result<Vec<Project>, PortError> {
        let state = self.state.lock().expect("registry lock");
        let mut projects: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
        for (_, project, domain, _) in state.entities.keys() {
            projects.entry(project).or_default().insert(domain);
        }
        Ok(projects
            .into_iter()
            .map(|(name, domains)| Project {
                name: name.into(),
                domains: domains.into_iter().map(String::from).collect(),
            })
            .collect())
    }

    async fn set_active(&self, id: &Identifier, active: bool, by: &str) -> Result<(), PortError> {
        let mut state = self.state.lock().expect("registry lock");
        let registered = state.entities.get(&name_key(id)).is_some_and(|v| v.contains_key(&id.version));
        if !registered {
            return Err(PortError::NotFound(format!(
                "launch plan {} version {} is not registered",
                id.name, id.version
            )));
        }
        if active {
            state.active.insert(name_key(id), id.version.clone());
        } else if state.active.get(&name_key(id)) == Some(&id.version) {
            state.active.remove(&name_key(id));
        } else {
            return Ok(());
        }
        state.active_changed_by.insert(name_key(id), by.to_string());
        Ok(())
    }
}

/// Records the resources it was asked for; `failing` makes every call fail.
#[derive(Default)]
pub struct MemoryProvisioner {
    pub resources: Mutex<BTreeMap<String, serde_json::Value>>,
    pub failing: Mutex<Option<PortError>>,
    /// Schedules by name: the request and whether it is enabled.
    pub schedules: Mutex<BTreeMap<String, (crate::schedule::ScheduleRequest, bool)>>,
}

impl MemoryProvisioner {
    fn ensure(&self, name: &str, body: &serde_json::Value) -> Result<String, PortError> {
        if let Some(error) = self.failing.lock().expect("provisioner lock").clone() {
            return Err(error);
        }
        let mut resources = self.resources.lock().expect("provisioner lock");
        match resources.get(name) {
            Some(existing) if existing != body => Err(PortError::Conflict(format!("{name} exists with other content"))),
            _ => {
                resources.insert(name.to_string(), body.clone());
                Ok(format!("arn:memory:{name}"))
            }
        }
    }
}

impl Provisioner for MemoryProvisioner {
    async fn ensure_job_role(&self, name: &str, policy: &serde_json::Value) -> Result<String, PortError> {
        if let Some(error) = self.failing.lock().expect("provisioner lock").clone() {
            return Err(error);
        }
        // A role's policy is replaced, never a conflict.
        self.resources.lock().expect("provisioner lock").insert(name.to_string(), policy.clone());
        Ok(format!("arn:memory:{name}"))
    }

    async fn ensure_job_definition(&self, name: &str, body: &serde_json::Value) -> Result<String, PortError> {
        self.ensure(name, body)
    }

    async fn ensure_state_machine(&self, name: &str, definition: &serde_json::Value) -> Result<String, PortError> {
        self.ensure(name, definition)
    }

    async fn apply_schedule(
        &self,
        schedule: &crate::schedule::ScheduleRequest,
        enabled: bool,
    ) -> Result<(), PortError> {
        if let Some(error) = self.failing.lock().expect("provisioner lock").clone() {
            return Err(error);
        }
        let mut schedules = self.schedules.lock().expect("provisioner lock");
        if enabled {
            schedules.insert(schedule.name.clone(), (schedule.clone(), true));
        } else if let Some((existing, on)) = schedules.get_mut(&schedule.name)
            && existing.plan.version == schedule.plan.version
        {
            *on = false;
        }
        Ok(())
    }

    async fn find_schedule(&self, name: &str) -> Result<Option<crate::schedule::FoundSchedule>, PortError> {
        let schedules = self.schedules.lock().expect("provisioner lock");
        Ok(schedules.get(name).map(|(request, enabled)| crate::schedule::FoundSchedule {
            enabled: *enabled,
            expression: request.expression.clone(),
            timezone: request.timezone.clone(),
            version: request.plan.version.clone(),
        }))
    }
}

/// Runs launched: their records, with every node queued.
#[derive(Default)]
pub struct MemoryRuns {
    pub runs: Mutex<BTreeMap<String, (Execution, Vec<NodeExecution>)>>,
    /// How often a run was read whole ([`Runs::get`]).
    pub whole_reads: std::sync::atomic::AtomicUsize,
    /// Ticks by plan name, then scheduled time.
    pub ticks: Mutex<BTreeMap<String, BTreeMap<String, crate::proto::api::ScheduleTick>>>,
}

impl Runs for MemoryRuns {
    async fn launch(
        &self,
        execution: &ExecutionId,
        workflow: &CompiledWorkflow,
        inputs: &Outputs,
        _overwrite_cache: bool,
        origin: &super::LaunchOrigin,
    ) -> Result<bool, PortError> {
        let mut runs = self.runs.lock().expect("runs lock");
        let template = workflow.template.clone().unwrap_or_default();
        if let Some((existing, _)) = runs.get(&execution.name) {
            let same_inputs = existing.inputs.as_ref().map(|m| m.values.clone()).unwrap_or_default()
                == inputs.clone().into_iter().collect();
            if existing.workflow_id == template.id && same_inputs {
                return Ok(false);
            }
            return Err(PortError::Conflict(format!("the execution {} exists already", execution.name)));
        }
        let record = Execution {
            id: Some(execution.clone()),
            workflow_id: template.id.clone(),
            inputs: Some(crate::proto::core::LiteralMap { values: inputs.clone().into_iter().collect() }),
            phase: WorkflowPhase::WorkflowRunning as i32,
            mode: origin.mode as i32,
            launch_plan_id: origin.launch_plan.clone(),
            principal: origin.principal.clone(),
            scheduled_at: origin.scheduled_at.map(|t| crate::proto::Timestamp { seconds: t.timestamp(), nanos: 0 }),
            recovered_from: origin.recovered_from.clone(),
            created_at: Some(crate::proto::Timestamp { seconds: chrono::Utc::now().timestamp(), nanos: 0 }),
            ..Default::default()
        };
        let nodes = template
            .nodes
            .iter()
            .map(|n| NodeExecution {
                id: Some(crate::proto::core::NodeExecutionId {
                    execution_id: Some(execution.clone()),
                    node_id: n.id.clone(),
                }),
                phase: crate::proto::core::NodePhase::Queued as i32,
                ..Default::default()
            })
            .collect();
        runs.insert(execution.name.clone(), (record, nodes));
        Ok(true)
    }

    async fn list(
        &self,
        project: &str,
        domain: &str,
        filter: &super::RunFilter,
        page: &PageRequest,
    ) -> Result<Page<Execution>, PortError> {
        let runs = self.runs.lock().expect("runs lock");
        let mut found: Vec<Execution> = runs
            .values()
            .map(|(e, _)| e.clone())
            .filter(|e| e.id.as_ref().is_some_and(|i| i.project == project && i.domain == domain))
            .filter(|e| filter.matches(e))
            .collect();
        found.reverse(); // names sort by time in these tests
        page_of(found, page)
    }

    async fn record_tick(&self, plan: &Identifier, tick: &crate::proto::api::ScheduleTick) -> Result<(), PortError> {
        let mut ticks = self.ticks.lock().expect("ticks lock");
        ticks.entry(plan.name.clone()).or_default().insert(tick.scheduled_time.clone(), tick.clone());
        Ok(())
    }

    async fn ticks(
        &self,
        plan: &Identifier,
        page: &PageRequest,
    ) -> Result<Page<crate::proto::api::ScheduleTick>, PortError> {
        let ticks = self.ticks.lock().expect("ticks lock");
        let newest_first: Vec<_> =
            ticks.get(&plan.name).map(|t| t.values().rev().cloned().collect()).unwrap_or_default();
        page_of(newest_first, page)
    }

    async fn abort(
        &self,
        execution: &ExecutionId,
        by: &str,
        reason: &str,
    ) -> Result<Option<crate::execution::stop::Stopped>, PortError> {
        use crate::execution::stop::{StopCause, Stopped};
        let mut runs = self.runs.lock().expect("runs lock");
        let Some((record, _)) = runs.get_mut(&execution.name) else { return Ok(None) };
        if record.phase == WorkflowPhase::WorkflowRunning as i32 {
            let cause = StopCause::Aborted { by: by.into(), reason: reason.into() };
            let (code, message) = cause.error();
            record.phase = cause.phase() as i32;
            record.error = Some(crate::proto::core::ExecutionError { code, message, ..Default::default() });
        }
        let phase = WorkflowPhase::try_from(record.phase).unwrap_or_default();
        Ok(Some(Stopped { phase, stopped: Vec::new() }))
    }

    async fn get(&self, execution: &ExecutionId) -> Result<Option<(Execution, Vec<NodeExecution>)>, PortError> {
        self.whole_reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(self.runs.lock().expect("runs lock").get(&execution.name).cloned())
    }

    async fn ended_node(&self, execution: &ExecutionId, node: &str) -> Result<Option<NodeExecution>, PortError> {
        let waiting = [NodePhase::Undefined, NodePhase::Queued, NodePhase::Running].map(|p| p as i32);
        let runs = self.runs.lock().expect("runs lock");
        let nodes = runs.get(&execution.name).map(|(_, nodes)| nodes.as_slice()).unwrap_or_default();
        let found = nodes.iter().find(|n| n.id.as_ref().is_some_and(|id| id.node_id == node));
        Ok(found.filter(|n| !waiting.contains(&n.phase)).cloned())
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
        assert_eq!(block_on(registry.register(&[task("v1", "a")], "tester")), Ok(vec![Registration::Created]));
        assert_eq!(
            block_on(registry.register(&[task("v1", "a")], "tester")),
            Ok(vec![Registration::AlreadyRegistered])
        );
        let conflict = block_on(registry.register(&[task("v2", "a"), task("v1", "b")], "tester")).unwrap_err();
        assert!(matches!(&conflict, PortError::Conflict(m) if m.contains("sha256:")), "{conflict}");
        let v2 = task("v2", "a");
        assert_eq!(block_on(registry.get(v2.id().unwrap())), Ok(None), "nothing of a refused call is written");
    }

    #[test]
    fn listings_page_newest_versions_first_and_names_alphabetically() {
        let registry = MemoryRegistry::default();
        for version in ["v1", "v2", "v3"] {
            block_on(registry.register(&[task(version, version)], "tester")).unwrap();
        }
        let id = task("", "").id().cloned().unwrap();
        let first = block_on(registry.versions(&id, &PageRequest { limit: 2, token: None })).unwrap();
        let versions = |page: &Page<EntitySummary>| -> Vec<String> {
            page.items.iter().map(|s| s.id.clone().unwrap().version).collect()
        };
        assert_eq!(versions(&first), ["v3", "v2"]);
        let rest = block_on(registry.versions(&id, &PageRequest { limit: 2, token: first.next_token })).unwrap();
        assert_eq!((versions(&rest), rest.next_token), (vec!["v1".to_string()], None));
        let bad = block_on(registry.versions(&id, &PageRequest { limit: 2, token: Some("x".into()) }));
        assert!(matches!(bad, Err(PortError::Invalid(_))));
        let names =
            block_on(registry.names(ResourceType::Task, "p", "development", "", &PageRequest::default())).unwrap();
        assert_eq!((names.items[0].name.as_str(), names.items[0].latest_version.as_str()), ("fit", "v3"));
        let projects = block_on(registry.projects()).unwrap();
        assert_eq!((projects[0].name.as_str(), projects[0].domains.clone()), ("p", vec!["development".to_string()]));
    }

    #[test]
    fn one_launch_plan_version_is_active_at_a_time() {
        let registry = MemoryRegistry::default();
        let plan = |version: &str, active: bool| {
            Entity::LaunchPlan(LaunchPlanSpec {
                id: Some(Identifier {
                    resource_type: ResourceType::LaunchPlan as i32,
                    name: "nightly".into(),
                    version: version.into(),
                    ..Default::default()
                }),
                active,
                ..Default::default()
            })
        };
        block_on(registry.register(&[plan("v1", true), plan("v2", false)], "tester")).unwrap();
        let is_active = |version: &str| match block_on(registry.get(plan(version, false).id().unwrap())) {
            Ok(Some(Entity::LaunchPlan(p))) => p.active,
            other => panic!("{other:?}"),
        };
        assert!(is_active("v1") && !is_active("v2"));
        block_on(registry.set_active(plan("v2", false).id().unwrap(), true, "me")).unwrap();
        assert!(!is_active("v1") && is_active("v2"));
        block_on(registry.set_active(plan("v1", false).id().unwrap(), false, "me")).unwrap();
        assert!(is_active("v2"), "deactivating an inactive version changes nothing");
        let missing = block_on(registry.set_active(plan("v9", false).id().unwrap(), true, "me"));
        assert!(matches!(missing, Err(PortError::NotFound(_))));
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
