//! Pachyderm 1.9's examples that need no cloud service, run with their
//! specs unchanged on the host's tools, driven by the commands of their
//! READMEs:
//! - opencv (`edges`, `montage`): `python3 /edges.py` and ImageMagick's
//!   `montage`; the test command installs OpenCV and ImageMagick
//!   (scripts/test-tools.sh).
//! - shuffle: a union of two `empty_files` inputs whose user code only makes
//!   symlinks; the outputs carry the inputs' real bytes by reference.
//! - joins: a join of two repos on a glob capture group (`join_on: "$1"`).
//! - word_count: `map` (a word count per page) and `reduce` (the sum over
//!   pages, relying on 1.9's merge of the files several datums write at one
//!   path). Its `scraper` pipeline fetches web pages with apt-get and wget,
//!   so here the `scraper` repo is filled with pages directly.
//!
//! The programs the examples ship in their images (`/edges.py`,
//! `/joins.py`, `/map`) are written here to behave as described by the
//! examples and installed at those paths on the host.

use pach_e2e::Pachd;

const EDGES_SCRIPT: &str = r#"import os
import cv2

# Every image under /pfs/images becomes its edge map in /pfs/out (as PNG).
for dirpath, _, names in os.walk("/pfs/images"):
    for name in names:
        image = cv2.imread(os.path.join(dirpath, name), cv2.IMREAD_GRAYSCALE)
        edges = cv2.Canny(image, 100, 200)
        stem = os.path.splitext(name)[0]
        cv2.imwrite(os.path.join("/pfs/out", stem + ".png"), edges)
"#;

const EDGES_SPEC: &str = r#"{
  "pipeline": {"name": "edges"},
  "description": "Edge detection with OpenCV.",
  "transform": {"cmd": ["python3", "/edges.py"], "image": "pachyderm/opencv"},
  "input": {"pfs": {"repo": "images", "glob": "/*"}}
}"#;

const MONTAGE_SPEC: &str = r#"{
  "pipeline": {"name": "montage"},
  "description": "The images and their edges side by side.",
  "input": {"cross": [{"pfs": {"glob": "/", "repo": "images"}}, {"pfs": {"glob": "/", "repo": "edges"}}]},
  "transform": {
    "cmd": ["sh"],
    "image": "v4tech/imagemagick",
    "stdin": ["montage -shadow -background SkyBlue -geometry 300x300+2+2 $(find -L /pfs/images /pfs/edges -type f | sort) /pfs/out/montage.png"]
  }
}"#;

/// Installs an example image's program at `path` on the host (executable;
/// the tests run as root), replacing it atomically when it differs.
fn install_program(path: &str, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    let target = std::path::Path::new(path);
    if std::fs::read_to_string(target).ok().as_deref() == Some(text) {
        return;
    }
    let tmp = format!("{path}.{}", std::process::id());
    std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("write {tmp} (as root): {e}"));
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, target).unwrap_or_else(|e| panic!("install {path}: {e}"));
}

/// Writes `spec` to a file and creates the pipeline from it.
fn create_pipeline(p: &Pachd, name: &str, spec: &str) {
    let f = p.dir.path().join(format!("{name}.json"));
    std::fs::write(&f, spec).unwrap();
    p.ok(&["create", "pipeline", "-f", f.to_str().unwrap()]);
}

