//! `updraft console` over real runs: the real binary serving a real store, asked over
//! real HTTP (the page itself is driven in a browser by tests/console).

use crate::support::{Sandbox, text};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};

const SPEC: &str = r#"
tasks:
  add:
    image: x
    command: [sh, -c, 'echo "adding $1" >&2; echo $(($1 + 1)) > "$2"', add, "{{inputs.a}}", "{{outputs.sum}}"]
    inputs: {a: int}
    outputs: {sum: int}
    cache: {version: "1"}
  broken:
    image: x
    command: [sh, -c, 'echo "broken-marker for $1" >&2; exit 3', broken, "{{inputs.a}}"]
    inputs: {a: int}
workflows:
  ok:
    inputs: {a: int}
    nodes:
      first: {task: add, inputs: {a: $inputs.a}}
      second: {task: add, inputs: {a: $first.sum}}
    outputs: {sum: $second.sum}
  bad:
    nodes:
      first: {task: add, inputs: {a: 1}}
      fails: {task: broken, inputs: {a: $first.sum}}
      later: {task: add, inputs: {a: 5}, after: [fails]}
"#;

/// A console process on a free port, stopped when dropped.
struct Console {
    child: Child,
    port: u16,
}

impl Console {
    fn start(sandbox: &Sandbox) -> Console {
        Console::spawn(sandbox.command(&["console", "--port", "0"]))
    }

    fn spawn(mut command: std::process::Command) -> Console {
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("updraft console starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line
            .strip_prefix("console: http://127.0.0.1:")
            .and_then(|rest| rest.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the console prints its URL first: {line:?}"));
        Console { child, port }
    }

    /// One HTTP/1.1 GET with this `Host`: (status, headers in lower case, body).
    /// One HTTP/1.1 request with this `Host` and extra header lines (each ending `\r\n`): the whole answer.
    fn exchange(&self, method: &str, path: &str, host: &str, headers: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    /// The same from this console's own page: its `Host`.
    fn exchange_here(&self, method: &str, path: &str, headers: &str) -> String {
        self.exchange(method, path, &format!("127.0.0.1:{}", self.port), headers)
    }

    fn get_as(&self, host: &str, path: &str) -> (u16, String, String) {
        let answer = self.exchange("GET", path, host, "");
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, head.to_lowercase(), body.to_string())
    }

    fn get(&self, path: &str) -> (u16, String, String) {
        self.get_as(&format!("127.0.0.1:{}", self.port), path)
    }

    fn json(&self, path: &str) -> Value {
        let (status, _, body) = self.get(path);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path} answers JSON ({e}): {body}"))
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(sandbox: &Sandbox, workflow: &str, extra: &[&str]) -> String {
    let mut args = vec!["run", "spec.yaml", workflow, "--output", "json", "-q"];
    args.extend_from_slice(extra);
    let out = sandbox.updraft(&args);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out.stderr)));
    doc["execution"]["id"]["name"].as_str().map(String::from).unwrap_or_else(|| panic!("a run's name: {doc}"))
}

fn names(page: &Value) -> Vec<&str> {
    page["executions"].as_array().unwrap().iter().map(|e| e["id"]["name"].as_str().unwrap()).collect()
}

fn node<'a>(run: &'a Value, id: &str) -> &'a Value {
    run["nodes"].as_array().unwrap().iter().find(|n| n["id"]["nodeId"] == id).unwrap_or_else(|| panic!("node {id}"))
}

