//! Pipelines through the real CLI: specs as Pachyderm users write them, user
//! code in the bubblewrap sandbox, incremental jobs, provenance and failures.

use pach_e2e::{Pachd, check_field_names};
use serde_json::Value;

fn spec_file(p: &Pachd, name: &str, text: &str) -> String {
    let path = p.dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn jobs(p: &Pachd, pipeline: &str) -> Vec<Value> {
    p.raw(&["list", "job", "-p", pipeline])
}

/// The id of the newest job of `pipeline` at `version`, once the controller
/// has made it (an update returns before its first job exists).
fn job_of_version(p: &Pachd, pipeline: &str, version: u64) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let all = p.raw(&["list", "job", "-p", pipeline, "--history", "all"]);
        let found = all.iter().find(|j| {
            j["pipeline_version"].as_str() == Some(&version.to_string())
                || j["pipeline_version"].as_u64() == Some(version)
        });
        if let Some(j) = found {
            return j["job"]["id"].as_str().unwrap().to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no job of {pipeline} version {version}: {all:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn get(p: &Pachd, file: &str) -> String {
    p.ok(&["get", "file", file])
}

const WORD_COUNT: &str = r#"{
  "pipeline": {"name": "wc"},
  "description": "Counts the words of each document.",
  "transform": {
    "cmd": ["sh"],
    "stdin": ["for f in $(find -L /pfs/docs -type f); do wc -w < \"$f\" | tr -d ' ' > /pfs/out/$(basename \"$f\").count; done",
              "echo \"job $PACH_JOB_ID datum $PACH_DATUM_ID input $docs\""]
  },
  "input": {"pfs": {"repo": "docs", "glob": "/*"}}
}"#;

#[test]
fn word_count_runs_incrementally_with_provenance() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "docs"]);
    p.ok_stdin(&["put", "file", "docs@master:/a.txt"], b"one two three\n");
    p.ok_stdin(&["put", "file", "docs@master:/b.txt"], b"four five\n");
    p.ok_stdin(&["put", "file", "docs@master:/c.txt"], b"six\n");
    let f = spec_file(&p, "wc.json", WORD_COUNT);
    p.ok(&["create", "pipeline", "-f", &f]);
    p.ok(&["flush", "commit", "docs@master"]);
    assert_eq!(get(&p, "wc@master:/a.txt.count"), "3\n");
    assert_eq!(get(&p, "wc@master:/b.txt.count"), "2\n");
    assert_eq!(get(&p, "wc@master:/c.txt.count"), "1\n");
    let first = jobs(&p, "wc");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["state"], "JOB_SUCCESS", "{}", first[0]);
    assert_eq!(first[0]["data_processed"], "3");

    // Change one document (-o: put appends otherwise, as in Pachyderm 1.9):
    // one datum runs, two are reused.
    p.ok_stdin(
        &["put", "file", "docs@master:/b.txt", "-o"],
        b"four five six seven\n",
    );
    let docs_head = p.raw(&["inspect", "commit", "docs@master"])[0]["commit"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    p.ok(&["flush", "commit", "docs@master"]);
    assert_eq!(get(&p, "wc@master:/b.txt.count"), "4\n");
    assert_eq!(get(&p, "wc@master:/a.txt.count"), "3\n");
    let all = jobs(&p, "wc");
    assert_eq!(all.len(), 2);
    let latest = &all[0];
    assert_eq!(latest["state"], "JOB_SUCCESS", "{latest}");
    assert_eq!(latest["data_processed"], "1", "{latest}");
    assert_eq!(latest["data_skipped"], "2", "{latest}");

    // The output commit's provenance is exactly the input commit.
    let out = &p.raw(&["inspect", "commit", "wc@master"])[0];
    let prov: Vec<String> = out["provenance"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}@{}",
                c["commit"]["repo"]["name"].as_str().unwrap_or(""),
                c["commit"]["id"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(prov, vec![format!("docs@{docs_head}")], "{out}");
    assert_eq!(out["commit"]["id"], latest["job"]["id"]);

    // Datums, logs and the environment user code saw.
    let job = latest["job"]["id"].as_str().unwrap();
    let datums = p.raw(&["list", "datum", job]);
    assert_eq!(datums.len(), 3);
    let ran: Vec<&Value> = datums.iter().filter(|d| d["state"] == "SUCCESS").collect();
    assert_eq!(ran.len(), 1);
    let logs = p.ok(&["logs", "--job", job]);
    let datum = ran[0]["datum"]["id"].as_str().unwrap();
    assert!(
        logs.contains(&format!("job {job} datum {datum} input /pfs/docs/b.txt")),
        "{logs}"
    );
    // Following a finished job's logs ends by itself.
    let followed = p.ok(&["logs", "--job", job, "--follow"]);
    assert_eq!(followed, logs);
    // A pipeline's logs span its jobs: the first job ran three datums.
    let all_logs = p.ok(&["logs", "--pipeline", "wc"]);
    assert_eq!(all_logs.lines().count(), 4, "{all_logs}");
    let human = p.ok(&["list", "pipeline"]);
    assert!(
        human.contains("docs:/*") && human.contains("running / success"),
        "{human}"
    );
    // inspect datum names the datum's input files.
    let d = &p.raw(&["inspect", "datum", job, datum])[0];
    assert_eq!(d["state"], "SUCCESS");
    assert_eq!(d["data"][0]["file"]["path"], "/b.txt", "{d}");
    // delete job removes the job's records; its output commit stays.
    p.ok(&["delete", "job", job]);
    assert!(p.fails(&["inspect", "job", job]).contains("not found"));
    assert_eq!(jobs(&p, "wc").len(), 1);
    assert_eq!(get(&p, &format!("wc@{job}:/b.txt.count")), "4\n");
}

#[test]
fn symlinks_into_inputs_cross_and_join() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "left"]);
    p.ok(&["create", "repo", "right"]);
    p.ok_stdin(&["put", "file", "left@master:/1.txt"], b"L1\n");
    p.ok_stdin(&["put", "file", "left@master:/2.txt"], b"L2\n");
    p.ok_stdin(&["put", "file", "right@master:/1.txt"], b"R1\n");
    p.ok_stdin(&["put", "file", "right@master:/3.txt"], b"R3\n");
    let specs = r#"
pipeline:
  name: shuffle
transform:
  cmd: ["sh", "-c", "mkdir -p /pfs/out/$(basename $left) && ln -s $left /pfs/out/$(basename $left)/data"]
