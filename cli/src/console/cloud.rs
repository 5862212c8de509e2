//! The console over a deployed stack (`updraft console --remote`): every read and the
//! abort go to the stack's HTTPS API, signed with the CLI's own SigV4 credentials, so
//! the browser holds no credential and the API's IAM decides what this user may see.

use super::source::{
    About, LogChunk, LogRange, MAX_PROJECT_DOMAINS, PlanView, ProjectRuns, Rerun, RunPage, RunQuery, RunSource,
    RunView, SourceError, Stream,
};
use crate::commands::registry::Session;
use serde_json::Value;
use std::sync::Arc;
use updraft_core::proto::api::Project;
use updraft_core::proto::core::{CompiledWorkflow, Execution, LaunchPlanSpec, NodeExecution, schedule};

/// Pages of the API's list read at most for one page of a filtered list (each reads at
/// most 2,000 runs of the history).
const MAX_PAGES_PER_LIST: usize = 10;
/// Pages of a node's log read at most for one answer (each up to 10,000 lines).
const MAX_LOG_PAGES: usize = 10;

/// The runs of one project and domain of a stack (the session's, or another the page chose).
pub struct CloudRuns {
    session: Arc<Session>,
    project: String,
    domain: String,
}

impl CloudRuns {
    pub fn new(session: Session) -> CloudRuns {
        let (project, domain) = (session.project.clone(), session.domain.clone());
        CloudRuns { session: Arc::new(session), project, domain }
    }

    fn route(&self, rest: &str) -> String {
        format!("/v1/executions/{}/{}{rest}", self.project, self.domain)
    }

    /// The newest run of a project and domain; `None` when it has none.
    fn newest(&self, project: &str, domain: &str) -> Result<Option<Execution>, SourceError> {
        let page = self.call("GET", &format!("/v1/executions/{project}/{domain}"), &[("limit", "1")], None)?;
        Ok(Self::executions_of(&page)?.into_iter().next())
    }

    /// The runs of a page of the API's list (an empty page leaves the list out: the IDL's
    /// JSON omits empty fields).
    fn executions_of(page: &Value) -> Result<Vec<Execution>, SourceError> {
        Self::parse(page.get("executions").cloned().unwrap_or_else(|| Value::Array(vec![])), "a list of runs")
    }

    /// The answer's JSON when the API said yes; its refusal (status, code, message) when not.
    fn call(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Value, SourceError> {
        let answer = self.session.send(method, path, query, body).map_err(SourceError::Unreachable)?;
        let json: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        if (200..300).contains(&answer.status) {
            return Ok(json);
        }
        let message = json["message"].as_str().map(str::to_string).unwrap_or_else(|| {
            format!(
                "HTTP {}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body).chars().take(300).collect::<String>()
            )
        });
        Err(SourceError::Refused {
            status: answer.status,
            code: json["code"].as_str().unwrap_or("Refused").to_string(),
            message,
        })
    }

    fn parse<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> Result<T, SourceError> {
        serde_json::from_value(value)
            .map_err(|e| SourceError::Unreachable(format!("the API answered {what} that does not parse: {e}")))
    }
}

impl RunSource for CloudRuns {
    fn about(&self) -> About {
        let location = format!("{} ({}/{})", self.session.config.endpoint, self.project, self.domain);
        About { mode: "remote", location, can_act: true }
    }

    /// The registry's projects and their domains (those that hold entities), each with its newest run.
    fn projects(&self) -> Result<Vec<ProjectRuns>, SourceError> {
        let listed = self.call("GET", "/v1/projects", &[], None)?;
        let projects: Vec<Project> =
            Self::parse(listed.get("projects").cloned().unwrap_or_else(|| Value::Array(vec![])), "the projects")?;
        let pairs = projects.into_iter().flat_map(|p| p.domains.into_iter().map(move |d| (p.name.clone(), d)));
        let mut found = Vec::new();
        for (project, domain) in pairs.take(MAX_PROJECT_DOMAINS) {
            let newest = self.newest(&project, &domain)?;
            found.push(ProjectRuns { project, domain, newest });
        }
        Ok(found)
    }

