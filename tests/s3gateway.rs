//! The S3 gateway through real S3 clients, installed from PyPI by
//! `scripts/test-tools.sh`: the aws CLI (`s3` and `s3api`), boto3, pandas
//! through s3fs and Polars through its Rust object_store client, against a
//! real pachd on loopback; what they write is checked through pachctl, as
//! commits of the repo.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pach_e2e::{Pachd, Port, reserve_port};

fn tools() -> PathBuf {
    let home = std::env::var("HOME").expect("HOME");
    PathBuf::from(home).join(".cache/pach-test-tools")
}

fn tool(venv: &str, bin: &str) -> PathBuf {
    let p = tools().join(venv).join("bin").join(bin);
    assert!(
        p.exists(),
        "{} is missing: scripts/test-tools.sh installs the S3 clients",
        p.display()
    );
    p
}

/// A pachd serving the S3 gateway on a port of its own.
struct Gateway {
    pachd: Pachd,
    endpoint: String,
    /// Held while the gateway serves on it.
    _port: Port,
}

impl Gateway {
    fn start() -> Gateway {
        Self::start_with(&[])
    }

    /// As [`Gateway::start`], with more pachd flags.
    fn start_with(args: &[&str]) -> Gateway {
        let port = reserve_port();
        let address = format!("127.0.0.1:{}", port.port);
        let mut all = vec!["--s3gateway-address", &address];
        all.extend_from_slice(args);
        let pachd = Pachd::start_with(&all);
        Gateway {
            pachd,
            endpoint: format!("http://{address}"),
            _port: port,
        }
    }

    /// The environment S3 clients find the gateway with (any credentials
    /// work without auth).
    fn client_env(&self, cmd: &mut Command) {
        cmd.env("AWS_ACCESS_KEY_ID", "anything")
            .env("AWS_SECRET_ACCESS_KEY", "anything")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("S3_ENDPOINT", &self.endpoint)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    }

    fn aws_output(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(tool("awscli", "aws"));
        cmd.args(["--endpoint-url", &self.endpoint])
            .args(args)
            .current_dir(self.pachd.dir.path());
        self.client_env(&mut cmd);
        cmd.output().expect("run aws")
    }