input:
  pfs: {repo: left, glob: "/*"}
---
pipeline:
  name: pairs
transform:
  cmd: ["sh", "-c", "echo $(cat /pfs/left/*) $(cat /pfs/right/*) > /pfs/out/$(basename $left)-$(basename $right)"]
input:
  cross:
  - pfs: {repo: left, glob: "/*"}
  - pfs: {repo: right, glob: "/*"}
---
pipeline:
  name: joined
transform:
  cmd: ["sh", "-c", "cat /pfs/left/* /pfs/right/* > /pfs/out/$(basename $left)"]
input:
  join:
  - pfs: {repo: left, glob: "/(*).txt", join_on: "$1"}
  - pfs: {repo: right, glob: "/(*).txt", join_on: "$1"}
---
pipeline:
  name: grouped
transform:
  cmd: ["sh", "-c", "find /pfs/left /pfs/right -type f | sort | xargs cat > /pfs/out/$(ls /pfs/left /pfs/right | grep txt | head -1)"]
input:
  group:
  - pfs: {repo: left, glob: "/(*).txt", group_by: "$1"}
  - pfs: {repo: right, glob: "/(*).txt", group_by: "$1"}
"#;
    let f = spec_file(&p, "specs.yaml", specs);
    p.ok(&["create", "pipeline", "-f", &f]);
    p.ok(&["flush", "commit", "left@master"]);
    p.ok(&["flush", "commit", "right@master"]);
    // A symlink into /pfs/left yields the input's bytes.
    assert_eq!(get(&p, "shuffle@master:/1.txt/data"), "L1\n");
    assert_eq!(get(&p, "shuffle@master:/2.txt/data"), "L2\n");
    let pairs: Vec<String> = p
        .raw(&["list", "file", "pairs@master:/"])
        .iter()
        .map(|f| f["file"]["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        pairs,
        [
            "/1.txt-1.txt",
            "/1.txt-3.txt",
            "/2.txt-1.txt",
            "/2.txt-3.txt"
        ]
    );
    assert_eq!(get(&p, "pairs@master:/2.txt-3.txt"), "L2 R3\n");
    // Only key 1 is in both inputs.
    let joined: Vec<String> = p
        .raw(&["list", "file", "joined@master:/"])
        .iter()
        .map(|f| f["file"]["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(joined, ["/1.txt"]);
    assert_eq!(get(&p, "joined@master:/1.txt"), "L1\nR1\n");
    // One datum per group_by key, holding every file with that key.
    assert_eq!(get(&p, "grouped@master:/1.txt"), "L1\nR1\n");
    assert_eq!(get(&p, "grouped@master:/2.txt"), "L2\n");
    assert_eq!(get(&p, "grouped@master:/3.txt"), "R3\n");
    // list pipeline is in DAG order with Pachyderm's JSON shape.
    let names: Vec<String> = p
        .raw(&["list", "pipeline"])
        .iter()
        .map(|x| x["pipeline"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 4);
}

/// A path under /var/tmp, absent, for a test's marker file: user code sees
/// the host read-only except its own private /tmp, so a marker the test
/// makes for a datum to see lives there.
fn marker_file(tag: &str) -> std::path::PathBuf {
    let marker = std::path::Path::new("/var/tmp").join(format!(
        "pach-e2e-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let _ = std::fs::remove_file(&marker);
    marker
}

#[test]
fn failing_datums_fail_the_job_with_logs_then_retry() {
    let p = Pachd::start();
    // User code sees the host read-only except /tmp, which is private to the
    // sandbox: the marker lives in /var/tmp so that the datum can see it.
    let marker = marker_file("fix");
    p.ok(&["create", "repo", "in"]);
    p.ok_stdin(&["put", "file", "in@master:/good"], b"fine\n");
    p.ok_stdin(&["put", "file", "in@master:/bad"], b"broken\n");
    let spec = format!(
        r#"{{"pipeline": {{"name": "picky"}},
            "transform": {{"cmd": ["sh", "-c", "if grep -q broken $in && ! test -e {m}; then echo cannot handle $in; exit 3; fi; cp $in /pfs/out/"]}},
            "datum_tries": 2,
            "input": {{"pfs": {{"repo": "in", "glob": "/*"}}}}}}"#,
        m = marker.display()
    );
    let f = spec_file(&p, "picky.json", &spec);
    p.ok(&["create", "pipeline", "-f", &f]);
    p.ok(&["flush", "commit", "in@master"]);
    let job = &jobs(&p, "picky")[0];
    assert_eq!(job["state"], "JOB_FAILURE", "{job}");
    assert_eq!(job["data_failed"], "1");
    assert_eq!(job["data_processed"], "1");
    let reason = job["reason"].as_str().unwrap();
    assert!(
        reason.contains("exit code 3") && reason.contains("pachctl logs"),
        "{reason}"
    );
    let id = job["job"]["id"].as_str().unwrap().to_string();
    // No partial output: the failed job's commit holds nothing.
    assert!(p.raw(&["list", "file", "picky@master:/"]).is_empty());
    // FAILED is DatumState's zero value, which protobuf's JSON leaves out
    // (as Pachyderm 1.9's pachctl prints it).
    let failed: Vec<Value> = p
        .raw(&["list", "datum", &id])
        .into_iter()
        .filter(|d| d.get("state").is_none())
        .collect();
    assert_eq!(failed.len(), 1);
    let datum = failed[0]["datum"]["id"].as_str().unwrap();
    let logs = p.ok(&["logs", "--job", &id, "--datum", datum]);
    assert!(logs.contains("cannot handle /pfs/in/bad"), "{logs}");
    // The runner's line between tries is pachd's, not user code's: only
    // --raw shows it, marked so.
    assert!(!logs.contains("datum try"), "{logs}");
    let raw = p.ok(&["logs", "--job", &id, "--datum", datum, "--raw"]);
    let runner: Vec<Value> = raw
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["message"] == "datum try 2 of 2 failed: exit code 3")
        .collect();
    assert_eq!(runner.len(), 1, "{raw}");
    assert!(runner[0].get("user").is_none(), "{raw}");

    // Fix the environment and restart the datum: only it runs again.
    std::fs::write(&marker, b"").unwrap();
    let retry = p.ok(&["restart", "datum", &id, datum]).trim().to_string();
    let done = &p.raw(&["wait", "job", &retry])[0];
    let _ = std::fs::remove_file(&marker);
    assert_eq!(done["state"], "JOB_SUCCESS", "{done}");
    assert_eq!(done["data_processed"], "1", "{done}");
    assert_eq!(done["data_skipped"], "1", "{done}");
    assert_eq!(get(&p, "picky@master:/bad"), "broken\n");
    assert_eq!(get(&p, "picky@master:/good"), "fine\n");
}

#[test]
fn restart_datum_reruns_a_running_datum_in_the_same_job() {
    let p = Pachd::start();
    // User code sees the host read-only except /tmp: the marker that lets
    // the datum finish lives in /var/tmp, made by the test.
    let marker = marker_file("restart");
    p.ok(&["create", "repo", "in"]);
    p.ok_stdin(&["put", "file", "in@master:/slow"], b"slow\n");
    // One try only: a restart that counted as a failed try would fail the
    // datum.
    let spec = format!(
        r#"{{"pipeline": {{"name": "blocks"}},
            "transform": {{"cmd": ["sh", "-c", "echo started on $in; while ! test -e {m}; do sleep 0.1; done; cp $in /pfs/out/"]}},
            "datum_tries": 1,
            "input": {{"pfs": {{"repo": "in", "glob": "/*"}}}}}}"#,
        m = marker.display()
    );
    let f = spec_file(&p, "blocks.json", &spec);
    p.ok(&["create", "pipeline", "-f", &f]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let id = loop {
        if let Some(j) = jobs(&p, "blocks").first() {
            break j["job"]["id"].as_str().unwrap().to_string();
        }
        assert!(std::time::Instant::now() < deadline, "no job started");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    // Let the user code start (it prints, then waits for the marker).
    std::thread::sleep(std::time::Duration::from_secs(3));

    // A filter no running datum matches gets 1.9's answer, and the job
    // runs on.
    let err = p.fails(&["restart", "datum", &id, "/nothing-like-it"]);
    assert!(
        err.contains("could not be found for jobID") && err.contains("list datum"),
        "{err}"
    );

    // By input path, as 1.9: the user code is killed and run again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let said = loop {
        let out = p.run(&["restart", "datum", &id, "/slow"]);
        if out.status.success() {
            break String::from_utf8_lossy(&out.stderr).into_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "restart datum never found the running datum: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert!(said.contains(&format!("of job {id}")), "{said}");
    let job = &p.raw(&["inspect", "job", &id])[0];
    assert_eq!(job["state"], "JOB_RUNNING", "{job}");
    std::thread::sleep(std::time::Duration::from_secs(2));
    std::fs::write(&marker, b"").unwrap();
    let done = &p.raw(&["wait", "job", &id])[0];
    let _ = std::fs::remove_file(&marker);
    assert_eq!(done["state"], "JOB_SUCCESS", "{done}");
    assert_eq!(done["data_processed"], "1", "{done}");
    assert_eq!(get(&p, "blocks@master:/slow"), "slow\n");
    // The same job ran the user code twice; the killed run's output and
    // the runner's line about the restart are in the datum's log.
    let raw = p.ok(&["logs", "--job", &id, "--raw"]);
    let lines: Vec<Value> = raw
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .collect();
    let started = lines
        .iter()
        .filter(|l| l["message"] == "started on /pfs/in/slow")
        .count();
    assert_eq!(started, 2, "{raw}");
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("datum try 1 of 1 restarted: "))
            && l.get("user").is_none()),
        "{raw}"
    );
    assert_eq!(jobs(&p, "blocks").len(), 1);

    // A finished job with no failed datum: a clear error.
    let err = p.fails(&["restart", "datum", &id, "/slow"]);
    assert!(
        err.contains("has finished") && err.contains("no failed datum"),
        "{err}"
    );
    // Without a filter (python-pachyderm's `restart_datum(job)`): nothing to
    // do, and no error.
    let out = p.run(&["restart", "datum", &id, ""]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.contains("nothing to restart"),
        "{said}"
    );
    assert_eq!(jobs(&p, "blocks").len(), 1);
}

