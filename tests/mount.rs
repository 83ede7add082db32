//! `pachctl mount` and `pachctl unmount`: PFS through FUSE, read with `ls`
//! and `cat`, written with the shell, as a user does. Skipped, with the
//! reason printed, where /dev/fuse is absent or mounting is not permitted.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use pach_e2e::Pachd;

/// One test at a time: `unmount -a` unmounts every PFS mount there is.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running `pachctl mount`; dropping it unmounts (a failed test leaves
/// no mount behind).
struct Mounted<'a> {
    pachd: &'a Pachd,
    dir: PathBuf,
    child: Option<Child>,
    stderr: PathBuf,
    _logs: tempfile::TempDir,
}

fn is_mounted(dir: &Path) -> bool {
    let dir = dir.to_str().expect("utf-8 path");
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mount table")
        .lines()
        .any(|l| {
            l.split(' ').nth(4) == Some(dir)
                && l.split_once(" - ").is_some_and(|(_, r)| {
                    r.split(' ').nth(1).is_some_and(|s| s.starts_with("pfs://"))
                })
        })
}

impl<'a> Mounted<'a> {
    /// Mounts PFS on `dir` with `args`; None, with the reason printed, where
    /// this machine cannot mount FUSE.
    fn start(pachd: &'a Pachd, dir: &Path, args: &[&str]) -> Option<Mounted<'a>> {
        if !Path::new("/dev/fuse").exists() {
            eprintln!("SKIPPED: /dev/fuse is absent, FUSE mounts cannot be tested here");
            return None;
        }
        let logs = tempfile::tempdir().unwrap();
        let stderr = logs.path().join("mount.stderr");
        let mut all = vec!["mount", dir.to_str().unwrap()];
        all.extend_from_slice(args);
        let child = pachd
            .pachctl_cmd(&all)
            .stdout(Stdio::null())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn pachctl mount");
        let mut m = Mounted {
            pachd,
            dir: dir.to_path_buf(),
            child: Some(child),
            stderr,
            _logs: logs,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !is_mounted(dir) {
            if let Some(status) = m.child.as_mut().unwrap().try_wait().unwrap() {
                m.child = None;
                let text = m.stderr_text();
                if text.contains("may not mount(2)") {
                    eprintln!("SKIPPED: mounting FUSE is not permitted here: {text}");
                    return None;
                }
                panic!("pachctl mount exited ({status}) before mounting:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "no mount after 30s:\n{}",
                m.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(m)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Sends `signal` to `pachctl mount`; returns what it printed on stderr
    /// once it has exited (successfully).
    fn stop(mut self, signal: &str) -> String {
        let child = self.child.as_mut().unwrap();
        sh_ok(&format!("kill -{signal} {}", child.id()));
        let status = wait(child, Duration::from_secs(30));
        self.child = None;
        let text = self.stderr_text();
        assert!(status.success(), "pachctl mount failed: {text}");
        assert!(!is_mounted(&self.dir), "still mounted after SIG{signal}");
        text
    }

    /// `pachctl unmount DIR`; returns what `pachctl mount` printed on stderr
    /// once it has exited (successfully).
    fn unmount(mut self) -> String {
        self.pachd.ok(&["unmount", self.dir.to_str().unwrap()]);
        let status = wait(self.child.as_mut().unwrap(), Duration::from_secs(30));
        self.child = None;
        let text = self.stderr_text();
        assert!(status.success(), "pachctl mount failed: {text}");
        assert!(!is_mounted(&self.dir), "still mounted after unmount");
        text
    }
}

fn wait(child: &mut Child, patience: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "pachctl mount did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = self.pachd.run(&["unmount", self.dir.to_str().unwrap()]);
            let _ = child.kill();
            let _ = child.wait();
        }
        if is_mounted(&self.dir) {
            // The server is gone: the mount is dead and unmounts at once,
            // or, if a file of it is still open, is detached.
            let _ = self.pachd.run(&["unmount", self.dir.to_str().unwrap()]);
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

fn sh(script: &str) -> Output {
    Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("run sh")
}

fn sh_ok(script: &str) -> String {
    let out = sh(script);
    assert!(
        out.status.success(),
        "`{script}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Bytes that differ at every offset, so that a read at a wrong offset shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2])
        .collect()
}

#[test]
fn mount_reads_master_and_named_commits() {
    let _one = serial();
    let p = Pachd::start();
    p.ok(&["create", "repo", "images"]);
    p.ok(&["create", "repo", "labels"]);
    p.ok_stdin(&["put", "file", "images@master:/a.txt"], b"first\n");
    let first = p.raw(&["inspect", "commit", "images@master"])[0]["commit"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    p.ok_stdin(&["put", "file", "-o", "images@master:/a.txt"], b"second\n");
    p.ok_stdin(&["put", "file", "images@master:/dir/b.txt"], b"bee\n");
    let local = tempfile::tempdir().unwrap();
    let big = pattern(9 << 20 | 12345);
    std::fs::write(local.path().join("big"), &big).unwrap();
    p.ok(&[
        "put",
        "file",
        "images@master:/big",
        "-f",
        local.path().join("big").to_str().unwrap(),
    ]);
    p.ok(&["create", "branch", "labels@staging"]);
    p.ok_stdin(&["put", "file", "labels@staging:/l.txt"], b"label\n");
    p.ok_stdin(&["put", "file", "labels@master:/m.txt"], b"master label\n");

    let mnt = tempfile::tempdir().unwrap();
    let commit_arg = format!("images@{first}");
    let Some(m) = Mounted::start(&p, mnt.path(), &["-c", &commit_arg]) else {
        return;
    };
    let root = m.dir.display().to_string();
    assert_eq!(sh_ok(&format!("ls {root}")), "images\nlabels\n");
    // -c images@FIRST: the named commit, not master's head.
    assert_eq!(sh_ok(&format!("ls {root}/images")), "a.txt\n");
    assert_eq!(sh_ok(&format!("cat {root}/images/a.txt")), "first\n");
    // Another repo: its master.
    assert_eq!(sh_ok(&format!("ls {root}/labels")), "m.txt\n");
    assert_eq!(sh_ok(&format!("cat {root}/labels/m.txt")), "master label\n");
    // Without --write the mount refuses writes.
    let refused = sh(&format!("echo x > {root}/labels/new.txt"));
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Read-only file system"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(
        sh(&format!("cat {root}/nosuch"))
            .stderr
            .ends_with(b"No such file or directory\n")
    );
    m.unmount();

    // Master of images, a branch of labels.
    let Some(m) = Mounted::start(&p, mnt.path(), &["--commits", "labels@staging"]) else {
        return;
    };
    assert_eq!(sh_ok(&format!("ls {root}/images")), "a.txt\nbig\ndir\n");
    assert_eq!(sh_ok(&format!("cat {root}/images/a.txt")), "second\n");
    assert_eq!(sh_ok(&format!("ls {root}/images/dir")), "b.txt\n");
    assert_eq!(sh_ok(&format!("cat {root}/images/dir/b.txt")), "bee\n");
    assert_eq!(sh_ok(&format!("cat {root}/labels/l.txt")), "label\n");
    // A large file whole, and from offsets (windows of reads by offset).
    assert!(std::fs::read(m.path("images/big")).unwrap() == big);
    let mut f = File::open(m.path("images/big")).unwrap();
    for at in [7 << 20, 1, 4 << 20, (9 << 20) + 12000] {
        f.seek(SeekFrom::Start(at as u64)).unwrap();
        let mut buf = vec![0u8; 5000];
        let n = f.read(&mut buf).unwrap();
        assert!(n > 0);
        assert!(buf[..n] == big[at..at + n], "bytes at {at}");
    }
    drop(f);
    let out = m.unmount();
    assert!(!out.contains("error"), "{out}");
    // Unmounted: the directory is empty again.
    assert_eq!(std::fs::read_dir(mnt.path()).unwrap().count(), 0);
}

#[test]
fn mount_write_commits_at_unmount() {
    let _one = serial();
    let p = Pachd::start();
    p.ok(&["create", "repo", "images"]);
    p.ok_stdin(&["put", "file", "images@master:/old.txt"], b"old\n");
    p.ok_stdin(&["put", "file", "images@master:/keep.txt"], b"keep\n");
    let before = p.raw(&["list", "commit", "images"]).len();

    let mnt = tempfile::tempdir().unwrap();
    let Some(m) = Mounted::start(&p, mnt.path(), &["-w"]) else {
        return;
    };
    let root = m.dir.display().to_string();
    sh_ok(&format!("echo hello > {root}/images/new.txt"));
    // Read back through the mount at once, and by pachctl from the open commit.
    assert_eq!(sh_ok(&format!("cat {root}/images/new.txt")), "hello\n");
    let open = p.raw(&["inspect", "commit", "images@master"]);
    assert!(open[0].get("finished").is_none(), "{open:?}");
    sh_ok(&format!("echo more >> {root}/images/new.txt"));
    sh_ok(&format!(
        "mkdir {root}/images/sub && echo deep > {root}/images/sub/f.txt"
    ));
    sh_ok(&format!("rm {root}/images/old.txt"));
    sh_ok(&format!("mv {root}/images/keep.txt {root}/images/kept.txt"));
    assert_eq!(
        sh_ok(&format!("ls {root}/images")),
        "kept.txt\nnew.txt\nsub\n"
    );
    // Repos are made by `pachctl create repo`, not mkdir.
    assert!(!sh(&format!("mkdir {root}/newrepo")).status.success());
    let out = m.unmount();
    assert!(out.contains("finished commit images@"), "{out}");

    // One new commit, finished, with the writes.
    let commits = p.raw(&["list", "commit", "images"]);
    assert_eq!(commits.len(), before + 1);
    assert!(commits[0].get("finished").is_some(), "{:?}", commits[0]);
    assert_eq!(
        p.ok(&["get", "file", "images@master:/new.txt"]),
        "hello\nmore\n"
    );
    assert_eq!(p.ok(&["get", "file", "images@master:/sub/f.txt"]), "deep\n");
    assert_eq!(p.ok(&["get", "file", "images@master:/kept.txt"]), "keep\n");
    let names: Vec<String> = p
        .raw(&["list", "file", "images@master"])
        .iter()
        .map(|f| f["file"]["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["/kept.txt", "/new.txt", "/sub"]);

    // An open commit named with -c is written into and left open.
    let id = p
        .ok(&["start", "commit", "images@master"])
        .trim()
        .to_string();
    let arg = format!("images@{id}");
    let Some(m) = Mounted::start(&p, mnt.path(), &["-w", "-c", &arg]) else {
        return;
    };
    sh_ok(&format!("echo into-open > {root}/images/x.txt"));
    let out = m.unmount();
    assert!(!out.contains("finished commit"), "{out}");
    let c = p.raw(&["inspect", "commit", &arg]);
    assert!(c[0].get("finished").is_none(), "{c:?}");
    p.ok(&["finish", "commit", &arg]);
    assert_eq!(
        p.ok(&["get", "file", "images@master:/x.txt"]),
        "into-open\n"
    );

    // Stopped by a signal: the mount goes and its commit is finished.
    let Some(m) = Mounted::start(&p, mnt.path(), &["-w"]) else {
        return;
    };
    sh_ok(&format!("echo signalled > {root}/images/s.txt"));
    let out = m.stop("TERM");
    assert!(out.contains("finished commit images@"), "{out}");
    assert_eq!(
        p.ok(&["get", "file", "images@master:/s.txt"]),
        "signalled\n"
    );

    // A finished commit stays read-only even with -w.
    let Some(m) = Mounted::start(&p, mnt.path(), &["-w", "-c", &arg]) else {
        return;
    };
    assert!(
        !sh(&format!("echo no > {root}/images/y.txt"))
            .status
            .success()
    );
    m.unmount();
}

#[test]
fn mount_bad_input_and_unmount_all() {
    let _one = serial();
    let p = Pachd::start();
    p.ok(&["create", "repo", "images"]);
    let mnt = tempfile::tempdir().unwrap();
    let dir = mnt.path().to_str().unwrap();

    let missing = format!("{dir}/nosuch");
    let e = p.fails(&["mount", &missing]);
    assert!(
        e.contains("does not exist") && e.contains("mkdir -p"),
        "{e}"
    );
    std::fs::write(mnt.path().join("file"), "x").unwrap();
    let e = p.fails(&["mount", dir]);
    assert!(e.contains("is not empty"), "{e}");
    let e = p.fails(&["mount", &format!("{dir}/file")]);
    assert!(e.contains("is not a directory"), "{e}");
    std::fs::remove_file(mnt.path().join("file")).unwrap();
    let e = p.fails(&["mount", dir, "-c", "nosuch@master"]);
    assert!(e.contains("repo 'nosuch' does not exist"), "{e}");
    let e = p.fails(&["mount", dir, "-c", "images@nobranch"]);
    assert!(e.contains("neither a branch nor a commit"), "{e}");
    let e = p.fails(&["mount", dir, "-c", "images"]);
    assert!(e.contains("repo@commit"), "{e}");
    let e = p.fails(&["unmount", dir]);
    assert!(e.contains("is not a PFS mount"), "{e}");
    let e = p.fails(&["unmount"]);
    assert!(e.contains("--all"), "{e}");

    let Some(m) = Mounted::start(&p, mnt.path(), &[]) else {
        return;
    };
    // A second mount on the same directory is refused.
    let e = p.fails(&["mount", dir]);
    assert!(e.contains("already a PFS mount"), "{e}");
    // unmount -a asks first; "n" keeps the mount.
    let listed = p.ok_stdin(&["unmount", "-a"], b"n\n");
    assert!(
        listed.contains("Unmount the following filesystems? yN"),
        "{listed}"
    );
    assert!(listed.contains(dir), "{listed}");
    assert!(is_mounted(mnt.path()));
    p.ok_stdin(&["unmount", "-a"], b"y\n");
    // The mount command ends by itself once unmounted.
    let mut m = m;
    let status = wait(m.child.as_mut().unwrap(), Duration::from_secs(30));
    m.child = None;
    assert!(status.success(), "{}", m.stderr_text());
    assert!(!is_mounted(mnt.path()));
    assert_eq!(p.ok_stdin(&["unmount", "-a"], b""), "No mounts found.\n");

    // A mount whose pachctl was killed is dead, and named as such; unmount
    // removes it.
    let Some(mut m) = Mounted::start(&p, mnt.path(), &[]) else {
        return;
    };
    let mut child = m.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(is_mounted(mnt.path()));
    let e = p.fails(&["mount", dir]);
    assert!(
        e.contains("server is gone") && e.contains("pachctl unmount"),
        "{e}"
    );
    p.ok(&["unmount", dir]);
    assert!(!is_mounted(mnt.path()));
}
