//! Access control through the real pachd and pachctl: enterprise and auth
//! activation, sessions kept in the config, one-time passwords, the scope
//! table of every RPC family (each scope, no token, expired and revoked
//! tokens), admin-only calls, and no token ever written in clear.

use std::path::PathBuf;
use std::process::Output;

use pach_e2e::Pachd;

/// A user of the cluster: a config of their own holding their session.
struct User<'a> {
    pachd: &'a Pachd,
    config: PathBuf,
}

impl<'a> User<'a> {
    fn new(pachd: &'a Pachd, dir: &tempfile::TempDir, name: &str, token: &str) -> Self {
        let config = dir.path().join(format!("{name}.json"));
        let u = User { pachd, config };
        if !token.is_empty() {
            u.ok_stdin(&["auth", "use-auth-token"], token);
        }
        u
    }

    fn run(&self, args: &[&str]) -> Output {
        self.pachd
            .pachctl_cmd(args)
            .env("PACH_CONFIG", &self.config)
            .output()
            .expect("run pachctl")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "pachctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "pachctl {args:?} should have failed but printed {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn ok_stdin(&self, args: &[&str], input: &str) -> String {
        use std::io::Write;
        use std::process::Stdio;
        let mut child = self
            .pachd
            .pachctl_cmd(args)
            .env("PACH_CONFIG", &self.config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pachctl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{input}\n").as_bytes())
            .expect("write stdin");
        let out = child.wait_with_output().expect("pachctl output");
        assert!(
            out.status.success(),
            "pachctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// Asserts a refusal for lack of `scope` on `repo`, by `subject`.
    fn denied(&self, args: &[&str], subject: &str, repo: &str, scope: &str) {
        let err = self.fails(args);
        let want = format!(
            "{subject} is not authorized to perform this operation on the repo {repo}, must have at least {scope} access"
        );
        assert!(
            err.contains(&want),
            "pachctl {args:?}: wanted {want:?}, got {err}"
        );
    }

    /// Asserts a refusal of an admin-only call.
    fn admin_only(&self, args: &[&str], subject: &str) {
        let err = self.fails(args);
        assert!(
            err.contains(&format!(
                "{subject} is not authorized to perform this operation; must be an admin to call"
            )),
            "pachctl {args:?}: {err}"
        );
    }
}

/// A cluster with auth active and `robot:admin` as admin; the admin's token.
fn activated(p: &Pachd) -> String {
    assert!(
        p.ok(&["enterprise", "get-state"])
            .contains("No Pachyderm Enterprise token was found")
    );
    let err = p.fails(&["auth", "activate", "--initial-admin", "robot:admin"]);
    assert!(err.contains("Pachyderm Enterprise is not active"), "{err}");
    p.ok(&["enterprise", "activate", "any-code"]);
    assert!(p.ok(&["enterprise", "get-state"]).contains("state: ACTIVE"));
    let err = p.fails(&["auth", "activate"]);
    assert!(err.contains("--initial-admin robot:NAME"), "{err}");
    let out = p.ok(&["auth", "activate", "--initial-admin", "robot:admin"]);
    assert!(out.contains("DO NOT LOSE THE ROBOT TOKEN"), "{out}");
    let token = out.lines().last().expect("token line").trim().to_string();
    assert_eq!(token.len(), 32, "{out}");
    token
}

fn token_of(out: &str) -> String {
    out.trim().to_string()
}

#[test]
fn sessions_tokens_and_one_time_passwords() {
    let p = Pachd::start();
    let dir = tempfile::tempdir().unwrap();
    let admin_token = activated(&p);
    // pachctl keeps the admin's session in its context, in a private file.
    let config = p.data_dir().parent().unwrap().join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("\"session_token\""), "{text}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&config).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let me = p.ok(&["auth", "whoami"]);
    assert!(
        me.contains("You are \"robot:admin\"") && me.contains("administrator"),
        "{me}"
    );
    assert_eq!(p.ok(&["auth", "list-admins"]).trim(), "robot:admin");
    let err = p.fails(&["auth", "activate", "--initial-admin", "robot:again"]);
    assert!(err.contains("already activated"), "{err}");

    // A robot's token, handed over with use-auth-token.
    let alice_token = token_of(&p.ok(&["auth", "get-auth-token", "-q", "robot:alice"]));
    let alice = User::new(&p, &dir, "alice", &alice_token);
    let me = alice.ok(&["auth", "whoami"]);
    assert!(
        me.contains("robot:alice") && !me.contains("administrator"),
        "{me}"
    );
    alice.admin_only(&["auth", "get-auth-token", "robot:admin"], "robot:alice");
    alice.admin_only(
        &["auth", "modify-admins", "--add", "robot:alice"],
        "robot:alice",
    );

    // A one-time password, once.
    let otp = token_of(&p.ok(&["auth", "get-otp", "robot:bob"]));
    assert!(otp.starts_with("otp/"), "{otp}");
    let bob = User::new(&p, &dir, "bob", "");
    bob.ok_stdin(&["auth", "login", "-o"], &otp);
    assert!(bob.ok(&["auth", "whoami"]).contains("robot:bob"));
    assert!(bob.ok(&["auth", "whoami"]).contains("session expires"));
    let again = User::new(&p, &dir, "bob2", "");
    let out = again
        .pachd
        .pachctl_cmd(&["auth", "login", "-o"])
        .env("PACH_CONFIG", &again.config)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(format!("{otp}\n").as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("otp is invalid or has expired"));
    let err = bob.fails(&["auth", "login"]);
    assert!(err.contains("one-time password"), "{err}");
    bob.ok(&["auth", "logout"]);
    let err = bob.fails(&["auth", "whoami"]);
    assert!(err.contains("no authentication token"), "{err}");

    // Admins add admins; the last one cannot go.
    p.ok(&["auth", "modify-admins", "--add", "robot:alice"]);
    assert!(alice.ok(&["auth", "whoami"]).contains("administrator"));
    p.ok(&["auth", "modify-admins", "--remove", "robot:alice"]);
    let err = p.fails(&["auth", "modify-admins", "--remove", "robot:admin"]);
    assert!(
        err.contains("cannot remove all cluster administrators"),
        "{err}"
    );

    // The configuration round-trips; a stale version is refused.
    let config = p.ok(&["auth", "get-config"]);
    assert!(config.contains("\"live_config_version\""), "{config}");
    p.ok_stdin(&["auth", "set-config"], config.as_bytes());
    let err = p
        .pachctl_cmd(&["auth", "set-config"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(config.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        String::from_utf8_lossy(&err.stderr)
            .contains("expected config version 1, but live config has version 2")
    );

    // Deactivation asks first, then forgets every token.
    let admin = User::new(&p, &dir, "admin", &admin_token);
    let err = admin.fails(&["auth", "deactivate"]);
    assert!(err.contains("operation aborted"), "{err}");
    let err = p.fails(&["enterprise", "deactivate"]);
    assert!(err.contains("deactivate it first"), "{err}");
    admin.ok_stdin(&["auth", "deactivate"], "y");
    let err = admin.fails(&["auth", "whoami"]);
    assert!(err.contains("not activated"), "{err}");
    // Without auth everything answers again, token or none.
    alice.ok(&["create", "repo", "open"]);
    p.ok(&["enterprise", "deactivate"]);
}

#[test]
fn scope_table_for_every_family() {
    let p = Pachd::start();
    let dir = tempfile::tempdir().unwrap();
    activated(&p);
    let token = |who: &str| token_of(&p.ok(&["auth", "get-auth-token", "-q", who]));
    let alice = User::new(&p, &dir, "alice", &token("robot:alice"));
    let nobody = User::new(&p, &dir, "nobody", "");

    // Without a token: refused, but version answers.
    nobody.ok(&["version"]);
    let err = nobody.fails(&["list", "repo"]);
    assert!(err.contains("no authentication token"), "{err}");
    let err = nobody.fails(&["create", "repo", "x"]);
    assert!(err.contains("no authentication token"), "{err}");

    // The admin's repo: alice has NONE.
    p.ok(&["create", "repo", "data"]);
    p.ok_stdin(&["put", "file", "data@master:/a"], b"hello");
    assert_eq!(p.ok(&["auth", "get", "data"]).trim(), "robot:admin: OWNER");
    assert_eq!(
        alice.ok(&["auth", "check", "reader", "data"]).trim(),
        "false"
    );
    alice.denied(
        &["inspect", "repo", "data"],
        "robot:alice",
        "data",
        "READER",
    );
    alice.denied(
        &["get", "file", "data@master:/a"],
        "robot:alice",
        "data",
        "READER",
    );
    alice.denied(&["list", "commit", "data"], "robot:alice", "data", "READER");
    alice.denied(&["list", "branch", "data"], "robot:alice", "data", "READER");
    alice.denied(
        &["auth", "set", "robot:alice", "owner", "data"],
        "robot:alice",
        "data",
        "OWNER",
    );
    // Listing repos needs only a session (as 1.9).
    assert!(alice.ok(&["list", "repo"]).contains("data"));

    // READER: reads, but no writes; nothing is changed by a refusal.
    p.ok(&["auth", "set", "robot:alice", "reader", "data"]);
    assert_eq!(
        alice.ok(&["auth", "check", "reader", "data"]).trim(),
        "true"
    );
    assert_eq!(
        alice.ok(&["auth", "get", "robot:alice", "data"]).trim(),
        "READER"
    );
    assert_eq!(alice.ok(&["get", "file", "data@master:/a"]), "hello");
    let info: serde_json::Value =
        serde_json::from_str(&alice.ok(&["inspect", "repo", "data", "--raw"])).unwrap();
    assert_eq!(info["authInfo"]["accessLevel"], "READER", "{info}");
    alice.denied(
        &["start", "commit", "data@master"],
        "robot:alice",
        "data",
        "WRITER",
    );
    alice.denied(
        &["delete", "file", "data@master:/a"],
        "robot:alice",
        "data",
        "WRITER",
    );
    alice.denied(
        &["create", "branch", "data@dev"],
        "robot:alice",
        "data",
        "WRITER",
    );
    let out = alice.run(&["put", "file", "data@master:/b"]);
    assert!(!out.status.success());
    assert_eq!(
        p.ok(&["list", "commit", "data"]).lines().count(),
        2,
        "a refused write made a commit"
    );
    alice.denied(&["delete", "repo", "data"], "robot:alice", "data", "OWNER");

    // WRITER: writes, but neither ACLs nor deletion.
    p.ok(&["auth", "set", "robot:alice", "writer", "data"]);
    alice.ok_stdin(&["put", "file", "data@master:/b"], "b");
    alice.ok(&["create", "branch", "data@dev", "--head", "master"]);
    alice.denied(&["delete", "repo", "data"], "robot:alice", "data", "OWNER");
    alice.denied(
        &["auth", "set", "robot:bob", "reader", "data"],
        "robot:alice",
        "data",
        "OWNER",
    );

    // OWNER: ACLs and deletion.
    p.ok(&["auth", "set", "robot:alice", "owner", "data"]);
    alice.ok(&["auth", "set", "robot:bob", "reader", "data"]);
    let acl = p.ok(&["auth", "get", "data"]);
    assert!(
        acl.contains("robot:bob: READER") && acl.contains("robot:alice: OWNER"),
        "{acl}"
    );

    // A repo's creator is its OWNER.
    alice.ok(&["create", "repo", "mine"]);
    assert_eq!(
        alice.ok(&["auth", "get", "mine"]).trim(),
        "robot:alice: OWNER"
    );

    // Pipelines: READER on the inputs; the creator owns the output.
    let bob = User::new(&p, &dir, "bob", &token("robot:bob"));
    let spec = dir.path().join("spec.json");
    std::fs::write(
        &spec,
        r#"{"pipeline":{"name":"copy"},"transform":{"cmd":["sh","-c","cp /pfs/mine/* /pfs/out/"]},
            "input":{"pfs":{"repo":"mine","glob":"/*"}}}"#,
    )
    .unwrap();
    let spec = spec.to_str().unwrap();
    bob.denied(
        &["create", "pipeline", "-f", spec],
        "robot:bob",
        "mine",
        "READER",
    );
    alice.ok(&["auth", "set", "robot:bob", "reader", "mine"]);
    bob.ok(&["create", "pipeline", "-f", spec]);
    let acl = p.ok(&["auth", "get", "copy"]);
    assert!(
        acl.contains("robot:bob: OWNER") && acl.contains("pipeline:copy: WRITER"),
        "{acl}"
    );
    assert!(
        p.ok(&["auth", "get", "mine"])
            .contains("pipeline:copy: READER")
    );
    alice.denied(
        &["stop", "pipeline", "copy"],
        "robot:alice",
        "copy",
        "WRITER",
    );
    alice.denied(
        &["delete", "pipeline", "copy"],
        "robot:alice",
        "copy",
        "OWNER",
    );
    bob.ok(&["stop", "pipeline", "copy"]);
    bob.ok(&["delete", "pipeline", "copy"]);
    // A spec with later releases' fields goes through our extension, with
    // the same row of the table.
    let later = dir.path().join("later.json");
    std::fs::write(
        &later,
        r#"{"pipeline":{"name":"later","project":{"name":"default"}},
            "transform":{"cmd":["sh","-c","true"]},"input":{"pfs":{"repo":"data","glob":"/*"}}}"#,
    )
    .unwrap();
    let later = later.to_str().unwrap();
    let carol = User::new(&p, &dir, "carol", &token("robot:carol"));
    carol.denied(
        &["create", "pipeline", "-f", later],
        "robot:carol",
        "data",
        "READER",
    );
    bob.ok(&["create", "pipeline", "-f", later]);
    assert!(p.ok(&["auth", "get", "later"]).contains("robot:bob: OWNER"));
    bob.ok(&["delete", "pipeline", "later"]);

    // Admin-only calls.
    for args in [
        &["garbage-collect"][..],
        &["pause", "writes"],
        &["fsck"],
        &["delete", "all"],
        &["debug", "dump"],
        &["extract"],
    ] {
        alice.admin_only(args, "robot:alice");
    }
    p.ok(&["fsck"]);

    // An expired token and a revoked one are refused like none.
    let brief = User::new(
        &p,
        &dir,
        "brief",
        &token_of(&p.ok(&["auth", "get-auth-token", "-q", "--ttl", "1s", "robot:carol"])),
    );
    let revoked_token = token("robot:dave");
    let revoked = User::new(&p, &dir, "revoked", &revoked_token);
    revoked.ok(&["auth", "whoami"]);
    revoke(&p, &revoked_token);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    for u in [&brief, &revoked] {
        let err = u.fails(&["list", "repo"]);
        assert!(
            err.contains("provided auth token is corrupted or has expired"),
            "{err}"
        );
        let err = u.fails(&["get", "file", "data@master:/a"]);
        assert!(err.contains("has expired"), "{err}");
    }

    // The owner deletes; the ACL goes with the repo.
    alice.ok(&["delete", "repo", "data"]);
    alice.ok(&["create", "repo", "data"]);
    assert_eq!(p.ok(&["auth", "get", "data"]).trim(), "robot:alice: OWNER");
}

/// Revokes `token` as the cluster's admin (pachctl has no command for it,
/// as 1.9's has none: clients call RevokeAuthToken).
fn revoke(p: &Pachd, token: &str) {
    let config =
        std::fs::read_to_string(p.data_dir().parent().unwrap().join("config.json")).unwrap();
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    let admin = config["v2"]["contexts"]["local"]["session_token"]
        .as_str()
        .unwrap()
        .to_string();
    let address = format!("http://{}", p.address);
    let token = token.to_string();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            let mut c = pach_api::auth::api_client::ApiClient::connect(address)
                .await
                .unwrap();
            let mut req = tonic::Request::new(pach_api::auth::RevokeAuthTokenRequest { token });
            req.metadata_mut()
                .insert("authn-token", admin.parse().unwrap());
            c.revoke_auth_token(req).await.unwrap();
        });
}

/// Every token and password issued in a session, then a look for each in the
/// data directory, pachd's log and `debug dump`: none is there in clear.
#[test]
fn no_token_is_written_in_clear() {
    let p = Pachd::start();
    let dir = tempfile::tempdir().unwrap();
    let mut secrets = vec![activated(&p)];
    for who in ["robot:alice", "robot:bob"] {
        secrets.push(token_of(&p.ok(&["auth", "get-auth-token", "-q", who])));
    }
    let otp = token_of(&p.ok(&["auth", "get-otp", "robot:carol"]));
    let carol = User::new(&p, &dir, "carol", "");
    carol.ok_stdin(&["auth", "login", "-o"], &otp);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&carol.config).unwrap()).unwrap();
    secrets.push(
        config["v2"]["contexts"]["local"]["session_token"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    secrets.push(otp);
    let unused_otp = token_of(&p.ok(&["auth", "get-otp", "robot:dan"]));
    secrets.push(unused_otp);
    p.ok(&["create", "repo", "r"]);
    let alice = User::new(&p, &dir, "alice", &secrets[1]);
    alice.fails(&["inspect", "repo", "r"]);
    let dump = p.ok_bytes(&["debug", "dump"]);

    let mut haystacks: Vec<(String, Vec<u8>)> = vec![
        ("debug dump".into(), dump),
        ("pachd's log".into(), p.stderr().into_bytes()),
    ];
    let mut stack = vec![p.data_dir()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                haystacks.push((
                    e.path().display().to_string(),
                    std::fs::read(e.path()).unwrap(),
                ));
            }
        }
    }
    assert!(haystacks.len() > 2, "the data directory has files");
    for secret in &secrets {
        assert!(secret.len() >= 32, "{secret}");
        for (name, bytes) in &haystacks {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{name} holds a token in clear"
            );
        }
    }
}