/// Runs pachctl in `dir` (the READMEs' relative `-f` paths), requiring
/// success.
fn ok_in(p: &Pachd, dir: &std::path::Path, args: &[&str]) {
    let out = p.pachctl_cmd(args).current_dir(dir).output().unwrap();
    assert!(
        out.status.success(),
        "pachctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every job succeeded.
fn all_jobs_succeeded(p: &Pachd) {
    let jobs = p.raw(&["list", "job"]);
    assert!(!jobs.is_empty(), "no job ran");
    for job in jobs {
        assert_eq!(job["state"], "JOB_SUCCESS", "{job}");
    }
}

/// The paths of every file of `repo@master`.
fn files_of(p: &Pachd, repo: &str) -> Vec<String> {
    let mut files: Vec<String> = p
        .raw(&["list", "file", &format!("{repo}@master:/**")])
        .iter()
        .filter(|f| f["fileType"] == "FILE")
        .map(|f| f["file"]["path"].as_str().unwrap().to_string())
        .collect();
    files.sort();
    files
}

fn get(p: &Pachd, repo: &str, path: &str) -> Vec<u8> {
    p.ok_bytes(&["get", "file", &format!("{repo}@master:{path}")])
}

fn is_png(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x89PNG\r\n\x1a\n")
}

#[test]
fn opencv_edges_and_montage_run_unchanged() {
    install_program("/edges.py", EDGES_SCRIPT);
    let p = Pachd::start();
    let pics = p.dir.path().join("pics");
    std::fs::create_dir_all(&pics).unwrap();
    let made = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, numpy, cv2\n\
             a = numpy.zeros((120, 160, 3), numpy.uint8); cv2.circle(a, (80, 60), 40, (255, 255, 255), -1)\n\
             b = numpy.zeros((120, 160, 3), numpy.uint8); cv2.rectangle(b, (30, 20), (130, 100), (0, 200, 255), -1)\n\
             cv2.imwrite(sys.argv[1] + '/circle.jpg', a); cv2.imwrite(sys.argv[1] + '/box.png', b)",
        )
        .arg(&pics)
        .status()
        .unwrap();
    assert!(
        made.success(),
        "could not draw the test images (is opencv installed?)"
    );

    p.ok(&["create", "repo", "images"]);
    for name in ["circle.jpg", "box.png"] {
        let f = pics.join(name);
        p.ok(&[
            "put",
            "file",
            &format!("images@master:/{name}"),
            "-f",
            f.to_str().unwrap(),
        ]);
    }
    create_pipeline(&p, "edges", EDGES_SPEC);
    create_pipeline(&p, "montage", MONTAGE_SPEC);
    p.ok(&["flush", "commit", "images@master"]);
    all_jobs_succeeded(&p);
    let edges: Vec<String> = p
        .raw(&["list", "file", "edges@master:/"])
        .iter()
        .map(|f| f["file"]["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(edges, ["/box.png", "/circle.png"]);
    for name in &edges {
        let png = p.ok_bytes(&["get", "file", &format!("edges@master:{name}")]);
        assert!(is_png(&png) && png.len() > 100, "{name} is not an edge map");
    }
    let montage = p.ok_bytes(&["get", "file", "montage@master:/montage.png"]);
    assert!(
        is_png(&montage) && montage.len() > 1000,
        "montage.png is not a PNG"
    );
}

const SHUFFLE_SPEC: &str = r#"{
  "input": {
    "union": [
      {
        "pfs": {
          "glob": "/*.jpeg",
          "repo": "fruits",
          "empty_files": true
        }
      },
      {
        "pfs": {
          "glob": "/*.json",
          "repo": "pricing",
          "empty_files": true
        }
      }
    ]
  },
  "pipeline": {
    "name": "shuffle"
  },
  "description": "A pipeline that places files with a matching name pattern and stored in separate repositories to a corresponding folder in the output repository.",
  "transform": {
    "image": "ubuntu",
    "cmd": ["/bin/bash"],
    "stdin": [
      "echo 'process fruits if any'",
      "fn=$(find  -L /pfs -not -path \"*/\\.*\"  -type f \\( -path '*/fruits/*' \\))",
      "for f in $fn; do fruit_name=$(basename $f .jpeg); mkdir -p /pfs/out/$fruit_name/; ln -s $f /pfs/out/$fruit_name/img.jpeg; done",
      "echo 'process pricing if any'",
      "fn=$(find  -L /pfs -not -path \"*/\\.*\"  -type f \\( -path '*/pricing/*' \\))",
      "for f in $fn; do fruit_name=$(basename $f .json); mkdir -p /pfs/out/$fruit_name/; ln -s $f /pfs/out/$fruit_name/cost.json; done"
    ]
  }
}"#;

#[test]
fn shuffle_moves_files_by_reference() {
    let p = Pachd::start();
    let data = p.dir.path().join("fruit-data");
    std::fs::create_dir_all(&data).unwrap();
    let files = [
        ("mango.jpeg", "mango picture bytes\n"),
        ("apple.jpeg", "apple picture bytes\n"),
        ("mango.json", "{\"price\": 3}\n"),
        ("apple.json", "{\"price\": 1}\n"),
    ];
    for (name, text) in files {
        std::fs::write(data.join(name), text).unwrap();
    }
    p.ok(&["create", "repo", "fruits"]);
    ok_in(
        &p,
        &data,
        &["put", "file", "fruits@master", "-f", "mango.jpeg"],
    );
    ok_in(
        &p,
        &data,
        &["put", "file", "fruits@master", "-f", "apple.jpeg"],
    );
    p.ok(&["create", "repo", "pricing"]);
    ok_in(
        &p,
        &data,
        &["put", "file", "pricing@master", "-f", "mango.json"],
    );
    ok_in(
        &p,
        &data,
        &["put", "file", "pricing@master", "-f", "apple.json"],
    );
    create_pipeline(&p, "shuffle", SHUFFLE_SPEC);
    p.ok(&["flush", "commit", "fruits@master", "pricing@master"]);
    all_jobs_succeeded(&p);

    assert_eq!(
        files_of(&p, "shuffle"),
        [
            "/apple/cost.json",
            "/apple/img.jpeg",
            "/mango/cost.json",
            "/mango/img.jpeg"
        ]
    );
    // The user code saw empty placeholders; the outputs hold the inputs'
    // bytes.
    for (fruit, (img, price)) in [("mango", (0, 2)), ("apple", (1, 3))] {
        assert_eq!(
            get(&p, "shuffle", &format!("/{fruit}/img.jpeg")),
            files[img].1.as_bytes()
        );
        assert_eq!(
            get(&p, "shuffle", &format!("/{fruit}/cost.json")),
            files[price].1.as_bytes()
        );
    }
}

const JOINS_SPEC: &str = r#"{
  "pipeline": {
    "name": "joins"
  },
  "description": "A pipeline that combines files from two repositories that match a naming pattern.",
  "input": {
    "join": [
      {
        "pfs": {
          "repo": "readings",
          "branch": "master",
          "glob": "/*/(*).txt",
          "join_on": "$1"
        }
      },
     {
       "pfs": {
         "repo": "parameters",
         "branch": "master",
         "glob": "/(*).txt",
         "join_on": "$1"
       }
     }
   ]
 },
 "transform": {
    "cmd": [ "python3", "/joins.py"],
    "image": "joins-example"
  }
}"#;

/// The joins example's program: the sum of the reading's lines times the
/// sum of its parameter file's lines, written under the reading's name.
const JOINS_SCRIPT: &str = r#"import glob
import os

def total(path):
    with open(path) as f:
        return sum(int(line) for line in f if line.strip())

reading = glob.glob("/pfs/readings/*/*.txt")[0]
parameter = glob.glob("/pfs/parameters/*.txt")[0]
with open(os.path.join("/pfs/out", os.path.basename(reading)), "w") as out:
    out.write("%d\n" % (total(reading) * total(parameter)))
"#;

#[test]
fn joins_match_files_by_name() {
    install_program("/joins.py", JOINS_SCRIPT);
    let p = Pachd::start();
    // The example's `make setup`: six readings and six parameter files.
    let data = p.dir.path().join("joins-data");
    std::fs::create_dir_all(data.join("readings/ID1234")).unwrap();
    std::fs::create_dir_all(data.join("parameters")).unwrap();
    for n in 1..=6 {
        let readings = "1\n2\n3\n4\n5".to_string() + &"\n6".repeat(n - 1);
        std::fs::write(data.join(format!("readings/ID1234/file{n}.txt")), readings).unwrap();
        std::fs::write(
            data.join(format!("parameters/file{n}.txt")),
            "1\n2\n3\n4\n5",
        )
        .unwrap();
    }
    p.ok(&["create", "repo", "readings"]);
    p.ok(&["create", "repo", "parameters"]);
    ok_in(
        &p,
        &data,
        &[
            "put",
            "file",
            "-r",
            "parameters@master:/",
            "-f",
            "parameters",
        ],
    );
    ok_in(
        &p,
        &data.join("readings"),
        &["put", "file", "-r", "readings@master", "-f", "ID1234"],
    );
    assert_eq!(files_of(&p, "readings")[0], "/ID1234/file1.txt");
    create_pipeline(&p, "joins", JOINS_SPEC);
    p.ok(&["flush", "commit", "readings@master", "parameters@master"]);
    all_jobs_succeeded(&p);

    let outputs = files_of(&p, "joins");
    assert_eq!(outputs.len(), 6, "{outputs:?}");
    for n in 1..=6u64 {
        // Reading n sums to 15 + 6(n-1); each parameter file to 15.
        let want = format!("{}\n", (15 + 6 * (n - 1)) * 15);
        assert_eq!(
            String::from_utf8(get(&p, "joins", &format!("/file{n}.txt"))).unwrap(),
            want,
            "file{n}.txt"
        );
    }
}

const MAP_SPEC: &str = r#"{
  "pipeline": {
    "name": "map"
  },
  "description": "A pipeline that tokenizes scraped pages and appends counts of words to corresponding files.",
  "transform": {
    "image": "pachyderm/wordcount-map",
    "cmd": [
      "/map", 
      "/pfs/scraper/", 
      "/pfs/out"
    ]
  },
  "input": {
    "pfs": {
      "repo": "scraper",
      "glob": "/*"
    }
  }
}"#;

