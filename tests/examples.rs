//! Pachyderm's opencv example (the `edges` and `montage` pipelines) run
//! unchanged on the host's tools: the specs call `python3 /edges.py` and
//! ImageMagick's `montage`, as the example's images do. The test command
//! installs OpenCV and ImageMagick (scripts/test-tools.sh); the edge
//! detection script, which the example ships in its image, is installed at
//! `/edges.py` on the host here.

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

fn install_edges_script() {
    let target = std::path::Path::new("/edges.py");
    if std::fs::read_to_string(target).ok().as_deref() == Some(EDGES_SCRIPT) {
        return;
    }
    let tmp = format!("/edges.py.{}", std::process::id());
    std::fs::write(&tmp, EDGES_SCRIPT).expect("write /edges.py (the test runs as root)");
    std::fs::rename(&tmp, target).expect("install /edges.py");
}

fn is_png(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x89PNG\r\n\x1a\n")
}

#[test]
fn opencv_edges_and_montage_run_unchanged() {
    install_edges_script();
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
    for (name, spec) in [("edges.json", EDGES_SPEC), ("montage.json", MONTAGE_SPEC)] {
        let f = p.dir.path().join(name);
        std::fs::write(&f, spec).unwrap();
        p.ok(&["create", "pipeline", "-f", f.to_str().unwrap()]);
    }
    p.ok(&["flush", "commit", "images@master"]);

    for job in p.raw(&["list", "job"]) {
        assert_eq!(job["state"], "JOB_SUCCESS", "{job}");
    }
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