/// Who may do what moves with the data: extract carries ACLs, admins and
/// token hashes; a cluster restored from it answers the same tokens.
#[test]
fn extract_and_restore_keep_access_control() {
    let a = Pachd::start();
    let dir = tempfile::tempdir().unwrap();
    let admin_token = activated(&a);
    let alice_token = token_of(&a.ok(&["auth", "get-auth-token", "-q", "robot:alice"]));
    a.ok(&["create", "repo", "data"]);
    a.ok_stdin(&["put", "file", "data@master:/a"], b"hello");
    a.ok(&["auth", "set", "robot:alice", "reader", "data"]);
    let stream = a.ok_bytes(&["extract"]);
    for secret in [&admin_token, &alice_token] {
        assert!(
            !stream.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a token in clear in the extract"
        );
    }
    let file = dir.path().join("stream");
    std::fs::write(&file, &stream).unwrap();

    let b = Pachd::start();
    b.ok_from_file(&["restore"], &file);
    let alice = User::new(&b, &dir, "alice", &alice_token);
    assert_eq!(alice.ok(&["get", "file", "data@master:/a"]), "hello");
    alice.denied(
        &["put", "file", "data@master:/b"],
        "robot:alice",
        "data",
        "WRITER",
    );
    let admin = User::new(&b, &dir, "admin", &admin_token);
    assert!(admin.ok(&["auth", "whoami"]).contains("administrator"));
    assert_eq!(admin.ok(&["auth", "get", "data"]).lines().count(), 2);
    let nobody = User::new(&b, &dir, "nobody", "");
    assert!(
        nobody
            .fails(&["list", "repo"])
            .contains("no authentication token")
    );

    // Restoring the same stream again is harmless (identical records).
    let out = b
        .pachctl_cmd(&["restore"])
        .env("PACH_CONFIG", &admin.config)
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Into a cluster with access control of its own, it merges: both
    // clusters' admins and tokens hold there.
    let c = Pachd::start();
    activated(&c);
    c.ok_from_file(&["restore"], &file);
    assert!(c.ok(&["auth", "whoami"]).contains("administrator"));
    let alice = User::new(&c, &dir, "alice-c", &alice_token);
    assert_eq!(alice.ok(&["get", "file", "data@master:/a"]), "hello");
}