    fn aws(&self, args: &[&str]) -> String {
        let out = self.aws_output(args);
        assert!(
            out.status.success(),
            "aws {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// Runs a Python script in the S3 clients' venv; requires success.
    fn python(&self, script: &str) -> String {
        let path = self.pachd.dir.path().join("script.py");
        std::fs::write(&path, script).unwrap();
        let mut cmd = Command::new(tool("s3clients", "python"));
        cmd.arg(&path).current_dir(self.pachd.dir.path());
        self.client_env(&mut cmd);
        let out = cmd.output().expect("run python");
        assert!(
            out.status.success(),
            "python failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    fn commits(&self, repo: &str) -> usize {
        self.pachd.raw(&["list", "commit", repo]).len()
    }
}

fn write(dir: &Path, rel: &str, data: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

/// Bytes that do not repeat (so that deduplication does not hide a bug).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn aws_cli_copies_lists_syncs_and_removes_through_commits() {
    let g = Gateway::start();
    let dir = g.pachd.dir.path().to_path_buf();
    g.aws(&["s3", "mb", "s3://master.images"]);
    assert!(g.aws(&["s3", "ls"]).contains("master.images"));
    assert_eq!(g.pachd.ok(&["list", "repo"]).lines().count(), 2);

    write(&dir, "up/hello.txt", b"hello\n");
    g.aws(&[
        "s3",
        "cp",
        "--only-show-errors",
        "up/hello.txt",
        "s3://images/hello.txt",
    ]);
    assert_eq!(
        g.pachd.ok(&["get", "file", "images@master:/hello.txt"]),
        "hello\n"
    );
    assert_eq!(g.commits("images"), 1);

    // A tree, synced up: one commit per object written.
    for i in 0..5 {
        write(
            &dir,
            &format!("tree/d{}/f{i}.bin", i % 2),
            &noise(10_000 + i, i as u64),
        );
    }
    g.aws(&[
        "s3",
        "sync",
        "--only-show-errors",
        "tree",
        "s3://master.images/tree/",
    ]);
    assert_eq!(g.commits("images"), 6);
    let ls = g.aws(&["s3", "ls", "s3://master.images/tree/"]);
    assert!(ls.contains("PRE d0/") && ls.contains("PRE d1/"), "{ls}");
    let all = g.aws(&["s3", "ls", "--recursive", "s3://master.images/"]);
    assert_eq!(all.lines().count(), 6, "{all}");
    // Synced again: nothing changed, nothing written.
    g.aws(&[
        "s3",
        "sync",
        "--only-show-errors",
        "tree",
        "s3://master.images/tree/",
    ]);
    assert_eq!(g.commits("images"), 6);
    // Down again, byte for byte.
    g.aws(&[
        "s3",
        "sync",
        "--only-show-errors",
        "s3://master.images/tree/",
        "down",
    ]);
    for i in 0..5 {
        let rel = format!("d{}/f{i}.bin", i % 2);
        assert_eq!(
            std::fs::read(dir.join("down").join(&rel)).unwrap(),
            std::fs::read(dir.join("tree").join(&rel)).unwrap(),
            "{rel}"
        );
    }

    // The previous commit stays readable, read-only, as COMMIT.REPO.
    let commits = g.pachd.raw(&["list", "commit", "images"]);
    let first = commits.last().unwrap()["commit"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let old = format!("s3://{first}.images/");
    assert_eq!(g.aws(&["s3", "ls", "--recursive", &old]).lines().count(), 1);
    let refused = g.aws_output(&["s3", "cp", "up/hello.txt", &format!("{old}x")]);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("AccessDenied"), "{why}");

    g.aws(&[
        "s3",
        "rm",
        "--only-show-errors",
        "--recursive",
        "s3://master.images/tree/",
    ]);
    assert_eq!(
        g.aws(&["s3", "ls", "--recursive", "s3://images/"])
            .lines()
            .count(),
        1
    );
    assert!(
        g.pachd
            .ok(&["list", "file", "images@master"])
            .contains("hello.txt")
    );
    let missing = g.aws_output(&["s3", "cp", "s3://images/nope", "-"]);
    assert!(!missing.status.success());
    // Emptied, the bucket can go, and the repo with its last branch.
    g.aws(&["s3", "rm", "s3://images/hello.txt"]);
    g.aws(&["s3", "rb", "s3://master.images"]);
    assert_eq!(g.pachd.ok(&["list", "repo"]).lines().count(), 1);
}

#[test]
fn aws_s3api_multipart_upload_of_100_mib_in_8_mib_parts() {
    let g = Gateway::start();
    let dir = g.pachd.dir.path().to_path_buf();
    g.aws(&["s3api", "create-bucket", "--bucket", "master.big"]);
    const PART: usize = 8 << 20;
    let data = noise(100 << 20, 7);
    let start = g.aws(&[
        "s3api",
        "create-multipart-upload",
        "--bucket",
        "master.big",
        "--key",
        "data/big.bin",
    ]);
    let upload: serde_json::Value = serde_json::from_str(&start).unwrap();
    let id = upload["UploadId"].as_str().unwrap().to_string();
    let listed = g.aws(&["s3api", "list-multipart-uploads", "--bucket", "master.big"]);
    assert!(listed.contains(&id), "{listed}");
    let mut parts = Vec::new();
    for (i, chunk) in data.chunks(PART).enumerate() {
        let number = (i + 1).to_string();
        let file = dir.join(format!("part{number}"));
        std::fs::write(&file, chunk).unwrap();
        let out = g.aws(&[
            "s3api",
            "upload-part",
            "--bucket",
            "master.big",
            "--key",
            "data/big.bin",
            "--upload-id",
            &id,
            "--part-number",
            &number,
            "--body",
            file.to_str().unwrap(),
        ]);
        std::fs::remove_file(&file).unwrap();
        let etag = serde_json::from_str::<serde_json::Value>(&out).unwrap()["ETag"]
            .as_str()
            .unwrap()
            .to_string();
        parts.push(serde_json::json!({"PartNumber": i + 1, "ETag": etag}));
    }
    assert_eq!(parts.len(), 13);
    // Nothing is in the repo before the upload completes.
    assert_eq!(g.commits("big"), 0);
    let listed = g.aws(&[
        "s3api",
        "list-parts",
        "--bucket",
        "master.big",
        "--key",
        "data/big.bin",
        "--upload-id",
        &id,
    ]);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["Parts"].as_array().unwrap().len(), 13);
    let layout = serde_json::json!({ "Parts": parts }).to_string();
    g.aws(&[
        "s3api",
        "complete-multipart-upload",
        "--bucket",
        "master.big",
        "--key",
        "data/big.bin",
        "--upload-id",
        &id,
        "--multipart-upload",
        &layout,
    ]);
    assert_eq!(g.commits("big"), 1);
    let got = g
        .pachd
        .ok_bytes(&["get", "file", "big@master:/data/big.bin"]);
    assert!(
        got == data,
        "the completed object differs from what was uploaded"
    );

    // An aborted upload leaves nothing; a part of it is refused afterwards.
    let other = g.aws(&[
        "s3api",
        "create-multipart-upload",
        "--bucket",
        "master.big",
        "--key",
        "gone",
    ]);
    let other: serde_json::Value = serde_json::from_str(&other).unwrap();
    let other = other["UploadId"].as_str().unwrap();
    g.aws(&[
        "s3api",
        "abort-multipart-upload",
        "--bucket",
        "master.big",
        "--key",
        "gone",
        "--upload-id",
        other,
    ]);
    let listed = g.aws(&["s3api", "list-multipart-uploads", "--bucket", "master.big"]);
    assert!(!listed.contains(other), "{listed}");
    write(&dir, "small", b"x");
    let late = g.aws_output(&[
        "s3api",
        "upload-part",
        "--bucket",
        "master.big",
        "--key",
        "gone",
        "--upload-id",
        other,
        "--part-number",
        "1",
        "--body",
        "small",
    ]);
    let why = String::from_utf8_lossy(&late.stderr);
    assert!(why.contains("NoSuchUpload"), "{why}");
    assert_eq!(g.commits("big"), 1);

    // The high-level copy splits large files into parts by itself, and
    // reads them back in ranges.
    std::fs::write(dir.join("mid.bin"), &data[..30 << 20]).unwrap();
    g.aws(&[
        "s3",
        "cp",
        "--only-show-errors",
        "mid.bin",
        "s3://master.big/mid.bin",
    ]);
    g.aws(&[
        "s3",
        "cp",
        "--only-show-errors",
        "s3://master.big/mid.bin",
        "mid.back",
    ]);
    assert!(std::fs::read(dir.join("mid.back")).unwrap() == data[..30 << 20]);
}

const BOTO3: &str = r#"
import os, boto3, botocore
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"])
def code(f):
    try:
        f()
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
    raise SystemExit("expected an error")

s3.create_bucket(Bucket="master.data")
s3.create_bucket(Bucket="dev.data")
names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
assert names == ["dev.data", "master.data", "master.made_here"], names

put = s3.put_object(Bucket="data", Key="a/b.txt", Body=b"0123456789")
head = s3.head_object(Bucket="master.data", Key="a/b.txt")
assert head["ContentLength"] == 10 and head["ETag"] == put["ETag"], head
got = s3.get_object(Bucket="master.data", Key="a/b.txt", Range="bytes=2-5")
assert got["Body"].read() == b"2345" and got["ContentRange"] == "bytes 2-5/10"
assert code(lambda: s3.get_object(Bucket="data", Key="a/b.txt", Range="bytes=10-")) == "InvalidRange"
assert code(lambda: s3.get_object(Bucket="data", Key="a/b.txt", IfNoneMatch=put["ETag"])) == "304"
assert code(lambda: s3.get_object(Bucket="data", Key="a/b.txt", IfMatch='"nope"')) == "PreconditionFailed"
assert code(lambda: s3.get_object(Bucket="data", Key="nope")) == "NoSuchKey"
# A key that cannot be a file path: refused on writes, named by no object on
# reads; one with control characters is an unparsable URI to S3.
assert code(lambda: s3.put_object(Bucket="data", Key="a//b", Body=b"x")) == "InvalidFilePath"
assert code(lambda: s3.get_object(Bucket="data", Key="a//b")) == "NoSuchKey"
assert code(lambda: s3.put_object(Bucket="data", Key="\xae\x8a-", Body=b"x")) == "InvalidFilePath"
assert code(lambda: s3.get_object(Bucket="data", Key="\xae\x8a-")) == "InvalidURI"
assert code(lambda: s3.get_object(Bucket="master.nothere", Key="x")) == "NoSuchBucket"
# Metadata is kept; conditions hold.
s3.put_object(Bucket="data", Key="a/m", Body=b"", Metadata={"k": "v"}, ContentType="text/plain")
m = s3.head_object(Bucket="data", Key="a/m")
assert m["Metadata"] == {"k": "v"} and m["ContentType"] == "text/plain", m
assert code(lambda: s3.put_object(Bucket="data", Key="a/m", Body=b"x", IfNoneMatch="*")) == "PreconditionFailed"
# Without auth every caller is the one owner, with full control of
# everything: the ACLs say so, and setting them to that changes nothing.
acl = s3.get_bucket_acl(Bucket="data")
owner = acl["Owner"]["ID"]
assert [(g["Grantee"]["ID"], g["Permission"]) for g in acl["Grants"]] == [(owner, "FULL_CONTROL")], acl
assert s3.list_objects(Bucket="data")["Contents"][0]["Owner"]["ID"] == owner
s3.put_bucket_acl(Bucket="data", ACL="private")
s3.put_object_acl(Bucket="data", Key="a/b.txt", ACL="private")
assert s3.get_object_acl(Bucket="data", Key="a/b.txt")["Grants"] == acl["Grants"]
assert code(lambda: s3.put_bucket_acl(Bucket="data", ACL="public-read")) == "NotImplemented"
assert code(lambda: s3.get_object_acl(Bucket="data", Key="nope")) == "NoSuchKey"
assert code(lambda: s3.get_bucket_acl(Bucket="master.nothere")) == "NoSuchBucket"
assert code(lambda: s3.put_bucket_versioning(Bucket="data", VersioningConfiguration={"Status": "Enabled"})) == "NotImplemented"
assert code(lambda: s3.delete_bucket(Bucket="data")) == "BucketNotEmpty"
# Creating a bucket that exists succeeds, as in us-east-1, and keeps it as it is.
s3.create_bucket(Bucket="master.data")
# New buckets follow S3's naming rules, and nothing is created for a refused
# name; a repo of another Pachyderm name (made with pachctl) is served.
for bad in ["raw_data", "ab", "Data", "master.data-", "192.168.5.123"]:
    assert code(lambda: s3.create_bucket(Bucket=bad)) == "InvalidBucketName", bad
assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["dev.data", "master.data", "master.made_here"]
s3.create_bucket(Bucket="made_here")
s3.put_object(Bucket="made_here", Key="k", Body=b"v")
assert s3.get_object(Bucket="data", Key="a/b.txt")["Body"].read() == b"0123456789"

# A key and a "directory" of the same name are two objects.
s3.put_object(Bucket="data", Key="a", Body=b"file a")
for i in range(25):
    s3.put_object(Bucket="data", Key=f"many/{i:03}", Body=str(i).encode())
keys, token = [], None
while True:
    kw = {"ContinuationToken": token} if token else {}
    page = s3.list_objects_v2(Bucket="data", Prefix="many/", MaxKeys=10, **kw)
    keys += [o["Key"] for o in page.get("Contents", [])]
    if not page["IsTruncated"]:
        break
    token = page["NextContinuationToken"]
assert keys == [f"many/{i:03}" for i in range(25)], keys
top = s3.list_objects(Bucket="data", Delimiter="/")
assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["a/", "many/"], top
assert [o["Key"] for o in top["Contents"]] == ["a"], top
s3.delete_object(Bucket="data", Key="a")
assert s3.get_object(Bucket="data", Key="a/b.txt")["Body"].read() == b"0123456789"

s3.copy_object(Bucket="dev.data", Key="copied", CopySource={"Bucket": "data", "Key": "a/b.txt"})
assert s3.get_object(Bucket="dev.data", Key="copied")["Body"].read() == b"0123456789"
gone = s3.delete_objects(Bucket="data", Delete={"Objects": [{"Key": f"many/{i:03}"} for i in range(25)] + [{"Key": "never"}]})
assert len(gone["Deleted"]) == 26, gone
assert s3.list_objects_v2(Bucket="data", Prefix="many/")["KeyCount"] == 0
assert s3.get_bucket_versioning(Bucket="data").get("Status") is None
assert s3.get_bucket_location(Bucket="data")["LocationConstraint"] == "PACHYDERM"
print("ok")
"#;

#[test]
fn boto3_reads_writes_lists_and_gets_s3_errors() {
    let g = Gateway::start();
    g.pachd.ok(&["create", "repo", "made_here"]);
    g.pachd.ok(&["create", "branch", "made_here@master"]);
    assert_eq!(g.python(BOTO3).trim(), "ok");
    assert_eq!(g.pachd.ok(&["get", "file", "made_here@master:/k"]), "v");
    // dev.data got one commit (the copy); master.data one per write.
    assert_eq!(
        g.pachd.ok(&["get", "file", "data@dev:/copied"]),
        "0123456789"
    );
    let files = g.pachd.ok(&["list", "file", "data@master"]);
    assert!(files.contains("/a") && !files.contains("/many"), "{files}");
}

const DATAFRAMES: &str = r#"
import io, os, boto3, pandas as pd, polars as pl
endpoint = os.environ["S3_ENDPOINT"]
s3 = boto3.client("s3", endpoint_url=endpoint)
s3.create_bucket(Bucket="master.frames")

frame = pl.DataFrame({"id": list(range(1000)), "name": [f"n{i}" for i in range(1000)]})
buf = io.BytesIO()
frame.write_parquet(buf)
s3.put_object(Bucket="master.frames", Key="t/frame.parquet", Body=buf.getvalue())
opts = {"aws_endpoint_url": endpoint, "aws_access_key_id": "k", "aws_secret_access_key": "s",
        "aws_region": "us-east-1", "aws_allow_http": "true"}
back = pl.read_parquet("s3://master.frames/t/frame.parquet", storage_options=opts)
assert back.equals(frame), back
lazy = pl.scan_parquet("s3://master.frames/t/frame.parquet", storage_options=opts)
assert lazy.filter(pl.col("id") >= 990).collect().height == 10

fs_opts = {"key": "k", "secret": "s", "client_kwargs": {"endpoint_url": endpoint}}
df = pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]})
df.to_csv("s3://master.frames/t/table.csv", index=False, storage_options=fs_opts)
read = pd.read_csv("s3://master.frames/t/table.csv", storage_options=fs_opts)
assert read.equals(df), read
print("ok")
"#;

