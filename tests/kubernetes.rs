//! The Kubernetes manifests of `deploy/kubernetes`, checked offline: every
//! document against the Kubernetes API schemas (kubernetes-validate, installed
//! by scripts/test-tools.sh), the pachd and worker containers' flags and
//! environment against what the real `pachd` binary accepts, and the wiring
//! between the pieces (etcd's --max-txn-ops, the ports, the etcd endpoints).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_yaml_ng::Value;

/// The environment variables the S3 store of pachd reads that the manifests
/// may set (object_store's `AmazonS3Builder::from_env` ignores unknown
/// `AWS_*` names silently, so a misspelt one would go unnoticed).
const S3_ENV: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ALLOW_HTTP",
    "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
];

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("deploy")
}

fn kustomization_dir() -> PathBuf {
    deploy_dir().join("kubernetes")
}

/// The manifests as one multi-document YAML: what `kubectl apply -k` would
/// send when kubectl is installed, else the kustomization's resources
/// concatenated (its image override keeps the name, so both agree).
fn rendered() -> &'static str {
    static RENDERED: OnceLock<String> = OnceLock::new();
    RENDERED.get_or_init(|| {
        let dir = kustomization_dir();
        match Command::new("kubectl").arg("kustomize").arg(&dir).output() {
            Ok(out) => {
                assert!(
                    out.status.success(),
                    "kubectl kustomize {} failed:\n{}",
                    dir.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8(out.stdout).expect("kustomize output is UTF-8")
            }
            Err(_) => concatenated_resources(),
        }
    })
}

fn concatenated_resources() -> String {
    let dir = kustomization_dir();
    let text = std::fs::read_to_string(dir.join("kustomization.yaml"))
        .expect("deploy/kubernetes/kustomization.yaml");
    let k: Value = serde_yaml_ng::from_str(&text).expect("kustomization.yaml is YAML");
    let resources = k["resources"]
        .as_sequence()
        .expect("kustomization.yaml lists resources");
    let mut all = String::new();
    for r in resources {
        let file = dir.join(r.as_str().expect("a resource is a file name"));
        let body = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        all.push_str("---\n");
        all.push_str(&body);
        all.push('\n');
    }
    all
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).expect("a manifest document is valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn manifests() -> &'static [Value] {
    static DOCS: OnceLock<Vec<Value>> = OnceLock::new();
    DOCS.get_or_init(|| documents(rendered()))
}

fn find(kind: &str, name: &str) -> &'static Value {
    manifests()
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("the manifests have no {kind} '{name}'"))
}

fn container<'a>(workload: &'a Value, name: &str) -> &'a Value {
    workload["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no container '{name}' in {:?}", workload["metadata"]))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .map(|a| a.as_str().expect("a string").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The number a container port reference (a number or a port's name) means.
fn port_number(container: &Value, port: &Value) -> u64 {
    if let Some(n) = port.as_u64() {
        return n;
    }
    let name = port.as_str().expect("a port is a number or a name");
    container["ports"]
        .as_sequence()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("container has no port named '{name}'"))
}

/// The environment a container gets: its `env` and the keys of the
/// ConfigMaps and Secrets of its `envFrom`, as (name, value).
fn environment(c: &Value) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for e in c["env"].as_sequence().into_iter().flatten() {
        let name = e["name"].as_str().expect("env name").to_string();
        env.push((name, e["value"].as_str().unwrap_or_default().to_string()));
    }
    for from in c["envFrom"].as_sequence().into_iter().flatten() {
        let (kind, reference) = if from["configMapRef"].is_mapping() {
            ("ConfigMap", &from["configMapRef"])
        } else {
            ("Secret", &from["secretRef"])
        };
        let source = find(kind, reference["name"].as_str().expect("envFrom name"));
        let data = if kind == "Secret" && source["stringData"].is_mapping() {
            &source["stringData"]
        } else {
            &source["data"]
        };
        for (k, v) in data.as_mapping().into_iter().flatten() {
            let k = k.as_str().expect("a key").to_string();
            env.push((k, v.as_str().unwrap_or_default().to_string()));
        }
    }
    env
}