#[test]
fn the_console_lists_runs_filters_and_pages_them_and_shows_one_with_its_graph_and_logs() {
    let sandbox = Sandbox::new("console", SPEC);
    let empty = Console::start(&sandbox);
    assert_eq!(names(&empty.json("/api/runs")), Vec::<&str>::new(), "an empty home lists nothing and no error");
    drop(empty);
    let ok = run(&sandbox, "ok", &["-i", "a=1"]);
    let bad = run(&sandbox, "bad", &[]);
    let cached = run(&sandbox, "ok", &["-i", "a=1"]);
    let database = sandbox.dir.join("home").join("updraft.db");
    let store_before = std::fs::read(&database).unwrap();
    let console = Console::start(&sandbox);

    // The list: newest first; a phase filter; pages that go on from the last name.
    assert_eq!(names(&console.json("/api/runs")), [cached.as_str(), &bad, &ok]);
    assert_eq!(names(&console.json("/api/runs?phase=WORKFLOW_FAILED")), [bad.as_str()]);
    assert_eq!(names(&console.json("/api/runs?workflow=ok")), [cached.as_str(), &ok]);
    let first = console.json("/api/runs?limit=2");
    assert_eq!(names(&first), [cached.as_str(), &bad]);
    let token = first["nextToken"].as_str().unwrap();
    let second = console.json(&format!("/api/runs?limit=2&token={token}"));
    assert_eq!((names(&second), second["nextToken"].as_str()), (vec![ok.as_str()], Some("")));
    let (status, _, body) = console.get("/api/runs?phase=DONE");
    assert!(status == 400 && body.contains("WORKFLOW_FAILED"), "{status} {body}");

    // One run: its nodes, its workflow's graph (levels and edges), the cache statuses.
    let shown = console.json(&format!("/api/runs/{ok}"));
    assert_eq!(shown["execution"]["phase"], "WORKFLOW_SUCCEEDED");
    assert_eq!(shown["execution"]["outputs"]["values"]["sum"]["integer"], "3");
    let template = &shown["workflow"]["template"];
    let second_node = template["nodes"].as_array().unwrap().iter().find(|n| n["id"] == "second").unwrap();
    assert_eq!(second_node["upstreamNodeIds"], serde_json::json!(["first"]));
    assert_eq!(shown["workflow"]["dag"]["criticalPath"], serde_json::json!(["first", "second"]));
    assert_eq!(node(&shown, "second")["cacheStatus"], "CACHE_POPULATED");
    let again = console.json(&format!("/api/runs/{cached}"));
    assert_eq!(node(&again, "second")["phase"], "CACHED");
    assert_eq!(node(&again, "second")["cacheKey"], node(&shown, "second")["cacheKey"]);

    // A workflow's page: its newest runs with their nodes, and its graph.
    let grid = console.json("/api/workflows/ok/runs?limit=25");
    let grid_runs: Vec<&str> =
        grid["runs"].as_array().unwrap().iter().map(|r| r["execution"]["id"]["name"].as_str().unwrap()).collect();
    assert_eq!(grid_runs, [cached.as_str(), &ok]);
    assert_eq!(grid["workflow"]["dag"]["topologicalOrder"], serde_json::json!(["first", "second"]));
    assert_eq!(console.json("/api/workflows/none/runs")["runs"], serde_json::json!([]));

    // The failed run: the failure's code and message, the downstream node skipped, the stderr marker.
    let failed = console.json(&format!("/api/runs/{bad}"));
    assert_eq!(failed["execution"]["phase"], "WORKFLOW_FAILED");
    assert_eq!(node(&failed, "fails")["phase"], "FAILED");
    assert!(node(&failed, "fails")["error"]["message"].as_str().unwrap().contains('3'), "{failed}");
    assert_eq!(node(&failed, "later")["phase"], "SKIPPED");
    let (status, head, log) = console.get(&format!("/api/runs/{bad}/nodes/fails/logs?stream=stderr"));
    assert_eq!(status, 200, "{log}");
    assert!(log.contains("broken-marker for 2"), "{log}");
    assert!(head.contains("x-log-attempt: 1"), "{head}");
    let (status, _, part) = console.get(&format!("/api/runs/{bad}/nodes/fails/logs?stream=stderr&offset=7&length=6"));
    assert_eq!((status, part.as_str()), (200, "marker"));

    // What is not there: 404 as JSON; a path that climbs out of the run is no node.
    let (status, _, body) = console.get("/api/runs/no-such-run");
    assert!(status == 404 && body.contains("ExecutionNotFound"), "{status} {body}");
    for climbing in ["..%2F..%2Fupdraft.db", "%2E%2E", "first%2F..%2F..", "fails%2F..%2Ffirst"] {
        let (status, _, body) = console.get(&format!("/api/runs/{bad}/nodes/{climbing}/logs"));
        assert_eq!(status, 404, "{climbing}: {body}");
    }
    let (status, _, _) = console.get(&format!("/api/runs/{bad}/nodes/later/logs"));
    assert_eq!(status, 404, "a skipped node left no log");

    // The page and its assets, with a policy that forbids scripts from anywhere else.
    let (status, head, page) = console.get(&format!("/runs/{ok}"));
    assert!(status == 200 && page.contains("/assets/app.js"), "{status} {page}");
    assert!(head.contains("content-security-policy: default-src 'self'"), "{head}");
    assert_eq!(console.get("/assets/app.js").0, 200);
    let (status, head, dagre) = console.get("/assets/dagre.js");
    assert!(status == 200 && head.contains("content-type: text/javascript"), "{status} {head}");
    assert!(dagre.starts_with("/* @dagrejs/dagre 3.1.4") && dagre.contains("MIT License"), "its version and license");

    // Polling: the same answer again is a 304 without a body.
    let (_, head, _) = console.get("/api/runs");
    let etag = head.lines().find_map(|l| l.strip_prefix("etag: ")).unwrap().trim().to_string();
    let answer = console.exchange_here("GET", "/api/runs", &format!("If-None-Match: {etag}\r\n"));
    assert!(answer.starts_with("HTTP/1.1 304"), "{answer}");
    assert!(std::fs::read(&database).unwrap() == store_before, "the console left the store's file as it was");

    // A run a local scheduler starts records its plan and its tick: the plan filter finds it alone.
    let tick = ["-i", "a=5", "--launch-plan", "nightly", "--scheduled-at", "2027-03-29T01:00:00Z"];
    let ticked = run(&sandbox, "ok", &tick);
    assert_eq!(names(&console.json("/api/runs?plan=nightly")), [ticked.as_str()]);
    assert_eq!(names(&console.json("/api/runs?plan=hourly")), Vec::<&str>::new());
    let shown = console.json(&format!("/api/runs/{ticked}"));
    let execution = &shown["execution"];
    assert_eq!(
        (&execution["mode"], &execution["launchPlanId"]["name"]),
        (&serde_json::json!("SCHEDULED"), &serde_json::json!("nightly"))
    );
    assert_eq!(execution["scheduledAt"], "2027-03-29T01:00:00+00:00", "the tick, not the clock");
}