#[test]
fn polars_reads_parquet_and_pandas_reads_csv_through_the_gateway() {
    let g = Gateway::start();
    assert_eq!(g.python(DATAFRAMES).trim(), "ok");
    let csv = g.pachd.ok(&["get", "file", "frames@master:/t/table.csv"]);
    assert_eq!(csv, "x,y\n1,a\n2,b\n3,c\n");
}

/// User code learns where the gateway is from S3_ENDPOINT.
#[test]
fn pipelines_user_code_gets_the_gateway_address() {
    let g = Gateway::start();
    let p = &g.pachd;
    p.ok(&["create", "repo", "in"]);
    p.ok_stdin(&["put", "file", "in@master:/x"], b"x");
    let spec = r#"{"pipeline": {"name": "where"},
      "transform": {"cmd": ["sh", "-c", "echo \"$S3_ENDPOINT\" > /pfs/out/endpoint"]},
      "input": {"pfs": {"repo": "in", "glob": "/"}}}"#;
    let path = p.dir.path().join("where.json");
    std::fs::write(&path, spec).unwrap();
    p.ok(&["create", "pipeline", "-f", path.to_str().unwrap()]);
    p.ok(&["flush", "commit", "in@master"]);
    assert_eq!(
        p.ok(&["get", "file", "where@master:/endpoint"]).trim(),
        g.endpoint
    );
}

