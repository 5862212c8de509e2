use super::*;
use updraft_core::ports::memory::{MemoryCache, MemoryProvisioner, MemoryRegistry, MemoryRuns, block_on};
use updraft_core::ports::{Page, PageRequest};
use updraft_core::proto::api::{EntitySummary, NamedEntity, Project};

const SPEC: &str = "project: demo\ntasks:\n  fit: {image: python:3.11, command: [python, fit.py]}\n\
                    workflows:\n  train:\n    nodes:\n      fit: {task: fit}\n\
                    launch_plans:\n  nightly: {workflow: train, schedule: {cron: '0 3 * * *'}}\n";

fn post(path: &str, body: &str) -> ApiRequest {
    ApiRequest {
        method: "POST".into(),
        path: path.into(),
        headers: [("content-type".to_string(), "application/json".to_string())].into(),
        body: body.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn get_request(path: &str) -> ApiRequest {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let query = query.split('&').filter_map(|pair| pair.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect();
    ApiRequest { method: "GET".into(), path: path.into(), query, ..Default::default() }
}

/// Registers in demo/development: most specs here say `project: demo`.
const REGISTER: &str = "/v1/register/demo/development";
const LAUNCH: &str = "/v1/executions/default/development";

/// A registration of `spec` sent to its declared project's path (demo or default).
fn register(spec: &str, version: &str) -> ApiRequest {
    let project = if spec.starts_with("project: demo") { "demo" } else { "default" };
    post(&format!("/v1/register/{project}/development"), &register_body(spec, version))
}

fn register_body(spec: &str, version: &str) -> String {
    serde_json::to_string(&RegisterRequest {
        version: version.into(),
        spec: spec.into(),
        file_name: "spec.yaml".into(),
        ..Default::default()
    })
    .unwrap()
}

fn cloud() -> CloudSettings {
    CloudSettings {
        jobs: job_definition::Settings {
            name_prefix: "updraft".into(),
            role_arn_prefix: "arn:aws:iam::123456789012:role/".into(),
            partition: "aws".into(),
            bucket: "data".into(),
            execution_role_arn: "arn:aws:iam::123456789012:role/updraft-job-execution".into(),
            log_group: "/aws/batch/updraft".into(),
            exec_path: "/updraft/updraft".into(),
        },
        state_machines: state_machine::Targets {
            node_function_arn: "arn:aws:lambda:us-east-1:123456789012:function:updraft-node".into(),
            table: "updraft-metadata".into(),
            job_start_timeout_seconds: 1800,
        },
    }
}

type TestApi = Api<MemoryRegistry, MemoryProvisioner, MemoryRuns, MemoryCache>;

fn with_registry<R: Registry>(registry: R) -> Api<R, MemoryProvisioner, MemoryRuns, MemoryCache> {
    let (provisioner, runs, cache) = (MemoryProvisioner::default(), MemoryRuns::default(), MemoryCache::default());
    Api { registry, provisioner, runs, cache, cloud: cloud(), run_data_days: 30 }
}

fn new_api() -> TestApi {
    with_registry(MemoryRegistry::default())
}

fn call(api: &TestApi, request: &ApiRequest) -> (u16, Value) {
    let response = block_on(handle(api, request));
    (response.status, serde_json::from_str(&response.body).expect("every answer is JSON"))
}

#[test]
fn registration_creates_then_is_a_no_op_then_refuses_changed_content_with_both_digests() {
    let registry = new_api();
    let (status, body) = call(&registry, &register(SPEC, "v1"));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["created"].as_array().unwrap().len(), 3, "a task, a workflow and a launch plan: {body}");

    let (status, body) = call(&registry, &register(SPEC, "v1"));
    assert_eq!((status, body["unchanged"].as_array().unwrap().len()), (200, 3), "{body}");

    let changed = SPEC.replace("python:3.11", "python:3.12");
    let (status, body) = call(&registry, &register(&changed, "v1"));
    assert_eq!((status, body["code"].as_str()), (409, Some("Conflict")), "{body}");
    let message = body["message"].as_str().unwrap();
    assert_eq!(message.matches("sha256:").count(), 2, "both digests: {message}");
    assert!(message.contains("demo/development/fit version v1"), "{message}");
}

#[test]
fn an_invalid_spec_is_a_400_with_every_diagnostic_and_writes_nothing() {
    let registry = new_api();
    let spec = "tasks:\n  ok: {image: x, command: [x]}\n  t: {image: x, command: [t], retries: -1, cache: true}\n";
    let (status, body) = call(&registry, &register(spec, "v1"));
    assert_eq!((status, body["code"].as_str()), (400, Some("InvalidSpec")), "{body}");
    let paths: Vec<&str> =
        body["diagnostics"].as_array().unwrap().iter().map(|d| d["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["tasks.t.cache", "tasks.t.retries"]);
    assert!(body["diagnostics"][0]["hint"].as_str().unwrap().contains("version"), "{body}");
    let (status, _) = call(&registry, &get_request("/v1/tasks/default/development/ok/v1"));
    assert_eq!(status, 404, "nothing of an invalid spec is registered");
}

#[test]
fn gets_and_listings_answer_the_idl_json() {
    let registry = new_api();
    for (version, by) in [("v1", "arn:aws:iam::1:user/ana"), ("v2", "arn:aws:iam::1:role/ci")] {
        let mut request = register(&SPEC.replace("fit.py", version), version);
        request.caller = by.into();
        call(&registry, &request);
    }
    let (status, body) = call(&registry, &get_request("/v1/tasks/demo/development/fit/v2"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["task"]["container"]["args"][1], "v2");
    let (_, body) = call(&registry, &get_request("/v1/workflows/demo/development/train/v1"));
    assert_eq!(body["workflow"]["tasks"][0]["id"]["name"], "fit", "workflows are stored as closures: {body}");

    let mut versions = get_request("/v1/tasks/demo/development/fit");
    versions.query.insert("limit".into(), "1".into());
    let (_, first) = call(&registry, &versions);
    assert_eq!(first["versions"][0]["id"]["version"], "v2", "newest first: {first}");
    assert_eq!(first["versions"][0]["registeredBy"], "arn:aws:iam::1:role/ci", "who registered it: {first}");
    versions.query.insert("token".into(), first["nextToken"].as_str().unwrap().into());
    let (_, rest) = call(&registry, &versions);
    assert_eq!(rest["versions"][0]["id"]["version"], "v1");
    assert!(rest.get("nextToken").is_none_or(|t| t == ""), "{rest}");

    let (_, names) = call(&registry, &get_request("/v1/workflows/demo/development"));
    assert_eq!(
        (names["entities"][0]["name"].as_str(), names["entities"][0]["latestVersion"].as_str()),
        (Some("train"), Some("v2"))
    );
    let (_, projects) = call(&registry, &get_request("/v1/projects"));
    assert_eq!(projects["projects"][0], json!({"name": "demo", "domains": ["development"]}));
    let mut filtered = get_request("/v1/tasks/demo/development");
    filtered.query.insert("prefix".into(), "fi".into());
    assert_eq!(call(&registry, &filtered).1["entities"][0]["name"], "fit");
    filtered.query.insert("prefix".into(), "zz".into());
    assert_eq!(call(&registry, &filtered).1, json!({}), "no name starts with zz");
    filtered.query.insert("prefix".into(), String::new());
    let (status, refused) = call(&registry, &filtered);
    assert_eq!(
        (status, refused["path"].as_str()),
        (400, Some("prefix")),
        "the document's pattern refuses it: {refused}"
    );

    let (status, body) = call(&registry, &get_request("/v1/tasks/demo/development/missing/v1"));
    assert_eq!((status, body["code"].as_str()), (404, Some("NotFound")));
    assert!(body["message"].as_str().unwrap().contains("no task demo/development/missing version v1"), "{body}");
}

#[test]
fn launch_plans_are_activated_and_deactivated_one_version_at_a_time() {
    let registry = new_api();
    for version in ["v1", "v2"] {
        call(&registry, &register(SPEC, version));
    }
    let active = |version: &str| {
        let (_, body) = call(&registry, &get_request(&format!("/v1/launch-plans/demo/development/nightly/{version}")));
        body["launchPlan"]["active"].as_bool().unwrap_or(false)
    };
    let schedule = || registry.provisioner.schedules.lock().unwrap().get("updraft-demo-development-nightly").cloned();
    assert!(
        !active("v1") && !active("v2"),
        "a scheduled plan is registered inactive unless its spec says active: true"
    );
    assert_eq!(schedule(), None, "registration never starts a schedule by itself");
    let (status, body) = call(&registry, &post("/v1/launch-plans/demo/development/nightly/v2/activate", ""));
    assert_eq!((status, body["launchPlan"]["active"].as_bool()), (200, Some(true)), "{body}");
    let (request, enabled) = schedule().unwrap();
    assert_eq!(
        (request.expression.as_str(), request.plan.version.as_str(), enabled),
        ("cron(0 3 * * ? *)", "v2", true)
    );
    assert_eq!(request.input["updraft_tick"]["scheduled_time"], "<aws.scheduler.scheduled-time>");
    let (status, body) = call(&registry, &post("/v1/launch-plans/demo/development/nightly/v1/activate", ""));
    assert_eq!((status, body["launchPlan"]["active"].as_bool()), (200, Some(true)), "{body}");
    assert!(!active("v2"));
    assert_eq!(schedule().map(|(r, on)| (r.plan.version, on)), Some(("v1".into(), true)), "one schedule per plan name");
    // Deactivating a version the schedule does not launch leaves it alone.
    assert_eq!(call(&registry, &post("/v1/launch-plans/demo/development/nightly/v2/deactivate", "")).0, 200);
    assert_eq!(schedule().map(|(_, on)| on), Some(true));
    let (status, _) = call(&registry, &post("/v1/launch-plans/demo/development/nightly/v1/deactivate", ""));
    assert_eq!(status, 200);
    assert!(!active("v1") && !active("v2"));
    assert_eq!(schedule().map(|(r, on)| (r.plan.version, on)), Some(("v1".into(), false)), "disabled, not deleted");
    let (status, _) = call(&registry, &post("/v1/launch-plans/demo/development/nightly/v9/activate", ""));
    assert_eq!(status, 404);
    let (status, _) = call(&registry, &post("/v1/tasks/demo/development/fit/v1/activate", ""));
    assert_eq!(status, 404, "only launch plans are activated");
}

#[test]
fn request_problems_get_their_precise_status() {
    let registry = new_api();
    let status_code = |request: &ApiRequest| {
        let (status, body) = call(&registry, request);
        (status, body["code"].as_str().unwrap_or_default().to_string())
    };
    let mut text = register(SPEC, "v1");
    text.headers.insert("content-type".into(), "text/yaml".into());
    assert_eq!(status_code(&text), (415, "UnsupportedMediaType".into()));
    let mut charset = register(SPEC, "v1");
    charset.headers.insert("content-type".into(), "Application/JSON; charset=utf-8".into());
    assert_eq!(status_code(&charset).0, 201);

    let huge = post(REGISTER, &"x".repeat(MAX_BODY_BYTES + 1));
    assert_eq!(status_code(&huge), (413, "BodyTooLarge".into()));
    let big_spec = register(&"#".repeat(MAX_SPEC_BYTES + 1), "v1");
    assert_eq!(status_code(&big_spec), (413, "SpecTooLarge".into()));

    let unknown_field = post(REGISTER, r#"{"version": "v1", "spec": "tasks: {}", "sepc": 1}"#);
    let (status, body) = call(&registry, &unknown_field);
    assert_eq!((status, body["path"].as_str()), (400, Some("sepc")), "{body}");
    let wrong_type = post(REGISTER, r#"{"version": 1}"#);
    let (status, body) = call(&registry, &wrong_type);
    assert_eq!((status, body["path"].as_str()), (400, Some("version")), "{body}");
    assert_eq!(status_code(&post(REGISTER, r#"{"version": "v1"} {}"#)).0, 400);
    assert_eq!(status_code(&register(SPEC, "")), (400, "MissingVersion".into()));
    let (status, body) = call(&registry, &register(SPEC, "v1#x"));
    assert_eq!((status, body["path"].as_str()), (400, Some("version")), "{body}");

    assert_eq!(status_code(&get_request(REGISTER)), (405, "MethodNotAllowed".into()));
    assert_eq!(status_code(&get_request("/v2/tasks")), (404, "NoSuchRoute".into()));
    assert_eq!(status_code(&get_request("/v1/models/p/d")), (404, "NoSuchRoute".into()));
    assert_eq!(status_code(&get_request("/v1/tasks/p/d/n/v/x/y/z")), (404, "NoSuchRoute".into()));
    assert_eq!(status_code(&get_request("/v1/tasks/p/d/..%2F/v1")), (400, "InvalidName".into()));
    let mut bad_limit = get_request("/v1/tasks/p/d");
    bad_limit.query.insert("limit".into(), "0".into());
    assert_eq!(status_code(&bad_limit), (400, "InvalidLimit".into()));
    let mut bad_token = get_request("/v1/tasks/p/d/n");
    bad_token.query.insert("token".into(), "not-a-token".into());
    assert_eq!(status_code(&bad_token).0, 400);
}

/// A store that fails every call the same way.
struct Failing(PortError);

impl Registry for Failing {
    async fn register(&self, _: &[Entity], _: &str) -> Result<Vec<Registration>, PortError> {
        Err(self.0.clone())
    }
    async fn get(&self, _: &Identifier) -> Result<Option<Entity>, PortError> {
        Err(self.0.clone())
    }
    async fn versions(&self, _: &Identifier, _: &PageRequest) -> Result<Page<EntitySummary>, PortError> {
        Err(self.0.clone())
    }
    async fn names(
        &self,
        _: ResourceType,
        _: &str,
        _: &str,
        _: &str,
        _: &PageRequest,
    ) -> Result<Page<NamedEntity>, PortError> {
        Err(self.0.clone())
    }
    async fn projects(&self) -> Result<Vec<Project>, PortError> {
        Err(self.0.clone())
    }
    async fn set_active(&self, _: &Identifier, _: bool, _: &str) -> Result<(), PortError> {
        Err(self.0.clone())
    }
}

#[test]
fn a_throttled_store_is_a_503_that_says_retry_and_a_broken_one_a_500() {
    let throttled = Failing(PortError::Transient("ThrottlingException: slow down".into()));
    let response = block_on(handle(&with_registry(throttled), &register(SPEC, "v1")));
    let body: ErrorResponse = serde_json::from_str(&response.body).unwrap();
    assert_eq!((response.status, body.retryable), (503, true));
    assert_eq!(to_proxy_response(&response)["headers"]["retry-after"], "1");
    let denied = Failing(PortError::Permanent("AccessDeniedException".into()));
    let response = block_on(handle(&with_registry(denied), &get_request("/v1/projects")));
    let body: ErrorResponse = serde_json::from_str(&response.body).unwrap();
    assert_eq!((response.status, body.retryable), (500, false));
}

#[test]
fn proxy_events_become_requests_and_responses_proxy_answers() {
    let event = json!({
        "httpMethod": "POST", "path": "/v1/register",
        "headers": {"Content-Type": "application/json"},
        "queryStringParameters": null,
        "body": "eyJ2ZXJzaW9uIjoidjEifQ==", "isBase64Encoded": true,
    });
    let request = from_proxy_event(&event).unwrap().unwrap();
    assert_eq!(request.body, br#"{"version":"v1"}"#);
    assert_eq!(request.headers["content-type"], "application/json");
    assert!(from_proxy_event(&json!({"source": "aws.events"})).is_none());
    let bad = json!({"httpMethod": "POST", "path": "/v1/register", "body": "***", "isBase64Encoded": true});
    assert_eq!(from_proxy_event(&bad).unwrap().unwrap_err().status, 400);
    let answer = block_on(respond(&new_api(), &json!({"httpMethod": "GET", "path": "/v1/projects"}))).unwrap();
    assert_eq!((answer["statusCode"].as_u64(), answer["body"].as_str()), (Some(200), Some("{}")));
}

#[test]
fn every_route_in_the_table_is_routed_and_nothing_else() {
    for (method, template) in ROUTES {
        let path = template
            .replace("{project}", "p")
            .replace("{domain}", "development")
            .replace("{name}", "n")
            .replace("{task}", "t")
            .replace("{node}", "fit")
            .replace("{version}", "v1");
        assert!(route(method, &path).is_ok(), "{method} {path}");
    }
    assert!(route("DELETE", "/v1/tasks/p/d/n/v1").is_err());
}

/// A small deterministic generator (xorshift), so a failure reproduces.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn string(&mut self, max: u64) -> String {
        let len = self.below(max + 1);
        (0..len).map(|_| char::from_u32(self.below(0x800) as u32).unwrap_or('?')).collect()
    }
    fn json(&mut self, depth: u32) -> Value {
        match if depth == 0 { self.below(4) } else { self.below(6) } {
            0 => Value::Null,
            1 => json!(self.next() as i64),
            2 => json!(self.below(2) == 1),
            3 => json!(self.string(40)),
            4 => Value::Array((0..self.below(4)).map(|_| self.json(depth - 1)).collect()),
            _ => {
                let keys = ["version", "spec", "project", "domain", "fileName", "file_name", "x"];
                let mut map = serde_json::Map::new();
                for _ in 0..self.below(5) {
                    map.insert(keys[self.below(keys.len() as u64) as usize].into(), self.json(depth - 1));
                }
                Value::Object(map)
            }
        }
    }
}

#[test]
fn hundreds_of_hostile_bodies_each_get_a_4xx_json_error_and_no_panic() {
    let registry = new_api();
    let mut random = Random(0x5eed_1234_abcd_ef01);
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    for _ in 0..150 {
        bodies.push(serde_json::to_vec(&random.json(4)).unwrap());
    }
    for _ in 0..30 {
        // Right shape, hostile spec text.
        let spec: String = random.string(300);
        bodies.push(register_body(&spec, "v1").into_bytes());
    }
    for depth in [100, 129, 10_000, 200_000] {
        bodies.push(format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes());
        bodies.push(format!("{{\"version\":\"v1\",\"spec\":\"{}\"}}", "[".repeat(depth)).into_bytes());
    }
    bodies.push(
        register_body(&format!("tasks:\n  t: {{image: '{}', command: [x]}}\n", "a".repeat(900_000)), "v1").into_bytes(),
    );
    bodies.push(format!("{{\"version\":\"{}\",\"spec\":\"\"}}", "v".repeat(100_000)).into_bytes());
    bodies.push(b"\xff\xfe\x00garbage".to_vec());
    bodies.push(Vec::new());
    bodies.push(b"{\"version\": \"v1\", \"spec\": ".to_vec());
    bodies.push(br#"{"version": "v1", "spec": "a: &a [*a]"}"#.to_vec());
    bodies
        .push(br#"{"version": "v1", "spec": "tasks: {t: {image: x, command: [x], timeout: 99999999999d}}"}"#.to_vec());
    for wrong in [
        r#"{"spec": 5}"#,
        r#"{"spec": []}"#,
        r#"{"version": null}"#,
        r#"[]"#,
        r#""a""#,
        "1e999",
        r#"{"project": {"a": 1}}"#,
    ] {
        bodies.push(wrong.as_bytes().to_vec());
    }
    assert!(bodies.len() >= 200, "{}", bodies.len());
    let methods = ["POST", "GET", "PUT", "DELETE"];
    let paths =
        ["/v1/register", "/v1/register", "/v1/tasks/p/d/n/v", "/v1/launch-plans/p/d/n/v/activate", "/", "/v1/../etc"];
    for (i, body) in bodies.into_iter().enumerate() {
        let mut request = post(paths[i % paths.len()], "");
        request.method = methods[(i / 7) % methods.len()].into();
        request.body = body;
        let response = block_on(handle(&registry, &request));
        let error: ErrorResponse = serde_json::from_str(&response.body)
            .unwrap_or_else(|e| panic!("body {i}: the answer is not an ErrorResponse ({e}): {}", response.body));
        assert!((400..500).contains(&response.status), "body {i}: status {} {}", response.status, response.body);
        assert!(!error.code.is_empty() && !error.message.is_empty() && !error.retryable, "body {i}: {error:?}");
    }
    let (_, projects) = call(&registry, &get_request("/v1/projects"));
    assert_eq!(projects, json!({}), "no hostile body registered anything (empty lists are omitted)");
}

#[test]
fn the_openapi_document_lists_exactly_the_served_routes() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api/openapi.yaml");
    let document: Value = serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys().filter(|k| *k != "parameters") {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    let mut served: Vec<(String, String)> = ROUTES
        .iter()
        .chain([&crate::health::ROUTE])
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    documented.sort();
    served.sort();
    assert_eq!(documented, served, "docs/api/openapi.yaml and api::ROUTES must list the same routes");
}

#[test]
fn registration_makes_each_versions_job_definitions_and_state_machine_once() {
    let api = new_api();
    call(&api, &register(SPEC, "v1"));
    let made: Vec<String> = api.provisioner.resources.lock().unwrap().keys().cloned().collect();
    assert_eq!(made, ["updraft-demo-development-fit-v1", "updraft-demo-development-train-v1", "updraft-job-demo"]);
    let resources = api.provisioner.resources.lock().unwrap().clone();
    let role = "arn:aws:iam::123456789012:role/updraft-job-demo";
    assert_eq!(resources["updraft-demo-development-fit-v1"]["containerProperties"]["jobRoleArn"], role);
    let policy = resources["updraft-job-demo"].to_string();
    assert!(policy.contains("s3:::data/runs/demo/*") && !policy.contains("specs/"), "{policy}");
    let definition = api.provisioner.resources.lock().unwrap()["updraft-demo-development-train-v1"].clone();
    assert_eq!(definition["States"]["Nodes"]["Branches"][0]["StartAt"], "node fit");
}

#[test]
fn a_failure_to_make_the_resources_is_a_503_and_sending_again_repairs_it() {
    let api = new_api();
    *api.provisioner.failing.lock().unwrap() = Some(PortError::Transient("TooManyRequestsException".into()));
    let (status, body) = call(&api, &register(SPEC, "v1"));
    assert_eq!((status, body["retryable"].as_bool()), (503, Some(true)), "{body}");
    assert!(body["hint"].as_str().unwrap().contains("send the same request again"), "{body}");
    *api.provisioner.failing.lock().unwrap() = None;
    let (status, body) = call(&api, &register(SPEC, "v1"));
    assert_eq!(status, 200, "the entities were registered the first time: {body}");
    assert_eq!(api.provisioner.resources.lock().unwrap().len(), 3, "and now their resources exist (role included)");
}

#[test]
fn a_workflow_too_large_for_a_state_machine_is_refused_before_anything_is_written() {
    let api = new_api();
    let mut spec = String::from("tasks:\n  t: {image: x, command: [t]}\nworkflows:\n  big:\n    nodes:\n");
    for i in 0..4000 {
        spec.push_str(&format!("      node_with_a_long_name_{i:05}: {{task: t}}\n"));
    }
    let (status, body) = call(&api, &register(&spec, "v1"));
    assert_eq!((status, body["code"].as_str()), (400, Some("WorkflowTooLarge")), "{body}");
    assert_eq!(call(&api, &get_request("/v1/projects")).1, json!({}), "nothing registered");
    assert!(api.provisioner.resources.lock().unwrap().is_empty());
}

const ALICE: &str = "arn:aws:iam::123456789012:user/alice";

#[test]
fn registrations_launches_and_activations_answer_and_record_their_caller() {
    let api = new_api();
    let mut request = register(SPEC, "v1");
    request.caller = ALICE.into();
    let (status, body) = call(&api, &request);
    assert_eq!((status, body["registeredBy"].as_str()), (201, Some(ALICE)), "{body}");
    let mut activate = post("/v1/launch-plans/demo/development/nightly/v1/activate", "");
    activate.caller = "arn:aws:iam::123456789012:role/ops".into();
    assert_eq!(call(&api, &activate).0, 200);
    let (_, listed) = call(&api, &get_request("/v1/launch-plans/demo/development/nightly"));
    assert_eq!(listed["schedule"]["changedBy"], "arn:aws:iam::123456789012:role/ops", "{listed}");
    let (_, names) = call(&api, &get_request("/v1/launch-plans/demo/development"));
    assert_eq!(names["entities"][0]["activeChangedBy"], "arn:aws:iam::123456789012:role/ops", "{names}");
    let mut launch = post(
        "/v1/executions/demo/development",
        &json!({"workflow": {"name": "train", "version": "v1"}, "name": "r1"}).to_string(),
    );
    launch.caller = ALICE.into();
    let (status, body) = call(&api, &launch);
    assert_eq!((status, body["principal"].as_str()), (201, Some(ALICE)), "{body}");
    launch.caller = "arn:aws:iam::123456789012:user/bob".into();
    let (status, body) = call(&api, &launch);
    assert_eq!((status, body["principal"].as_str()), (200, Some(ALICE)), "the same launch again: its first launcher");
}

#[test]
fn registrations_and_launches_act_only_in_the_project_their_path_names() {
    let api = new_api();
    // SPEC says `project: demo`: sent to another project's path, nothing is registered.
    let (status, body) = call(&api, &post("/v1/register/other/development", &register_body(SPEC, "v1")));
    assert_eq!((status, body["code"].as_str(), body["path"].as_str()), (400, Some("ProjectMismatch"), Some("project")));
    assert!(body["message"].as_str().unwrap().contains("\"demo\""), "{body}");
    let overridden: Value = json!({"project": "ml-team", "version": "v1", "spec": SPEC, "fileName": "s.yaml"});
    let (status, body) = call(&api, &post("/v1/register/other/development", &overridden.to_string()));
    assert_eq!((status, body["code"].as_str()), (400, Some("ProjectMismatch")), "{body}");
    let (status, body) = call(&api, &post("/v1/register/demo/staging", &register_body(SPEC, "v1")));
    assert_eq!((status, body["path"].as_str()), (400, Some("domain")), "{body}");
    assert!(api.provisioner.resources.lock().unwrap().is_empty(), "nothing was made");
    // The body's override names the path's project: registered there.
    let (status, body) = call(&api, &post("/v1/register/ml-team/development", &overridden.to_string()));
    assert_eq!((status, body["created"][0]["project"].as_str()), (201, Some("ml-team")), "{body}");
    assert_eq!(call(&api, &post("/v1/register", &register_body(SPEC, "v1"))).0, 404, "the old route is gone");

    let workflow = |project: &str| json!({"workflow": {"project": project, "domain": "development", "name": "train", "version": "v1"}});
    let (status, body) = call(&api, &post("/v1/executions/demo/development", &workflow("ml-team").to_string()));
    assert_eq!((status, body["code"].as_str()), (400, Some("ProjectMismatch")), "{body}");
    let mut other_body = workflow("ml-team");
    other_body["project"] = json!("demo");
    assert_eq!(call(&api, &post("/v1/executions/ml-team/development", &other_body.to_string())).0, 400);
    for uri in ["s3://data/runs/other/development/r1/fit/outputs/model", "s3://data/specs/ab.json"] {
        let mut foreign = workflow("ml-team");
        foreign["inputs"] = json!({"values": {"model": {"file": {"uri": uri, "digest": "sha256:00"}}}});
        let (status, body) = call(&api, &post("/v1/executions/ml-team/development", &foreign.to_string()));
        assert_eq!((status, body["code"].as_str()), (400, Some("InputOutsideProject")), "{body}");
        assert!(body["hint"].as_str().unwrap().contains("s3://data/inputs/ml-team/"), "{body}");
    }
    assert!(api.runs.runs.lock().unwrap().is_empty(), "nothing started");
    // The target may leave its project out: the path's is taken.
    let bare = json!({"workflow": {"name": "train", "version": "v1"}});
    let (status, body) = call(&api, &post("/v1/executions/ml-team/development", &bare.to_string()));
    assert_eq!((status, body["id"]["project"].as_str()), (201, Some("ml-team")), "{body}");
    assert_eq!(call(&api, &post("/v1/executions", &bare.to_string())).0, 404, "the old route is gone");
}

#[test]
fn a_launch_type_checks_its_inputs_before_anything_starts_and_its_name_is_its_idempotency_key() {
    let api = new_api();
    let spec = "tasks:\n  t: {image: x, command: [t], inputs: {n: int}}\nworkflows:\n  w:\n    inputs: {n: int}\n\
                \x20   nodes:\n      a: {task: t, inputs: {n: $inputs.n}}\n";
    assert_eq!(call(&api, &register(spec, "v1")).0, 201);
    let launch = |inputs: Value, name: &str| {
        let body = json!({"workflow": {"project": "default", "domain": "development", "name": "w", "version": "v1"},
                          "inputs": {"values": inputs}, "name": name});
        call(&api, &post(LAUNCH, &body.to_string()))
    };
    let (status, body) = launch(json!({"n": {"string": "seven"}}), "");
    assert_eq!((status, body["code"].as_str()), (400, Some("InvalidInputs")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("input \"n\""), "{body}");
    let (status, body) = launch(json!({}), "");
    assert!(status == 400 && body["message"].as_str().unwrap().contains("missing required input \"n\""), "{body}");
    let (status, body) = launch(json!({"m": {"integer": "1"}}), "");
    assert!(status == 400 && body["message"].as_str().unwrap().contains("no input \"m\""), "{body}");
    assert!(api.runs.runs.lock().unwrap().is_empty(), "nothing started");

    let (status, body) = launch(json!({"n": {"integer": "7"}}), "nightly-1");
    assert_eq!((status, body["id"]["name"].as_str()), (201, Some("nightly-1")), "{body}");
    assert_eq!(launch(json!({"n": {"integer": "7"}}), "nightly-1").0, 200, "the same launch again is the same run");
    assert_eq!(launch(json!({"n": {"integer": "8"}}), "nightly-1").0, 409, "another launch under a taken name");
    let (status, body) = call(&api, &get_request("/v1/executions/default/development/nightly-1"));
    assert_eq!((status, body["execution"]["phase"].as_str()), (200, Some("WORKFLOW_RUNNING")), "{body}");
    assert_eq!(body["nodes"][0]["id"]["nodeId"], "a");
    let (status, body) = launch(json!({"n": {"integer": "7"}}), "");
    assert_eq!(status, 201, "{body}");
    let (status, listed) = call(&api, &get_request("/v1/executions/default/development"));
    assert_eq!((status, listed["executions"].as_array().map(Vec::len)), (200, Some(2)), "{listed}");
    let unknown = json!({"workflow": {"project": "default", "domain": "development", "name": "nope", "version": "v1"}});
    assert_eq!(call(&api, &post(LAUNCH, &unknown.to_string())).0, 404);
    assert_eq!(call(&api, &get_request("/v1/executions/default/development/none")).0, 404);
}

#[test]
fn a_failed_schedule_write_is_a_503_and_repeating_the_request_converges() {
    let api = new_api();
    call(&api, &register(SPEC, "v1"));
    *api.provisioner.failing.lock().unwrap() = Some(PortError::Transient("Scheduler throttled".into()));
    let (status, body) = call(&api, &post("/v1/launch-plans/demo/development/nightly/v1/activate", ""));
    assert_eq!((status, body["retryable"].as_bool()), (503, Some(true)), "{body}");
    assert!(body["message"].as_str().unwrap().contains("the registry is updated, but schedule"), "{body}");
    *api.provisioner.failing.lock().unwrap() = None;
    assert_eq!(call(&api, &post("/v1/launch-plans/demo/development/nightly/v1/activate", "")).0, 200);
    assert!(api.provisioner.schedules.lock().unwrap()["updraft-demo-development-nightly"].1);
}

#[test]
fn a_plan_registered_active_fires_at_once_and_ticks_launch_once_each_with_their_time() {
    let api = new_api();
    let spec = "project: demo\ntasks:\n  fit: {image: x, command: [fit, \"{{inputs.day}}\"], inputs: {day: datetime}}\n\
                workflows:\n  train:\n    inputs: {day: datetime}\n    nodes:\n      fit: {task: fit, inputs: {day: $inputs.day}}\n\
                launch_plans:\n  nightly:\n    workflow: train\n    active: true\n\
                \x20   schedule: {cron: '0 3 * * *', timezone: Europe/Paris, kickoff_input: day, catch_up: 2h}\n";
    assert_eq!(call(&api, &register(spec, "v1")).0, 201);
    let (request, enabled) = api.provisioner.schedules.lock().unwrap()["updraft-demo-development-nightly"].clone();
    assert!(enabled);
    assert_eq!((request.timezone.as_str(), request.catch_up_seconds), ("Europe/Paris", 7200));
    let tick = |version: &str, time: &str| {
        let event = json!({"updraft_tick": {"project": "demo", "domain": "development", "plan": "nightly",
                                            "version": version, "scheduled_time": time}});
        block_on(respond(&api, &event))
    };
    let answer = tick("v1", "2027-03-29T01:00:00Z").unwrap();
    assert_eq!(
        (answer["outcome"].as_str(), answer["execution"].as_str()),
        (Some("LAUNCHED"), Some("nightly-20270329T0100Z"))
    );
    // Delivered twice: the same run.
    assert_eq!(tick("v1", "2027-03-29T01:00:00Z").unwrap()["outcome"], "LAUNCHED");
    {
        let runs = api.runs.runs.lock().unwrap();
        assert_eq!(runs.len(), 1);
        let inputs = runs["nightly-20270329T0100Z"].0.inputs.clone().unwrap().values;
        let Some(literal::Value::Datetime(at)) = &inputs["day"].value else { panic!("{inputs:?}") };
        assert_eq!(at.seconds, 1_806_282_000, "the kickoff input is the scheduled time, 2027-03-29T01:00:00Z");
        let run = &runs["nightly-20270329T0100Z"].0;
        assert_eq!(run.mode, LaunchMode::Scheduled as i32);
        assert_eq!(run.scheduled_at.map(|t| t.seconds), Some(1_806_282_000));
        assert_eq!(run.launch_plan_id.as_ref().map(|p| (p.name.as_str(), p.version.as_str())), Some(("nightly", "v1")));
        assert_eq!(run.principal, "schedule updraft-demo-development-nightly");
    }
    // v2 becomes the active version: a late tick of v1 launches nothing.
    assert_eq!(call(&api, &register(spec, "v2")).0, 201);
    let skipped = tick("v1", "2027-03-30T01:00:00Z").unwrap();
    assert_eq!(skipped["outcome"], "SKIPPED");
    assert_eq!(api.runs.runs.lock().unwrap().len(), 1);
    let (status, listed) = call(&api, &get_request("/v1/launch-plans/demo/development/nightly/ticks"));
    assert_eq!(status, 200, "{listed}");
    let times: Vec<&str> =
        listed["ticks"].as_array().unwrap().iter().map(|t| t["scheduledTime"].as_str().unwrap()).collect();
    assert_eq!(times, ["2027-03-30T01:00:00Z", "2027-03-29T01:00:00Z"], "newest first");
    // A tick delivered past the plan's catch_up (2 h) starts nothing: no burst after an outage.
    assert_eq!(call(&api, &post("/v1/launch-plans/demo/development/nightly/v2/activate", "")).0, 200);
    let hours_ago = (chrono::Utc::now() - chrono::Duration::hours(3)).format("%Y-%m-%dT%H:00:00Z").to_string();
    let late = tick("v2", &hours_ago).unwrap();
    assert_eq!(late["outcome"], "SKIPPED");
    assert!(late["message"].as_str().unwrap().contains("past the plan's catch_up window"), "{late}");
    assert_eq!(api.runs.runs.lock().unwrap().len(), 1);
    assert!(tick("v1", "yesterday").unwrap_err().contains("not RFC 3339"));
    assert!(
        tick("v9", "2027-03-31T01:00:00Z")
            .unwrap_err()
            .contains("NotFound: no launch plan demo/development/nightly version v9")
    );
}

#[test]
fn an_abort_records_who_and_why_once_and_is_refused_precisely() {
    let api = new_api();
    let spec = "tasks:\n  t: {image: x, command: [t]}\nworkflows:\n  w:\n    nodes:\n      a: {task: t}\n";
    assert_eq!(call(&api, &register(spec, "v1")).0, 201);
    let body = json!({"workflow": {"project": "default", "domain": "development", "name": "w", "version": "v1"},
                      "name": "nightly-1"});
    assert_eq!(call(&api, &post(LAUNCH, &body.to_string())).0, 201);
    let path = "/v1/executions/default/development/nightly-1/abort";
    let mut request = post(path, r#"{"reason": "wrong data"}"#);
    request.caller = "arn:aws:iam::123456789012:user/ana".into();
    let (status, body) = call(&api, &request);
    assert_eq!((status, body["execution"]["phase"].as_str()), (200, Some("WORKFLOW_ABORTED")), "{body}");
    let message = body["execution"]["error"]["message"].as_str().unwrap();
    assert_eq!(message, "aborted by arn:aws:iam::123456789012:user/ana: wrong data");
    // Again, by someone else: the first abort stands.
    let (status, again) = call(&api, &post(path, ""));
    assert_eq!((status, again["execution"]["error"]["message"].as_str()), (200, Some(message)), "{again}");

    let (status, body) = call(&api, &post("/v1/executions/default/development/none/abort", ""));
    assert_eq!((status, body["code"].as_str()), (404, Some("NotFound")), "{body}");
    let long = json!({"reason": "x".repeat(1025)}).to_string();
    let (status, body) = call(&api, &post(path, &long));
    assert_eq!((status, body["code"].as_str(), body["path"].as_str()), (400, Some("ReasonTooLong"), Some("reason")));
    let (status, body) = call(&api, &post(path, r#"{"reason": 7}"#));
    assert_eq!((status, body["code"].as_str()), (400, Some("MalformedBody")), "{body}");
    assert_eq!(call(&api, &get_request(path)).0, 405, "abort is a POST");
}

#[test]
fn the_runs_list_filters_by_phase_workflow_plan_and_time_and_refuses_bad_filters_precisely() {
    let api = new_api();
    let spec = "tasks:\n  t: {image: x, command: [t]}\nworkflows:\n  w:\n    nodes:\n      a: {task: t}\n  \
                v:\n    nodes:\n      a: {task: t}\n";
    assert_eq!(call(&api, &register(spec, "v1")).0, 201);
    for (workflow, name) in [("w", "r1"), ("v", "r2"), ("w", "r3")] {
        let body = json!({"workflow": {"project": "default", "domain": "development", "name": workflow, "version": "v1"},
                          "name": name});
        assert_eq!(call(&api, &post(LAUNCH, &body.to_string())).0, 201);
    }
    assert_eq!(call(&api, &post(&format!("{LAUNCH}/r3/abort"), "")).0, 200);
    let names = |query: &str| {
        let (status, listed) = call(&api, &get_request(&format!("{LAUNCH}?{query}")));
        assert_eq!(status, 200, "{listed}");
        let runs = listed["executions"].as_array().cloned().unwrap_or_default();
        runs.iter().map(|e| e["id"]["name"].as_str().unwrap_or_default().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(names("phase=ABORTED"), ["r3"]);
    assert_eq!(names("phase=WORKFLOW_RUNNING"), ["r2", "r1"]);
    assert_eq!(names("workflow=w"), ["r3", "r1"]);
    assert_eq!(names("workflow=w&phase=RUNNING"), ["r1"]);
    assert!(names("plan=nightly").is_empty(), "no run came from a plan");
    assert!(names("since=2999-01-01T00:00:00Z").is_empty());
    assert_eq!(names("since=2000-01-01T00:00:00Z").len(), 3);
    let refused = [("phase=DONE", "InvalidPhase"), ("phase=running", "InvalidPhase"), ("phase=", "InvalidPhase")];
    for (query, code) in refused.into_iter().chain([("since=yesterday", "InvalidSince"), ("since=", "InvalidSince")]) {
        let (status, body) = call(&api, &get_request(&format!("{LAUNCH}?{query}")));
        assert_eq!((status, body["code"].as_str()), (400, Some(code)), "{body}");
        assert!(!body["hint"].as_str().unwrap_or_default().is_empty(), "{body}");
    }
}

#[test]
fn a_recovery_is_a_new_run_of_a_run_that_did_not_succeed_on_its_inputs() {
    let api = new_api();
    let spec = "tasks:\n  t: {image: x, command: [t, \"{{inputs.n}}\"], inputs: {n: int}}\nworkflows:\n  w:\n    \
                inputs: {n: int}\n    nodes:\n      a: {task: t, inputs: {n: $inputs.n}}\n";
    for version in ["v1", "v2"] {
        assert_eq!(call(&api, &register(spec, version)).0, 201);
    }
    let body = json!({"workflow": {"project": "default", "domain": "development", "name": "w", "version": "v1"},
                      "name": "nightly-1", "inputs": {"values": {"n": {"integer": "7"}}}});
    assert_eq!(call(&api, &post(LAUNCH, &body.to_string())).0, 201);
    let path = "/v1/executions/default/development/nightly-1/recover";
    let (status, body) = call(&api, &post(path, ""));
    assert_eq!((status, body["code"].as_str()), (409, Some("StillRunning")), "{body}");
    assert_eq!(call(&api, &post("/v1/executions/default/development/nightly-1/abort", "")).0, 200);
    let mut request = post(path, r#"{"version": "v2", "name": "nightly-1-fixed"}"#);
    request.caller = "arn:aws:iam::123456789012:user/ana".into();
    let (status, body) = call(&api, &request);
    assert_eq!((status, body["id"]["name"].as_str()), (201, Some("nightly-1-fixed")), "{body}");
    let (_, run) = call(&api, &get_request("/v1/executions/default/development/nightly-1-fixed"));
    let execution = &run["execution"];
    assert_eq!(
        (execution["mode"].as_str(), execution["recoveredFrom"].as_str(), execution["workflowId"]["version"].as_str()),
        (Some("RECOVER"), Some("nightly-1"), Some("v2")),
        "{run}"
    );
    assert_eq!(execution["inputs"]["values"]["n"], json!({"integer": "7"}), "the recovered run's inputs");
    assert_eq!(execution["principal"], "arn:aws:iam::123456789012:user/ana");
    let (status, body) = call(&api, &post("/v1/executions/default/development/none/recover", ""));
    assert_eq!((status, body["code"].as_str()), (404, Some("NotFound")), "{body}");
    let (status, body) = call(&api, &post(path, r#"{"version": "v9"}"#));
    assert_eq!(status, 404, "an unregistered version: {body}");
    // A relaunch takes any run, the running recovery included: everything runs again.
    let relaunch = "/v1/executions/default/development/nightly-1-fixed/relaunch";
    let (status, body) = call(&api, &post(relaunch, r#"{"name": "again"}"#));
    assert_eq!((status, body["id"]["name"].as_str()), (201, Some("again")), "{body}");
    let (_, run) = call(&api, &get_request("/v1/executions/default/development/again"));
    let execution = &run["execution"];
    assert_eq!((execution["mode"].as_str(), execution.get("recoveredFrom")), (Some("RELAUNCH"), None), "{run}");
    assert_eq!(execution["inputs"]["values"]["n"], json!({"integer": "7"}));
    assert_eq!(call(&api, &post("/v1/executions/default/development/none/relaunch", "")).0, 404);
    // Past the stack's retention (30 days here) its data is gone: 410, and relaunch is the way.
    let month_ago = chrono::Utc::now().timestamp() - 31 * 86_400;
    api.runs.runs.lock().unwrap().get_mut("nightly-1").unwrap().0.created_at =
        Some(updraft_core::proto::Timestamp { seconds: month_ago, nanos: 0 });
    let (status, body) = call(&api, &post(path, r#"{"version": "v2", "name": "too-late"}"#));
    assert_eq!((status, body["code"].as_str()), (410, Some("RunDataExpired")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("expired after 30 days"), "{body}");
    assert!(body["hint"].as_str().unwrap().contains("relaunch"), "{body}");
    let relaunch = "/v1/executions/default/development/nightly-1/relaunch";
    assert_eq!(call(&api, &post(relaunch, r#"{"name": "late-relaunch"}"#)).0, 201, "a relaunch needs only the inputs");
}

#[test]
fn the_caller_of_a_proxy_event_is_its_iam_identity() {
    let event = json!({"httpMethod": "POST", "path": "/v1/x", "requestContext": {"identity": {
        "userArn": "arn:aws:iam::1:user/ana", "caller": "AIDA1"}}});
    assert_eq!(from_proxy_event(&event).unwrap().unwrap().caller, "arn:aws:iam::1:user/ana");
    let event = json!({"httpMethod": "POST", "path": "/v1/x", "requestContext": {"identity": {"caller": "AIDA1"}}});
    assert_eq!(from_proxy_event(&event).unwrap().unwrap().caller, "AIDA1");
}

#[test]
fn a_task_versions_cache_entries_are_listed_and_evicted() {
    let api = new_api();
    let task = Identifier {
        resource_type: ResourceType::Task as i32,
        project: "p".into(),
        domain: "development".into(),
        name: "fit".into(),
        version: "v1".into(),
    };
    for key in ["k1", "k2"] {
        block_on(api.cache.put_for(key, &task, &Default::default())).unwrap();
    }
    let (status, body) = call(&api, &get_request("/v1/cache/p/development/fit/v1"));
    let keys: Vec<&str> = body["entries"].as_array().unwrap().iter().map(|e| e["key"].as_str().unwrap()).collect();
    assert_eq!((status, keys), (200, vec!["k2", "k1"]), "newest first");
    let mut delete = get_request("/v1/cache/p/development/fit/v1");
    delete.method = "DELETE".into();
    delete.caller = ALICE.into();
    assert_eq!(call(&api, &delete), (200, json!({"deleted": 2, "evictedBy": ALICE})));
    assert_eq!(call(&api, &get_request("/v1/cache/p/development/fit/v1")).1, json!({"lastEvictedBy": ALICE}));
    assert_eq!(block_on(api.cache.get("k1")), Ok(None), "evicted entries are gone");
}

fn tick_body(version: &str, time: &str) -> String {
    json!({"version": version, "scheduledTime": time}).to_string()
}

#[test]
fn a_backfilled_tick_runs_once_as_the_schedule_would_and_is_recorded_without_overwriting_the_schedules() {
    let api = new_api();
    let spec = "project: demo\ntasks:\n  fit: {image: x, command: [fit, \"{{inputs.day}}\"], inputs: {day: datetime}}\n\
                workflows:\n  train:\n    inputs: {day: datetime}\n    nodes:\n      fit: {task: fit, inputs: {day: $inputs.day}}\n\
                launch_plans:\n  nightly:\n    workflow: train\n\
                \x20   schedule: {cron: '0 3 * * *', timezone: Europe/Paris, kickoff_input: day}\n";
    assert_eq!(call(&api, &register(spec, "v1")).0, 201);
    let path = "/v1/launch-plans/demo/development/nightly/ticks";
    let mut request = post(path, &tick_body("v1", "2027-03-29T01:00:00Z"));
    request.caller = "arn:aws:iam::123456789012:user/ada".into();
    // An inactive version is backfilled: a backfill names its version.
    let (status, body) = call(&api, &request);
    assert_eq!(
        (status, body["outcome"].as_str(), body["trigger"].as_str()),
        (201, Some("LAUNCHED"), Some("BACKFILL")),
        "{body}"
    );
    let (status, body) = call(&api, &request);
    assert_eq!(status, 200, "the tick's run exists: nothing launched: {body}");
    {
        let runs = api.runs.runs.lock().unwrap();
        assert_eq!(runs.len(), 1);
        let run = &runs["nightly-20270329T0100Z"].0;
        assert_eq!(
            (run.mode, run.principal.as_str()),
            (LaunchMode::Scheduled as i32, "arn:aws:iam::123456789012:user/ada")
        );
        let Some(literal::Value::Datetime(at)) = &run.inputs.clone().unwrap().values["day"].value else { panic!() };
        assert_eq!(at.seconds, 1_806_282_000);
    }
    // The schedule's own tick of that time finds the same run; a backfill after it keeps its record.
    assert_eq!(call(&api, &post("/v1/launch-plans/demo/development/nightly/v1/activate", "")).0, 200);
    let event = json!({"updraft_tick": {"project": "demo", "domain": "development", "plan": "nightly",
                                        "version": "v1", "scheduled_time": "2027-03-30T01:00:00Z"}});
    assert_eq!(block_on(respond(&api, &event)).unwrap()["outcome"], "LAUNCHED");
    assert_eq!(call(&api, &post(path, &tick_body("v1", "2027-03-30T01:00:00Z"))).0, 200);
    let (_, listed) = call(&api, &get_request(path));
    let triggers: Vec<(&str, &str)> = listed["ticks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["scheduledTime"].as_str().unwrap(), t["trigger"].as_str().unwrap()))
        .collect();
    assert_eq!(triggers, [("2027-03-30T01:00:00Z", "SCHEDULE"), ("2027-03-29T01:00:00Z", "BACKFILL")]);
    // 03:00 in Paris is 01:00 UTC in summer: 02:00 UTC is not a tick.
    let (status, body) = call(&api, &post(path, &tick_body("v1", "2027-03-31T02:00:00Z")));
    assert_eq!((status, body["code"].as_str()), (400, Some("NotATick")), "{body}");
    assert!(body["hint"].as_str().unwrap().contains("2027-04-01T01:00:00Z"), "{body}");
    for (body, code) in [
        (tick_body("v1", "tomorrow"), "InvalidTime"),
        (tick_body("v9", "2027-03-31T01:00:00Z"), "NotFound"),
        (json!({"version": "v1"}).to_string(), "InvalidTime"),
        (json!({"version": "v1", "scheduledTime": 7}).to_string(), "MalformedBody"),
    ] {
        let (status, answer) = call(&api, &post(path, &body));
        assert_eq!(answer["code"].as_str(), Some(code), "{body}: {answer}");
        assert!((400..500).contains(&status), "{body}: {status}");
    }
    assert_eq!(api.runs.runs.lock().unwrap().len(), 2, "no refused tick launched anything");
}

#[test]
fn register_with_activate_starts_each_plans_schedule_and_a_listing_shows_drift_with_its_fix() {
    let api = new_api();
    let mut body: Value = serde_json::from_str(&register_body(SPEC, "v1")).unwrap();
    body["activate"] = json!(true);
    assert_eq!(call(&api, &post(REGISTER, &body.to_string())).0, 201);
    let (request, enabled) = api.provisioner.schedules.lock().unwrap()["updraft-demo-development-nightly"].clone();
    assert_eq!((request.plan.version.as_str(), enabled), ("v1", true));
    let versions = "/v1/launch-plans/demo/development/nightly";
    let (status, listed) = call(&api, &get_request(versions));
    assert_eq!(status, 200, "{listed}");
    let schedule = &listed["schedule"];
    assert_eq!(
        (schedule["state"].as_str(), schedule["activeVersion"].as_str(), schedule["expression"].as_str()),
        (Some("ENABLED"), Some("v1"), Some("cron(0 3 * * ? *)"))
    );
    assert!(schedule.get("drift").is_none(), "in sync: {schedule}");
    // Someone disables the schedule in the console: the listing says so, with the fix.
    api.provisioner.schedules.lock().unwrap().get_mut("updraft-demo-development-nightly").unwrap().1 = false;
    let (_, listed) = call(&api, &get_request(versions));
    let drift = listed["schedule"]["drift"].as_array().unwrap();
    assert_eq!(drift.len(), 1, "{listed}");
    assert!(drift[0].as_str().unwrap().contains("DISABLED: updraft launchplan activate nightly --version v1"));
    // Tasks have no schedule.
    let (_, tasks) = call(&api, &get_request("/v1/tasks/demo/development/fit"));
    assert!(tasks.get("schedule").is_none());
}

#[test]
fn a_code_bundle_is_recorded_with_the_tasks_that_need_code_and_bad_ones_are_refused() {
    let api = new_api();
    let spec = "project: demo\ntasks:\n  fit: {image: python:3.11, command: [python3, '{{code_dir}}/fit.py']}\n  \
                plain: {image: busybox, command: [true]}\n";
    let bundle = |hex: &str| CodeBundle {
        uri: format!("s3://data/bundles/demo/sha256/{hex}.tar.gz"),
        digest: format!("sha256:{hex}"),
        size_bytes: 10,
    };
    let body = |code: CodeBundle| {
        serde_json::to_string(&RegisterRequest {
            version: "v1".into(),
            spec: spec.into(),
            file_name: "spec.yaml".into(),
            code: Some(code),
            ..Default::default()
        })
        .unwrap()
    };
    let (status, answer) = call(&api, &post(REGISTER, &body(bundle(&"a".repeat(64)))));
    assert_eq!(status, 201, "{answer}");
    let task = |name: &str| {
        let id = Identifier {
            resource_type: ResourceType::Task as i32,
            project: "demo".into(),
            domain: "development".into(),
            name: name.into(),
            version: "v1".into(),
        };
        match block_on(api.registry.get(&id)).unwrap() {
            Some(Entity::Task(task)) => task,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(task("fit").code.unwrap().digest, format!("sha256:{}", "a".repeat(64)));
    assert!(task("plain").code.is_none(), "a task that runs only its image's programs has no bundle");

    // The same spec with other code: a conflict that names both bundles.
    let (status, answer) = call(&api, &post(REGISTER, &body(bundle(&"b".repeat(64)))));
    let message = answer["message"].as_str().unwrap();
    assert_eq!(status, 409, "{answer}");
    assert!(message.contains(&format!("registered with code bundle sha256:{}", "a".repeat(64))), "{message}");
    assert!(message.contains(&format!("this registration's code bundle is sha256:{}", "b".repeat(64))), "{message}");

    let mut elsewhere = bundle(&"c".repeat(64));
    elsewhere.uri = "s3://data/specs/evil.tar.gz".into();
    for (code, path) in [(bundle("not-hex"), "code.digest"), (elsewhere, "code.uri")] {
        let (status, answer) = call(&api, &post(REGISTER, &body(code)));
        assert_eq!((status, answer["path"].as_str()), (400, Some(path)), "{answer}");
    }
}

#[test]
fn a_runs_nodes_come_a_page_at_a_time_in_node_order() {
    let api = new_api();
    let nodes: String = (0..5).map(|i| format!("      n{i}: {{task: t}}\n")).collect();
    let spec = format!("tasks:\n  t: {{image: x, command: [t]}}\nworkflows:\n  w:\n    nodes:\n{nodes}");
    assert_eq!(call(&api, &register(&spec, "v1")).0, 201);
    let body = json!({"workflow": {"project": "default", "domain": "development", "name": "w", "version": "v1"},
                      "name": "five"});
    assert_eq!(call(&api, &post(LAUNCH, &body.to_string())).0, 201);
    let ids = |body: &Value| -> Vec<String> {
        body["nodes"].as_array().unwrap().iter().map(|n| n["id"]["nodeId"].as_str().unwrap().to_string()).collect()
    };
    // Without a limit: every node (up to 1,000), no next page.
    let (status, all) = call(&api, &get_request("/v1/executions/default/development/five"));
    assert_eq!((status, ids(&all).len(), all.get("nextToken")), (200, 5, None), "{all}");
    let mut seen = Vec::new();
    let mut path = "/v1/executions/default/development/five/nodes?limit=2".to_string();
    loop {
        let (status, page) = call(&api, &get_request(&path));
        assert_eq!(status, 200, "{page}");
        assert!(ids(&page).len() <= 2 && page.get("execution").is_none(), "{page}");
        seen.extend(ids(&page));
        match page["nextToken"].as_str() {
            Some(token) => path = format!("/v1/executions/default/development/five/nodes?limit=2&token={token}"),
            None => break,
        }
    }
    assert_eq!(seen, vec!["n0", "n1", "n2", "n3", "n4"]);
    let (status, refused) = call(&api, &get_request("/v1/executions/default/development/five/nodes?token=zz"));
    assert_eq!((status, refused["code"].as_str()), (400, Some("InvalidToken")), "{refused}");
}

#[test]
fn lists_over_a_thousand_elements_are_summarised_and_the_node_outputs_route_answers_them_whole() {
    let api = new_api();
    let spec = "tasks:\n  t: {image: x, command: [t], inputs: {xs: list<int>}, outputs: {ys: list<int>}}\n\
                workflows:\n  w:\n    inputs: {xs: list<int>}\n    nodes:\n      n: {task: t, inputs: {xs: $inputs.xs}}\n";
    assert_eq!(call(&api, &register(spec, "v1")).0, 201);
    let xs: Vec<Value> = (0..2_500).map(|i| json!({"integer": i.to_string()})).collect();
    let body = json!({"workflow": {"project": "default", "domain": "development", "name": "w", "version": "v1"},
                      "inputs": {"values": {"xs": {"list": {"values": xs}}}}, "name": "wide"});
    assert_eq!(call(&api, &post(LAUNCH, &body.to_string())).0, 201);
    // The node ended with 2,500 outputs (and a mapping holding them, summarised at depth).
    let ys: Vec<Literal> = (0..2_500).map(|i| Literal { value: Some(literal::Value::Integer(i * i)) }).collect();
    let list = Literal {
        value: Some(literal::Value::List(updraft_core::proto::core::LiteralList { values: ys, omitted: 0 })),
    };
    let nested =
        Literal { value: Some(literal::Value::Map(LiteralMap { values: [("all".to_string(), list.clone())].into() })) };
    let outputs = LiteralMap { values: [("ys".to_string(), list), ("nested".to_string(), nested)].into() };
    api.runs.runs.lock().unwrap().get_mut("wide").unwrap().1[0].outputs = Some(outputs);

    let (status, answer) = call(&api, &get_request("/v1/executions/default/development/wide"));
    assert_eq!(status, 200, "{answer}");
    let inputs = &answer["execution"]["inputs"]["values"]["xs"]["list"];
    assert_eq!((inputs["values"].as_array().unwrap().len(), &inputs["omitted"]), (1_000, &json!("1500")));
    let node = &answer["nodes"][0]["outputs"]["values"];
    assert_eq!(node["ys"]["list"]["values"].as_array().unwrap().len(), 1_000);
    assert_eq!(node["ys"]["list"]["values"][999], json!({"integer": "998001"}), "the first 1,000, in order");
    assert_eq!(node["nested"]["map"]["values"]["all"]["list"]["omitted"], json!("1500"));

    // An ended node's outputs are read from its own record, not from the run read whole.
    api.runs.runs.lock().unwrap().get_mut("wide").unwrap().1[0].phase = NodePhase::Succeeded as i32;
    let whole_reads = || api.runs.whole_reads.load(std::sync::atomic::Ordering::SeqCst);
    let before = whole_reads();
    let (status, whole) = call(&api, &get_request("/v1/executions/default/development/wide/nodes/n/outputs"));
    assert_eq!(status, 200, "{whole}");
    assert_eq!(whole["id"]["nodeId"], json!("n"));
    let ys = &whole["outputs"]["values"]["ys"]["list"];
    assert_eq!((ys["values"].as_array().unwrap().len(), ys.get("omitted")), (2_500, None), "whole");
    assert_eq!(whole_reads(), before, "the run was not read whole");
    let (status, missing) = call(&api, &get_request("/v1/executions/default/development/wide/nodes/zz/outputs"));
    assert_eq!((status, missing["code"].as_str()), (404, Some("NoSuchNode")), "{missing}");

    // A summary sent back as a launch's inputs is refused: it is no value.
    let again = json!({"workflow": body["workflow"], "inputs": {"values": {"xs": answer["execution"]["inputs"]["values"]["xs"]}}});
    let (status, refused) = call(&api, &post(LAUNCH, &again.to_string()));
    assert_eq!((status, refused["code"].as_str()), (400, Some("InvalidInputs")), "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("summary of a list (1000 elements shown, 1500 omitted)"),
        "{refused}"
    );
}

#[test]
fn a_page_of_nodes_stops_before_its_json_passes_four_mib_and_the_next_page_goes_on_from_there() {
    let api = new_api();
    let nodes: String = (0..5).map(|i| format!("      n{i}: {{task: t}}\n")).collect();
    let spec = format!(
        "tasks:\n  t: {{image: x, command: [t], outputs: {{text: string}}}}\nworkflows:\n  w:\n    nodes:\n{nodes}"
    );
    assert_eq!(call(&api, &register(&spec, "v1")).0, 201);
    let body = json!({"workflow": {"project": "default", "domain": "development", "name": "w", "version": "v1"},
                      "name": "heavy"});
    assert_eq!(call(&api, &post(LAUNCH, &body.to_string())).0, 201);
    // Five nodes, each with 1.5 MiB of string output (strings are not summarised): 7.5 MiB in all.
    let text = Literal { value: Some(literal::Value::String("x".repeat(1536 * 1024))) };
    for node in api.runs.runs.lock().unwrap().get_mut("heavy").unwrap().1.iter_mut() {
        node.outputs = Some(LiteralMap { values: [("text".to_string(), text.clone())].into() });
    }
    let ids = |body: &Value| -> Vec<String> {
        body["nodes"].as_array().unwrap().iter().map(|n| n["id"]["nodeId"].as_str().unwrap().to_string()).collect()
    };
    let (status, first) = call(&api, &get_request("/v1/executions/default/development/heavy"));
    assert_eq!(status, 200);
    assert_eq!(ids(&first), ["n0", "n1"], "two nodes fit beside the run, a third would pass 4 MiB");
    let mut seen = ids(&first);
    let mut token = first["nextToken"].as_str().map(str::to_string);
    while let Some(after) = token {
        let (status, page) =
            call(&api, &get_request(&format!("/v1/executions/default/development/heavy/nodes?token={after}")));
        assert_eq!(status, 200, "{page}");
        assert!(serde_json::to_vec(&page).unwrap().len() <= 4 * 1024 * 1024 + 1024, "every page fits");
        seen.extend(ids(&page));
        token = page["nextToken"].as_str().map(str::to_string);
    }
    assert_eq!(seen, ["n0", "n1", "n2", "n3", "n4"], "every node once, in order");
}