/// A cluster with repo `in` holding `/a` ("a\n") and `/b` ("b\n").
fn two_file_repo() -> Pachd {
    let p = Pachd::start();
    p.ok(&["create", "repo", "in"]);
    p.ok_stdin(&["put", "file", "in@master:/a"], b"a\n");
    p.ok_stdin(&["put", "file", "in@master:/b"], b"b\n");
    p
}

#[test]
fn files_several_datums_write_at_one_path_are_merged() {
    let p = two_file_repo();
    let f = spec_file(
        &p,
        "merge.json",
        r#"{"pipeline": {"name": "merge"}, "transform": {"cmd": ["sh", "-c", "cp $in /pfs/out/same"]},
            "input": {"pfs": {"repo": "in", "glob": "/*"}}}"#,
    );
    p.ok(&["create", "pipeline", "-f", &f]);
    p.ok(&["flush", "commit", "in@master"]);
    let job = &jobs(&p, "merge")[0];
    assert_eq!(job["state"], "JOB_SUCCESS", "{job}");
    // Pachyderm 1.9 concatenates them (in datum-id order): nothing is lost.
    let same = get(&p, "merge@master:/same");
    let mut lines: Vec<&str> = same.lines().collect();
    lines.sort();
    assert_eq!(lines, ["a", "b"], "{same:?}");

    // A new input datum adds its part; the others' parts stay.
    p.ok_stdin(&["put", "file", "in@master:/c"], b"c\n");
    p.ok(&["flush", "commit", "in@master"]);
    let same = get(&p, "merge@master:/same");
    let mut lines: Vec<&str> = same.lines().collect();
    lines.sort();
    assert_eq!(lines, ["a", "b", "c"], "{same:?}");
}

#[test]
fn a_file_one_datum_writes_where_another_makes_a_directory_fails_the_job() {
    let p = two_file_repo();
    let f = spec_file(
        &p,
        "clash.json",
        r#"{"pipeline": {"name": "clash"}, "transform": {"cmd": ["sh", "-c",
            "if [ \"$(basename $in)\" = a ]; then echo x > /pfs/out/x; else mkdir /pfs/out/x; echo y > /pfs/out/x/y; fi"]},
            "input": {"pfs": {"repo": "in", "glob": "/*"}}}"#,
    );
    p.ok(&["create", "pipeline", "-f", &f]);
    p.ok(&["flush", "commit", "in@master"]);
    let job = &jobs(&p, "clash")[0];
    assert_eq!(job["state"], "JOB_FAILURE", "{job}");
    assert!(job["reason"].as_str().unwrap().contains("/x"), "{job}");
    assert!(p.raw(&["list", "file", "clash@master:/"]).is_empty());
}