#[test]
fn the_console_lists_runs_across_projects_and_scopes_every_read_to_the_one_asked() {
    let sandbox = Sandbox::new("console-projects", SPEC);
    std::fs::write(sandbox.dir.join("vision.yaml"), format!("project: vision\n{SPEC}")).unwrap();
    let ours = run(&sandbox, "ok", &["-i", "a=1"]);
    let out = sandbox.updraft(&["run", "vision.yaml", "ok", "-i", "a=2", "--output", "json", "-q"]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out.stderr)));
    let theirs = doc["execution"]["id"]["name"].as_str().unwrap().to_string();
    let console = Console::start(&sandbox);

    // Every project and domain with its newest run.
    let listed = console.json("/api/projects");
    let projects: Vec<(&str, &str, &str)> = listed["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (p["project"].as_str().unwrap(), p["domain"].as_str().unwrap(), p["newest"]["id"]["name"].as_str().unwrap())
        })
        .collect();
    assert_eq!(projects, [("default", "development", ours.as_str()), ("vision", "development", &theirs)]);
    // Unscoped, a local console lists every project's runs; scoped, one project's.
    assert_eq!(names(&console.json("/api/runs")), [theirs.as_str(), &ours]);
    assert_eq!(names(&console.json("/api/runs?project=vision&domain=development")), [theirs.as_str()]);
    assert_eq!(names(&console.json("/api/runs?project=nobody&domain=development")), Vec::<&str>::new());
    let shown = console.json(&format!("/api/runs/{theirs}?project=vision&domain=development"));
    assert_eq!(shown["execution"]["id"]["project"], "vision");
    // A scope that is not a pair of names is refused before anything is read.
    for bad in ["project=vision", "project=..&domain=development", "project=a%2Fb&domain=development"] {
        let (status, _, body) = console.get(&format!("/api/runs?{bad}"));
        assert!(status == 400 && body.contains("BadScope"), "{bad}: {status} {body}");
    }
    assert_eq!(console.get("/projects").0, 200, "the page of the list across projects");
}

