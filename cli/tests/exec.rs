//! `updraft exec` against the emulator's S3: the real binary, real objects.
//! Each test compiles a one-task spec with `updraft compile` and runs the task
//! the way its Batch job definition would: the interface in UPDRAFT_INTERFACE,
//! `updraft exec -- <the task's argv>`.

use crate::emulator::{S3, on_emulator};
use crate::support::{Scratch, text};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

struct Task {
    interface: String,
    argv: Vec<String>,
    dir: PathBuf,
    _scratch: Scratch,
}

/// Compiles `tasks: {<name>: <spec>}` and returns the one task's interface and argv.
fn task(name: &str, spec: &str) -> Task {
    let scratch = Scratch::new(&format!("exec-{name}"));
    let dir = scratch.to_path_buf();
    std::fs::write(dir.join("spec.yaml"), format!("tasks:\n  {name}:\n{spec}")).unwrap();
    let out = crate::support::updraft(&["compile", dir.join("spec.yaml").to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let compiled: Value = serde_json::from_slice(&out.stdout).unwrap();
    let task = &compiled["tasks"][0];
    let argv = task["container"]["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    Task { interface: task["interface"].to_string(), argv, dir, _scratch: scratch }
}

impl Task {
    fn command(&self, bucket: &str, inputs_key: Option<&str>) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_updraft"));
        on_emulator(&mut command)
            .arg("exec")
            .arg("--")
            .args(&self.argv)
            .current_dir(&self.dir)
            .env("UPDRAFT_INTERFACE", &self.interface)
            .env("UPDRAFT_OUTPUT_PREFIX", format!("s3://{bucket}/run/node/"))
            .env("UPDRAFT_WORK_DIR", self.dir.join("work"));
        if let Some(key) = inputs_key {
            command.env("UPDRAFT_INPUTS_URI", format!("s3://{bucket}/{key}"));
        }
        command
    }

    fn exec(&self, bucket: &str, inputs_key: Option<&str>) -> Output {
        self.command(bucket, inputs_key).output().expect("updraft exec starts")
    }
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn outputs_document(s3: &S3, bucket: &str) -> Value {
    serde_json::from_slice(&s3.get(bucket, "run/node/outputs.json").expect("outputs.json written")).unwrap()
}

fn key_of(uri: &Value, bucket: &str) -> String {
    uri.as_str().unwrap().strip_prefix(&format!("s3://{bucket}/")).expect("an object of the bucket").to_string()
}

#[test]
fn a_file_in_becomes_a_checked_dataframe_out() {
    let s3 = S3::new();
    let bucket = s3.bucket("file-to-frame");
    let raw = b"a,b\n1,2\n3,4\n5,6\n";
    s3.put(&bucket, "data/raw.csv", raw);
    let inputs = json!({"values": {
        "raw": {"file": {"uri": format!("s3://{bucket}/data/raw.csv"), "format": "csv", "digest": digest(raw)}},
        "factor": {"integer": "10"},
    }});
    s3.put(&bucket, "run/node/inputs.json", inputs.to_string().as_bytes());
    let script = "import csv, sys\n\
                  rows = list(csv.DictReader(open(sys.argv[1])))\n\
                  with open(sys.argv[3], 'w') as f:\n\
                  \x20   f.write('x,y\\n')\n\
                  \x20   for r in rows: f.write(f\"{int(r['a']) * int(sys.argv[2])},{r['b']}\\n\")\n\
                  open(sys.argv[4], 'w').write(str(len(rows)))\n";
    let t = task(
        "shape",
        &format!(
            "    image: python:3.11-slim\n    inputs: {{raw: file<csv>, factor: int}}\n    outputs:\n      table: {{dataframe: {{format: csv, columns: {{x: int, y: int}}}}}}\n      rows: int\n    command: [python3, -c, {script:?}, \"{{{{inputs.raw}}}}\", \"{{{{inputs.factor}}}}\", \"{{{{outputs.table}}}}\", \"{{{{outputs.rows}}}}\"]\n"
        ),
    );
    let out = t.exec(&bucket, Some("run/node/inputs.json"));
    assert!(out.status.success(), "{}", text(&out.stderr));

    let document = outputs_document(&s3, &bucket);
    let table = &document["outputs"]["table"];
    let frame = &table["value"]["dataframe"];
    assert_eq!(frame["format"], "csv");
    let stored = s3.get(&bucket, &key_of(&frame["uri"], &bucket)).unwrap();
    assert_eq!(text(&stored), "x,y\n10,2\n30,4\n50,6\n");
    assert_eq!(frame["digest"], digest(&stored));
    assert_eq!(table["digest"], digest(&stored));
    assert_eq!(table["size_bytes"], stored.len());
    let rows = &document["outputs"]["rows"];
    assert_eq!(rows["value"], json!({"integer": "3"}));
    assert!(rows["digest"].as_str().unwrap().starts_with("sha256:"));
}

#[test]
fn a_directory_keeps_its_structure_both_ways() {
    let s3 = S3::new();
    let bucket = s3.bucket("dir-round-trip");
    let files = [("images/a.txt", "alpha"), ("images/nested/b.txt", "beta"), ("labels.json", "{}")];
    for (path, content) in files {
        s3.put(&bucket, &format!("data/set/{path}"), content.as_bytes());
    }
    let inputs = json!({"values": {"set": {"directory": {"uri": format!("s3://{bucket}/data/set")}}}});
    s3.put(&bucket, "run/node/inputs.json", inputs.to_string().as_bytes());
    let t = task(
        "copy",
        "    image: busybox\n    inputs: {set: directory}\n    outputs: {copy: directory}\n    command: [cp, -r, \"{{inputs.set}}\", \"{{outputs.copy}}\"]\n",
    );
    let out = t.exec(&bucket, Some("run/node/inputs.json"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let document = outputs_document(&s3, &bucket);
    let uri = &document["outputs"]["copy"]["value"]["directory"]["uri"];
    let prefix = format!("{}/", key_of(uri, &bucket));
    let copied: Vec<String> = s3.keys(&bucket, &prefix).into_iter().map(|k| k[prefix.len()..].to_string()).collect();
    assert_eq!(copied, ["images/a.txt", "images/nested/b.txt", "labels.json"]);
    for (path, content) in files {
        assert_eq!(s3.get(&bucket, &format!("{prefix}{path}")).unwrap(), content.as_bytes());
    }
    assert!(document["outputs"]["copy"]["digest"].as_str().unwrap().starts_with("sha256:"));
}

#[test]
fn a_200_mib_output_goes_up_in_parts_with_its_digest() {
    let s3 = S3::new();
    let bucket = s3.bucket("multipart");
    let t = task(
        "big",
        "    image: busybox\n    outputs: {blob: file}\n    command: [sh, -c, 'head -c 209715200 /dev/urandom > \"$0\"', \"{{outputs.blob}}\"]\n",
    );
    let out = t.exec(&bucket, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let local = std::fs::read(t.dir.join("work/outputs/blob")).unwrap();
    assert_eq!(local.len(), 200 * 1024 * 1024);
    let document = outputs_document(&s3, &bucket);
    let file = &document["outputs"]["blob"]["value"]["file"];
    assert_eq!(file["digest"], digest(&local));
    let key = key_of(&file["uri"], &bucket);
    let head = s3.block_on(s3.client.head_object().bucket(&bucket).key(&key).send()).unwrap();
    assert_eq!(head.content_length(), Some(200 * 1024 * 1024));
    assert!(head.e_tag().unwrap().trim_matches('"').ends_with("-13"), "13 parts of 16 MiB: {:?}", head.e_tag());
    assert_eq!(s3.get(&bucket, &key).unwrap(), local);
    assert!(text(&out.stderr).contains("outputs 209715200 bytes in"), "{}", text(&out.stderr));
}

#[test]
fn a_wrong_typed_output_fails_cleanly_and_publishes_nothing() {
    let s3 = S3::new();
    let bucket = s3.bucket("wrong-type");
    let t = task(
        "score",
        "    image: busybox\n    outputs: {accuracy: float, report: file}\n    command: [sh, -c, 'echo \\\"high\\\" > \"$0\"; echo fine > \"$1\"', \"{{outputs.accuracy}}\", \"{{outputs.report}}\"]\n",
    );
    let out = t.exec(&bucket, None);
    assert_eq!(out.status.code(), Some(65), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("output \"accuracy\" has the wrong type: expected float, found string"), "{stderr}");
    assert!(s3.get(&bucket, "run/node/outputs.json").is_none());
    assert!(s3.keys(&bucket, "run/node/outputs/").is_empty(), "nothing is uploaded before every output is checked");
    let error: Value = serde_json::from_slice(&s3.get(&bucket, "run/node/error.json").unwrap()).unwrap();
    assert_eq!((error["code"].as_str(), error["retryable"].as_bool()), (Some("BadOutputs"), Some(false)));
}

#[test]
fn sigterm_mid_run_stops_the_task_and_leaves_no_outputs_document() {
    let s3 = S3::new();
    let bucket = s3.bucket("sigterm");
    let t = task(
        "slow",
        "    image: busybox\n    outputs: {n: int}\n    command: [sh, -c, 'echo 1 > \"$0\"; echo $$ > \"$0.pid\"; sleep 60', \"{{outputs.n}}\"]\n",
    );
    let mut child = t.command(&bucket, None).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let pid_file = t.dir.join("work/outputs/n.pid");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pid_file.exists() || std::fs::read_to_string(&pid_file).unwrap().trim().is_empty() {
        assert!(Instant::now() < deadline, "the task did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let task_pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    // SAFETY: sending a signal to the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let started = Instant::now();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    assert!(started.elapsed() < Duration::from_secs(10), "stopped promptly, not after the task's sleep");
    // SAFETY: signal 0 only checks whether the process exists.
    assert_ne!(unsafe { libc::kill(task_pid, 0) }, 0, "the task's process is gone too");
    assert!(Path::new(&t.dir.join("work/outputs/n")).exists(), "the task had written an output");
    assert!(s3.get(&bucket, "run/node/outputs.json").is_none());
    assert!(s3.keys(&bucket, "run/").is_empty(), "no outputs and no error document");
}

#[test]
fn secrets_meant_as_files_are_files_only() {
    let s3 = S3::new();
    let bucket = s3.bucket("secrets");
    let script = "import os, sys\n\
                  secret = open(os.path.join(os.environ['UPDRAFT_SECRETS_DIR'], 'TOKEN')).read()\n\
                  mode = oct(os.stat(os.path.join(os.environ['UPDRAFT_SECRETS_DIR'], 'TOKEN')).st_mode & 0o777)\n\
                  leaked = [k for k, v in os.environ.items() if secret in v]\n\
                  open(sys.argv[1], 'w').write(f'{len(secret)} {mode} {leaked}')\n";
    let t = task(
        "secretive",
        &format!(
            "    image: python:3.11-slim\n    outputs: {{seen: string}}\n    command: [python3, -c, {script:?}, \"{{{{outputs.seen}}}}\"]\n"
        ),
    );
    let out = t.command(&bucket, None).env("UPDRAFT_SECRET_FILE_TOKEN", "hunter2").output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let document = outputs_document(&s3, &bucket);
    assert_eq!(
        document["outputs"]["seen"]["value"],
        json!({"string": "7 0o600 []"}),
        "as a file, mode 600, in no variable"
    );
    assert!(!text(&out.stderr).contains("hunter2") && !text(&out.stdout).contains("hunter2"));
    assert!(!document.to_string().contains("hunter2"));
}

#[test]
fn a_bad_job_description_or_input_exits_64_naming_the_problem() {
    let s3 = S3::new();
    let bucket = s3.bucket("bad-job");
    let t = task(
        "typed",
        "    image: busybox\n    inputs: {raw: file}\n    outputs: {n: int}\n    command: [cat, \"{{inputs.raw}}\"]\n",
    );
    let out = t.command(&bucket, None).env_remove("UPDRAFT_OUTPUT_PREFIX").output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("UPDRAFT_OUTPUT_PREFIX is not set") && stderr.contains("UPDRAFT_INPUTS_URI is not set"),
        "{stderr}"
    );

    s3.put(&bucket, "run/node/inputs.json", json!({"values": {"raw": {"integer": "3"}}}).to_string().as_bytes());
    let out = t.exec(&bucket, Some("run/node/inputs.json"));
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("input \"raw\""), "{}", text(&out.stderr));
    assert!(s3.get(&bucket, "run/node/outputs.json").is_none());

    // A file reference that names no bucket is a bad input document, not a failure of S3.
    s3.put(
        &bucket,
        "run/node/inputs.json",
        json!({"values": {"raw": {"file": {"uri": "s3:///raw.csv"}}}}).to_string().as_bytes(),
    );
    let out = t.exec(&bucket, Some("run/node/inputs.json"));
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("\"s3:///raw.csv\" names no bucket"), "{}", text(&out.stderr));
}

#[test]
fn a_large_value_travels_as_a_reference_with_its_digest() {
    let s3 = S3::new();
    let bucket = s3.bucket("large-value");
    let t = task(
        "many",
        "    image: python:3.11-slim\n    outputs: {ids: list<int>, n: int}\n    command: [python3, -c, \"import json, sys; json.dump(list(range(20000)), open(sys.argv[1], 'w')); open(sys.argv[2], 'w').write('20000')\", \"{{outputs.ids}}\", \"{{outputs.n}}\"]\n",
    );
    let out = t.exec(&bucket, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let document = outputs_document(&s3, &bucket);
    let ids = &document["outputs"]["ids"];
    assert!(ids.get("value").is_none(), "over 64 KiB of JSON stays out of the document");
    assert!(ids["size_bytes"].as_u64().unwrap() > 64 * 1024);
    let stored: Value = serde_json::from_slice(&s3.get(&bucket, &key_of(&ids["uri"], &bucket)).unwrap()).unwrap();
    assert_eq!(stored["list"]["values"].as_array().unwrap().len(), 20000);
    assert_eq!(stored["list"]["values"][19999], json!({"integer": "19999"}));
    assert_eq!(document["outputs"]["n"]["value"], json!({"integer": "20000"}), "small values stay inline");
}

/// A Python SDK task in a container: `updraft exec -- python3 -m updraft.task
/// MODULE:FUNCTION`, its module in the image's working directory (here the cwd).
#[test]
fn a_python_sdk_task_runs_under_exec() {
    let s3 = S3::new();
    let bucket = s3.bucket("python-task");
    let raw = b"a,b\n1,2\n3,4\n";
    s3.put(&bucket, "data/raw.csv", raw);
    let inputs = json!({"values": {
        "raw": {"file": {"uri": format!("s3://{bucket}/data/raw.csv"), "format": "csv", "digest": digest(raw)}},
        "factor": {"integer": "10"},
    }});
    s3.put(&bucket, "run/node/inputs.json", inputs.to_string().as_bytes());
    let t = task(
        "shape",
        "    image: registry/shapes:1\n    inputs: {raw: file<csv>, factor: int}\n    outputs: {table: dataframe<csv>, rows: int}\n    command: [python3, -m, updraft.task, \"shapes:shape\"]\n",
    );
    std::fs::write(
        t.dir.join("shapes.py"),
        "from pathlib import Path\nfrom typing import Annotated, NamedTuple\nimport updraft\n\n\
         class Shaped(NamedTuple):\n    table: updraft.DataFrameFile\n    rows: int\n\n\
         @updraft.task\n\
         def shape(raw: Annotated[Path, updraft.Format('csv')], factor: int) -> Shaped:\n\
         \x20   rows = [line.split(',') for line in raw.read_text().splitlines()[1:]]\n\
         \x20   Path('table.csv').write_text('x,y\\n' + ''.join(f'{int(a) * factor},{b}\\n' for a, b in rows))\n\
         \x20   return Shaped(Path('table.csv'), len(rows))\n",
    )
    .unwrap();
    let out = t.exec(&bucket, Some("run/node/inputs.json"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let document = outputs_document(&s3, &bucket);
    let frame = &document["outputs"]["table"]["value"]["dataframe"];
    assert_eq!(text(&s3.get(&bucket, &key_of(&frame["uri"], &bucket)).unwrap()), "x,y\n10,2\n30,4\n");
    assert_eq!(document["outputs"]["rows"]["value"], json!({"integer": "2"}));
}

/// A code bundle as `updraft register` stores it: a tar.gz in the bucket, named by its digest.
fn upload_bundle(s3: &S3, bucket: &str, dir: &Path) -> (String, String) {
    let archive = dir.with_extension("tar.gz");
    let tar = Command::new("tar").arg("-czf").arg(&archive).arg("-C").arg(dir).arg(".").status().unwrap();
    assert!(tar.success());
    let bytes = std::fs::read(&archive).unwrap();
    let digest = digest(&bytes);
    let key = format!("bundles/sha256/{}.tar.gz", digest.trim_start_matches("sha256:"));
    s3.put(bucket, &key, &bytes);
    (format!("s3://{bucket}/{key}"), digest)
}

#[test]
fn a_code_bundle_becomes_code_dir_and_a_changed_one_never_runs() {
    let s3 = S3::new();
    let bucket = s3.bucket("bundle");
    let t = task(
        "greet",
        "    image: busybox\n    outputs: {text: string}\n    command: [sh, \"{{code_dir}}/greet.sh\", \"{{outputs.text}}\"]\n",
    );
    let code = t.dir.join("code-v1");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(code.join("greet.sh"), "echo '\"from the bundle\"' > \"$1\"\n").unwrap();
    let (uri, registered) = upload_bundle(&s3, &bucket, &code);

    let out = t
        .command(&bucket, None)
        .env("UPDRAFT_CODE_BUNDLE", &uri)
        .env("UPDRAFT_CODE_DIGEST", &registered)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let document = outputs_document(&s3, &bucket);
    assert_eq!(document["outputs"]["text"]["value"]["string"], "from the bundle");

    // Someone replaces the object: exec refuses it, naming both digests, and runs none of it.
    std::fs::write(code.join("greet.sh"), "touch \"$0.ran\"; echo '\"tampered\"' > \"$1\"\n").unwrap();
    let (_, tampered) = upload_bundle(&s3, &bucket, &code);
    let tampered_bytes = s3.get(&bucket, &format!("bundles/sha256/{}.tar.gz", tampered.trim_start_matches("sha256:")));
    s3.put(&bucket, uri.strip_prefix(&format!("s3://{bucket}/")).unwrap(), &tampered_bytes.unwrap());
    let _ = std::fs::remove_dir_all(t.dir.join("work"));
    let out = t
        .command(&bucket, None)
        .env("UPDRAFT_CODE_BUNDLE", &uri)
        .env("UPDRAFT_CODE_DIGEST", &registered)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(74), "DataError's exit code: {}", text(&out.stderr));
    let error: Value = serde_json::from_slice(&s3.get(&bucket, "run/node/error.json").unwrap()).unwrap();
    let message = error["message"].as_str().unwrap();
    assert_eq!(error["code"], "DataError");
    assert!(message.contains(&registered) && message.contains(&tampered), "{message}");
    assert!(!t.dir.join("work/code/greet.sh.ran").exists() && !t.dir.join("work/code").join("greet.sh").exists());
}

/// A strided child of a map's array job (child 1 of 2 over 6 items: items 1, 3 and 5)
/// runs its items in turn, each reading its line of the job's inputs file and writing
/// under its own prefix; an item an earlier attempt
/// published is skipped; a failing item does not stop the others, and the child
/// exits with its code, so Batch's retry policy sees it.
#[test]
fn a_strided_child_runs_its_items_in_turn_and_skips_the_published() {
    let s3 = S3::new();
    let bucket = s3.bucket("strided");
    let t = task(
        "halve",
        "    image: busybox\n    inputs: {x: int}\n    outputs: {y: int}\n    command: [sh, -c, 'test $(($0 % 7)) -ne 0 || exit 3; echo $(($0 / 2)) > \"$1\"', \"{{inputs.x}}\", \"{{outputs.y}}\"]\n",
    );
    // Child 1 runs item 1 (x = 12: y = 6), item 3 (x = 14: exits 3) and item 5 (x = 20).
    let xs = [10, 12, 16, 14, 18, 20];
    // The map's start writes every item's inputs as one file, line j for item j, and their offsets.
    let lines: Vec<Vec<u8>> =
        xs.iter().map(|x| json!({"values": {"x": {"integer": x.to_string()}}}).to_string().into_bytes()).collect();
    let (file, offsets) = updraft_core::execution::contract::map_inputs_file(lines.iter().map(Vec::as_slice));
    s3.put(&bucket, "items/inputs.jsonl", &file);
    let manifest = json!({"items": [0, 1, 2, 3, 4, 5], "children": 2, "inputs_offsets": offsets});
    s3.put(&bucket, "items/manifest.json", manifest.to_string().as_bytes());
    // Item 5 was published by an earlier attempt (with a value the task would not write).
    let earlier = json!({"outputs": {"y": {"value": {"integer": "-1"}}}});
    s3.put(&bucket, "items/5/outputs.json", earlier.to_string().as_bytes());
    let mut command = t.command(&bucket, None);
    command
        .env_remove("UPDRAFT_OUTPUT_PREFIX")
        .env("UPDRAFT_ARRAY_PREFIX", format!("s3://{bucket}/items/"))
        .env("UPDRAFT_ARRAY_STRIDE", "2")
        .env("UPDRAFT_ARRAY_ITEMS", "6")
        .env("AWS_BATCH_JOB_ARRAY_INDEX", "1")
        // A retried child: only a retry looks for what an earlier attempt published.
        .env("AWS_BATCH_JOB_ATTEMPT", "2");
    let out = command.output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "the failed item's exit code: {stderr}");
    let y = |j: usize| {
        let document: Value = serde_json::from_slice(&s3.get(&bucket, &format!("items/{j}/outputs.json"))?).ok()?;
        document["outputs"]["y"]["value"]["integer"].as_str().map(str::to_string)
    };
    assert_eq!(y(1).as_deref(), Some("6"), "{stderr}");
    assert_eq!(y(5).as_deref(), Some("-1"), "published before: not run again");
    assert!(stderr.contains("item 5 ran in an earlier attempt; skipped"), "{stderr}");
    assert_eq!((y(0), y(2), y(4)), (None, None, None), "child 0's items are not child 1's");
    assert!(y(3).is_none() && s3.get(&bucket, "items/3/error.json").is_some(), "item 3 failed, saying why");
    // The child sums up what its items ended with (item 5 ran before: not in it), for the gather.
    let summary: Value = serde_json::from_slice(&s3.get(&bucket, "items/children/1.json").unwrap()).unwrap();
    let items = summary["items"].as_object().unwrap();
    assert_eq!(items.keys().collect::<Vec<_>>(), ["1", "3"], "{summary}");
    assert_eq!(items["1"]["outputs"]["outputs"]["y"]["value"]["integer"], "6", "{summary}");
    assert_eq!(items["3"]["error"]["code"], "NonZeroExit", "{summary}");
}