#[test]
fn bad_specs_are_refused_and_change_nothing() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "raw"]);
    let good = r#"{"pipeline": {"name": "up"}, "transform": {"cmd": ["true"]}, "input": {"pfs": {"repo": "raw", "glob": "/*"}}}"#;
    let cases = [
        (
            r#"{"pipeline": {"name": "x"}, "transfrom": {"cmd": ["true"]}, "input": {"pfs": {"repo": "raw", "glob": "/*"}}}"#,
            "transfrom",
        ),
        (
            r#"{"pipeline": {"name": "x"}, "transform": {"cmd": ["true"]}, "input": {"pfs": {"repo": "nope", "glob": "/*"}}}"#,
            "nope",
        ),
        (
            r#"{"pipeline": {"name": "x"}, "transform": {"cmd": ["true"]}, "input": {"pfs": {"repo": "raw", "glob": "/[a"}}}"#,
            "glob",
        ),
    ];
    for (i, (spec, needle)) in cases.iter().enumerate() {
        // A bad spec alone changes nothing.
        let f = spec_file(&p, &format!("bad{i}.json"), spec);
        let err = p.fails(&["create", "pipeline", "-f", &f]);
        assert!(err.contains(needle), "case {i}: {err}");
        assert!(p.raw(&["list", "pipeline"]).is_empty(), "case {i}");
        assert_eq!(p.raw(&["list", "repo"]).len(), 1, "case {i}");
    }
    // After a good spec in the same file: every spec of a file is read
    // before any is sent, so a spec that does not parse stops them all.
    let f = spec_file(&p, "bad-late.json", &format!("{good}\n{}", cases[0].0));
    let err = p.fails(&["create", "pipeline", "-f", &f]);
    assert!(
        err.contains("transfrom") && err.contains("spec #2"),
        "{err}"
    );
    assert!(p.raw(&["list", "pipeline"]).is_empty());
    // One the cluster refuses (Pachyderm 1.9 sends a file's specs one by
    // one) stops the rest, and the error names the pipelines created.
    let f = spec_file(&p, "bad-cluster.json", &format!("{good}\n{}", cases[1].0));
    let err = p.fails(&["create", "pipeline", "-f", &f]);
    assert!(
        err.contains("nope") && err.contains("created before it: up"),
        "{err}"
    );
    p.ok(&["delete", "pipeline", "up"]);
    assert_eq!(p.raw(&["list", "repo"]).len(), 1);
    // A cycle through an update: up reads raw, down reads up; up may not read down.
    let f = spec_file(&p, "up.json", good);
    p.ok(&["create", "pipeline", "-f", &f]);
    let f = spec_file(
        &p,
        "down.json",
        r#"{"pipeline": {"name": "down"}, "transform": {"cmd": ["true"]}, "input": {"pfs": {"repo": "up", "glob": "/"}}}"#,
    );
    p.ok(&["create", "pipeline", "-f", &f]);
    let f = spec_file(
        &p,
        "cycle.json",
        r#"{"pipeline": {"name": "up"}, "transform": {"cmd": ["true"]}, "input": {"pfs": {"repo": "down", "glob": "/"}}}"#,
    );
    let err = p.fails(&["update", "pipeline", "-f", &f]);
    assert!(err.contains("cycle"), "{err}");
    let up = &p.raw(&["inspect", "pipeline", "up"])[0];
    assert_eq!(up["input"]["pfs"]["repo"], "raw", "{up}");
    assert_eq!(up["version"], "1");
    let err = p.fails(&["create", "pipeline", "-f", &spec_file(&p, "dup.json", good)]);
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn stop_start_update_and_delete() {
    // The spec is read from a file:// URL in the test's directory.
    let p = Pachd::start_with(&[
        "--allow-file-url",
        &std::env::temp_dir().display().to_string(),
    ]);
    p.ok(&["create", "repo", "in"]);
    p.ok_stdin(&["put", "file", "in@master:/a"], b"a\n");
    let spec = |suffix: &str| {
        format!(
            r#"{{"pipeline": {{"name": "copy"}}, "transform": {{"cmd": ["sh", "-c", "cat $in > /pfs/out/$(basename $in){suffix}"]}},
                "input": {{"pfs": {{"repo": "in", "glob": "/*"}}}}}}"#
        )
    };
    // The spec from a URL, as `create pipeline -f URL` reads it.
    let f = spec_file(&p, "copy.json", &spec(""));
    p.ok(&["create", "pipeline", "-f", &format!("file://{f}")]);
    p.ok(&["flush", "commit", "in@master"]);
    assert_eq!(jobs(&p, "copy").len(), 1);

    // Stopped through the migration guide's own command line: no job starts.
    let script = format!(
        "{pachctl} list pipeline --raw | jq -r '.pipeline.name' | xargs -n1 -I{{}} {pachctl} stop pipeline {{}}",
        pachctl = pach_e2e::bin("pachctl").display()
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .env("PACH_CONFIG", p.dir.path().join("config.json"))
        .env("PACHD_ADDRESS", &p.address)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        p.raw(&["inspect", "pipeline", "copy"])[0]["state"],
        "PIPELINE_PAUSED"
    );
    p.ok_stdin(&["put", "file", "in@master:/b"], b"b\n");
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(
        jobs(&p, "copy").len(),
        1,
        "a stopped pipeline started a job"
    );
    // Started again, it processes what arrived meanwhile.
    p.ok(&["start", "pipeline", "--all"]);
    p.ok(&["flush", "commit", "in@master"]);
    assert_eq!(get(&p, "copy@master:/b"), "b\n");

    // Update without --reprocess: datums already processed are kept.
    let f = spec_file(&p, "copy2.json", &spec(".v2"));
    p.ok(&["update", "pipeline", "-f", &f]);
    let j = p.raw(&["wait", "job", &job_of_version(&p, "copy", 2)]);
    assert_eq!(j[0]["data_skipped"], "2", "{}", j[0]);
    // With --reprocess every datum runs with the new code.
    p.ok(&["update", "pipeline", "-f", &f, "--reprocess"]);
    let j = p.raw(&["wait", "job", &job_of_version(&p, "copy", 3)]);
    assert_eq!(j[0]["data_processed"], "2", "{}", j[0]);
    assert_eq!(get(&p, "copy@master:/a.v2"), "a\n");
    assert_eq!(p.raw(&["inspect", "pipeline", "copy"])[0]["version"], "3");

    p.ok(&["delete", "pipeline", "copy"]);
    assert!(p.raw(&["list", "pipeline"]).is_empty());
    let repos: Vec<String> = p
        .raw(&["list", "repo"])
        .iter()
        .map(|r| r["repo"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(repos, ["in"]);
    assert!(
        p.fails(&["inspect", "pipeline", "copy"])
            .contains("not found")
    );
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn transform_options_env_return_codes_err_cmd_and_timeouts() {
    // Egress writes to a file:// URL in the test's directory.
    let p = Pachd::start_with(&[
        "--allow-file-url",
        &std::env::temp_dir().display().to_string(),
    ]);
    p.ok(&["create", "repo", "in"]);
    p.ok_stdin(&["put", "file", "in@master:/x"], b"x\n");
    let specs = r#"
{"pipeline": {"name": "opts"},
 "transform": {"cmd": ["sh", "-c", "echo $GREETING $(pwd) > /pfs/out/env; read line; echo $line > /pfs/out/stdin; exit 3"],
               "stdin": ["from stdin"], "env": {"GREETING": "hello"}, "working_dir": "/usr",
               "accept_return_code": [3]},
 "input": {"pfs": {"repo": "in", "glob": "/*"}}}
{"pipeline": {"name": "recovers"},
 "transform": {"cmd": ["sh", "-c", "exit 1"], "err_cmd": ["sh", "-c", "echo recovering $in"]},
 "datum_tries": 1,
 "input": {"pfs": {"repo": "in", "glob": "/*"}}}
{"pipeline": {"name": "lazy"},
 "transform": {"cmd": ["sh", "-c", "test -p $in && cat $in > /pfs/out/copy"]},
 "input": {"pfs": {"repo": "in", "glob": "/*", "lazy": true}}}
{"pipeline": {"name": "slow"},
 "transform": {"cmd": ["sh", "-c", "echo sleeping; sleep 30"]},
 "datum_tries": 1, "datum_timeout": "1s",
 "input": {"pfs": {"repo": "in", "glob": "/*"}}}
"#;
    let egress_dir = p.dir.path().join("egress");
    std::fs::create_dir_all(&egress_dir).unwrap();
    let specs = specs.replace(
        r#""accept_return_code": [3]},"#,
        &format!(
            r#""accept_return_code": [3]}}, "egress": {{"URL": "file://{}"}},"#,
            egress_dir.display()
        ),
    );
    let f = spec_file(&p, "opts.json", &specs);
    p.ok(&["create", "pipeline", "-f", &f]);
    p.ok(&["flush", "commit", "in@master"]);
    assert_eq!(get(&p, "opts@master:/env"), "hello /usr\n");
    assert_eq!(get(&p, "opts@master:/stdin"), "from stdin\n");
    // A lazy input is a named pipe fed when read.
    assert_eq!(get(&p, "lazy@master:/copy"), "x\n");
    assert_eq!(jobs(&p, "opts")[0]["state"], "JOB_SUCCESS");
    // Egress copied the output to the URL.
    assert_eq!(
        std::fs::read_to_string(egress_dir.join("env")).unwrap(),
        "hello /usr\n"
    );
    assert_eq!(
        std::fs::read_to_string(egress_dir.join("stdin")).unwrap(),
        "from stdin\n"
    );
    let r = &jobs(&p, "recovers")[0];
    assert_eq!(r["state"], "JOB_SUCCESS", "{r}");
    assert_eq!(r["data_recovered"], "1", "{r}");
    let logs = p.ok(&["logs", "--pipeline", "recovers"]);
    assert!(logs.contains("recovering /pfs/in/x"), "{logs}");
    let s = &jobs(&p, "slow")[0];
    assert_eq!(s["state"], "JOB_FAILURE", "{s}");
    assert!(
        s["reason"].as_str().unwrap().contains("timed out after 1s"),
        "{s}"
    );
    // --raw prints Pachyderm's LogMessage, pachd's own lines about the datum
    // (user: false) around user code's.
    let logs = p.ok(&["logs", "--pipeline", "slow", "--raw"]);
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["message"], "started processing datum", "{logs}");
    let user: Vec<&Value> = lines.iter().filter(|l| l["user"] == true).collect();
    assert_eq!(user[0]["message"], "sleeping", "{logs}");
    assert_eq!(user[0]["pipeline_name"], "slow");
    assert!(
        lines.last().unwrap()["message"]
            .as_str()
            .unwrap()
            .starts_with("failed processing datum: timed out"),
        "{logs}"
    );
}

#[test]
fn parallel_datums_stop_job_and_job_timeout() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "in"]);
    for i in 0..4 {
        p.ok_stdin(&["put", "file", &format!("in@master:/{i}")], b"x\n");
    }
    let f = spec_file(
        &p,
        "par.json",
        r#"{"pipeline": {"name": "par"},
            "transform": {"cmd": ["sh", "-c", "sleep 2; cp $in /pfs/out/"]},
            "parallelism_spec": {"constant": 4},
            "input": {"pfs": {"repo": "in", "glob": "/*"}}}"#,
    );
    let started = std::time::Instant::now();
    p.ok(&["create", "pipeline", "-f", &f]);
    p.ok(&["flush", "commit", "in@master"]);
    // Four 2-second datums, four at a time: well under the 8 s they take in turn.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(p.raw(&["list", "file", "par@master:/"]).len(), 4);

    let f = spec_file(
        &p,
        "hang.json",
        r#"{"pipeline": {"name": "hang"},
            "transform": {"cmd": ["sh", "-c", "sleep 60"]},
            "input": {"pfs": {"repo": "in", "glob": "/"}}}"#,
    );
    p.ok(&["create", "pipeline", "-f", &f]);
    wait_for("the hanging job to run", 20, || {
        jobs(&p, "hang")
            .first()
            .is_some_and(|j| j["state"] == "JOB_RUNNING")
    });
    let id = jobs(&p, "hang")[0]["job"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let stopped_at = std::time::Instant::now();
    p.ok(&["stop", "job", &id]);
    let j = &p.raw(&["wait", "job", &id])[0];
    assert_eq!(j["state"], "JOB_KILLED", "{j}");
    assert!(stopped_at.elapsed() < std::time::Duration::from_secs(10));
    // A job that has ended cannot be stopped again (Pachyderm refuses too).
    let err = p.fails(&["stop", "job", &id]);
    assert!(err.contains("already ended (killed)"), "{err}");
    // Its output commit is finished, so flush returns.
    p.ok(&["wait", "commit", &format!("hang@{id}")]);

    let f = spec_file(
        &p,
        "budget.json",
        r#"{"pipeline": {"name": "budget"},
            "transform": {"cmd": ["sh", "-c", "sleep 60"]},
            "job_timeout": "2s",
            "input": {"pfs": {"repo": "in", "glob": "/"}}}"#,
    );
    p.ok(&["create", "pipeline", "-f", &f]);
    wait_for("the job timeout", 30, || {
        jobs(&p, "budget")
            .first()
            .is_some_and(|j| j["state"] == "JOB_FAILURE")
    });
    let j = &jobs(&p, "budget")[0];
    assert!(
        j["reason"]
            .as_str()
            .unwrap()
            .contains("job timed out after 2s"),
        "{j}"
    );
}