const REDUCE_SPEC: &str = r#"{
  "pipeline": {
    "name": "reduce"
  },
  "description": "A pipeline that aggregates the total counts for each word.",
  "transform": {
    "cmd": ["sh"],
    "stdin": [
        "find /pfs/map/ -name '*' | while read count; do cat $count | awk '{ sum+=$1} END {print sum}' >/tmp/count; mv /tmp/count /pfs/out/`basename $count`; echo `basename $count`; done"
    ]
  },
  "input": {
    "pfs": {
      "repo": "map",
      "glob": "/*"
    }
  }
}"#;

/// The word_count example's `/map INPUT OUTPUT`: counts the words of every
/// file below INPUT (runs of letters, lower-cased) and writes each word's
/// count to OUTPUT/WORD.
const MAP_PROGRAM: &str = r#"#!/usr/bin/env python3
import collections, os, re, sys

if len(sys.argv) != 3:
    sys.exit("usage: /map INPUT_DIR OUTPUT_DIR")
counts = collections.Counter()
for dirpath, _, names in os.walk(sys.argv[1], followlinks=True):
    for name in names:
        with open(os.path.join(dirpath, name), errors="replace") as f:
            for token in f.read().split():
                counts.update(w for w in re.split("[^a-z]+", token.lower()) if w)
