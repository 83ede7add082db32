//! TLS end to end: pachd serving gRPC and the S3 gateway over TLS with
//! certificates the tests make with the openssl CLI, reached by pachctl
//! (PACHD_ADDRESS and contexts), python-pachyderm 3.1.0 and curl; wrong CAs,
//! plaintext/TLS mismatches both ways and bad certificate files refused with
//! messages that say what to change; certificates reloaded when their files
//! change.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use pach_e2e::{Pachd, bin, reserve_port};

/// A private CA and a server certificate it signed, for localhost and
/// 127.0.0.1.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the openssl command is needed by these tests (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA named `name` in `dir` and a server certificate it issued for
/// localhost and 127.0.0.1.
fn new_pki(dir: &Path, name: &str) -> Pki {
    new_pki_for(dir, name, "DNS:localhost,IP:127.0.0.1")
}

/// A CA named `name` in `dir` and a server certificate it issued for the
/// subject alternative names `names`.
fn new_pki_for(dir: &Path, name: &str, names: &str) -> Pki {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let (ca_key, ca) = (format!("{name}-ca.key"), format!("{name}-ca.crt"));
    let (key, csr, cert) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
    );
    let subject = format!("/CN={name} test CA");
    let mut args = vec!["req", "-x509"];
    args.extend(ec);
    args.extend([
        "-days", "2", "-subj", &subject, "-keyout", &ca_key, "-out", &ca,
    ]);
    args.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
    args.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    openssl(dir, &args);
    let mut args = vec!["req"];
    args.extend(ec);
    args.extend(["-subj", "/CN=localhost", "-keyout", &key, "-out", &csr]);
    openssl(dir, &args);
    let ext = format!("{name}.ext");
    std::fs::write(
        dir.join(&ext),
        format!(
            "subjectAltName={names}\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        ),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ],
    );
    Pki {
        ca: dir.join(ca),
        cert: dir.join(cert),
        key: dir.join(key),
    }
}

fn tls_pachd(pki: &Pki, extra: &[&str]) -> Pachd {
    let cert = pki.cert.display().to_string();
    let key = pki.key.display().to_string();
    let mut args = vec!["--tls-cert", &cert, "--tls-key", &key];
    args.extend(extra);
    Pachd::start_with(&args)
}