/// The S3 gateway with auth active: the access key and the secret key are
/// both a token, the signature is verified with it, and each repo needs the
/// scope a gRPC call would.
#[test]
fn s3_gateway_takes_tokens_as_access_keys() {
    let port = pach_e2e::reserve_port();
    let address = format!("127.0.0.1:{}", port.port);
    let p = Pachd::start_with(&["--s3gateway-address", &address]);
    let admin_token = activated(&p);
    let alice_token = token_of(&p.ok(&["auth", "get-auth-token", "-q", "robot:alice"]));
    p.ok(&["create", "repo", "data"]);
    p.ok_stdin(&["put", "file", "data@master:/a"], b"hello");
    let aws_args = |key: &str, secret: &str, args: &[&str]| {
        std::process::Command::new("aws")
            .args(["--endpoint-url", &format!("http://{address}")])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .output()
            .expect("run aws")
    };
    let aws = |key: &str, secret: &str| aws_args(key, secret, &["s3", "ls", "s3://master.data/"]);
    let refused = |out: std::process::Output, code: &str| {
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success() && err.contains(code), "{code}: {err}");
    };
    let out = aws(&admin_token, &admin_token);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(" a"));
    // Alice's token is good, but she may not read the repo yet.
    refused(aws(&alice_token, &alice_token), "AccessDenied");
    refused(aws("not-a-token", "not-a-token"), "InvalidAccessKeyId");
    refused(aws(&admin_token, "another-secret"), "SignatureDoesNotMatch");
    p.ok(&["auth", "set", "robot:alice", "reader", "data"]);
    let out = aws(&alice_token, &alice_token);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(" a"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Uploads over plain HTTP carry the body's signed SHA-256: the admin's
    // is written; a reader's, and one signed with another secret, are
    // refused and write nothing.
    let dir = tempfile::tempdir().unwrap();
    let upload = dir.path().join("up.bin");
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&upload, &content).unwrap();
    let cp = |key: &str, secret: &str, to: &str| {
        aws_args(key, secret, &["s3", "cp", upload.to_str().unwrap(), to])
    };
    let out = cp(&admin_token, &admin_token, "s3://master.data/up.bin");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(p.ok_bytes(&["get", "file", "data@master:/up.bin"]), content);
    let to = "s3://master.data/refused.bin";
    refused(cp(&alice_token, &alice_token, to), "AccessDenied");
    refused(
        cp(&admin_token, "another-secret", to),
        "SignatureDoesNotMatch",
    );
    assert!(
        !p.ok(&["list", "file", "data@master"])
            .contains("refused.bin")
    );
    let anonymous = std::process::Command::new("curl")
        .args(["-s", &format!("http://{address}/master.data/a")])
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&anonymous.stdout);
    assert!(
        body.contains("AccessDenied") && body.contains("no authentication token"),
        "{body}"
    );
}