fn pachd_help(subcommand: &[String]) -> String {
    let out = Command::new(pach_e2e::bin("pachd"))
        .args(subcommand)
        .arg("--help")
        .output()
        .expect("run pachd --help");
    assert!(out.status.success(), "pachd {subcommand:?} --help failed");
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

/// The long flags a help text declares (the `--flag <VALUE>` at the start of
/// each option line, not flags named in descriptions).
fn declared_flags(help: &str) -> BTreeSet<String> {
    help.lines()
        .filter(|l| l.trim_start().starts_with('-'))
        .flat_map(|l| {
            l.split_whitespace()
                .take_while(|w| w.starts_with('-') || w.starts_with('<'))
                .filter(|w| w.starts_with("--"))
                .map(|w| w.trim_end_matches(',').to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Checks one container that runs the pachd image: the arguments are
/// accepted by the real binary, every flag is one its help declares, and
/// every variable of its environment is one pachd reads.
fn check_pachd_container(workload: &str, container_name: &str) {
    let c = container(find("Deployment", workload), container_name);
    assert!(
        c["command"].is_null(),
        "{workload}: the image's entrypoint is pachd; give pachd's flags as `args`, not `command`"
    );
    let args = strings(&c["args"]);
    // clap parses left to right and rejects an unknown flag or a bad value
    // before it reaches the final --help.
    let out = Command::new(pach_e2e::bin("pachd"))
        .args(&args)
        .arg("--help")
        .output()
        .expect("run pachd");
    assert!(
        out.status.success(),
        "pachd refuses the args of {workload} {args:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let subcommand: Vec<String> = args
        .iter()
        .take_while(|a| !a.starts_with('-'))
        .cloned()
        .collect();
    let help = pachd_help(&subcommand);
    let declared = declared_flags(&help);
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        let flag = flag.split('=').next().unwrap_or(flag);
        assert!(
            declared.contains(flag),
            "{workload}: `pachd {}--help` declares no {flag} (it declares {declared:?})",
            subcommand
                .iter()
                .map(|s| format!("{s} "))
                .collect::<String>()
        );
    }
    for (name, _) in environment(c) {
        let known = if name.starts_with("PACHD_") {
            help.contains(&format!("[env: {name}=")) || help.split_whitespace().any(|w| w == name)
        } else {
            S3_ENV.contains(&name.as_str())
        };
        assert!(
            known,
            "{workload}: pachd {subcommand:?} reads no environment variable {name}"
        );
    }
}

#[test]
fn manifests_pass_schema_validation() {
    let home = std::env::var_os("HOME").expect("HOME");
    let validator = Path::new(&home).join(".cache/pach-test-tools/kv/bin/kubernetes-validate");
    assert!(
        validator.exists(),
        "{} is missing: run scripts/test-tools.sh (it installs kubernetes-validate)",
        validator.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("manifests.yaml");
    std::fs::write(&file, rendered()).expect("write the rendered manifests");
    let out = Command::new(&validator)
        .arg("--strict")
        .arg(&file)
        .output()
        .expect("run kubernetes-validate");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A kind without a schema is only a warning to the tool: it was not
    // validated, so it fails here.
    assert!(
        out.status.success() && !report.contains("ERROR") && !report.contains("WARN"),
        "kubernetes-validate --strict rejects deploy/kubernetes:\n{report}"
    );
    let passed = report.matches(" passed for resource ").count();
    assert_eq!(
        passed,
        manifests().len(),
        "not every document was validated:\n{report}"
    );
}

#[test]
fn kustomization_resources_are_the_rendered_documents() {
    let key = |d: &Value| {
        format!(
            "{}/{}",
            d["kind"].as_str().unwrap_or_default(),
            d["metadata"]["name"].as_str().unwrap_or_default()
        )
    };
    let rendered: BTreeSet<String> = manifests().iter().map(key).collect();
    let files: BTreeSet<String> = documents(&concatenated_resources())
        .iter()
        .map(key)
        .collect();
    assert_eq!(rendered, files);
    for d in manifests() {
        assert!(
            d["metadata"]["namespace"].is_null(),
            "{} names a namespace; the manifests go into whichever namespace apply is given",
            key(d)
        );
    }
}

#[test]
fn pachd_accepts_the_pachd_containers_flags_and_environment() {
    check_pachd_container("pachd", "pachd");
}

#[test]
fn pachd_accepts_the_worker_containers_flags_and_environment() {
    check_pachd_container("pachd-worker", "worker");
    let args = strings(&container(find("Deployment", "pachd-worker"), "worker")["args"]);
    assert_eq!(args.first().map(String::as_str), Some("worker"));
}

#[test]
fn the_image_runs_pachd() {
    let dockerfile = std::fs::read_to_string(deploy_dir().join("Dockerfile")).expect("Dockerfile");
    let entrypoint = dockerfile
        .lines()
        .rfind(|l| l.starts_with("ENTRYPOINT"))
        .expect("the Dockerfile has an ENTRYPOINT");
    assert!(
        entrypoint.trim_end().ends_with("pachd\"]"),
        "the containers give pachd's flags as args, so the entrypoint must end in pachd: {entrypoint}"
    );
    let image = |workload, name| container(find("Deployment", workload), name)["image"].clone();
    assert_eq!(
        image("pachd", "pachd"),
        image("pachd-worker", "worker"),
        "pachd and its workers run one image"
    );
}

#[test]
fn etcd_allows_pachds_transactions() {
    let etcd = container(find("StatefulSet", "etcd"), "etcd");
    let args = strings(&etcd["args"]);
    let set = args.iter().any(|a| a == "--max-txn-ops=1024")
        || args
            .windows(2)
            .any(|w| w[0] == "--max-txn-ops" && w[1] == "1024");
    assert!(set, "etcd must run with --max-txn-ops 1024: {args:?}");
}

#[test]
fn pachd_serves_30650_through_its_service() {
    let deployment = find("Deployment", "pachd");
    let pachd = container(deployment, "pachd");
    let args = strings(&pachd["args"]);
    let address = args
        .windows(2)
        .find(|w| w[0] == "--address")
        .map(|w| w[1].clone())
        .expect("pachd is given --address");
    assert_eq!(address, "0.0.0.0:30650");
    let slots = args.windows(2).find(|w| w[0] == "--worker-slots");
    assert_eq!(
        slots.map(|w| w[1].as_str()),
        Some("0"),
        "pachd leaves datums to the workers"
    );
    assert_eq!(deployment["spec"]["replicas"].as_u64(), Some(2));
    let probe = &pachd["readinessProbe"]["tcpSocket"]["port"];
    assert_eq!(port_number(pachd, probe), 30650, "readiness on 30650");

    let service = find("Service", "pachd");
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["template"]["metadata"]["labels"]
    );
    let port = service["spec"]["ports"]
        .as_sequence()
        .and_then(|ps| ps.iter().find(|p| p["port"].as_u64() == Some(30650)))
        .expect("the pachd Service exposes port 30650");
    let target = if port["targetPort"].is_null() {
        &port["port"]
    } else {
        &port["targetPort"]
    };
    assert_eq!(port_number(pachd, target), 30650);
}

#[test]
fn pachd_metadata_names_the_etcd_members() {
    let statefulset = find("StatefulSet", "etcd");
    let replicas = statefulset["spec"]["replicas"].as_u64().expect("replicas");
    let service = statefulset["spec"]["serviceName"]
        .as_str()
        .expect("serviceName");
    let headless = find("Service", service);
    assert_eq!(
        headless["spec"]["clusterIP"], "None",
        "etcd's Service is headless"
    );
    let pachd = container(find("Deployment", "pachd"), "pachd");
    let metadata = environment(pachd)
        .into_iter()
        .find(|(k, _)| k == "PACHD_METADATA")
        .map(|(_, v)| v)
        .expect("pachd gets PACHD_METADATA");
    let hosts = metadata
        .strip_prefix("etcd://")
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("PACHD_METADATA is not etcd://...: {metadata}"));
    let members: BTreeSet<String> = (0..replicas)
        .map(|i| format!("etcd-{i}.{service}:2379"))
        .collect();
    let named: BTreeSet<String> = hosts.split(',').map(str::to_string).collect();
    assert_eq!(named, members, "PACHD_METADATA names every etcd member");
    let worker = container(find("Deployment", "pachd-worker"), "worker");
    assert!(
        environment(worker)
            .iter()
            .any(|(k, v)| k == "PACHD_METADATA" && *v == metadata),
        "the workers share pachd's metadata store"
    );
}
