//! The embedded metadata store: every local execution and node execution, in
//! SQLite. Each row keeps its record as the IDL's canonical JSON, plus the
//! columns that listing sorts and filters on. Every write is one statement, so
//! an interrupted run leaves whole rows, never half of one.

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Mutex;
use updraft_core::ports::{ExecutionStore, PortError};
use updraft_core::proto::core::{CompiledWorkflow, Execution, NodeExecution, WorkflowPhase};

pub struct Store {
    /// One connection, shared by the executor's tasks (rusqlite's is not `Sync`).
    conn: Mutex<Connection>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("metadata store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("metadata store holds a record that does not parse: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// An execution of this name exists: ids are never reused, and never merged.
    #[error("metadata store: an execution named {0} exists already")]
    NameTaken(String),
    /// The store's file cannot be opened as the store (not an SQLite database, unreadable).
    #[error(
        "metadata store {path}: {source}\n  hint: move the file away (or set UPDRAFT_HOME to another directory); a new store is created in its place"
    )]
    Open { path: String, source: rusqlite::Error },
}

/// What `list` read: the executions, and a warning for each record skipped.
pub struct Listing {
    pub executions: Vec<Execution>,
    pub skipped: Vec<String>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS executions (
    name        TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL,
    record      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_by_time ON executions (created_at);
-- Executions whose runner has not finished them: which process runs each
-- (boot id:pid:start time), so that one killed mid-run is found and closed.
CREATE TABLE IF NOT EXISTS runners (
    execution   TEXT PRIMARY KEY,
    runner      TEXT NOT NULL
);
-- Each tick of a local scheduler (`updraft schedule`), so a restart knows what ran.
CREATE TABLE IF NOT EXISTS ticks (
    plan            TEXT NOT NULL,
    scheduled_time  TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    execution       TEXT NOT NULL,
    PRIMARY KEY (plan, scheduled_time)
);
-- The compiled workflow each run ran (its closure's subworkflows included), once per
-- digest: what the console draws a run's graph from.
CREATE TABLE IF NOT EXISTS workflows (
    digest      TEXT PRIMARY KEY,
    record      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS node_executions (
    execution   TEXT NOT NULL,
    node_id     TEXT NOT NULL,
    position    INTEGER NOT NULL,
    record      TEXT NOT NULL,
    PRIMARY KEY (execution, node_id)
);
";

impl Store {
    fn connection(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let opened = || -> Result<Connection, rusqlite::Error> {
            let conn = Connection::open(path)?;
            // WAL: readers (`executions get` in another terminal) never block the running executor.
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            conn.execute_batch(SCHEMA)?;
            Ok(conn)
        };
        // The file is named: "file is not a database" alone does not say which.
        let conn = opened().map_err(|source| StoreError::Open { path: path.display().to_string(), source })?;
        migrate(&conn)?;
        Ok(Store { conn: Mutex::new(conn) })
    }

    /// The store as a reader only (the console): nothing created, migrated or written;
    /// a run in progress goes on writing beside it (WAL).
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let opened = || -> Result<Connection, rusqlite::Error> {
            let conn = Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            // Fails here, not at the first query, when the file is no store.
            conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |row| row.get::<_, i64>(0))?;
            Ok(conn)
        };
        let conn = opened().map_err(|source| StoreError::Open { path: path.display().to_string(), source })?;
        Ok(Store { conn: Mutex::new(conn) })
    }

    /// The compiled workflow run `name` ran, if the store kept it (runs recorded
    /// before it kept workflows, or in a store not yet migrated, have none).
    pub fn workflow_of_run(&self, name: &str) -> Result<Option<CompiledWorkflow>, StoreError> {
        let found = self
            .connection()
            .query_row(
                "SELECT w.record FROM executions e JOIN workflows w ON w.digest = e.workflow_digest WHERE e.name = ?1",
                [name],
                |row| row.get::<_, String>(0),
            )
            .optional();
        match found {
            Ok(Some(record)) => Ok(Some(serde_json::from_str(&record)?)),
            Ok(None) => Ok(None),
            // A store that an older `updraft` wrote and no newer one opened since: no such table or column.
            Err(rusqlite::Error::SqliteFailure(_, Some(message))) if message.starts_with("no such") => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Records how a scheduler's tick of `plan` was handled (a tick again replaces it).
    pub fn record_tick(
        &self,
        plan: &str,
        scheduled_time: &str,
        outcome: &str,
        execution: &str,
    ) -> Result<(), StoreError> {
        self.connection().execute(
            "INSERT INTO ticks (plan, scheduled_time, outcome, execution) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (plan, scheduled_time) DO UPDATE SET outcome = excluded.outcome, execution = excluded.execution",
            params![plan, scheduled_time, outcome, execution],
        )?;
        Ok(())
    }

    /// Every tick handled, by plan name, newest first within a plan (none in a store that an
    /// older `updraft` made and a reader opened as it is).
    pub fn ticks(&self) -> Result<Vec<Tick>, StoreError> {
        let conn = self.connection();
        let prepared = conn
            .prepare("SELECT plan, scheduled_time, outcome, execution FROM ticks ORDER BY plan, scheduled_time DESC");
        let mut statement = match prepared {
            Err(rusqlite::Error::SqliteFailure(_, Some(message))) if message.starts_with("no such table") => {
                return Ok(vec![]);
            }
            prepared => prepared?,
        };
        let rows = statement.query_map([], |row| {
            Ok(Tick { plan: row.get(0)?, scheduled_time: row.get(1)?, outcome: row.get(2)?, execution: row.get(3)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The latest tick of `plan` handled (RFC 3339), if any.
    pub fn last_tick(&self, plan: &str) -> Result<Option<String>, StoreError> {
        let conn = self.connection();
        let mut statement = conn.prepare("SELECT MAX(scheduled_time) FROM ticks WHERE plan = ?1")?;
        Ok(statement.query_row(params![plan], |row| row.get::<_, Option<String>>(0))?)
    }

    /// Records a new execution, the compiled workflow it runs (kept once per digest)
    /// and, if given, the process that runs it, in one transaction; or fails with
    /// `NameTaken`: an existing execution is never overwritten by another.
    pub fn create_execution(
        &self,
        execution: &Execution,
        workflow: Option<&CompiledWorkflow>,
        runner: Option<&str>,
    ) -> Result<(), StoreError> {
        let id = execution.id.clone().unwrap_or_default();
        let created = execution.created_at.map(|t| (t.seconds, t.nanos)).unwrap_or_default();
        let mut conn = self.connection();
        let transaction = conn.transaction()?;
        let digest = match workflow {
            Some(workflow) => {
                let record = serde_json::to_string(workflow)?;
                let digest = hex::encode(Sha256::digest(record.as_bytes()));
                transaction.execute(
                    "INSERT INTO workflows (digest, record) VALUES (?1, ?2) ON CONFLICT (digest) DO NOTHING",
                    params![digest, record],
                )?;
                digest
            }
            None => String::new(),
        };
        let inserted = transaction.execute(
            "INSERT INTO executions \
             (name, created_at, record, workflow, phase, project, domain, workflow_digest, launch_plan) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (name) DO NOTHING",
            params![
                id.name,
                format!("{:020}.{:09}", created.0, created.1),
                serde_json::to_string(execution)?,
                workflow_of(execution),
                execution.phase,
                id.project,
                id.domain,
                digest,
                launch_plan_of(execution)
            ],
        )?;
        if inserted == 0 {
            return Err(StoreError::NameTaken(id.name));
        }
        if let Some(runner) = runner {
            transaction.execute(
                "INSERT OR REPLACE INTO runners (execution, runner) VALUES (?1, ?2)",
                params![id.name, runner],
            )?;
        }
        transaction.commit()?;
        Ok(())
    }

    /// Updates an execution's record; a finished one leaves the runners table.
    pub fn put_execution(&self, execution: &Execution) -> Result<(), StoreError> {
        let id = execution.id.clone().unwrap_or_default();
        self.connection().execute(
            "UPDATE executions SET record = ?2, phase = ?3 WHERE name = ?1",
            params![id.name, serde_json::to_string(execution)?, execution.phase],
        )?;
        if execution.phase != WorkflowPhase::WorkflowRunning as i32 {
            self.forget_runner(&id.name)?;
        }
        Ok(())
    }

    /// Rewrites the node records of an execution that `change` alters (returns true for).
    pub fn update_nodes(
        &self,
        execution: &str,
        mut change: impl FnMut(&mut NodeExecution) -> bool,
    ) -> Result<(), StoreError> {
        let conn = self.connection();
        let mut statement = conn.prepare("SELECT node_id, record FROM node_executions WHERE execution = ?1")?;
        let rows: Vec<(String, String)> =
            statement.query_map([execution], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<Result<_, _>>()?;
        for (node_id, record) in rows {
            let Ok(mut node) = serde_json::from_str::<NodeExecution>(&record) else { continue };
            if change(&mut node) {
                conn.execute(
                    "UPDATE node_executions SET record = ?3 WHERE execution = ?1 AND node_id = ?2",
                    params![execution, node_id, serde_json::to_string(&node)?],
                )?;
            }
        }
        Ok(())
    }

    /// Drops the runner of an execution: it finished, or its record is gone.
    pub fn forget_runner(&self, execution: &str) -> Result<(), StoreError> {
        self.connection().execute("DELETE FROM runners WHERE execution = ?1", [execution])?;
        Ok(())
    }

    /// Executions still marked running, with the process that runs each.
    pub fn running(&self) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.connection();
        let mut statement = conn.prepare("SELECT execution, runner FROM runners")?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn put_node(&self, node: &NodeExecution, position: usize) -> Result<(), StoreError> {
        let id = node.id.clone().unwrap_or_default();
        let execution = id.execution_id.unwrap_or_default().name;
        self.connection().execute(
            "INSERT INTO node_executions (execution, node_id, position, record) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (execution, node_id) DO UPDATE SET record = excluded.record",
            params![execution, id.node_id, position as i64, serde_json::to_string(node)?],
        )?;
        Ok(())
    }

    /// The newest executions first. A record that does not parse is skipped
    /// with a warning naming it, so one bad row cannot hide all the others.
    pub fn list(&self, limit: usize) -> Result<Listing, StoreError> {
        self.list_matching(limit, |_| true, |_| true)
    }

    /// The newest `limit` executions that `keep` accepts, reading newest first and
    /// stopping at the first for which `go_on` says no older one can match.
    pub fn list_matching(
        &self,
        limit: usize,
        keep: impl Fn(&Execution) -> bool,
        go_on: impl Fn(&Execution) -> bool,
    ) -> Result<Listing, StoreError> {
        let conn = self.connection();
        let mut statement = conn.prepare("SELECT name, record FROM executions ORDER BY created_at DESC")?;
        let rows = statement.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))?;
        let mut listing = Listing { executions: Vec::new(), skipped: Vec::new() };
        for row in rows {
            if listing.executions.len() >= limit {
                break;
            }
            let (name, record) = row?;
            match serde_json::from_str::<Execution>(&record) {
                Ok(execution) if !go_on(&execution) => break,
                Ok(execution) if keep(&execution) => listing.executions.push(execution),
                Ok(_) => {}
                Err(e) => listing.skipped.push(format!("execution {name}: its record does not parse ({e}); skipped")),
            }
        }
        Ok(listing)
    }

    /// Removes an execution's records (the execution, its nodes, its runner) in one
    /// transaction; whether it existed. Its files are the caller's (`crate::cleanup`).
    pub fn delete_execution(&self, name: &str) -> Result<bool, StoreError> {
        let mut conn = self.connection();
        let transaction = conn.transaction()?;
        transaction.execute("DELETE FROM node_executions WHERE execution = ?1", [name])?;
        transaction.execute("DELETE FROM runners WHERE execution = ?1", [name])?;
        let deleted = transaction.execute("DELETE FROM executions WHERE name = ?1", [name])?;
        transaction.commit()?;
        Ok(deleted > 0)
    }

    /// Every record the store holds, executions' and nodes', as their JSON: what
    /// `crate::cleanup` reads for the blobs they name.
    pub fn all_records(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.connection();
        let mut statement =
            conn.prepare("SELECT record FROM executions UNION ALL SELECT record FROM node_executions")?;
        let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The (project, domain) pairs that hold runs, alphabetical.
    pub fn project_domains(&self) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.connection();
        let mut statement = conn.prepare("SELECT DISTINCT project, domain FROM executions ORDER BY project, domain")?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest `limit` executions matching `query`, filtered by the indexed columns
    /// (workflow, phase, project, domain, creation time) in SQL.
    pub fn list_where(&self, limit: usize, query: &ExecutionQuery) -> Result<Listing, StoreError> {
        let mut sql = String::from("SELECT name, record FROM executions WHERE 1 = 1");
        let mut values: Vec<rusqlite::types::Value> = Vec::new();
        let mut add = |clause: &str, value: rusqlite::types::Value| {
            values.push(value);
            sql.push_str(&format!(" AND {clause} ?{}", values.len()));
        };
        if let Some(workflow) = &query.workflow {
            add("workflow =", workflow.clone().into());
        }
        if let Some(plan) = &query.launch_plan {
            // A store opened read-only is not migrated: one older than the column reads the records.
            let column = self.has_column("executions", "launch_plan")?;
            add(
                if column {
                    "launch_plan ="
                } else {
                    // (A record that does not parse matches no plan, and is skipped below as ever.)
                    "CASE WHEN json_valid(record) THEN json_extract(record, '$.launchPlanId.name') END ="
                },
                plan.clone().into(),
            );
        }
        if let Some(phase) = query.phase {
            add("phase =", i64::from(phase).into());
        }
        if let Some(project) = &query.project {
            add("project =", project.clone().into());
        }
        if let Some(domain) = &query.domain {
            add("domain =", domain.clone().into());
        }
        if let Some(since) = query.since_seconds {
            add("created_at >=", format!("{since:020}").into());
        }
        if let Some(after) = &query.after {
            // Keyset paging: the executions older than the named one, whatever was added since.
            add("(created_at, name) < (SELECT created_at, name FROM executions WHERE name =", after.clone().into());
            sql.push(')');
        }
        sql.push_str(&format!(" ORDER BY created_at DESC, name DESC LIMIT {}", limit.min(i64::MAX as usize)));
        let conn = self.connection();
        let mut statement = conn.prepare(&sql)?;
        let rows = statement.query_map(rusqlite::params_from_iter(values), |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?;
        let mut listing = Listing { executions: Vec::new(), skipped: Vec::new() };
        for row in rows {
            let (name, record) = row?;
            match serde_json::from_str::<Execution>(&record) {
                Ok(execution) => listing.executions.push(execution),
                Err(e) => listing.skipped.push(format!("execution {name}: its record does not parse ({e}); skipped")),
            }
        }
        Ok(listing)
    }

    fn has_column(&self, table: &str, column: &str) -> Result<bool, StoreError> {
        let conn = self.connection();
        let found: i64 = conn.query_row(
            "SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name = ?2",
            params![table, column],
            |row| row.get(0),
        )?;
        Ok(found > 0)
    }

    pub fn get(&self, name: &str) -> Result<Option<(Execution, Vec<NodeExecution>)>, StoreError> {
        let record: Option<String> = self
            .connection()
            .query_row("SELECT record FROM executions WHERE name = ?1", [name], |row| row.get(0))
            .optional()?;
        let Some(record) = record else { return Ok(None) };
        let conn = self.connection();
        let mut statement =
            conn.prepare("SELECT record FROM node_executions WHERE execution = ?1 ORDER BY position")?;
        let nodes = statement
            .query_map([name], |row| row.get::<_, String>(0))?
            .map(|r| Ok(serde_json::from_str(&r?)?))
            .collect::<Result<Vec<NodeExecution>, StoreError>>()?;
        Ok(Some((serde_json::from_str(&record)?, nodes)))
    }
}

/// A tick of a local scheduler (`updraft schedule`), as `record_tick` kept it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    pub plan: String,
    pub scheduled_time: String,
    pub outcome: String,
    pub execution: String,
}

/// Which executions `Store::list_where` returns (`None`: any).
#[derive(Debug, Clone, Default)]
pub struct ExecutionQuery {
    pub workflow: Option<String>,
    /// Launched by this launch plan (its name).
    pub launch_plan: Option<String>,
    pub phase: Option<i32>,
    pub project: Option<String>,
    pub domain: Option<String>,
    /// Created at or after this time (epoch seconds).
    pub since_seconds: Option<i64>,
    /// Only executions listed after this one (the last of the previous page).
    pub after: Option<String>,
}

fn workflow_of(execution: &Execution) -> String {
    execution.workflow_id.as_ref().map(|w| w.name.clone()).unwrap_or_default()
}

fn launch_plan_of(execution: &Execution) -> String {
    execution.launch_plan_id.as_ref().map(|p| p.name.clone()).unwrap_or_default()
}

/// Adds the columns listing filters on to a store made before they existed, filled
/// from each record, and their indexes. Idempotent: run at every open.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let mut statement = conn.prepare("SELECT name FROM pragma_table_info('executions')")?;
    let columns: Vec<String> = statement.query_map([], |row| row.get(0))?.collect::<Result<_, _>>()?;
    if !columns.iter().any(|c| c == "workflow") {
        conn.execute_batch(
            "BEGIN;
             ALTER TABLE executions ADD COLUMN workflow TEXT NOT NULL DEFAULT '';
             ALTER TABLE executions ADD COLUMN phase INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE executions ADD COLUMN project TEXT NOT NULL DEFAULT '';
             ALTER TABLE executions ADD COLUMN domain TEXT NOT NULL DEFAULT '';
             COMMIT;",
        )?;
        let rows: Vec<(String, String)> = {
            let mut all = conn.prepare("SELECT name, record FROM executions")?;
            all.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<Result<_, _>>()?
        };
        for (name, record) in rows {
            // A record that does not parse keeps empty columns; listing reports it as before.
            let Ok(execution) = serde_json::from_str::<Execution>(&record) else { continue };
            let id = execution.id.clone().unwrap_or_default();
            conn.execute(
                "UPDATE executions SET workflow = ?2, phase = ?3, project = ?4, domain = ?5 WHERE name = ?1",
                params![name, workflow_of(&execution), execution.phase, id.project, id.domain],
            )?;
        }
    }
    if !columns.iter().any(|c| c == "workflow_digest") {
        // Runs recorded before their workflow was kept name none: the console says so instead of a graph.
        conn.execute("ALTER TABLE executions ADD COLUMN workflow_digest TEXT NOT NULL DEFAULT ''", [])?;
    }
    if !columns.iter().any(|c| c == "launch_plan") {
        conn.execute("ALTER TABLE executions ADD COLUMN launch_plan TEXT NOT NULL DEFAULT ''", [])?;
        // Only a scheduled run names a plan: the others keep the empty default.
        let rows: Vec<(String, String)> = {
            let mut all = conn.prepare("SELECT name, record FROM executions WHERE record LIKE '%launchPlanId%'")?;
            all.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<Result<_, _>>()?
        };
        for (name, record) in rows {
            let Ok(execution) = serde_json::from_str::<Execution>(&record) else { continue };
            conn.execute(
                "UPDATE executions SET launch_plan = ?2 WHERE name = ?1",
                params![name, launch_plan_of(&execution)],
            )?;
        }
    }
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS executions_by_workflow ON executions (workflow, created_at);
         CREATE INDEX IF NOT EXISTS executions_by_phase ON executions (phase, created_at);
         CREATE INDEX IF NOT EXISTS executions_by_launch_plan ON executions (launch_plan, created_at);",
    )?;
    Ok(())
}

/// The embedded store as the port the control plane's readers are written
/// against; `updraft run` itself also records who runs each execution
/// (`create_execution`), which the port has no notion of.
impl ExecutionStore for Store {
    async fn create(&self, execution: &Execution) -> Result<(), PortError> {
        self.create_execution(execution, None, None).map_err(port_error)
    }

    async fn update(&self, execution: &Execution) -> Result<(), PortError> {
        self.put_execution(execution).map_err(port_error)
    }

    async fn put_node(&self, node: &NodeExecution, position: usize) -> Result<(), PortError> {
        Store::put_node(self, node, position).map_err(port_error)
    }

    async fn get(&self, name: &str) -> Result<Option<(Execution, Vec<NodeExecution>)>, PortError> {
        Store::get(self, name).map_err(port_error)
    }

    async fn list(&self, limit: usize) -> Result<Vec<Execution>, PortError> {
        Store::list(self, limit).map(|listing| listing.executions).map_err(port_error)
    }
}

fn port_error(e: StoreError) -> PortError {
    match e {
        StoreError::NameTaken(_) => PortError::Conflict(e.to_string()),
        // A busy database (another updraft writing) clears up; a corrupt one does not.
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::DatabaseBusy => {
            PortError::Transient(e.to_string())
        }
        e => PortError::Permanent(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use updraft_core::proto::core::ExecutionId;

    fn execution(name: &str, principal: &str) -> Execution {
        Execution {
            id: Some(ExecutionId { name: name.into(), ..Default::default() }),
            phase: WorkflowPhase::WorkflowRunning as i32,
            principal: principal.into(),
            ..Default::default()
        }
    }

    /// A store made before listing's columns existed gets them, filled from its
    /// records, at its next open; filters then run in SQL.
    #[test]
    fn an_older_store_gains_the_listing_columns_and_filters_by_them() {
        let dir = std::env::temp_dir().join(format!("updraft-store-migrate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("updraft.db");
        let _ = std::fs::remove_file(&path);
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE executions (name TEXT PRIMARY KEY, created_at TEXT NOT NULL, record TEXT NOT NULL);",
        )
        .unwrap();
        let mut before = execution("20261101-000000-00000001", "someone");
        before.workflow_id = Some(updraft_core::proto::core::Identifier { name: "train".into(), ..Default::default() });
        before.launch_plan_id =
            Some(updraft_core::proto::core::Identifier { name: "nightly".into(), ..Default::default() });
        before.phase = WorkflowPhase::WorkflowFailed as i32;
        old.execute(
            "INSERT INTO executions (name, created_at, record) VALUES (?1, ?2, ?3)",
            params![
                "20261101-000000-00000001",
                format!("{:020}.{:09}", 1_796_000_000, 0),
                serde_json::to_string(&before).unwrap()
            ],
        )
        .unwrap();
        drop(old);
        // A reader of the store as it is (no workflows table yet) finds no workflow, and no error.
        let reader = Store::open_read_only(&path).unwrap();
        assert_eq!(reader.workflow_of_run("20261101-000000-00000001").unwrap(), None);
        assert_eq!(reader.ticks().unwrap(), []);
        // Nor a launch plan column: the filter reads the records instead.
        let by_plan = ExecutionQuery { launch_plan: Some("nightly".into()), ..Default::default() };
        assert_eq!(reader.list_where(10, &by_plan).unwrap().executions.len(), 1);
        drop(reader);
        let store = Store::open(&path).unwrap();
        let mut newer = execution("20261102-000000-00000002", "someone");
        newer.workflow_id = Some(updraft_core::proto::core::Identifier { name: "score".into(), ..Default::default() });
        newer.created_at = Some(updraft_core::proto::Timestamp { seconds: 1_796_100_000, nanos: 0 });
        store.create_execution(&newer, None, None).unwrap();
        let names = |query: ExecutionQuery| -> Vec<String> {
            let listing = store.list_where(10, &query).unwrap();
            listing.executions.iter().map(|e| e.id.clone().unwrap().name).collect()
        };
        let by_workflow = ExecutionQuery { workflow: Some("train".into()), ..Default::default() };
        assert_eq!(names(by_workflow), ["20261101-000000-00000001"]);
        let failed = ExecutionQuery { phase: Some(WorkflowPhase::WorkflowFailed as i32), ..Default::default() };
        assert_eq!(names(failed), ["20261101-000000-00000001"]);
        let recent = ExecutionQuery { since_seconds: Some(1_796_050_000), ..Default::default() };
        assert_eq!(names(recent), ["20261102-000000-00000002"]);
        let by_plan = ExecutionQuery { launch_plan: Some("nightly".into()), ..Default::default() };
        assert_eq!(names(by_plan), ["20261101-000000-00000001"], "the column, filled from the record");
        let other_plan = ExecutionQuery { launch_plan: Some("hourly".into()), ..Default::default() };
        assert_eq!(names(other_plan), Vec::<String>::new());
        assert_eq!(names(ExecutionQuery::default()).len(), 2, "newest first, both");
        drop(store);
        Store::open(&path).unwrap(); // migrating again changes nothing
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ticks_are_listed_by_plan_newest_first_and_a_tick_again_replaces_itself() {
        let dir = std::env::temp_dir().join(format!("updraft-store-ticks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("updraft.db")).unwrap();
        store.record_tick("nightly", "2026-12-01T03:00:00Z", "LAUNCHED", "nightly-1").unwrap();
        store.record_tick("nightly", "2026-12-02T03:00:00Z", "FAILED", "nightly-2").unwrap();
        store.record_tick("hourly", "2026-12-02T05:00:00Z", "LAUNCHED", "hourly-5").unwrap();
        store.record_tick("nightly", "2026-12-02T03:00:00Z", "LAUNCHED", "nightly-2").unwrap();
        let listed: Vec<(String, String, String)> =
            store.ticks().unwrap().into_iter().map(|t| (t.plan, t.scheduled_time, t.outcome)).collect();
        let tick = |plan: &str, at: &str, outcome: &str| (plan.to_string(), at.to_string(), outcome.to_string());
        assert_eq!(
            listed,
            [
                tick("hourly", "2026-12-02T05:00:00Z", "LAUNCHED"),
                tick("nightly", "2026-12-02T03:00:00Z", "LAUNCHED"),
                tick("nightly", "2026-12-01T03:00:00Z", "LAUNCHED"),
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_execution_name_is_never_reused_or_merged() {
        let dir = std::env::temp_dir().join(format!("updraft-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("updraft.db")).unwrap();
        store.create_execution(&execution("20261127-000000-00000000", "first"), None, Some("boot:1:1")).unwrap();
        let clash = store.create_execution(&execution("20261127-000000-00000000", "second"), None, Some("boot:2:2"));
        assert!(matches!(clash, Err(StoreError::NameTaken(_))), "{clash:?}");
        let (kept, _) = store.get("20261127-000000-00000000").unwrap().unwrap();
        assert_eq!(kept.principal, "first", "the first run's record is untouched");
        assert_eq!(store.running().unwrap(), [("20261127-000000-00000000".to_string(), "boot:1:1".to_string())]);

        let mut finished = kept.clone();
        finished.phase = WorkflowPhase::WorkflowSucceeded as i32;
        store.put_execution(&finished).unwrap();
        assert!(store.running().unwrap().is_empty(), "a finished execution has no runner");

        // Through the port, the same contract as core's in-memory fake.
        let again = updraft_core::ports::memory::block_on(ExecutionStore::create(&store, &kept));
        assert!(matches!(again, Err(PortError::Conflict(_))), "{again:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// What the console reads: each run's workflow (kept once however many runs ran it),
    /// pages newest first from a run's name on, and a reader that never writes the file.
    #[test]
    fn a_run_keeps_its_workflow_once_and_a_reader_pages_runs_without_writing_the_store() {
        use updraft_core::proto::core::{Identifier, Node, WorkflowTemplate};
        let dir = std::env::temp_dir().join(format!("updraft-store-reader-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("updraft.db");
        let workflow = CompiledWorkflow {
            template: Some(WorkflowTemplate {
                id: Some(Identifier { name: "train".into(), ..Default::default() }),
                nodes: vec![Node { id: "fit".into(), ..Default::default() }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let store = Store::open(&path).unwrap();
        for (second, name) in [(1, "run-1"), (2, "run-2"), (3, "run-3")] {
            let mut run = execution(name, "someone");
            run.created_at = Some(updraft_core::proto::Timestamp { seconds: 1_796_000_000 + second, nanos: 0 });
            store.create_execution(&run, Some(&workflow), None).unwrap();
        }
        store.create_execution(&execution("without-workflow", "someone"), None, None).unwrap();
        let kept: i64 = store.connection().query_row("SELECT COUNT(*) FROM workflows", [], |r| r.get(0)).unwrap();
        assert_eq!(kept, 1, "one row per digest");
        drop(store);

        let bytes = std::fs::read(&path).unwrap();
        let reader = Store::open_read_only(&path).unwrap();
        assert_eq!(reader.workflow_of_run("run-2").unwrap(), Some(workflow));
        assert_eq!(reader.workflow_of_run("without-workflow").unwrap(), None);
        assert_eq!(reader.workflow_of_run("no-such-run").unwrap(), None);
        let page = |after: Option<&str>| -> Vec<String> {
            let query = ExecutionQuery { after: after.map(String::from), ..Default::default() };
            reader.list_where(2, &query).unwrap().executions.iter().map(|e| e.id.clone().unwrap().name).collect()
        };
        assert_eq!(page(None), ["run-3", "run-2"]);
        assert_eq!(page(Some("run-2")), ["run-1", "without-workflow"]);
        assert!(page(Some("without-workflow")).is_empty());
        assert!(reader.ticks().unwrap().is_empty());
        let refused = reader.create_execution(&execution("run-4", "someone"), None, None);
        assert!(matches!(refused, Err(StoreError::Sqlite(_))), "{refused:?}");
        drop(reader);
        assert!(std::fs::read(&path).unwrap() == bytes, "the reader left the store's file as it was");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
