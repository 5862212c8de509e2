//! The offline AWS emulator for tests that need S3: `UPDRAFT_TEST_ENDPOINT`
//! when set (./scripts/test starts one for the whole run), else one emulator
//! process per test binary, started here on a free port and killed with it.

use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| std::env::var("UPDRAFT_TEST_ENDPOINT").unwrap_or_else(|_| start()))
}

fn start() -> String {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let script = crate::support::repo_root().join("localstack/emulator/updraft_emulator.py");
    // Spawned from a thread that never ends: the child's parent-death signal fires when the test process exits.
    let (started, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new("python3");
        command.arg(&script).args(["--host", "127.0.0.1", "--port", &port.to_string()]);
        command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        // SAFETY: prctl only sets a flag of the child process before exec.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child =
            command.spawn().expect("python3 starts the emulator (pip install -r localstack/emulator/requirements.txt)");
        let _ = started.send(child.id());
        let _ = child.wait();
    });
    wait.recv().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the emulator did not listen on port {port} within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    format!("http://127.0.0.1:{port}")
}

/// Points a command's AWS clients at the emulator, with the credentials it accepts.
pub fn on_emulator(command: &mut Command) -> &mut Command {
    command
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
}

/// An S3 client on the emulator, and a runtime to drive it from a plain test.
pub struct S3 {
    pub client: aws_sdk_s3::Client,
    runtime: tokio::runtime::Runtime,
}

impl S3 {
    pub fn new() -> S3 {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(endpoint())
            .credentials_provider(aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "test"))
            .force_path_style(true)
            .build();
        S3 { client: aws_sdk_s3::Client::from_conf(config), runtime }
    }

    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// A fresh bucket per test: no test sees another's data.
    pub fn bucket(&self, prefix: &str) -> String {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("{prefix}-{}-{nanos}", std::process::id());
        self.block_on(self.client.create_bucket().bucket(&name).send()).expect("bucket created");
        name
    }

    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        self.block_on(self.client.put_object().bucket(bucket).key(key).body(bytes.to_vec().into()).send())
            .expect("object stored");
    }

    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let object = self.block_on(self.client.get_object().bucket(bucket).key(key).send()).ok()?;
        Some(self.block_on(object.body.collect()).unwrap().to_vec())
    }

    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let page = self.block_on(self.client.list_objects_v2().bucket(bucket).prefix(prefix).send()).unwrap();
        let mut keys: Vec<String> = page.contents.unwrap_or_default().into_iter().filter_map(|o| o.key).collect();
        keys.sort();
        keys
    }
}