#[test]
fn cron_inputs_tick_and_jobs_survive_a_crash() {
    let mut p = Pachd::start();
    let f = spec_file(
        &p,
        "tick.json",
        r#"{"pipeline": {"name": "ticker"},
            "transform": {"cmd": ["sh", "-c", "ls /pfs/tick > /pfs/out/ticks"]},
            "input": {"cron": {"name": "tick", "spec": "@every 1s", "overwrite": true}}}"#,
    );
    p.ok(&["create", "pipeline", "-f", &f]);
    wait_for("a cron job", 30, || {
        jobs(&p, "ticker")
            .iter()
            .any(|j| j["state"] == "JOB_SUCCESS")
    });
    let repos: Vec<String> = p
        .raw(&["list", "repo"])
        .iter()
        .map(|r| r["repo"]["name"].as_str().unwrap().to_string())
        .collect();
    assert!(repos.contains(&"ticker_tick".to_string()), "{repos:?}");
    let ticks = get(&p, "ticker@master:/ticks");
    assert_eq!(
        ticks.lines().count(),
        1,
        "overwrite keeps one tick: {ticks}"
    );
    p.ok(&["stop", "pipeline", "ticker"]);

    // A job in the middle of its datums when pachd dies finishes after restart.
    p.ok(&["create", "repo", "in"]);
    for i in 0..6 {
        p.ok_stdin(&["put", "file", &format!("in@master:/{i}")], b"x\n");
    }
    let f = spec_file(
        &p,
        "steady.json",
        r#"{"pipeline": {"name": "steady"},
            "transform": {"cmd": ["sh", "-c", "sleep 1; cp $in /pfs/out/"]},
            "input": {"pfs": {"repo": "in", "glob": "/*"}}}"#,
    );
    p.ok(&["create", "pipeline", "-f", &f]);
    wait_for("some datums to finish", 30, || {
        jobs(&p, "steady").first().is_some_and(|j| {
            // 64-bit counts are strings in protobuf's JSON, as 1.9 prints them.
            j["data_processed"]
                .as_str()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
                >= 2
        })
    });
    p.kill9();
    let crash = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    p.launch();
    p.ok(&["flush", "commit", "in@master"]);
    let j = &jobs(&p, "steady")[0];
    assert_eq!(j["state"], "JOB_SUCCESS", "{j}");
    assert_eq!(j["data_processed"], "6", "{j}");
    assert_eq!(p.raw(&["list", "file", "steady@master:/"]).len(), 6);
    // Datums finished before the crash were not run again: their logs keep
    // their finish times (a datum run after the restart ends a second later).
    let id = j["job"]["id"].as_str().unwrap();
    let before: Vec<Value> = p
        .raw(&["logs", "--job", id])
        .into_iter()
        .filter(|l| l["message"] == "finished processing datum")
        .filter(|l| l["ts"].as_str().is_some_and(|f| f <= crash.as_str()))
        .collect();
    assert!(before.len() >= 2, "{before:?} (crash at {crash})");
    let fsck = p.ok(&["fsck"]);
    assert!(!fsck.to_lowercase().contains("missing"), "{fsck}");
}