/// What user code runs in `user_code_reads_its_input_through_the_gateway`:
/// boto3 against $S3_ENDPOINT, reading the job's input commit as a bucket
/// (`COMMIT.REPO`), then a connection to each of $OTHER_PORTS on the host.
const SANDBOX_CLIENT: &str = r#"
import os, socket, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], region_name="us-east-1",
                  aws_access_key_id="any", aws_secret_access_key="any")
bucket = os.environ["in_COMMIT"] + ".in"
listed = s3.list_objects_v2(Bucket=bucket)
with open("/pfs/out/read", "w") as out:
    for o in listed["Contents"]:
        body = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read().decode()
        out.write(o["Key"] + "=" + body + "\n")
with open("/pfs/out/ports", "w") as out:
    for port in os.environ["OTHER_PORTS"].split(","):
        try:
            socket.create_connection(("127.0.0.1", int(port)), timeout=2).close()
            out.write(port + " reached\n")
        except OSError as e:
            out.write(port + " unreachable\n")
"#;

/// User code reaches the gateway inside its sandbox (the sandbox's own
/// network namespace, loopback only), lists and reads its input through it
/// with boto3, and still reaches no other port of the host: not pachd's API,
/// not a server the test runs.
#[test]
fn user_code_reads_its_input_through_the_gateway_in_its_sandbox() {
    let g = Gateway::start();
    let p = &g.pachd;
    let other = reserve_port();
    let _listening = std::net::TcpListener::bind(("127.0.0.1", other.port)).unwrap();
    // Reachable from the host: only the sandbox keeps user code from it.
    std::net::TcpStream::connect(("127.0.0.1", other.port)).unwrap();
    let api_port = p.address.rsplit(':').next().unwrap().to_string();
    p.ok(&["create", "repo", "in"]);
    p.ok_stdin(&["put", "file", "in@master:/a/x.txt"], b"hello");
    p.ok_stdin(&["put", "file", "in@master:/b.txt"], b"world");
    let spec = serde_json::json!({
        "pipeline": {"name": "reader"},
        "transform": {
            "cmd": ["python3", "-c", SANDBOX_CLIENT],
            "env": {"OTHER_PORTS": format!("{api_port},{}", other.port)},
        },
        "input": {"pfs": {"repo": "in", "glob": "/"}},
    });
    let path = p.dir.path().join("reader.json");
    std::fs::write(&path, spec.to_string()).unwrap();
    p.ok(&["create", "pipeline", "-f", path.to_str().unwrap()]);
    p.ok(&["flush", "commit", "in@master"]);
    let logs = p.run(&["logs", "--pipeline", "reader"]);
    let read = p.run(&["get", "file", "reader@master:/read"]);
    assert!(
        read.status.success(),
        "the job wrote nothing; its logs:\n{}",
        String::from_utf8_lossy(&logs.stdout)
    );
    assert_eq!(
        String::from_utf8_lossy(&read.stdout),
        "a/x.txt=hello\nb.txt=world\n"
    );
    assert_eq!(
        p.ok(&["get", "file", "reader@master:/ports"]),
        format!("{api_port} unreachable\n{} unreachable\n", other.port)
    );
}

/// With outbound network (slirp4netns, the host's loopback refused), user
/// code still reaches the gateway in its sandbox.
#[test]
fn user_code_with_outbound_network_reaches_the_gateway() {
    let g = Gateway::start_with(&["--datum-network", "outbound"]);
    let p = &g.pachd;
    p.ok(&["create", "repo", "in"]);
    p.ok_stdin(&["put", "file", "in@master:/x"], b"outbound");
    let spec = serde_json::json!({
        "pipeline": {"name": "fetch"},
        "transform": {"cmd": ["sh", "-c", "curl -sf \"$S3_ENDPOINT/$in_COMMIT.in/x\" > /pfs/out/x"]},
        "input": {"pfs": {"repo": "in", "glob": "/"}},
    });
    let path = p.dir.path().join("fetch.json");
    std::fs::write(&path, spec.to_string()).unwrap();
    p.ok(&["create", "pipeline", "-f", path.to_str().unwrap()]);
    p.ok(&["flush", "commit", "in@master"]);
    assert_eq!(p.ok(&["get", "file", "fetch@master:/x"]), "outbound");
}
