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