/// A shuffle in the style of Pachyderm's example: a union of two inputs read
/// as empty placeholders (`empty_files`), a bash script that finds them with
/// `find -L` and links them into a per-name directory. The outputs carry the
/// inputs' real bytes. Written with Pachyderm 2.x's `project` fields.
#[test]
fn shuffle_with_empty_files_keeps_the_bytes() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "photos"]);
    p.ok(&["create", "repo", "prices"]);
    p.ok_stdin(
        &["put", "file", "photos@master:/kiwi.jpeg"],
        b"kiwi picture bytes",
    );
    p.ok_stdin(
        &["put", "file", "photos@master:/plum.jpeg"],
        b"plum picture",
    );
    p.ok_stdin(
        &["put", "file", "prices@master:/kiwi.json"],
        br#"{"price": 3}"#,
    );
    let spec = r#"{
  "pipeline": {"project": {"name": "default"}, "name": "shuffle"},
  "input": {"union": [
    {"pfs": {"project": "default", "repo": "photos", "glob": "/*.jpeg", "empty_files": true}},
    {"pfs": {"project": "default", "repo": "prices", "glob": "/*.json", "empty_files": true}}
  ]},
  "transform": {
    "image": "ubuntu:22.04",
    "cmd": ["/bin/bash"],
    "stdin": [
      "for f in $(find -L /pfs -not -path '*/out/*' -type f -path '*/photos/*'); do n=$(basename $f .jpeg); mkdir -p /pfs/out/$n; ln -s $f /pfs/out/$n/picture.jpeg; done",
      "for f in $(find -L /pfs -not -path '*/out/*' -type f -path '*/prices/*'); do n=$(basename $f .json); mkdir -p /pfs/out/$n; ln -s $f /pfs/out/$n/price.json; done"
    ]
  }
}"#;
    let f = spec_file(&p, "shuffle.json", spec);
    p.ok(&["create", "pipeline", "-f", &f]);
    p.ok(&["flush", "commit", "photos@master"]);
    p.ok(&["flush", "commit", "prices@master"]);
    assert_eq!(
        get(&p, "shuffle@master:/kiwi/picture.jpeg"),
        "kiwi picture bytes"
    );
    assert_eq!(
        get(&p, "shuffle@master:/kiwi/price.json"),
        r#"{"price": 3}"#
    );
    assert_eq!(get(&p, "shuffle@master:/plum/picture.jpeg"), "plum picture");
    let j = &jobs(&p, "shuffle")[0];
    assert_eq!(j["data_total"], "3", "{j}");
    let err = p.fails(&[
        "create",
        "pipeline",
        "-f",
        &spec_file(
            &p,
            "other.json",
            &spec.replace(
                r#""project": {"name": "default"}"#,
                r#""project": {"name": "research"}"#,
            ),
        ),
    ]);
    assert!(err.contains("project 'research'"), "{err}");
}