    fn scoped(&self, project: &str, domain: &str) -> Arc<dyn RunSource> {
        Arc::new(CloudRuns { session: self.session.clone(), project: project.into(), domain: domain.into() })
    }

    fn launch_plans(&self, ticks: usize) -> Result<Vec<PlanView>, SourceError> {
        let base = format!("/v1/launch-plans/{}/{}", self.project, self.domain);
        let names = self.call("GET", &base, &[("limit", "100")], None)?;
        let mut plans = Vec::new();
        for entity in names["entities"].as_array().cloned().unwrap_or_default() {
            let name = entity["name"].as_str().unwrap_or_default().to_string();
            let active_version = entity["activeVersion"].as_str().unwrap_or_default().to_string();
            let versions = self.call("GET", &format!("{base}/{name}"), &[("limit", "1")], None)?;
            let state = versions["schedule"]["state"].as_str().unwrap_or_default().to_string();
            let version = if active_version.is_empty() {
                entity["latestVersion"].as_str().unwrap_or_default()
            } else {
                &active_version
            };
            let plan = self.call("GET", &format!("{base}/{name}/{version}"), &[], None)?;
            let spec: LaunchPlanSpec = Self::parse(plan["launchPlan"].clone(), "a launch plan")?;
            // A cron's fires follow from the clock; a rate's from when Scheduler started it, which
            // the registry does not hold, so a rate shows none rather than a guess.
            let cron = spec.schedule.as_ref().filter(|s| matches!(s.kind, Some(schedule::Kind::Cron(_))));
            let next_fires = match (cron, active_version.is_empty()) {
                (Some(schedule), false) => updraft_core::schedule::next_fires(schedule, None, chrono::Utc::now(), 3)
                    .unwrap_or_default()
                    .iter()
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .collect(),
                _ => vec![],
            };
            let limit = ticks.to_string();
            let recent = self.call("GET", &format!("{base}/{name}/ticks"), &[("limit", limit.as_str())], None)?;
            plans.push(PlanView {
                name,
                active_version,
                schedule: spec.schedule,
                state,
                next_fires,
                ticks: recent["ticks"].as_array().cloned().unwrap_or_default(),
            });
        }
        Ok(plans)
    }

    fn list(&self, query: &RunQuery) -> Result<RunPage, SourceError> {
        let mut executions = Vec::new();
        let mut token = query.after.clone().unwrap_or_default();
        let phase = query.phase.map(|p| p.as_str_name().to_string());
        let since = query.since_seconds.and_then(|s| chrono::DateTime::from_timestamp(s, 0)).map(|t| t.to_rfc3339());
        let filters = [
            ("phase", phase),
            ("workflow", query.workflow.clone()),
            ("plan", query.launch_plan.clone()),
            ("since", since),
        ];
        // The API filters; a page of a filter that matched few of the runs it read is short.
        for _ in 0..MAX_PAGES_PER_LIST {
            // What the page still lacks, so that the API's token goes on after the last run kept.
            let limit = query.limit.saturating_sub(executions.len()).max(1).to_string();
            let mut params = vec![("limit", limit.as_str())];
            for (name, value) in &filters {
                if let Some(value) = value {
                    params.push((name, value.as_str()));
                }
            }
            if !token.is_empty() {
                params.push(("token", token.as_str()));
            }
            let page = self.call("GET", &self.route(""), &params, None)?;
            executions.extend(Self::executions_of(&page)?);
            token = page["nextToken"].as_str().unwrap_or_default().to_string();
            if token.is_empty() || executions.len() >= query.limit {
                break;
            }
        }
        let next_token = (!token.is_empty()).then_some(token);
        Ok(RunPage { executions, next_token, runner_gone: vec![], skipped: vec![] })
    }