/// A repo made in a batch of transaction requests belongs to its creator
/// too; a batch holding a request beyond the caller's scope changes nothing.
#[test]
fn batched_requests_are_checked_and_created_repos_owned() {
    use pach_api::{pfs, transaction as txn};
    let p = Pachd::start();
    let dir = tempfile::tempdir().unwrap();
    activated(&p);
    p.ok(&["create", "repo", "theirs"]);
    let token = token_of(&p.ok(&["auth", "get-auth-token", "-q", "robot:alice"]));
    let alice = User::new(&p, &dir, "alice", &token);
    let batch = |repos: &[(&str, bool)]| txn::BatchTransactionRequest {
        requests: repos
            .iter()
            .map(|(name, delete)| {
                let repo = Some(pfs::Repo {
                    name: name.to_string(),
                });
                if *delete {
                    txn::TransactionRequest {
                        delete_repo: Some(pfs::DeleteRepoRequest {
                            repo,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }
                } else {
                    txn::TransactionRequest {
                        create_repo: Some(pfs::CreateRepoRequest {
                            repo,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }
                }
            })
            .collect(),
    };
    let address = format!("http://{}", p.address);
    let run = |b: txn::BatchTransactionRequest| {
        let (address, token) = (address.clone(), token.clone());
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async move {
                let mut c = txn::api_client::ApiClient::connect(address).await.unwrap();
                let mut req = tonic::Request::new(b);
                req.metadata_mut()
                    .insert("authn-token", token.parse().unwrap());
                c.batch_transaction(req).await.map(|_| ())
            })
    };
    let refused = run(batch(&[("new1", false), ("theirs", true)])).unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert!(
        refused
            .message()
            .contains("on the repo theirs, must have at least OWNER"),
        "{refused:?}"
    );
    assert!(p.fails(&["inspect", "repo", "new1"]).contains("not found"));
    run(batch(&[("new1", false), ("new2", false)])).unwrap();
    for repo in ["new1", "new2"] {
        assert_eq!(
            alice.ok(&["auth", "get", repo]).trim(),
            "robot:alice: OWNER"
        );
    }
}

/// With auth active, user code reaches the S3 gateway in its sandbox as its
/// pipeline, `pipeline:NAME`, without a token: it reads its input repo
/// (READER, granted when the pipeline was created) and is refused a repo
/// the pipeline was given no access to.
#[test]
fn user_code_uses_the_gateway_as_its_pipeline() {
    let port = pach_e2e::reserve_port();
    let address = format!("127.0.0.1:{}", port.port);
    let p = Pachd::start_with(&["--s3gateway-address", &address]);
    activated(&p);
    p.ok(&["create", "repo", "in"]);
    p.ok_stdin(&["put", "file", "in@master:/x"], b"mine");
    p.ok(&["create", "repo", "private"]);
    p.ok_stdin(&["put", "file", "private@master:/y"], b"not mine");
    let script = r#"
get() { curl -s -o "/pfs/out/$1.body" -w '%{http_code}' "$S3_ENDPOINT/master.$1/$2"; }
echo "in $(get in x) private $(get private y)" > /pfs/out/codes
"#;
    let spec = serde_json::json!({
        "pipeline": {"name": "reader"},
        "transform": {"cmd": ["sh", "-c", script]},
        "input": {"pfs": {"repo": "in", "glob": "/"}},
    });
    let path = p.dir.path().join("reader.json");
    std::fs::write(&path, spec.to_string()).unwrap();
    p.ok(&["create", "pipeline", "-f", path.to_str().unwrap()]);
    p.ok(&["flush", "commit", "in@master"]);
    assert_eq!(
        p.ok(&["get", "file", "reader@master:/codes"]),
        "in 200 private 403\n"
    );
    assert_eq!(p.ok(&["get", "file", "reader@master:/in.body"]), "mine");
    let refusal = p.ok(&["get", "file", "reader@master:/private.body"]);
    assert!(
        refusal.contains("AccessDenied") && refusal.contains("pipeline:reader"),
        "{refusal}"
    );
}

/// The jobs of `pipeline`, newest first.
fn jobs(p: &Pachd, pipeline: &str) -> Vec<serde_json::Value> {
    p.raw(&["list", "job", "-p", pipeline])
}

/// Creates pipeline NAME copying every file of repo `in` to its output.
fn create_copy_pipeline(p: &Pachd, dir: &std::path::Path, name: &str) {
    let spec = dir.join(format!("{name}.json"));
    std::fs::write(
        &spec,
        serde_json::json!({
            "pipeline": {"name": name},
            "transform": {"cmd": ["sh", "-c", "cp /pfs/in/* /pfs/out/"]},
            "input": {"pfs": {"repo": "in", "glob": "/*"}},
        })
        .to_string(),
    )
    .unwrap();
    p.ok(&["create", "pipeline", "-f", spec.to_str().unwrap()]);
}

/// A pipeline acts as `pipeline:NAME`: once an owner takes its READER away
/// from an input, its next job fails saying so and writes nothing; given
/// back, the next job runs. A pipeline made before activation gets its
/// access with it.
#[test]
fn a_pipeline_reads_and_writes_as_itself() {
    let p = Pachd::start();
    let dir = tempfile::tempdir().unwrap();
    p.ok(&["create", "repo", "in"]);
    p.ok_stdin(&["put", "file", "in@master:/a"], b"a\n");
    create_copy_pipeline(&p, dir.path(), "copy");
    p.ok(&["flush", "commit", "in@master"]);
    activated(&p);
    assert_eq!(p.ok(&["auth", "get", "in"]).trim(), "pipeline:copy: READER");
    assert_eq!(
        p.ok(&["auth", "get", "copy"]).trim(),
        "pipeline:copy: WRITER"
    );
    // A pipeline created with auth active runs its first job at once.
    create_copy_pipeline(&p, dir.path(), "again");
    p.ok(&["flush", "commit", "in@master"]);
    let job = &jobs(&p, "again")[0];
    assert_eq!(job["state"], "JOB_SUCCESS", "{job}");
    p.ok(&["delete", "pipeline", "again"]);
    let job = &jobs(&p, "copy")[0];
    assert_eq!(job["state"], "JOB_SUCCESS", "{job}");
    assert_eq!(p.ok(&["get", "file", "copy@master:/a"]), "a\n");

    // The owner of the input takes the pipeline's access away.
    p.ok(&["auth", "set", "pipeline:copy", "none", "in"]);
    p.ok_stdin(&["put", "file", "in@master:/b"], b"b\n");
    p.ok(&["flush", "commit", "in@master"]);
    let job = &jobs(&p, "copy")[0];
    assert_eq!(job["state"], "JOB_FAILURE", "{job}");
    let reason = job["reason"].as_str().unwrap();
    assert!(
        reason.contains(
            "pipeline:copy is not authorized to perform this operation on the repo in, must have at least READER access"
        ),
        "{reason}"
    );
    let files = p.raw(&["list", "file", "copy@master:/"]);
    assert_eq!(files.len(), 1, "the failed job wrote {files:?}");

    // Its WRITER on its own output, likewise.
    p.ok(&["auth", "set", "pipeline:copy", "reader", "in"]);
    p.ok(&["auth", "set", "pipeline:copy", "reader", "copy"]);
    p.ok_stdin(&["put", "file", "in@master:/c"], b"c\n");
    p.ok(&["flush", "commit", "in@master"]);
    let job = &jobs(&p, "copy")[0];
    assert_eq!(job["state"], "JOB_FAILURE", "{job}");
    assert!(
        job["reason"].as_str().unwrap().contains(
            "pipeline:copy is not authorized to perform this operation on the repo copy, must have at least WRITER access"
        ),
        "{job}"
    );
    assert_eq!(p.raw(&["list", "file", "copy@master:/"]).len(), 1);

    // Access given back: the next job runs and writes.
    p.ok(&["auth", "set", "pipeline:copy", "writer", "copy"]);
    p.ok_stdin(&["put", "file", "in@master:/d"], b"d\n");
    p.ok(&["flush", "commit", "in@master"]);
    let job = &jobs(&p, "copy")[0];
    assert_eq!(job["state"], "JOB_SUCCESS", "{job}");
    assert_eq!(p.raw(&["list", "file", "copy@master:/"]).len(), 4);
    assert_eq!(p.ok(&["get", "file", "copy@master:/b"]), "b\n");
}

/// Runs `ok` until it holds, for at most the bound within which a change
/// made through one pachd is enforced by the others (`pach_auth::MAX_AGE`,
/// one second, plus a pachctl round trip); says how long it took.
fn enforced_within_bound(what: &str, mut ok: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(3),
            "{what}: not enforced by the other pachd within the bound"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    eprintln!("{what}: enforced after {:?}", start.elapsed());
}

/// Cluster mode: two pachds on one etcd. Auth activated through one is
/// enforced by the other; a token made through one works on the other; a
/// revocation or an ACL change through one is enforced by the other.
#[test]
fn replicas_on_one_etcd_enforce_each_others_changes() {
    let etcd = pach_e2e::Etcd::start();
    let bucket = tempfile::tempdir().unwrap();
    let metadata = format!("etcd://{}/auth", etcd.address);
    let storage = format!("file://{}", bucket.path().display());
    let args = ["--metadata", &metadata, "--storage", &storage];
    let a = Pachd::start_with(&args);
    let b = Pachd::start_with(&args);
    let dir = tempfile::tempdir().unwrap();
    // Each pachd's cache is warm before the change: auth is off on both.
    b.ok(&["list", "repo"]);
    activated(&a);
    enforced_within_bound("activation", || !b.run(&["list", "repo"]).status.success());
    assert!(
        b.fails(&["list", "repo"])
            .contains("no authentication token"),
        "{}",
        b.fails(&["list", "repo"])
    );

    let token = |subject: &str| token_of(&a.ok(&["auth", "get-auth-token", "-q", subject]));
    let alice_token = token("robot:alice");
    let alice = User::new(&b, &dir, "alice", &alice_token);
    alice.ok(&["create", "repo", "shared"]);
    alice.ok_stdin(&["put", "file", "shared@master:/f"], "x");
    let bob = User::new(&b, &dir, "bob", &token("robot:bob"));
    bob.denied(
        &["get", "file", "shared@master:/f"],
        "robot:bob",
        "shared",
        "READER",
    );
    // ACL changes through a, enforced by b.
    a.ok(&["auth", "set", "robot:bob", "reader", "shared"]);
    enforced_within_bound("a new ACL entry", || {
        bob.run(&["get", "file", "shared@master:/f"])
            .status
            .success()
    });
    a.ok(&["auth", "set", "robot:bob", "none", "shared"]);
    enforced_within_bound("a removed ACL entry", || {
        !bob.run(&["get", "file", "shared@master:/f"])
            .status
            .success()
    });
    bob.denied(
        &["get", "file", "shared@master:/f"],
        "robot:bob",
        "shared",
        "READER",
    );
    // A revocation through a, enforced by b.
    alice.ok(&["list", "repo"]);
    revoke(&a, &alice_token);
    enforced_within_bound("a revoked token", || {
        !alice.run(&["list", "repo"]).status.success()
    });
    let err = alice.fails(&["list", "repo"]);
    assert!(err.contains("corrupted or has expired"), "{err}");
}

/// A spout writes as `pipeline:NAME` too: without WRITER on its output its
/// archives are not committed (pachd's log says why) until it is given back.
#[test]
fn a_spout_writes_only_while_it_may() {
    let p = Pachd::start();
    let dir = tempfile::tempdir().unwrap();
    activated(&p);
    let spec = dir.path().join("ticker.json");
    std::fs::write(
        &spec,
        r#"{"pipeline":{"name":"ticker"},"spout":{},
            "transform":{"cmd":["/bin/sh"],"stdin":[
              "cd /tmp",
              "while [ : ]; do sleep 0.2; date +%s%N > tick; tar -cf /pfs/out ./tick; done"]}}"#,
    )
    .unwrap();
    p.ok(&["create", "pipeline", "-f", spec.to_str().unwrap()]);
    let commits = || p.raw(&["list", "commit", "ticker"]).len();
    let wait_for = |what: &str, ok: &dyn Fn() -> bool| {
        let start = std::time::Instant::now();
        while !ok() {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(60),
                "timed out waiting for {what}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    wait_for("the spout's first commits", &|| commits() >= 2);

    p.ok(&["auth", "set", "pipeline:ticker", "none", "ticker"]);
    // One archive past its check when the access went may still land.
    let before = commits() + 1;
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(commits() <= before, "the spout kept writing");
    assert!(
        p.stderr().contains(
            "pipeline:ticker is not authorized to perform this operation on the repo ticker, must have at least WRITER access"
        ),
        "{}",
        p.stderr()
    );

    p.ok(&["auth", "set", "pipeline:ticker", "writer", "ticker"]);
    let now = commits();
    wait_for("the spout's commits once it may write again", &|| {
        commits() > now
    });
}

/// Pipelines a restore of Pachyderm's own extract creates in a cluster with
/// auth active get their access as they are created (the stream carries no
/// ACL): their jobs run.
#[test]
fn pipelines_restored_from_pachyderms_extract_run_under_auth() {
    let p = Pachd::start();
    activated(&p);
    let golden =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/pachyderm-1.7/sort.metadata");
    p.ok_from_file(&["restore"], &golden);
    p.ok(&["flush", "commit", "left@master"]);
    let jobs = p.raw(&["list", "job"]);
    assert!(!jobs.is_empty());
    for job in &jobs {
        assert_eq!(job["state"], "JOB_SUCCESS", "{job}");
    }
    for pipeline in p.raw(&["list", "pipeline"]) {
        let name = pipeline["pipeline"]["name"].as_str().unwrap();
        assert!(
            p.ok(&["auth", "get", name])
                .contains(&format!("pipeline:{name}: WRITER")),
            "{name}"
        );
    }
}