/// The fields of Pachyderm 1.9's PipelineInfo and JobInfo (pps.proto) under
/// the names its pachctl prints with `--raw` for PPS objects: the .proto
/// names (jsonpb with OrigName).
const PIPELINE_INFO: &[&str] = &[
    "id",
    "pipeline",
    "version",
    "transform",
    "tf_job",
    "parallelism_spec",
    "hashtree_spec",
    "egress",
    "created_at",
    "state",
    "stopped",
    "recent_error",
    "job_counts",
    "last_job_state",
    "output_branch",
    "resource_requests",
    "resource_limits",
    "input",
    "description",
    "cache_size",
    "enable_stats",
    "salt",
    "reason",
    "max_queue_size",
    "service",
    "spout",
    "chunk_spec",
    "datum_timeout",
    "job_timeout",
    "githook_url",
    "spec_commit",
    "standby",
    "datum_tries",
    "scheduling_spec",
    "pod_spec",
    "pod_patch",
];
const JOB_INFO: &[&str] = &[
    "job",
    "transform",
    "pipeline",
    "pipeline_version",
    "spec_commit",
    "parallelism_spec",
    "egress",
    "parent_job",
    "started",
    "finished",
    "output_commit",
    "state",
    "reason",
    "service",
    "spout",
    "output_repo",
    "output_branch",
    "restart",
    "data_processed",
    "data_skipped",
    "data_failed",
    "data_recovered",
    "data_total",
    "stats",
    "worker_status",
    "resource_requests",
    "resource_limits",
    "input",
    "new_branch",
    "stats_commit",
    "enable_stats",
    "salt",
    "chunk_spec",
    "datum_timeout",
    "job_timeout",
    "datum_tries",
    "scheduling_spec",
    "pod_spec",
    "pod_patch",
];

#[test]
fn raw_pipelines_and_jobs_use_pachyderm_1_9_field_names() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "docs"]);
    p.ok_stdin(&["put", "file", "docs@master:/a.txt"], b"one two\n");
    let f = spec_file(&p, "wc.json", WORD_COUNT);
    p.ok(&["create", "pipeline", "-f", &f]);
    p.ok(&["flush", "commit", "docs@master"]);
    let pipeline_fields = [
        "pipeline",
        "version",
        "transform",
        "created_at",
        "state",
        "output_branch",
        "input",
        "description",
        "salt",
    ];
    for args in [&["inspect", "pipeline", "wc"][..], &["list", "pipeline"]] {
        let all = p.raw(args);
        assert_eq!(all.len(), 1, "{all:?}");
        check_field_names("pipeline", &all[0], PIPELINE_INFO, &pipeline_fields);
        assert_eq!(all[0]["pipeline"]["name"], "wc");
        assert_eq!(all[0]["input"]["pfs"]["glob"], "/*");
    }
    let jobs = jobs(&p, "wc");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let id = jobs[0]["job"]["id"].as_str().unwrap().to_string();
    let job_fields = [
        "job",
        "pipeline",
        "started",
        "finished",
        "output_commit",
        "state",
        "data_processed",
        "data_total",
        "input",
        "output_branch",
        "salt",
    ];
    check_field_names("job", &jobs[0], JOB_INFO, &job_fields);
    let inspected = &p.raw(&["inspect", "job", &id])[0];
    check_field_names("job", inspected, JOB_INFO, &job_fields);
    assert_eq!(inspected["state"], "JOB_SUCCESS");
    // int64 and uint64 print as strings, as jsonpb does.
    assert_eq!(inspected["data_processed"], "1");
}

/// Every field of a 1.9 spec does what it says, is refused with the reason,
/// or (Kubernetes' own fields) is accepted with a warning naming it — in
/// pachctl's output, pachd's log and the pipeline's `reason`. Never ignored.
#[test]
fn spec_fields_work_warn_or_are_refused() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "in"]);
    for i in 0..6 {
        p.ok_stdin(&["put", "file", &format!("in@master:/f{i}")], b"x\n");
    }
    let kube = spec_file(
        &p,
        "kube.json",
        r#"{"pipeline": {"name": "kube"},
            "transform": {"cmd": ["sh", "-c", "cp -r /pfs/in/. /pfs/out/"], "image": "ubuntu:18.04"},
            "input": {"pfs": {"repo": "in", "glob": "/*"}},
            "chunk_spec": {"number": 2},
            "cache_size": "64M", "max_queue_size": 4,
            "scheduling_spec": {"node_selector": {"disktype": "ssd"}},
            "pod_spec": "{\"dnsPolicy\": \"None\"}", "pod_patch": "[]",
            "hashtree_spec": {"constant": 2},
            "resource_requests": {"memory": "1Gi", "cpu": 1}}"#,
    );
    let out = p
        .pachctl_cmd(&["create", "pipeline", "-f", &kube])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for field in [
        "transform.image",
        "cache_size",
        "max_queue_size",
        "scheduling_spec",
        "pod_spec",
        "pod_patch",
        "hashtree_spec",
        "resource_requests",
    ] {
        assert!(
            stderr.contains(&format!("warning: pipeline 'kube': {field}: ")),
            "{field} not warned of: {stderr}"
        );
        assert!(p.stderr().contains(field), "{field} not in pachd's log");
    }
    assert!(!stderr.contains("chunk_spec"), "{stderr}");
    p.ok(&["flush", "commit", "in@master"]);
    let info = &p.raw(&["inspect", "pipeline", "kube"])[0];
    let reason = info["reason"].as_str().unwrap_or("");
    assert!(reason.contains("pod_spec: ignored"), "{info}");
    assert_eq!(info["chunk_spec"]["number"], "2", "{info}");
    // chunk_spec: 6 datums, 2 per task: the job ran as 3 tasks, all done.
    let job = &jobs(&p, "kube")[0];
    assert_eq!(job["state"], "JOB_SUCCESS", "{job}");
    assert_eq!(job["data_processed"], "6", "{job}");
    assert_eq!(get(&p, "kube@master:/f5"), "x\n");

    // Refused, each naming the field and what to do.
    for (extra, needle) in [
        (r#""spout": {"overwrite": true}"#, "a spout takes no input"),
        (
            r#""resource_limits": {"gpu": {"type": "nvidia.com/gpu", "number": 1}}"#,
            "resource_limits.gpu",
        ),
        (r#""tf_job": {"tf_job": "x"}"#, "tf_job"),
        (
            r#""spec_commit": {"repo": {"name": "__spec__"}, "id": "abc"}"#,
            "spec_commit",
        ),
    ] {
        let f = spec_file(
            &p,
            "refused.json",
            &format!(
                r#"{{"pipeline": {{"name": "refused"}}, "transform": {{"cmd": ["true"]}},
                    "input": {{"pfs": {{"repo": "in", "glob": "/"}}}}, {extra}}}"#
            ),
        );
        let e = p.fails(&["create", "pipeline", "-f", &f]);
        assert!(e.contains(needle), "{extra} => {e}");
    }
    assert!(p.fails(&["inspect", "pipeline", "refused"]).contains("not"));
}