/// pachctl against `address`, trusting `ca` (PACHD_SERVER_CAS) when given.
fn pachctl(p: &Pachd, address: &str, ca: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = p.pachctl_cmd(args);
    cmd.env("PACHD_ADDRESS", address);
    match ca {
        Some(ca) => cmd.env("PACHD_SERVER_CAS", ca),
        None => cmd.env_remove("PACHD_SERVER_CAS"),
    };
    cmd.output().expect("run pachctl")
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(out: Output, what: &str) -> String {
    assert!(
        !out.status.success(),
        "{what} should have failed but printed {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn port_of(p: &Pachd) -> &str {
    p.address.rsplit(':').next().unwrap()
}

#[test]
fn pachctl_over_grpcs_with_the_right_ca() {
    let certs = tempfile::tempdir().unwrap();
    let pki = new_pki(certs.path(), "good");
    let p = tls_pachd(&pki, &[]);
    let grpcs = format!("grpcs://{}", p.address);

    ok(
        pachctl(&p, &grpcs, Some(&pki.ca), &["create", "repo", "images"]),
        "create repo",
    );
    let mut put = p.pachctl_cmd(&["put", "file", "images@master:/a.txt"]);
    put.env("PACHD_ADDRESS", &grpcs)
        .env("PACHD_SERVER_CAS", &pki.ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = put.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"over tls\n")
        .unwrap();
    ok(child.wait_with_output().unwrap(), "put file");
    let got = ok(
        pachctl(
            &p,
            &grpcs,
            Some(&pki.ca),
            &["get", "file", "images@master:/a.txt"],
        ),
        "get file",
    );
    assert_eq!(got, "over tls\n");

    // The name in the certificate works as well as its IP address.
    let by_name = format!("grpcs://localhost:{}", port_of(&p));
    let repos = ok(
        pachctl(&p, &by_name, Some(&pki.ca), &["list", "repo"]),
        "list repo",
    );
    assert!(repos.contains("images"), "{repos}");

    // A context with Pachyderm's fields: pachd_address grpcs://... and
    // server_cas (base64 PEM), set by `config update context`.
    let mut update = p.pachctl_cmd(&[
        "config",
        "update",
        "context",
        "--pachd-address",
        &grpcs,
        "--server-cas",
        pki.ca.to_str().unwrap(),
    ]);
    update.env_remove("PACHD_ADDRESS");
    ok(update.output().unwrap(), "config update context");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.dir.path().join("config.json")).unwrap()).unwrap();
    let context = &config["v2"]["contexts"]["local"];
    assert_eq!(context["pachd_address"], grpcs.as_str());
    let cas = context["server_cas"].as_str().unwrap();
    assert!(!cas.contains("BEGIN"), "server_cas is base64: {cas}");
    let mut list = p.pachctl_cmd(&["list", "file", "images@master"]);
    list.env_remove("PACHD_ADDRESS");
    let files = ok(list.output().unwrap(), "list file through the context");
    assert!(files.contains("a.txt"), "{files}");
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let certs = tempfile::tempdir().unwrap();
    let good = new_pki(certs.path(), "good");
    let other = new_pki(certs.path(), "other");
    let p = tls_pachd(&good, &[]);
    let grpcs = format!("grpcs://{}", p.address);

    let err = fails(
        pachctl(&p, &grpcs, Some(&other.ca), &["list", "repo"]),
        "list repo with another CA",
    );
    assert!(
        err.contains("not signed by a trusted CA")
            && err.contains("other-ca.crt")
            && err.contains("PACHD_SERVER_CAS=")
            && err.contains("--server-cas"),
        "{err}"
    );
    // Without a CA, the system's roots do not know the private CA either.
    let err = fails(
        pachctl(&p, &grpcs, None, &["list", "repo"]),
        "list repo with the system's roots",
    );
    assert!(
        err.contains("not signed by a trusted CA") && err.contains("system"),
        "{err}"
    );
    // A file that holds no certificate is named.
    let err = fails(
        pachctl(&p, &grpcs, Some(&good.key), &["list", "repo"]),
        "list repo with a key as CA",
    );
    assert!(
        err.contains("good.key") && err.contains("no usable CA certificate"),
        "{err}"
    );
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    let certs = tempfile::tempdir().unwrap();
    let elsewhere = new_pki_for(certs.path(), "elsewhere", "DNS:pachd.example.com");
    let p = tls_pachd(&elsewhere, &[]);
    let err = fails(
        pachctl(
            &p,
            &format!("grpcs://{}", p.address),
            Some(&elsewhere.ca),
            &["list", "repo"],
        ),
        "list repo by an address the certificate does not name",
    );
    assert!(
        err.contains("not valid for '127.0.0.1'")
            && err.contains("host name the certificate names"),
        "{err}"
    );
}

#[test]
fn plaintext_and_tls_mismatches_say_what_to_change() {
    let certs = tempfile::tempdir().unwrap();
    let pki = new_pki(certs.path(), "good");
    let tls = tls_pachd(&pki, &[]);
    // A plaintext client on the TLS port: told to use grpcs.
    for address in [tls.address.clone(), format!("grpc://{}", tls.address)] {
        let err = fails(
            pachctl(&tls, &address, None, &["list", "repo"]),
            "plaintext against TLS",
        );
        assert!(
            err.contains("serves gRPC over TLS")
                && err.contains("without TLS")
                && err.contains(&format!("grpcs://{}", tls.address)),
            "{err}"
        );
        assert!(
            !err.contains("h2") && !err.contains("transport error"),
            "{err}"
        );
    }

    // The same from a TLS server that drops plaintext clients without a
    // word (as Pachyderm's pachd does): pachctl finds out by itself.
    let port = reserve_port();
    let mut server = Command::new("openssl")
        .args(["s_server", "-quiet", "-accept"])
        .arg(format!("127.0.0.1:{}", port.port))
        .arg("-cert")
        .arg(&pki.cert)
        .arg("-key")
        .arg(&pki.key)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let other = format!("127.0.0.1:{}", port.port);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&other).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "openssl s_server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let err = fails(
        pachctl(&tls, &other, None, &["version"]),
        "plaintext against a silent TLS server",
    );
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        err.contains("serves gRPC over TLS") && err.contains(&format!("grpcs://{other}")),
        "{err}"
    );

    // A TLS client on a plaintext port: told to drop TLS, or turn it on.
    let plain = Pachd::start();
    let err = fails(
        pachctl(
            &plain,
            &format!("grpcs://{}", plain.address),
            Some(&pki.ca),
            &["list", "repo"],
        ),
        "TLS against plaintext",
    );
    assert!(
        err.contains("does not speak TLS")
            && err.contains(&format!("grpc://{}", plain.address))
            && err.contains("--tls-cert"),
        "{err}"
    );
}

