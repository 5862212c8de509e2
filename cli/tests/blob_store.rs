//! `updraft run --blob-store s3://…`: a local run whose task outputs live in
//! the emulator's S3, with the same digests and cache keys as on disk.

use crate::emulator::{S3, on_emulator};
use crate::support::{Sandbox, text};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// `make` writes a directory and a CSV file; `summarize` reads both (so they
/// must come back from S3) and writes a dataframe of file sizes and a line count.
const SPEC: &str = r#"
tasks:
  make:
    image: python:3.11-slim
    inputs: {n: int}
    outputs: {set: directory, table: file<csv>}
    cache: {version: "1"}
    command:
      - python3
      - -c
      - |
        import os, sys
        n, out_set, out_table = int(sys.argv[1]), sys.argv[2], sys.argv[3]
        os.makedirs(os.path.join(out_set, "sub"))
        open(os.path.join(out_set, "a.txt"), "w").write("a" * n)
        open(os.path.join(out_set, "sub", "b.txt"), "w").write("b" * (2 * n))
        open(out_table, "w").write("k\n" + "".join(f"{i}\n" for i in range(n)))
      - "{{inputs.n}}"
      - "{{outputs.set}}"
      - "{{outputs.table}}"
  summarize:
    image: python:3.11-slim
    inputs: {set: directory, table: file<csv>}
    outputs:
      sizes: {dataframe: {format: csv, columns: {name: string, bytes: int}}}
      lines: int
    cache: {version: "1"}
    command:
      - python3
      - -c
      - |
        import os, sys
        root, table, out_sizes, out_lines = sys.argv[1:5]
        rows = sorted(
            (os.path.relpath(os.path.join(d, f), root), os.path.getsize(os.path.join(d, f)))
            for d, _, files in os.walk(root) for f in files
        )
        open(out_sizes, "w").write("name,bytes\n" + "".join(f"{n},{b}\n" for n, b in rows))
        open(out_lines, "w").write(str(len(open(table).read().splitlines())))
      - "{{inputs.set}}"
      - "{{inputs.table}}"
      - "{{outputs.sizes}}"
      - "{{outputs.lines}}"
workflows:
  pipeline:
    inputs: {n: int}
    nodes:
      make: {task: make, inputs: {n: $inputs.n}}
      summarize: {task: summarize, inputs: {set: $make.set, table: $make.table}}
    outputs: {sizes: $summarize.sizes, lines: $summarize.lines, set: $make.set}
"#;

fn run(sandbox: &Sandbox, args: &[&str]) -> (Option<i32>, Value, String) {
    let mut command = sandbox.command(&["run", "spec.yaml", "--output", "json", "-i", "n=3"]);
    let out = on_emulator(command.args(args)).output().expect("updraft starts");
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), doc, text(&out.stderr))
}

fn phase(doc: &Value, id: &str) -> String {
    let nodes = doc["nodes"].as_array().unwrap_or_else(|| panic!("nodes in {doc}"));
    let node = nodes.iter().find(|n| n["id"]["nodeId"] == id).unwrap_or_else(|| panic!("node {id} in {doc}"));
    node["phase"].as_str().unwrap().to_string()
}

fn outputs(doc: &Value) -> &Value {
    &doc["execution"]["outputs"]["values"]
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn key_of<'a>(uri: &'a Value, bucket: &str) -> &'a str {
    let uri = uri.as_str().unwrap_or_else(|| panic!("a URI, found {uri}"));
    uri.strip_prefix(&format!("s3://{bucket}/")).unwrap_or_else(|| panic!("{uri} is in bucket {bucket}"))
}

