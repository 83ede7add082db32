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

    // garbage-collect -m is checked.
    p.ok(&["wait", "commit", "copy@master"]);
    p.ok(&["garbage-collect", "-m", "100MB"]);
    let err = p.fails(&["garbage-collect", "--memory", "lots"]);
    assert!(err.contains("not a size"), "{err}");

    // delete pipeline -f.
    p.ok(&["delete", "pipeline", "copy", "-f"]);
    assert!(p.raw(&["list", "pipeline"]).is_empty());
}
