//! `updraft console` figures: the first page of 10,000 local runs, as the page asks for it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use updraft_core::proto::Timestamp;
use updraft_engine::store::Store;

/// A home holding 10,000 runs: one real run of examples/fanout, its records copied under
/// 9,999 more names (what a year of nightly and hourly runs leaves behind).
pub fn list_10000_runs(updraft: &Path, scratch: &Path) {
    let home = scratch.join("console-home");
    let out = Command::new(updraft)
        .args(["run", "examples/fanout/fanout.yaml", "--output", "json", "-q"])
        .env("UPDRAFT_HOME", &home)
        .output()
        .expect("updraft starts");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let name = run["execution"]["id"]["name"].as_str().unwrap().to_string();
    {
        let store = Store::open(&home.join("updraft.db")).unwrap();
        let (execution, nodes) = store.get(&name).unwrap().unwrap();
        let workflow = store.workflow_of_run(&name).unwrap();
        for i in 1..10_000 {
            let mut copy = execution.clone();
            let copied = format!("{name}-{i:05}");
            copy.id.as_mut().unwrap().name = copied.clone();
            let created = execution.created_at.unwrap_or_default();
            copy.created_at = Some(Timestamp { seconds: created.seconds - i, nanos: created.nanos });
            store.create_execution(&copy, workflow.as_ref(), None).unwrap();
            for (position, node) in nodes.iter().enumerate() {
                let mut node = node.clone();
                node.id.as_mut().unwrap().execution_id.as_mut().unwrap().name = copied.clone();
                store.put_node(&node, position).unwrap();
            }
        }
    }
    let mut console = Command::new(updraft)
        .args(["console", "--port", "0"])
        .env("UPDRAFT_HOME", &home)
        .stdout(Stdio::piped())
        .spawn()
        .expect("updraft console starts");
    let mut line = String::new();
    BufReader::new(console.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port: u16 = line.trim_start_matches("console: http://127.0.0.1:").split('/').next().unwrap().parse().unwrap();
    let first_page = || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(stream, "GET /api/runs?limit=50 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200") && answer.contains(&format!("{name}-00049")), "{answer:.300}");
    };
    crate::report("console_list_10000_runs_ms", crate::median_ms(21, first_page));
    let _ = console.kill();
    let _ = console.wait();
}