#[test]
fn a_local_run_keeps_its_outputs_in_s3_and_reads_them_back() {
    let s3 = S3::new();
    let bucket = s3.bucket("blob-store");
    let store = format!("s3://{bucket}/team/blobs");
    let sandbox = Sandbox::new("blob-store", SPEC);

    let (code, first, stderr) = run(&sandbox, &["--blob-store", &store]);
    assert_eq!(code, Some(0), "{stderr}");
    // The dataframe: in S3 under its digest, written by a task that read the directory back from S3.
    let sizes = &outputs(&first)["sizes"]["dataframe"];
    let sizes_key = key_of(&sizes["uri"], &bucket);
    assert!(sizes_key.starts_with("team/blobs/sha256/"), "{sizes_key}");
    let stored = s3.get(&bucket, sizes_key).expect("the dataframe is in S3");
    assert_eq!(text(&stored), "name,bytes\na.txt,3\nsub/b.txt,6\n");
    assert_eq!(sizes["digest"], digest(&stored));
    assert_eq!(outputs(&first)["lines"]["integer"], "4", "header and three rows, read from the CSV in S3");
    // The directory keeps its tree, and is marked whole.
    let set_key = key_of(&outputs(&first)["set"]["directory"]["uri"], &bucket).to_string();
    assert!(set_key.starts_with("team/blobs/dirs/"), "{set_key}");
    assert_eq!(s3.keys(&bucket, &format!("{set_key}/")), [format!("{set_key}/a.txt"), format!("{set_key}/sub/b.txt")]);
    assert!(s3.get(&bucket, &format!("{set_key}.complete")).is_some(), "completion marker");
    assert!(std::fs::read_dir(sandbox.dir.join("home/blobs/sha256")).unwrap().next().is_none(), "nothing on disk");

    let (code, second, stderr) = run(&sandbox, &["--blob-store", &store]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!((phase(&second, "make"), phase(&second, "summarize")), ("CACHED".into(), "CACHED".into()));
    assert_eq!(outputs(&second), outputs(&first));

    // A cached output that has gone from S3 is a miss: that task runs again and puts it back.
    s3.block_on(s3.client.delete_object().bucket(&bucket).key(sizes_key).send()).unwrap();
    let (code, third, stderr) = run(&sandbox, &["--blob-store", &store]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!((phase(&third, "make"), phase(&third, "summarize")), ("CACHED".into(), "SUCCEEDED".into()));
    assert_eq!(s3.get(&bucket, sizes_key).as_deref(), Some(stored.as_slice()));

    // Without the flag the same cache keys name S3 objects this run does not read: everything runs, on disk.
    let (code, local, stderr) = run(&sandbox, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!((phase(&local, "make"), phase(&local, "summarize")), ("SUCCEEDED".into(), "SUCCEEDED".into()));
    let local_uri = outputs(&local)["sizes"]["dataframe"]["uri"].as_str().unwrap();
    assert_eq!(std::fs::read(local_uri).unwrap(), stored);
    assert_eq!(outputs(&local)["sizes"]["dataframe"]["digest"], sizes["digest"], "same digest on disk and in S3");
}

#[test]
fn data_changed_in_s3_behind_the_run_is_refused_not_used() {
    let s3 = S3::new();
    let bucket = s3.bucket("blob-tamper");
    let store = format!("s3://{bucket}/blobs");
    let sandbox = Sandbox::new("blob-tamper", SPEC);
    let (code, first, stderr) = run(&sandbox, &["--blob-store", &store]);
    assert_eq!(code, Some(0), "{stderr}");

    // Overwrite make's CSV in place; make's entry still looks whole, so only the download can tell.
    let table_key = {
        let record = first["nodes"].as_array().unwrap().iter().find(|n| n["id"]["nodeId"] == "make").unwrap();
        key_of(&record["outputs"]["values"]["table"]["file"]["uri"], &bucket).to_string()
    };
    s3.put(&bucket, &table_key, b"k\n1\n");
    let (code, doc, stderr) = run(&sandbox, &["--blob-store", &store, "--no-cache"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(phase(&doc, "summarize"), "FAILED");
    let message = doc["execution"]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("cannot fetch the inputs") && message.contains("the data changed or is corrupt"),
        "{message}"
    );
}

#[test]
fn a_blob_store_that_cannot_be_used_stops_the_run_before_anything_runs() {
    let sandbox = Sandbox::new("blob-missing", SPEC);
    let (code, _, stderr) = run(&sandbox, &["--blob-store", "s3://no-such-bucket-for-updraft/blobs"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("the blob store s3://no-such-bucket-for-updraft/blobs cannot be used"), "{stderr}");
    assert!(stderr.contains("hint: create the bucket"), "{stderr}");

    let (code, _, stderr) = run(&sandbox, &["--blob-store", "/tmp/blobs"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--blob-store: \"/tmp/blobs\" is not an s3://bucket/key URI"), "{stderr}");

    let listed = sandbox.updraft(&["executions", "list", "--output", "json"]);
    assert_eq!(serde_json::from_slice::<Value>(&listed.stdout).unwrap(), Value::Array(vec![]), "no execution recorded");
}
