//! The embedded metadata store: every local execution and node execution, in
//! SQLite. Each row keeps its record as the IDL's canonical JSON, plus the
//! columns that listing sorts and filters on. Every write is one statement, so
//! an interrupted run leaves whole rows, never half of one.

use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use updraft_core::proto::core::{Execution, NodeExecution};

pub struct Store {
    conn: Connection,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("metadata store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("metadata store holds a record that does not parse: {0}")]
    Corrupt(#[from] serde_json::Error),
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS executions (
    name        TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL,
    record      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_by_time ON executions (created_at);
CREATE TABLE IF NOT EXISTS node_executions (
    execution   TEXT NOT NULL,
    node_id     TEXT NOT NULL,
    position    INTEGER NOT NULL,
    record      TEXT NOT NULL,
    PRIMARY KEY (execution, node_id)
);
";

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path)?;
        // WAL: readers (`executions get` in another terminal) never block the running executor.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store { conn })
    }

    pub fn put_execution(&self, execution: &Execution) -> Result<(), StoreError> {
        let id = execution.id.clone().unwrap_or_default();
        let created = execution.created_at.map(|t| (t.seconds, t.nanos)).unwrap_or_default();
        self.conn.execute(
            "INSERT INTO executions (name, created_at, record) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET record = excluded.record",
            params![id.name, format!("{:020}.{:09}", created.0, created.1), serde_json::to_string(execution)?],
        )?;
        Ok(())
    }

    pub fn put_node(&self, node: &NodeExecution, position: usize) -> Result<(), StoreError> {
        let id = node.id.clone().unwrap_or_default();
        let execution = id.execution_id.unwrap_or_default().name;
        self.conn.execute(
            "INSERT INTO node_executions (execution, node_id, position, record) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (execution, node_id) DO UPDATE SET record = excluded.record",
            params![execution, id.node_id, position as i64, serde_json::to_string(node)?],
        )?;
        Ok(())
    }

    /// The newest executions first.
    pub fn list(&self, limit: usize) -> Result<Vec<Execution>, StoreError> {
        let mut statement = self.conn.prepare("SELECT record FROM executions ORDER BY created_at DESC LIMIT ?1")?;
        let records = statement.query_map([limit as i64], |row| row.get::<_, String>(0))?;
        records.map(|r| Ok(serde_json::from_str(&r?)?)).collect()
    }

    pub fn get(&self, name: &str) -> Result<Option<(Execution, Vec<NodeExecution>)>, StoreError> {
        let record: Option<String> = self
            .conn
            .query_row("SELECT record FROM executions WHERE name = ?1", [name], |row| row.get(0))
            .optional()?;
        let Some(record) = record else { return Ok(None) };
        let mut statement =
            self.conn.prepare("SELECT record FROM node_executions WHERE execution = ?1 ORDER BY position")?;
        let nodes = statement
            .query_map([name], |row| row.get::<_, String>(0))?
            .map(|r| Ok(serde_json::from_str(&r?)?))
            .collect::<Result<Vec<NodeExecution>, StoreError>>()?;
        Ok(Some((serde_json::from_str(&record)?, nodes)))
    }
}