#[test]
fn bad_certificate_files_stop_pachd_before_anything_is_created() {
    let certs = tempfile::tempdir().unwrap();
    let good = new_pki(certs.path(), "good");
    let other = new_pki(certs.path(), "other");
    let half = tempfile::tempdir().unwrap();
    std::fs::copy(&good.cert, half.path().join("tls.crt")).unwrap();
    let missing = certs.path().join("missing.key");
    let (cert, key, other_key, half_dir) = (
        good.cert.to_str().unwrap(),
        good.key.to_str().unwrap(),
        other.key.to_str().unwrap(),
        half.path().to_str().unwrap(),
    );
    let cases: [(&[&str], &[&str]); 5] = [
        (
            &["--tls-cert", cert, "--tls-key", missing.to_str().unwrap()],
            &["missing.key", "private key"],
        ),
        (
            &["--tls-cert", cert, "--tls-key", other_key],
            &["other.key", "does not belong", "good.crt"],
        ),
        (
            &["--tls-cert", key, "--tls-key", key],
            &["good.key", "no PEM certificate"],
        ),
        (&["--tls-cert", cert], &["needs --tls-key"]),
        (&["--tls-dir", half_dir], &["tls.key is not", "--tls-dir"]),
    ];
    for (args, needles) in cases {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let port = reserve_port();
        let out = Command::new(bin("pachd"))
            .arg("--data-dir")
            .arg(&data)
            .args(["--address", &format!("127.0.0.1:{}", port.port)])
            .args(["--s3gateway-address", ""])
            .args(args)
            .env("PACHD_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started");
        for n in needles {
            assert!(err.contains(n), "{args:?}: {n:?} not in {err}");
        }
        assert!(!data.exists(), "{args:?} created the data directory");
    }
}

#[test]
fn pachyderms_certificate_directory_turns_tls_on() {
    let certs = tempfile::tempdir().unwrap();
    let pki = new_pki(certs.path(), "good");
    let mounted = tempfile::tempdir().unwrap();
    std::fs::copy(&pki.cert, mounted.path().join("tls.crt")).unwrap();
    std::fs::copy(&pki.key, mounted.path().join("tls.key")).unwrap();
    let p = Pachd::start_with(&["--tls-dir", mounted.path().to_str().unwrap()]);
    let grpcs = format!("grpcs://{}", p.address);
    let out = ok(
        pachctl(&p, &grpcs, Some(&pki.ca), &["version"]),
        "version over TLS",
    );
    assert!(out.contains("pachd"), "{out}");
    let dump = ok(
        pachctl(&p, &grpcs, Some(&pki.ca), &["debug", "dump"]),
        "debug dump",
    );
    assert!(
        dump.contains("tls.crt"),
        "the dump shows the certificate in use"
    );
}

/// The Python of python-pachyderm 3.1.0's virtualenv, where
/// peer-suites/python-pachyderm-3.1.0/run.sh keeps it ($PYPACH_VENV, else
/// ~/.cache/python-pachyderm-3.1.0), installed as run.sh installs it when
/// missing.
fn python_pachyderm() -> PathBuf {
    let venv = std::env::var_os("PYPACH_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .expect("HOME")
                .join("python-pachyderm-3.1.0")
        });
    let python = venv.join("bin/python");
    if !venv.join("bin/pytest").exists() {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 is needed by this test");
        assert!(made.success(), "python3 -m venv {}", venv.display());
        let installed = Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "python-pachyderm==3.1.0",
                "protobuf<3.21",
            ])
            .args(["certifi", "pytest<9", "pytest-timeout"])
            .status()
            .expect("pip of the new virtualenv");
        assert!(
            installed.success(),
            "installing python-pachyderm 3.1.0 failed"
        );
    }
    python
}

/// Imports python-pachyderm 3.1.0 on Python 3.11+ (its enums are built in a
/// way newer Pythons reject without a class name), then runs a script.
const PYTHON_PRELUDE: &str = r#"
import enum, sys
if not hasattr(enum._EnumDict(), "_cls_name"):
    class _Named(enum._EnumDict):
        def __init__(self):
            super().__init__()
            self._cls_name = None
    enum._EnumDict = _Named