for word, n in counts.items():
    with open(os.path.join(sys.argv[2], word), "w") as out:
        out.write("%d\n" % n)
"#;

#[test]
fn word_count_map_and_reduce() {
    install_program("/map", MAP_PROGRAM);
    let p = Pachd::start();
    // What the example's scraper pipeline leaves: a directory of pages per
    // URL file.
    p.ok(&["create", "repo", "scraper"]);
    p.ok_stdin(
        &["put", "file", "scraper@master:/Wikipedia/Main_Page.html"],
        b"<p>The cat sat; the DOG sat.</p>",
    );
    p.ok_stdin(
        &["put", "file", "scraper@master:/Wikipedia/Other.html"],
        b"the end",
    );
    p.ok_stdin(
        &["put", "file", "scraper@master:/News/index.html"],
        b"Dog bites cat. THE news!",
    );
    create_pipeline(&p, "map", MAP_SPEC);
    create_pipeline(&p, "reduce", REDUCE_SPEC);
    p.ok(&["flush", "commit", "scraper@master"]);
    all_jobs_succeeded(&p);

    // Two datums (/News, /Wikipedia) wrote /the and /cat: map's output
    // holds both counts, one after the other.
    let mut the = String::from_utf8(get(&p, "map", "/the")).unwrap();
    let mut lines: Vec<&str> = the.lines().collect();
    lines.sort();
    assert_eq!(lines, ["1", "3"], "map:/the is {the:?}");
    the = String::from_utf8(get(&p, "reduce", "/the")).unwrap();
    assert_eq!(the, "4\n");
    for (word, total) in [
        ("cat", 2),
        ("dog", 2),
        ("sat", 2),
        ("end", 1),
        ("bites", 1),
        ("news", 1),
        ("p", 2),
    ] {
        let got = String::from_utf8(get(&p, "reduce", &format!("/{word}"))).unwrap();
        assert_eq!(got, format!("{total}\n"), "reduce:/{word}");
    }
}
