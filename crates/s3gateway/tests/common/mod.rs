//! A gateway over a real metadata store on loopback, and boto3 (installed
//! by `scripts/test-tools.sh`) to drive it.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use pach_meta::RedbStore;
use pach_pfs::Pfs;
use pach_s3gateway::{AllowAll, Authorizer, Gateway};
use pach_storage::ContentStore;

pub struct Served {
    pub pfs: Pfs,
    pub endpoint: String,
    pub dir: tempfile::TempDir,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// A gateway without auth over a fresh PFS.
#[allow(dead_code)] // not every test file that includes this module calls it
pub async fn serve() -> Served {
    serve_with(Arc::new(AllowAll)).await
}

/// A gateway whose callers `auth` authorizes, over a fresh PFS.
pub async fn serve_with(auth: Arc<dyn Authorizer>) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let meta = Arc::new(RedbStore::open(&dir.path().join("meta.redb")).unwrap());
    let store = Arc::new(object_store::memory::InMemory::new());
    let pfs = Pfs::new(
        meta,
        ContentStore::new(store, object_store::path::Path::from("")),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(Gateway::new(pfs.clone(), auth).serve(listener, async {
        let _ = stopped.await;
    }));
    Served {
        pfs,
        endpoint,
        dir,
        stop,
        server,
    }
}

/// What every script starts with: `s3`, a boto3 client of the gateway
/// (any credentials; one attempt per request, since botocore retries some
/// refusals such as BadDigest for seconds and the tests check the first
/// answer), and `code(f)`, the S3 error code of calling `f`, or "ok".
const PRELUDE: &str = r#"
import os
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], region_name="us-east-1",
                  aws_access_key_id="any", aws_secret_access_key="any",
                  config=Config(max_pool_connections=32, retries={"total_max_attempts": 1}))

def code(f):
    try:
        f()
    except ClientError as e:
        return e.response["Error"]["Code"]
    return "ok"
"#;

impl Served {
    /// Runs a Python script after [`PRELUDE`], `S3_ENDPOINT` naming the
    /// gateway; its standard output.
    pub async fn python(&self, script: &str) -> String {
        let home = std::env::var("HOME").expect("HOME");
        let python = PathBuf::from(home).join(".cache/pach-test-tools/s3clients/bin/python");
        assert!(
            python.exists(),
            "{} is missing: scripts/test-tools.sh installs the S3 clients",
            python.display()
        );
        let path = self.dir.path().join("script.py");
        std::fs::write(&path, format!("{PRELUDE}{script}")).unwrap();
        let endpoint = self.endpoint.clone();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(python)
                .arg(&path)
                .env("S3_ENDPOINT", &endpoint)
                .env("AWS_CONFIG_FILE", "/dev/null")
                .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .output()
                .expect("run python")
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "python failed: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    pub async fn stop(self) {
        self.stop.send(()).unwrap();
        self.server.await.unwrap().unwrap();
    }
}