/// `cron.start`, as Pachyderm 1.9: ticks follow the schedule from the start
/// time, so those already due are made at once, each named by its time.
#[test]
fn cron_start_sets_the_schedule() {
    let p = Pachd::start();
    let start = std::time::SystemTime::now() - std::time::Duration::from_secs(150);
    let start_text = humantime::format_rfc3339_seconds(start).to_string();
    let f = spec_file(
        &p,
        "cron.json",
        &format!(
            r#"{{"pipeline": {{"name": "ticks"}}, "transform": {{"cmd": ["true"]}},
                "input": {{"cron": {{"name": "t", "spec": "@every 1m", "start": "{start_text}"}}}}}}"#
        ),
    );
    p.ok(&["create", "pipeline", "-f", &f]);
    let expected: Vec<String> = [60, 120]
        .iter()
        .map(|s| {
            let t = start + std::time::Duration::from_secs(*s);
            format!("/{}", humantime::format_rfc3339_seconds(t))
        })
        .collect();
    wait_for("the ticks already due", 30, || {
        p.raw(&["list", "file", "ticks_t@master"]).len() >= 2
    });
    let names: Vec<String> = p
        .raw(&["list", "file", "ticks_t@master"])
        .iter()
        .map(|f| f["file"]["path"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(names[..2], expected[..], "{names:?}");
}

/// `resource_limits` on user code: memory as each process's address space,
/// disk as the size of each file written; cpu, which this host cannot
/// enforce, is said in the pipeline's reason.
#[test]
fn resource_limits_hold_user_code() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "sizes"]);
    p.ok_stdin(&["put", "file", "sizes@master:/small"], b"10000000");
    p.ok_stdin(&["put", "file", "sizes@master:/big"], b"600000000");
    let spec = serde_json::json!({
        "pipeline": {"name": "alloc"},
        "transform": {"cmd": ["sh", "-c",
            "python3 -c 'import sys; b = bytearray(int(open(sys.argv[1]).read())); open(\"/pfs/out/\" + sys.argv[1].split(\"/\")[-1], \"w\").write(\"ok\")' \"$sizes\""]},
        "input": {"pfs": {"repo": "sizes", "glob": "/*"}},
        "datum_tries": 1,
        "resource_limits": {"memory": "300M", "cpu": 0.5, "disk": "1M"}
    });
    let f = spec_file(&p, "alloc.json", &spec.to_string());
    p.ok(&["create", "pipeline", "-f", &f]);
    p.run(&["flush", "commit", "sizes@master"]);
    let job = &jobs(&p, "alloc")[0];
    assert_eq!(job["state"], "JOB_FAILURE", "{job}");
    assert_eq!(job["data_failed"], "1", "{job}");
    assert_eq!(job["data_processed"], "1", "{job}");
    let info = &p.raw(&["inspect", "pipeline", "alloc"])[0];
    let reason = info["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("resource_limits.cpu: not enforced"),
        "{info}"
    );
    assert_eq!(info["resource_limits"]["memory"], "300M", "{info}");

    // disk: a file past the limit fails its datum; a smaller one is kept.
    p.ok(&["create", "repo", "bytes"]);
    p.ok_stdin(&["put", "file", "bytes@master:/small"], b"1000");
    p.ok_stdin(&["put", "file", "bytes@master:/big"], b"2000000");
    let spec = serde_json::json!({
        "pipeline": {"name": "write"},
        "transform": {"cmd": ["sh", "-c",
            "head -c \"$(cat \"$bytes\")\" /dev/zero > /pfs/out/$(basename \"$bytes\")"]},
        "input": {"pfs": {"repo": "bytes", "glob": "/*"}},
        "datum_tries": 1,
        "resource_limits": {"disk": "1M"}
    });
    let f = spec_file(&p, "write.json", &spec.to_string());
    p.ok(&["create", "pipeline", "-f", &f]);
    p.run(&["flush", "commit", "bytes@master"]);
    let job = &jobs(&p, "write")[0];
    assert_eq!(job["state"], "JOB_FAILURE", "{job}");
    assert_eq!(job["data_failed"], "1", "{job}");
    assert_eq!(job["data_processed"], "1", "{job}");
}

/// `standby`: a pipeline with nothing pending is in standby, runs while a
/// job has datums, and goes back to standby.
#[test]
fn standby_pipelines_sleep_between_jobs() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "in"]);
    let f = spec_file(
        &p,
        "sleepy.json",
        r#"{"pipeline": {"name": "sleepy"}, "standby": true,
            "transform": {"cmd": ["sh", "-c", "sleep 3; cp -r /pfs/in/. /pfs/out/"]},
            "input": {"pfs": {"repo": "in", "glob": "/"}}}"#,
    );
    p.ok(&["create", "pipeline", "-f", &f]);
    let state = || p.raw(&["inspect", "pipeline", "sleepy"])[0]["state"].clone();
    assert_eq!(state(), "PIPELINE_STANDBY");
    p.ok_stdin(&["put", "file", "in@master:/a"], b"a\n");
    wait_for("the job to run", 30, || state() == "PIPELINE_RUNNING");
    p.ok(&["flush", "commit", "in@master"]);
    assert_eq!(get(&p, "sleepy@master:/a"), "a\n");
    assert_eq!(state(), "PIPELINE_STANDBY");
}