    fn run(&self, name: &str) -> Result<Option<RunView>, SourceError> {
        let answer = match self.call("GET", &self.route(&format!("/{name}")), &[], None) {
            Ok(answer) => answer,
            Err(SourceError::Refused { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let execution: Execution = Self::parse(answer["execution"].clone(), "a run")?;
        let mut nodes: Vec<NodeExecution> = Self::parse(answer["nodes"].clone(), "a run's nodes")?;
        let mut token = answer["nextToken"].as_str().unwrap_or_default().to_string();
        while !token.is_empty() {
            let page = self.call("GET", &self.route(&format!("/{name}/nodes")), &[("token", token.as_str())], None)?;
            nodes.extend(Self::parse::<Vec<NodeExecution>>(page["nodes"].clone(), "a run's nodes")?);
            token = page["nextToken"].as_str().unwrap_or_default().to_string();
        }
        // The graph is the registered workflow version's; a run of one since deleted shows none.
        let workflow = match execution.workflow_id.as_ref().filter(|w| !w.version.is_empty()) {
            Some(id) => {
                let path = format!("/v1/workflows/{}/{}/{}/{}", id.project, id.domain, id.name, id.version);
                match self.call("GET", &path, &[], None) {
                    Ok(answer) => Some(Self::parse::<CompiledWorkflow>(answer["workflow"].clone(), "a workflow")?),
                    Err(SourceError::Refused { status: 404, .. }) => None,
                    Err(e) => return Err(e),
                }
            }
            None => None,
        };
        Ok(Some(RunView { execution, nodes, workflow, runner_gone: false }))
    }

    fn log(
        &self,
        run: &str,
        node: &str,
        attempt: Option<u32>,
        stream: Stream,
        range: LogRange,
    ) -> Result<Option<LogChunk>, SourceError> {
        // A cloud job writes one stream (CloudWatch), answered as stdout; the attempt's (default: the last).
        if stream == Stream::Stderr || matches!(range, LogRange::Bytes { offset, .. } if offset > 0) {
            return Ok(None);
        }
        let (node, item) = match node.split_once('/') {
            Some((node, item)) => (node, Some(item)),
            None => (node, None),
        };
        let path = self.route(&format!("/{run}/nodes/{node}/logs"));
        let attempt_text = attempt.map(|a| a.to_string());
        let mut lines: Vec<String> = Vec::new();
        let mut token = String::new();
        for _ in 0..MAX_LOG_PAGES {
            let mut params = vec![];
            if let Some(item) = item {
                params.push(("item", item));
            }
            if let Some(attempt) = &attempt_text {
                params.push(("attempt", attempt.as_str()));
            }
            if !token.is_empty() {
                params.push(("token", token.as_str()));
            }
            let page = match self.call("GET", &path, &params, None) {
                Ok(page) => page,
                Err(SourceError::Refused { status: 404, .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            let events = page["events"].as_array().cloned().unwrap_or_default();
            lines.extend(events.iter().filter_map(|e| e["message"].as_str().map(str::to_string)));
            let next = page["nextToken"].as_str().unwrap_or_default().to_string();
            if events.is_empty() || next.is_empty() || next == token {
                break;
            }
            token = next;
        }
        if let LogRange::Tail { lines: wanted } = range {
            let skip = lines.len().saturating_sub(wanted);
            lines.drain(..skip);
        }
        let text: String = lines.iter().map(|l| format!("{}\n", l.trim_end_matches('\n'))).collect();
        let size = text.len() as u64;
        Ok(Some(LogChunk {
            text,
            label: "log".into(),
            size,
            offset: 0,
            attempts: vec![],
            attempt: attempt.unwrap_or(0),
        }))
    }

    fn rerun(&self, run: &str, how: Rerun, name: &str) -> Result<String, SourceError> {
        let action = match how {
            Rerun::Relaunch => "relaunch",
            Rerun::Recover => "recover",
        };
        let body = serde_json::to_vec(&serde_json::json!({ "name": name })).expect("JSON");
        let answer = self.call("POST", &self.route(&format!("/{run}/{action}")), &[], Some(body))?;
        answer["id"]["name"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| SourceError::Unreachable(format!("the API's answer to {action} names no run: {answer}")))
    }

    fn abort(&self, run: &str, reason: &str) -> Result<Execution, SourceError> {
        let body = serde_json::to_vec(&serde_json::json!({ "reason": reason })).expect("JSON");
        let answer = self.call("POST", &self.route(&format!("/{run}/abort")), &[], Some(body))?;
        Self::parse(answer["execution"].clone(), "the aborted run")
    }
}