#[test]
fn the_console_answers_only_requests_addressed_to_its_loopback_port() {
    let sandbox = Sandbox::new("console-hosts", SPEC);
    let console = Console::start(&sandbox);
    for host in ["evil.example", "evil.example:80", &format!("127.0.0.1.evil.example:{}", console.port), "127.0.0.1"] {
        let (status, _, body) = console.get_as(host, "/api/runs");
        assert!(status == 403 && body.contains("ForeignHost"), "{host}: {status} {body}");
    }
    assert_eq!(console.get_as(&format!("localhost:{}", console.port), "/api/runs").0, 200);
    // The one write (abort) needs the page's token and the console's own origin; locally it has none.
    let (_, _, page) = console.get("/");
    let token = page.split("name=\"updraft-token\" content=\"").nth(1).and_then(|t| t.split('"').next()).unwrap();
    assert_eq!(token.len(), 32, "{page}");
    let origin = format!("http://127.0.0.1:{}", console.port);
    for (headers, status) in [
        (String::new(), "403"),
        (format!("Origin: {origin}\r\n"), "403"),
        (format!("X-Updraft-Token: {token}\r\n"), "403"),
        (format!("Origin: http://evil.example\r\nX-Updraft-Token: {token}\r\n"), "403"),
        (format!("Origin: {origin}\r\nX-Updraft-Token: {}\r\n", "0".repeat(32)), "403"),
        (format!("Origin: {origin}\r\nX-Updraft-Token: {token}\r\n"), "405"),
    ] {
        let answer = console.exchange_here("POST", "/api/runs/any/abort", &headers);
        assert!(answer.starts_with(&format!("HTTP/1.1 {status}")), "{headers:?}: {answer}");
    }
    assert_eq!(console.json("/api/about")["canAct"], false, "the page offers no action on a local run");
    let trusted = format!("Origin: {origin}\r\nX-Updraft-Token: {token}\r\n");
    for (action, status) in [("relaunch", "405"), ("recover", "405"), ("delete", "404")] {
        let answer = console.exchange_here("POST", &format!("/api/runs/any/{action}?key=0123456789abcdef"), &trusted);
        assert!(answer.starts_with(&format!("HTTP/1.1 {status}")), "{action}: {answer}");
    }
    // A new run is named by the page's key for it (its idempotency key): none, or a malformed one, is refused.
    for query in ["", "?key=short", "?key=0123456789abcdeg"] {
        let answer = console.exchange_here("POST", &format!("/api/runs/any/relaunch{query}"), &trusted);
        assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("16 hex digits"), "{query}: {answer}");
    }
    // It listens on 127.0.0.1 only: the machine's other addresses find no one there.
    let others: Vec<std::net::IpAddr> = local_addresses().into_iter().filter(|a| !a.is_loopback()).collect();
    for address in &others {
        assert!(TcpStream::connect((*address, console.port)).is_err(), "{address}:{} answered", console.port);
    }

    // A port in use: exit 1 naming it.
    let taken = sandbox.updraft(&["console", "--port", &console.port.to_string()]);
    assert_eq!(taken.status.code(), Some(1));
    assert!(text(&taken.stderr).contains(&format!("127.0.0.1:{}", console.port)), "{}", text(&taken.stderr));
    drop(console);
}

/// This machine's IPv4 addresses, as `hostname -I` would list them, read from the kernel's table.
fn local_addresses() -> Vec<std::net::IpAddr> {
    let Ok(table) = std::fs::read_to_string("/proc/net/fib_trie") else { return vec![] };
    let lines: Vec<&str> = table.lines().collect();
    let mut found = Vec::new();
    for pair in lines.windows(2) {
        if pair[1].contains("/32 host LOCAL")
            && let Ok(address) = pair[0].trim().trim_start_matches("|-- ").parse()
            && !found.contains(&address)
        {
            found.push(address);
        }
    }
    found
}

#[test]
fn a_console_over_an_unreachable_stack_answers_502_naming_it_and_keeps_serving() {
    let sandbox = Sandbox::new("console-unreachable", SPEC);
    // A port nothing listens on: bound, then let go.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("http://127.0.0.1:{free}/live");
    let mut command = sandbox.command(&["console", "--remote", "--port", "0", "--endpoint", &endpoint]);
    command
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("UPDRAFT_CONFIG", sandbox.dir.join("none.toml"));
    let console = Console::spawn(command);
    let about = console.json("/api/about");
    assert_eq!((about["mode"].as_str(), about["canAct"].as_bool()), (Some("remote"), Some(true)));
    for _ in 0..2 {
        let (status, _, body) = console.get("/api/runs");
        assert!(status == 502 && body.contains("ApiUnreachable") && body.contains(&endpoint), "{status} {body}");
    }
}
