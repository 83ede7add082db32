//! The rest of Pachyderm 1.9's pachctl, flag by flag, through the real
//! binaries: what a 1.9 user's scripts type must work here unchanged.

use pach_e2e::Pachd;

/// The names and contents of the files below `dir` in `repo@master`.
fn files(p: &Pachd, repo: &str, dir: &str) -> Vec<(String, String)> {
    p.raw(&["glob", "file", &format!("{repo}@master:{dir}/*")])
        .iter()
        .map(|f| {
            let path = f["file"]["path"].as_str().unwrap().to_string();
            let content = p.ok(&["get", "file", &format!("{repo}@master:{path}")]);
            (path, content)
        })
        .collect()
}

fn named(dir: &str, contents: &[&str]) -> Vec<(String, String)> {
    contents
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("{dir}/{i:016x}"), c.to_string()))
        .collect()
}

#[test]
fn put_file_split_as_1_9() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "data"]);

    // Lines, two per file; a second put numbers on after the last file.
    p.ok_stdin(
        &[
            "put",
            "file",
            "data@master:/lines",
            "--split",
            "line",
            "--target-file-datums",
            "2",
        ],
        b"a\nb\nc\n",
    );
    p.ok_stdin(
        &[
            "put",
            "file",
            "data@master:/lines",
            "--split",
            "line",
            "--target-file-datums",
            "2",
        ],
        b"d\n",
    );
    assert_eq!(
        files(&p, "data", "/lines"),
        named("/lines", &["a\nb\n", "c\n", "d\n"])
    );
    // --overwrite replaces the directory.
    p.ok_stdin(
        &["put", "file", "data@master:/lines", "--split", "line", "-o"],
        b"x\ny",
    );
    assert_eq!(files(&p, "data", "/lines"), named("/lines", &["x\n", "y"]));

    // CSV with a header record repeated in every file, by bytes.
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("people.csv");
    std::fs::write(&csv, "name,age\r\nann,31\r\n\"bob, jr\",4\r\n\r\ncy,7\r\n").unwrap();
    p.ok(&[
        "put",
        "file",
        "data@master:/people",
        "-f",
        csv.to_str().unwrap(),
        "--split",
        "csv",
        "--header-records",
        "1",
        "--target-file-bytes",
        "7",
    ]);
    assert_eq!(
        files(&p, "data", "/people"),
        named(
            "/people",
            &[
                "name,age\nann,31\n",
                "name,age\n\"bob, jr\",4\n",
                "name,age\ncy,7\n"
            ]
        )
    );
    // The header is part of each file's size, as 1.9 reports it.
    let listed = p.raw(&["list", "file", "data@master:/people"]);
    assert_eq!(listed[0]["sizeBytes"], "16", "{listed:?}");

    // JSON values, as written, three per file.
    p.ok_stdin(
        &[
            "put",
            "file",
            "data@master:/json",
            "--split",
            "json",
            "--target-file-datums",
            "3",
        ],
        b"{\"a\": 1}\n{\"a\": 2}\n[3]\n\"four\"\n",
    );
    assert_eq!(
        files(&p, "data", "/json"),
        named("/json", &["{\"a\": 1}{\"a\": 2}[3]", "\"four\""])
    );

    // A pg_dump: every file a dump of its own rows.
    let dump = "SET x = 1;\nCOPY t (a) FROM stdin;\n1\n2\n3\n\\.\n-- end\n";
    p.ok_stdin(
        &[
            "put",
            "file",
            "data@master:/sql",
            "--split",
            "sql",
            "--target-file-datums",
            "2",
        ],
        dump.as_bytes(),
    );
    let head = "SET x = 1;\nCOPY t (a) FROM stdin;\n";
    assert_eq!(
        files(&p, "data", "/sql"),
        named(
            "/sql",
            &[
                &format!("{head}1\n2\n\\.\n-- end\n"),
                &format!("{head}3\n\\.\n-- end\n")
            ]
        )
    );

    // Into an open commit, twice: the second put numbers on after the
    // first one's files, and both land when the commit finishes.
    let id = p.ok(&["start", "commit", "data@master"]).trim().to_string();
    for input in [&b"1\n2\n"[..], b"3\n"] {
        p.ok_stdin(
            &[
                "put",
                "file",
                &format!("data@{id}:/open"),
                "--split",
                "line",
            ],
            input,
        );
    }
    p.ok(&["finish", "commit", &format!("data@{id}")]);
    assert_eq!(
        files(&p, "data", "/open"),
        named("/open", &["1\n", "2\n", "3\n"])
    );

    // Clear refusals.
    let err = p.fails(&["put", "file", "data@master:/x", "--target-file-datums", "2"]);
    assert!(err.contains("needs --split"), "{err}");
    let err = p.fails(&["put", "file", "data@master:/x", "--split", "xml"]);
    assert!(err.contains("line") && err.contains("csv"), "{err}");
    p.ok_stdin(&["put", "file", "data@master:/plain/file.txt"], b"1\n");
    let out = p.run(&["put", "file", "data@master:/plain", "--split", "line"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("file.txt") && err.contains("--overwrite"),
        "{err}"
    );
    let out = p.run(&["put", "file", "data@master:/sql2", "--split", "sql"]);
    assert!(
        !out.status.success(),
        "stdin without a COPY line is no dump"
    );
}