import python_pachyderm
"#;

#[test]
fn python_pachyderm_over_tls() {
    let certs = tempfile::tempdir().unwrap();
    let pki = new_pki(certs.path(), "good");
    let other = new_pki(certs.path(), "other");
    let p = tls_pachd(&pki, &[]);
    let script = format!(
        "{PYTHON_PRELUDE}
host, port, ca = sys.argv[1], int(sys.argv[2]), open(sys.argv[3], 'rb').read()
wrong_ca = open(sys.argv[4], 'rb').read()
c = python_pachyderm.Client(host, port, tls=True, root_certs=ca)
c.create_repo('py')
with c.commit('py', 'master') as commit:
    c.put_file_bytes(commit, '/f.txt', b'from python over tls')
print(b''.join(c.get_file('py/master', '/f.txt')).decode())
print(' '.join(r.repo.name for r in c.list_repo()))
# Without TLS, the client is told what to change.
try:
    python_pachyderm.Client(host, port).list_repo()
    print('plaintext call answered')
except Exception as e:
    print('plaintext refused:', e.details())
# A client trusting another CA does not take pachd's certificate.
try:
    python_pachyderm.Client(host, port, tls=True, root_certs=wrong_ca).list_repo()
    print('wrong CA answered')
except Exception as e:
    print('wrong CA refused:', e.code())
"
    );
    let out = Command::new(python_pachyderm())
        .arg("-c")
        .arg(&script)
        .args(["127.0.0.1", port_of(&p)])
        .arg(&pki.ca)
        .arg(&other.ca)
        .output()
        .unwrap();
    let stdout = ok(out, "python-pachyderm over TLS");
    assert!(
        stdout.contains("wrong CA refused: StatusCode.UNAVAILABLE"),
        "{stdout}"
    );
    assert!(stdout.contains("from python over tls"), "{stdout}");
    assert!(stdout.contains("py"), "{stdout}");
    assert!(
        stdout.contains("plaintext refused: pachd serves gRPC over TLS")
            && stdout.contains("tls=True, root_certs="),
        "{stdout}"
    );
    // What pachctl sees of the same data.
    let grpcs = format!("grpcs://{}", p.address);
    let got = ok(
        pachctl(
            &p,
            &grpcs,
            Some(&pki.ca),
            &["get", "file", "py@master:/f.txt"],
        ),
        "get file",
    );
    assert_eq!(got, "from python over tls");
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl is needed by this test")
}