const COPY: &str = r#"{
  "pipeline": {"name": "copy"},
  "transform": {"cmd": ["sh", "-c", "cp -r /pfs/in/. /pfs/out/"]},
  "input": {"pfs": {"repo": "in", "glob": "/"}}
}"#;

#[test]
fn pipelines_and_jobs_as_1_9() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "in"]);
    p.ok_stdin(&["put", "file", "in@master:/a"], b"a\n");
    // The spec from stdin when no -f is given.
    p.ok_stdin(&["create", "pipeline"], COPY.as_bytes());
    p.ok(&["flush", "commit", "in@master"]);
    p.ok_stdin(&["put", "file", "in@master:/b"], b"b\n");
    p.ok(&["flush", "commit", "in@master"]);

    // Image builds are refused, naming the flag.
    for flag in [
        &["-b"][..],
        &["--push-images"],
        &["--registry", "r.io"],
        &["-u", "me"],
    ] {
        let mut args = vec!["create", "pipeline"];
        args.extend_from_slice(flag);
        let out = p.pachctl_cmd(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(flag[0]),
            "{flag:?}: {err}"
        );
        assert!(err.contains("builds and pushes no Docker images"), "{err}");
    }

    // list job -o (the output commit) and -i (input commits), --no-pager.
    let jobs = p.raw(&["list", "job", "-p", "copy"]);
    assert_eq!(jobs.len(), 2);
    let newest = jobs[0]["output_commit"]["id"].as_str().unwrap().to_string();
    let by_output = p.raw(&["list", "job", "-o", &format!("copy@{newest}"), "--no-pager"]);
    assert_eq!(by_output.len(), 1, "{by_output:?}");
    assert_eq!(by_output[0]["job"]["id"], jobs[0]["job"]["id"]);
    let in_head = p.raw(&["inspect", "commit", "in@master"])[0]["commit"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let by_input = p.raw(&["list", "job", "--input", &format!("in@{in_head}")]);
    assert_eq!(by_input.len(), 1, "{by_input:?}");
    assert_eq!(by_input[0]["job"]["id"], jobs[0]["job"]["id"]);
    let table = p.ok(&["list", "job", "--no-pager"]);
    assert!(
        table.starts_with("ID") && table.lines().count() == 3,
        "{table}"
    );
    // inspect job -b waits for the job.
    let id = jobs[0]["job"]["id"].as_str().unwrap();
    assert_eq!(
        p.raw(&["inspect", "job", id, "-b"])[0]["state"],
        "JOB_SUCCESS"
    );

    // extract pipeline: the spec as created, JSON or YAML.
    let spec: serde_json::Value =
        serde_json::from_str(&p.ok(&["extract", "pipeline", "copy"])).unwrap();
    assert_eq!(spec["pipeline"]["name"], "copy");
    assert_eq!(spec["input"]["pfs"]["glob"], "/");
    let yaml = p.ok(&["extract", "pipeline", "copy", "-o", "yaml"]);
    assert!(yaml.contains("glob: /"), "{yaml}");

    // edit pipeline: an editor that changes nothing updates nothing; one
    // that changes the spec updates the pipeline.
    let unchanged = p.ok(&["edit", "pipeline", "copy", "--editor", "true"]);
    assert!(unchanged.contains("Pipeline unchanged"), "{unchanged}");
    assert_eq!(p.raw(&["inspect", "pipeline", "copy"])[0]["version"], "1");
    let out = p
        .pachctl_cmd(&["edit", "pipeline", "copy"])
        .env(
            "EDITOR",
            "sed -i 's/\"transform\": {/\"description\": \"edited\", \"transform\": {/'",
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = &p.raw(&["inspect", "pipeline", "copy"])[0];
    assert_eq!(info["description"], "edited", "{info}");
    assert_eq!(info["version"], "2");
    // list pipeline NAME --spec --history all: both versions, as specs.
    let specs = p.raw(&["list", "pipeline", "copy", "--spec", "--history", "all"]);
    assert_eq!(specs.len(), 2, "{specs:?}");
    assert!(specs.iter().all(|s| s["pipeline"]["name"] == "copy"));

    p.ok(&["wait", "commit", "copy@master"]);
    // subscribe commit --pipeline: the output commits of the pipeline's
    // current version only (its two earlier jobs ran version 1).
    let newest = p.raw(&["list", "job", "-p", "copy"])[0].clone();
    assert_eq!(newest["pipeline_version"], "2", "{newest}");
    let mut sub = p
        .pachctl_cmd(&[
            "subscribe",
            "commit",
            "copy@master",
            "--pipeline",
            "copy",
            "--raw",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(sub.stdout.take().unwrap()));
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    sub.kill().unwrap();
    sub.wait().unwrap();
    assert_eq!(
        first["commit"]["id"], newest["output_commit"]["id"],
        "{first}"
    );

    // garbage-collect -m is checked.
    p.ok(&["garbage-collect", "-m", "100MB"]);
    let err = p.fails(&["garbage-collect", "--memory", "lots"]);
    assert!(err.contains("not a size"), "{err}");

    // delete pipeline -f.
    p.ok(&["delete", "pipeline", "copy", "-f"]);
    assert!(p.raw(&["list", "pipeline"]).is_empty());
}

#[test]
fn config_as_1_9() {
    let p = Pachd::start();
    p.ok(&[
        "config",
        "update",
        "context",
        "local",
        "--cluster-name",
        "c1",
        "--auth-info",
        "admin",
        "--namespace",
        "pach",
    ]);
    let ctx: serde_json::Value =
        serde_json::from_str(&p.ok(&["config", "get", "context", "local"])).unwrap();
    assert_eq!(ctx["cluster_name"], "c1");
    assert_eq!(ctx["auth_info"], "admin");
    assert_eq!(ctx["namespace"], "pach");
    // The context still reaches pachd.
    p.ok(&["list", "repo"]);

    // -k imports a Kubernetes context.
    let kube = p.dir.path().join("kubeconfig");
    std::fs::write(
        &kube,
        "apiVersion: v1\nkind: Config\ncontexts:\n- name: prod\n  context:\n    cluster: prod-cluster\n    user: prod-admin\n    namespace: data\n",
    )
    .unwrap();
    let set = |args: &[&str]| {
        p.pachctl_cmd(args)
            .env("KUBECONFIG", &kube)
            .output()
            .unwrap()
    };
    let out = set(&["config", "set", "context", "k8s", "-k", "prod"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ctx: serde_json::Value =
        serde_json::from_str(&p.ok(&["config", "get", "context", "k8s"])).unwrap();
    assert_eq!(ctx["source"], "IMPORTED");
    assert_eq!(ctx["cluster_name"], "prod-cluster");
    assert_eq!(ctx["auth_info"], "prod-admin");
    assert_eq!(ctx["namespace"], "data");
    let out = set(&["config", "set", "context", "k8s", "-k", "prod"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--overwrite"));
    let out = set(&["config", "set", "context", "other", "-k", "nope"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("kubernetes context does not exist"));

    // Metrics: a setting kept in the config.
    assert_eq!(p.ok(&["config", "get", "metrics"]).trim(), "false");
    p.ok(&["config", "set", "metrics", "true"]);
    assert_eq!(p.ok(&["config", "get", "metrics"]).trim(), "true");
    p.fails(&["config", "set", "metrics", "maybe"]);
}

#[test]
fn global_flags_version_and_completion() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "r"]);
    // -v says where pachctl connects, on stderr; stdout stays the same.
    let out = p.run(&["-v", "list", "repo", "--no-color"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("connecting to pachd at") && err.contains("connected to pachd"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("NAME"));
    // --full-timestamps: the time itself, not "x seconds ago".
    let table = p.ok(&["list", "repo", "--full-timestamps"]);
    let year = humantime::format_rfc3339(std::time::SystemTime::now()).to_string()[..4].to_string();
    assert!(
        table.contains(&format!("{year}-")) && !table.contains(" ago"),
        "{table}"
    );
    let relative = p.ok(&["list", "repo"]);
    assert!(relative.contains(" ago"), "{relative}");

    // version --timeout: a duration, or a clear error.
    p.ok(&["version", "--timeout", "5s"]);
    let err = p.fails(&["version", "--timeout", "soon"]);
    assert!(err.contains("not a duration"), "{err}");

    // completion bash --install --path.
    let path = p.dir.path().join("pachctl-completion");
    let said = p.ok(&[
        "completion",
        "bash",
        "--install",
        "--path",
        path.to_str().unwrap(),
    ]);
    assert!(said.contains("installed in"), "{said}");
    let script = std::fs::read_to_string(&path).unwrap();
    assert!(
        script.contains("pachctl") && script.contains("complete"),
        "{script}"
    );
    let err = p.fails(&[
        "completion",
        "--install",
        "--path",
        "/nonexistent/dir/pachctl",
    ]);
    assert!(err.contains("cannot install completions"), "{err}");
    assert!(p.ok(&["completion"]).contains("_pachctl"));
}

#[test]
fn old_command_names_run() {
    let p = Pachd::start();
    let warned = |args: &[&str]| {
        let out = p.run(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{args:?}: {err}");
        assert!(err.contains("is deprecated"), "{args:?}: {err}");
        String::from_utf8(out.stdout).unwrap()
    };
    warned(&["create-repo", "old"]);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f.txt");
    std::fs::write(&f, "hello\n").unwrap();
    warned(&[
        "put-file",
        "old",
        "master",
        "/f.txt",
        "-f",
        f.to_str().unwrap(),
    ]);
    assert_eq!(warned(&["get-file", "old", "master", "/f.txt"]), "hello\n");
    assert!(warned(&["list-file", "old", "master"]).contains("/f.txt"));
    let commits = warned(&["list-commit", "old", "master", "--raw"]);
    let head: serde_json::Value = serde_json::from_str(commits.lines().next().unwrap()).unwrap();
    let id = head["commit"]["id"].as_str().unwrap();
    warned(&["flush-commit", &format!("old/{id}")]);
    warned(&["inspect-commit", "old", id]);
    warned(&["create-branch", "old", "dev", "--head", id]);
    assert!(warned(&["list-branch", "old"]).contains("dev"));
    warned(&["delete-branch", "old", "dev"]);
    warned(&["start-commit", "old", "master"]);
    warned(&["finish-commit", "old", "master"]);
    assert!(warned(&["list-job", "--raw"]).is_empty());
    assert!(warned(&["list-repo"]).contains("old"));
    warned(&["delete-repo", "old"]);
}

#[test]
fn pfs_flags_as_1_9() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "r"]);
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [("a.txt", "one\ntwo\n"), ("b.txt", "bee\n")] {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    // put file -i: a file listing sources, or stdin (-); -c is accepted with a warning.
    let list = dir.path().join("list");
    std::fs::write(&list, format!("{}\n\n", dir.path().join("a.txt").display())).unwrap();
    let out = p.run(&[
        "put",
        "file",
        "r@master:/",
        "-i",
        list.to_str().unwrap(),
        "-c",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("deprecated"));
    let b = dir.path().join("b.txt");
    p.ok_stdin(
        &["put", "file", "r@master:/in/", "-i", "-"],
        b.to_str().unwrap().as_bytes(),
    );
    assert_eq!(p.ok(&["get", "file", "r@master:/a.txt"]), "one\ntwo\n");
    assert_eq!(p.ok(&["get", "file", "r@master:/in/b.txt"]), "bee\n");
    p.fails(&["put", "file", "r@master:/", "-i", "/nonexistent/list"]);

    // diff file: the content's differences, through git or --diff-command.
    p.ok_stdin(&["put", "file", "r@master:/a.txt", "-o"], b"one\nthree\n");
    let diff = p.ok(&["diff", "file", "r@master:/a.txt", "--no-pager"]);
    assert!(diff.contains("-two") && diff.contains("+three"), "{diff}");
    let diff = p.ok(&["diff", "file", "r@master", "--diff-command", "diff -u"]);
    assert!(
        diff.contains("--- old/a.txt") && diff.contains("+++ new/a.txt"),
        "{diff}"
    );
    assert!(diff.contains("-two") && diff.contains("+three"), "{diff}");
    let names = p.ok(&["diff", "file", "r@master", "--name-only"]);
    assert!(
        names.starts_with("OP") && names.contains("+    /a.txt"),
        "{names}"
    );
    let err = p.fails(&[
        "diff",
        "file",
        "r@master",
        "--diff-command",
        "no-such-differ",
    ]);
    assert!(err.contains("no-such-differ"), "{err}");

    // list commit --from: the commits since one, newest first.
    let commits = p.raw(&["list", "commit", "r@master"]);
    assert_eq!(commits.len(), 3);
    let oldest = commits[2]["commit"]["id"].as_str().unwrap();
    let since = p.raw(&["list", "commit", "r@master", "--from", oldest]);
    assert_eq!(since.len(), 2, "{since:?}");
    assert!(since.iter().all(|c| c["commit"]["id"] != oldest));

    // subscribe commit --from: the commits after one, then the new ones.
    let mut sub = p
        .pachctl_cmd(&["subscribe", "commit", "r@master", "--from", oldest, "--raw"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    p.ok_stdin(&["put", "file", "r@master:/c.txt"], b"c\n");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(sub.stdout.take().unwrap()));
    let seen: Vec<String> = (0..3).map(|_| lines.next().unwrap().unwrap()).collect();
    sub.kill().unwrap();
    sub.wait().unwrap();
    let ids: Vec<serde_json::Value> = seen
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["commit"]["id"].clone())
        .collect();
    assert_eq!(ids[0], commits[1]["commit"]["id"], "{seen:?}");
    assert_eq!(ids[1], commits[0]["commit"]["id"], "{seen:?}");

    // fsck --fix on a healthy cluster: nothing to fix.
    assert!(p.ok(&["fsck", "--fix"]).contains("no problems found"));
    // get object: a piece of a file by the hash `inspect file` lists.
    p.ok_stdin(&["put", "file", "r@master:/pieces"], b"first put\n");
    p.ok_stdin(&["put", "file", "r@master:/pieces"], b"second\n");
    let info = &p.raw(&["inspect", "file", "r@master:/pieces"])[0];
    let objects = info["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 2, "{info}");
    let second = objects[1]["hash"].as_str().unwrap();
    assert_eq!(p.ok(&["get", "object", second]), "second\n");
    assert_eq!(
        p.ok(&["get-object", objects[0]["hash"].as_str().unwrap()]),
        "first put\n"
    );
    let err = p.fails(&["get", "object", &"0".repeat(128)]);
    assert!(err.contains("not found"), "{err}");
    let err = p.fails(&["get", "object", "abc"]);
    assert!(err.contains("128 hex digits"), "{err}");
    // get tag: refused, saying why and what to use.
    let err = p.fails(&["get", "tag", "t"]);
    assert!(
        err.contains("not supported") && err.contains("get file"),
        "{err}"
    );

    // get file -p is checked.
    assert_eq!(p.ok(&["get", "file", "r@master:/c.txt", "-p", "4"]), "c\n");
    p.fails(&["get", "file", "r@master:/c.txt", "-p", "0"]);
}

const ECHO: &str = r#"{
  "pipeline": {"name": "echo"},
  "transform": {"cmd": ["sh", "-c", "for f in /pfs/in/*; do echo \"saw $(basename $f)\"; cp $f /pfs/out/; done"]},
  "input": {"pfs": {"repo": "in", "glob": "/*"}}
}"#;

#[test]
fn logs_and_datums_as_1_9() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "in"]);
    let dir = tempfile::tempdir().unwrap();
    for name in ["a", "b", "c"] {
        std::fs::write(dir.path().join(name), name).unwrap();
    }
    p.ok(&[
        "put",
        "file",
        "in@master:/",
        "-r",
        "-f",
        &format!("{}/", dir.path().display()),
    ]);
    p.ok_stdin(&["create", "pipeline"], ECHO.as_bytes());
    p.ok(&["flush", "commit", "in@master"]);
    let job = p.raw(&["list", "job", "-p", "echo"])[0]["job"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let all = p.ok(&["logs", "-p", "echo"]);
    let mut lines: Vec<&str> = all.lines().collect();
    lines.sort();
    assert_eq!(lines, ["saw a", "saw b", "saw c"], "{all}");
    // -t/--tail: the last lines only.
    assert_eq!(p.ok(&["logs", "-p", "echo", "-t", "1"]).lines().count(), 1);
    assert_eq!(
        p.ok(&["logs", "--job", &job, "--tail", "2"])
            .lines()
            .count(),
        2
    );
    // --inputs: the datums of these input files.
    assert_eq!(
        p.ok(&["logs", "-p", "echo", "--inputs", "/b"]).trim(),
        "saw b"
    );
    // --master: the runner's lines instead of user code's.
    let master = p.ok(&["logs", "-p", "echo", "--master"]);
    assert!(master.lines().count() > 0, "{master}");
    assert!(!master.contains("saw "), "{master}");
    assert_eq!(
        p.ok(&["logs", "-p", "echo", "--master", "-t", "1"])
            .lines()
            .count(),
        1
    );

    // list datum --pageSize --page.
    let page = |n: &str| p.raw(&["list", "datum", &job, "--pageSize", "2", "--page", n]);
    assert_eq!(page("0").len(), 2);
    assert_eq!(page("1").len(), 1);
    assert_eq!(p.raw(&["list", "datum", &job]).len(), 3);
}

/// `path` on the master branch of `repo`, as a gRPC client names it.
fn master_file(repo: &str, path: &str) -> pach_api::pfs::File {
    use pach_api::pfs;
    pfs::File {
        commit: Some(pfs::Commit {
            repo: Some(pfs::Repo { name: repo.into() }),
            id: "master".into(),
        }),
        path: path.into(),
    }
}

/// What python-pachyderm's `put_file_bytes(..., delimiter=CSV,
/// target_file_datums=1, header_records=1)` sends: the split fields on the
/// first message, the bytes in several messages cut anywhere.
#[test]
fn put_file_split_over_grpc_as_clients_send_it() {
    use pach_api::pfs;
    let p = Pachd::start();
    p.ok(&["create", "repo", "g"]);
    let address = format!("http://{}", p.address);
    let file = |path: &str| master_file("g", path);
    let first = pfs::PutFileRequest {
        file: Some(file("/rows")),
        delimiter: pfs::Delimiter::Csv as i32,
        target_file_datums: 1,
        header_records: 1,
        value: b"id,na".to_vec().into(),
        ..Default::default()
    };
    let rest: Vec<pfs::PutFileRequest> = [&b"me\n1,\"a\"\n2"[..], b",b\n"]
        .iter()
        .map(|v| pfs::PutFileRequest {
            value: v.to_vec().into(),
            ..Default::default()
        })
        .collect();
    let bad = pfs::PutFileRequest {
        file: Some(file("/bad")),
        target_file_bytes: 10,
        value: b"x\n".to_vec().into(),
        ..Default::default()
    };
    let refused = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            let mut client = pfs::api_client::ApiClient::connect(address).await.unwrap();
            let requests: Vec<_> = std::iter::once(first).chain(rest).collect();
            client.put_file(tokio_stream::iter(requests)).await.unwrap();
            // Fsck with fix, as python-pachyderm's fsck(fix=True): a
            // healthy cluster has nothing to fix.
            let mut fsck = client
                .fsck(pfs::FsckRequest { fix: true })
                .await
                .unwrap()
                .into_inner();
            assert!(fsck.message().await.unwrap().is_none());
            client
                .put_file(tokio_stream::iter(vec![bad]))
                .await
                .unwrap_err()
        });
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("delimiter"), "{refused:?}");
    assert_eq!(
        files(&p, "g", "/rows"),
        named("/rows", &["id,name\n1,a\n", "id,name\n2,b\n"])
    );
}

/// What python-pachyderm's `put_file_bytes` sends for a large file: the
/// file named on a first 20 MiB-class message, then content-only messages
/// as large. pachd passes the large content-only messages on in pieces as
/// they arrive; a file is still the concatenation of its puts (one object
/// per put), and a split put still cuts records across the messages.
#[test]
fn large_put_file_messages_as_python_sends_them() {
    use pach_api::pfs;
    let p = Pachd::start();
    p.ok(&["create", "repo", "big"]);
    let address = format!("http://{}", p.address);
    let file = |path: &str| master_file("big", path);
    let bytes = |n: usize, seed: u8| -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed))
            .collect()
    };
    let (a, b, c) = (
        bytes(3 << 20, 1),
        bytes((5 << 20) + 7, 2),
        bytes((3 << 20) + 1, 3),
    );
    // Lines of 100 bytes, cut mid-line between messages.
    let line = |i: usize| format!("{i:099}\n");
    let lines: Vec<u8> = (0..70_000).flat_map(|i| line(i).into_bytes()).collect();
    let (l1, l2) = lines.split_at((3 << 20) + 50);
    let content = |v: &[u8]| pfs::PutFileRequest {
        value: v.to_vec().into(),
        ..Default::default()
    };
    let requests = vec![
        pfs::PutFileRequest {
            file: Some(file("/data")),
            value: a.clone().into(),
            ..Default::default()
        },
        content(&b),
        content(&c),
        pfs::PutFileRequest {
            file: Some(file("/lines")),
            delimiter: pfs::Delimiter::Line as i32,
            target_file_datums: 10_000,
            value: l1.to_vec().into(),
            ..Default::default()
        },
        content(l2),
    ];
    let info = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            let mut client = pfs::api_client::ApiClient::connect(address).await.unwrap();
            client.put_file(tokio_stream::iter(requests)).await.unwrap();
            client
                .inspect_file(pfs::InspectFileRequest {
                    file: Some(file("/data")),
                })
                .await
                .unwrap()
                .into_inner()
        });
    let whole: Vec<u8> = [a, b, c].concat();
    assert_eq!(info.size_bytes, whole.len() as u64);
    assert_eq!(info.objects.len(), 1, "one put, one object");
    // Past its first MiBs a piece's SHA-512 is computed beside the put.
    assert_eq!(
        info.objects[0].hash,
        pach_storage::Sha512::of(&whole).to_hex()
    );
    assert!(p.ok_bytes(&["get", "file", "big@master:/data"]) == whole);
    let split = p.raw(&["list", "file", "big@master:/lines"]);
    assert_eq!(split.len(), 7, "70,000 lines in files of 10,000");
    let last = p.ok_bytes(&["get", "file", "big@master:/lines/0000000000000006"]);
    let expected: Vec<u8> = (60_000..70_000)
        .flat_map(|i| line(i).into_bytes())
        .collect();
    assert!(last == expected);
}