#[test]
fn s3_gateway_over_https() {
    let certs = tempfile::tempdir().unwrap();
    let pki = new_pki(certs.path(), "good");
    let s3 = reserve_port();
    let s3_address = format!("127.0.0.1:{}", s3.port);
    let p = tls_pachd(&pki, &["--s3gateway-address", &s3_address]);
    let grpcs = format!("grpcs://{}", p.address);
    let ca = pki.ca.to_str().unwrap();
    let base = format!("https://{s3_address}");

    // CreateBucket, PutObject, GetObject and ListBuckets, over HTTPS.
    ok(
        curl(&[
            "--fail",
            "--cacert",
            ca,
            "-X",
            "PUT",
            &format!("{base}/master.data"),
        ]),
        "CreateBucket over https",
    );
    let body = certs.path().join("body");
    std::fs::write(&body, "through the gateway").unwrap();
    ok(
        curl(&[
            "--fail",
            "--cacert",
            ca,
            "-T",
            body.to_str().unwrap(),
            &format!("{base}/master.data/obj.txt"),
        ]),
        "PUT over https",
    );
    let got = ok(
        curl(&[
            "--fail",
            "--cacert",
            ca,
            &format!("{base}/master.data/obj.txt"),
        ]),
        "GET over https",
    );
    assert_eq!(got, "through the gateway");
    let buckets = ok(
        curl(&["--fail", "--cacert", ca, &format!("{base}/")]),
        "ListBuckets",
    );
    assert!(buckets.contains("data"), "{buckets}");
    // The same bytes through gRPC.
    let got = ok(
        pachctl(
            &p,
            &grpcs,
            Some(&pki.ca),
            &["get", "file", "data@master:/obj.txt"],
        ),
        "get file",
    );
    assert_eq!(got, "through the gateway");

    // Plain HTTP on the HTTPS port is told what to use.
    let out = curl(&["-i", &format!("http://{s3_address}/")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("HTTP/1.1 400")
            && text.contains("serves HTTPS")
            && text.contains(&format!("https://{s3_address}")),
        "{text}"
    );
    // The certificate is checked as any other: a wrong CA is refused.
    let other = new_pki(certs.path(), "other");
    let out = curl(&["--cacert", other.ca.to_str().unwrap(), &format!("{base}/")]);
    assert!(!out.status.success());
}

/// The git webhook serves HTTPS with pachd's certificate, and says so to a
/// plain HTTP client.
#[test]
fn git_webhook_over_https() {
    let certs = tempfile::tempdir().unwrap();
    let pki = new_pki(certs.path(), "good");
    let hook = reserve_port();
    let hook_address = format!("127.0.0.1:{}", hook.port);
    let _p = tls_pachd(
        &pki,
        &[
            "--githook-address",
            &hook_address,
            "--git-poll-interval",
            "0s",
        ],
    );
    let url = format!("https://{hook_address}/v1/handle/push");
    let ca = pki.ca.to_str().unwrap();
    let pong = ok(
        curl(&[
            "--fail",
            "--cacert",
            ca,
            "-H",
            "X-GitHub-Event: ping",
            "-d",
            "{}",
            &url,
        ]),
        "ping over https",
    );
    assert_eq!(pong, "pong\n");
    // An event that no input watches, over HTTPS: pachd read it.
    let out = curl(&[
        "--cacert",
        ca,
        "-d",
        r#"{"ref": "refs/heads/master", "repository": {"clone_url": "https://example.com/x.git"}}"#,
        &url,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("no running pipeline has a git input"),
        "{text}"
    );
    let out = curl(&[
        "-i",
        "-d",
        "{}",
        &format!("http://{hook_address}/v1/handle/push"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("HTTP/1.1 400") && text.contains(&url),
        "{text}"
    );
}

#[test]
fn certificates_are_reloaded_when_their_files_change() {
    let certs = tempfile::tempdir().unwrap();
    let first = new_pki(certs.path(), "first");
    let second = new_pki(certs.path(), "second");
    let live = tempfile::tempdir().unwrap();
    let (cert, key) = (live.path().join("tls.crt"), live.path().join("tls.key"));
    std::fs::copy(&first.cert, &cert).unwrap();
    std::fs::copy(&first.key, &key).unwrap();
    let s3 = reserve_port();
    let s3_address = format!("127.0.0.1:{}", s3.port);
    let p = Pachd::start_with(&[
        "--tls-dir",
        live.path().to_str().unwrap(),
        "--s3gateway-address",
        &s3_address,
    ]);
    let grpcs = format!("grpcs://{}", p.address);
    ok(
        pachctl(&p, &grpcs, Some(&first.ca), &["list", "repo"]),
        "first certificate",
    );

    // A renewal, the way a secret is rewritten: each file replaced whole.
    // Between the two, the new certificate with the old key does not load,
    // and the old pair goes on being served.
    let replace = |from: &Path, to: &Path| {
        let tmp = to.with_extension("new");
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, to).unwrap();
    };
    replace(&second.cert, &cert);
    std::thread::sleep(Duration::from_millis(1_200));
    ok(
        pachctl(&p, &grpcs, Some(&first.ca), &["list", "repo"]),
        "old pair kept while the new one is half written",
    );
    replace(&second.key, &key);
    std::thread::sleep(Duration::from_millis(1_200));
    ok(
        pachctl(&p, &grpcs, Some(&second.ca), &["list", "repo"]),
        "renewed certificate",
    );
    let err = fails(
        pachctl(&p, &grpcs, Some(&first.ca), &["list", "repo"]),
        "the old CA after the renewal",
    );
    assert!(err.contains("not signed by a trusted CA"), "{err}");
    // The S3 gateway serves the renewed certificate too.
    ok(
        curl(&[
            "--fail",
            "--cacert",
            second.ca.to_str().unwrap(),
            &format!("https://{s3_address}/"),
        ]),
        "S3 gateway with the renewed certificate",
    );
    assert!(
        p.stderr().contains("do not load"),
        "the half-written renewal was logged:\n{}",
        p.stderr()
    );
}
