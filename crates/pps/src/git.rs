//! Git inputs: a branch of a git repository whose every new head becomes a
//! commit of the input's repo (named after the input) holding the tree
//! checked out at that head, so user code finds it under `/pfs/<name>/` as
//! it found the clone in Pachyderm 1.9 (without `.git`).
//!
//! The host's `git` fetches: into a bare repository per URL under pachd's
//! scratch directory, one branch, history depth 1. A fetch happens when
//! the input's poller's interval is up (`Pps::with_git_poll`) or when a
//! push event names the repository and branch (`Pps::git_push`, which
//! pachd's webhook endpoint serves as 1.9's `/v1/handle/push`).
//!
//! *Invariants:* the files are stored before the one transaction that
//! makes the commit, and that transaction adds it only while the input
//! branch's head is the commit the fetch compared with, so a failed fetch
//! leaves nothing behind and two pachd fetching the same head commit it
//! once. The commit's description names the git commit it holds
//! (`git commit <sha> ...`), which is how the next fetch knows whether the
//! branch moved. No URL runs a program: only the http(s), git, ssh and
//! file transports are allowed, and `file://` only inside the directories
//! the operator allows for clients' URLs.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pach_storage::Change;

use pach_meta::Txn;
use pach_pfs::records::{encode, load, load_all};

use crate::error::{PpsError, Result};
use crate::pipeline::Pps;
use crate::records::{PipelineState, git_error_key, git_errors_prefix};
use crate::spec::{GitInput, Input};

/// The transports a git input may use (git's `GIT_ALLOW_PROTOCOL` too).
const TRANSPORTS: [&str; 5] = ["https", "http", "git", "ssh", "file"];

/// How long one git command may take before it is stopped.
const GIT_TIMEOUT: Duration = Duration::from_secs(600);

/// The start of the description of a commit a git input made.
const DESCRIPTION_PREFIX: &str = "git commit ";

/// The input name Pachyderm 1.9 derives from a URL: the last path element
/// up to its first '.' (`https://github.com/org/my-code.git` → `my-code`).
pub fn name_from_url(url: &str) -> String {
    let last = url.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    last.split('.').next().unwrap_or("").to_string()
}

/// Refuses a URL git would not fetch as a plain remote: empty, a transport
/// other than http(s), git, ssh or file (git's `ext::` runs programs), or
/// a plain path.
pub fn check_url(url: &str) -> std::result::Result<(), String> {
    const EXAMPLE: &str = "e.g. https://github.com/org/repo.git, git://host/repo.git or \
                           file:///srv/git/repo.git";
    if url.is_empty() {
        return Err(format!("the repository's URL is required ({EXAMPLE})"));
    }
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme {
        Some(s) if TRANSPORTS.contains(&s.as_str()) => {}
        _ => {
            return Err(format!(
                "'{url}' is not a URL git inputs fetch from: use one of the transports {} \
                 (a local repository as file:///path/to/repo), {EXAMPLE}",
                TRANSPORTS
                    .iter()
                    .map(|t| format!("{t}://"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    if url.chars().any(char::is_control) {
        return Err(format!("'{url}' holds control characters"));
    }
    Ok(())
}

/// Every git input of an input tree.
pub fn git_inputs(input: &Input) -> Vec<&GitInput> {
    input
        .walk()
        .into_iter()
        .filter_map(|i| i.git.as_ref())
        .collect()
}

/// What one fetch of a git input did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The input's repo already holds this git commit.
    Unchanged { sha: String },
    /// A new commit of the input's repo holds the tree of git commit `sha`.
    Committed { sha: String, commit: String },
}

/// A push event (GitHub's JSON, as 1.9 took it): the branch pushed and the
/// URLs the repository goes by.
#[derive(Debug, serde::Deserialize)]
struct PushEvent {
    #[serde(rename = "ref", default)]
    reference: String,
    #[serde(default)]
    repository: PushRepository,
}

#[derive(Debug, Default, serde::Deserialize)]
struct PushRepository {
    #[serde(default)]
    clone_url: Option<String>,
    #[serde(default)]
    git_url: Option<String>,
    #[serde(default)]
    ssh_url: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

/// The last failed fetch of a git input (`pps/git-errors/<pipeline>/<input>`),
/// kept while its fetches fail: `inspect pipeline` shows it as
/// `recent_error`, whichever pachd made the fetch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct GitError {
    message: String,
}

/// One git input a push event reached, and what its fetch did.
#[derive(Debug)]
pub struct PushOutcome {
    pub pipeline: String,
    pub repo: String,
    pub branch: String,
    pub fetched: Result<Fetched>,
}

impl Pps {
    /// Polls git inputs every `interval` (zero: only push events fetch).
    pub fn with_git_poll(mut self, interval: Duration) -> Self {
        self.git_poll = interval;
        self
    }

    /// The URL of pachd's webhook endpoint, shown as `githook_url`.
    pub fn with_githook_url(mut self, url: String) -> Self {
        self.githook_url = Some(url);
        self
    }

    /// The URL `inspect pipeline` shows for a pipeline with git inputs.
    pub fn githook_url(&self) -> Option<&str> {
        self.githook_url.as_deref()
    }

    /// Checks, before a pipeline is created, that git can read each git
    /// input's branch: git is installed, the URL is allowed and answers,
    /// and the branch exists there.
    pub(crate) async fn check_git_inputs(&self, input: &Input) -> Result<()> {
        for g in git_inputs(input) {
            self.allowed(g)?;
            let out = run_git(
                None,
                &[
                    "ls-remote",
                    "--heads",
                    "--",
                    &g.url,
                    &format!("refs/heads/{}", g.branch),
                ],
                &[],
            )
            .await
            .map_err(|e| PpsError::InvalidSpec(format!("input.git.URL '{}': {e}", g.url)))?;
            if out.trim().is_empty() {
                return Err(PpsError::InvalidSpec(format!(
                    "input.git.branch: '{}' has no branch '{}'; push it first, or name an \
                     existing one (`git ls-remote --heads {}` lists them)",
                    g.url, g.branch, g.url
                )));
            }
        }
        Ok(())
    }

    /// `file://` URLs read pachd's host: only inside the directories the
    /// operator allows for clients' URLs.
    fn allowed(&self, g: &GitInput) -> Result<()> {
        if g.url.to_ascii_lowercase().starts_with("file://") {
            pach_storage::open_url(&g.url, &self.urls)
                .map_err(|e| PpsError::InvalidSpec(format!("input.git.URL: {e}")))?;
        }
        Ok(())
    }

    /// Fetches the input's branch and, when its head is a git commit the
    /// input's repo does not hold yet, commits its tree there, written as
    /// `pipeline`. A failure is kept for `inspect pipeline` until a fetch
    /// succeeds.
    pub async fn fetch_git(&self, pipeline: &str, g: &GitInput) -> Result<Fetched> {
        let fetched = self.fetch_git_once(pipeline, g).await;
        let message = fetched.as_ref().err().map(|e| e.to_string());
        if let Err(e) = self.keep_git_error(pipeline, &g.name, message).await {
            tracing::warn!(pipeline, repo = %g.name, "git input: cannot record the fetch's outcome: {e}");
        }
        fetched
    }

    /// Records (or, with `None`, clears) the last failed fetch of an input;
    /// writes only when it changes.
    async fn keep_git_error(
        &self,
        pipeline: &str,
        input: &str,
        message: Option<String>,
    ) -> Result<()> {
        let meta = self.pfs.meta();
        let key = git_error_key(pipeline, input);
        let current = load::<GitError>(&**meta, &key).await?;
        let txn = match (message, current) {
            (None, None) => return Ok(()),
            (None, Some((_, rev))) => Txn::new().expect(&key, rev).delete(&key),
            (Some(m), Some((old, _))) if old.message == m => return Ok(()),
            (Some(message), current) => Txn::new()
                .expect(&key, current.map_or(0, |(_, rev)| rev))
                .put(&key, encode(&GitError { message })),
        };
        // A concurrent writer recorded the outcome of its own fetch: as good.
        meta.commit(txn).await?;
        Ok(())
    }

    /// The failures of a pipeline's git inputs that are still failing, one
    /// line per input.
    pub async fn git_errors(&self, pipeline: &str) -> Result<String> {
        let all = load_all::<GitError>(&**self.pfs.meta(), &git_errors_prefix(pipeline)).await?;
        Ok(all
            .into_iter()
            .map(|(e, _)| e.message)
            .collect::<Vec<_>>()
            .join("; "))
    }

    async fn fetch_git_once(&self, pipeline: &str, g: &GitInput) -> Result<Fetched> {
        self.allowed(g)?;
        let cache = self
            .scratch
            .join("git")
            .join(&blake3::hash(g.url.as_bytes()).to_hex()[..32]);
        let lock = {
            let mut locks = self
                .git_locks
                .lock()
                .map_err(|_| PpsError::FailedPrecondition("git fetch lock poisoned".into()))?;
            locks.entry(cache.clone()).or_default().clone()
        };
        let _held = lock.lock().await;
        if !cache.join("HEAD").exists() {
            std::fs::create_dir_all(&cache).map_err(|e| git_io("create", &cache, e))?;
            run_git(Some(&cache), &["init", "--quiet", "--bare"], &[]).await?;
        }
        let refspec = format!("refs/heads/{}", g.branch);
        let gone = || {
            PpsError::FailedPrecondition(format!(
                "'{}' has no branch '{}' any more; push it again, or update the pipeline \
                 with an existing input.git.branch",
                g.url, g.branch
            ))
        };
        // One round trip says whether the branch moved: an unchanged branch
        // costs no fetch (a shallow fetch sends the whole tree again).
        let listed = run_git(
            Some(&cache),
            &["ls-remote", "--heads", "--", &g.url, &refspec],
            &[],
        )
        .await?;
        let remote = listed
            .lines()
            .find_map(|l| l.split_once('\t').filter(|(_, r)| *r == refspec))
            .map(|(sha, _)| sha.to_string())
            .ok_or_else(gone)?;
        let head = match self.pfs.inspect_branch(&g.name, &g.branch).await {
            Ok(b) => b.record.head,
            Err(pach_pfs::PfsError::BranchNotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let held = match &head {
            Some(h) => {
                let c = self.pfs.inspect_commit(&g.name, h, false).await?;
                held_sha(&c.description).map(str::to_string)
            }
            None => None,
        };
        if held.as_deref() == Some(remote.as_str()) {
            return Ok(Fetched::Unchanged { sha: remote });
        }
        // The first fetch takes the head alone; later ones only what is new.
        let mut fetch = vec!["fetch", "--quiet", "--no-tags"];
        if !cache.join("shallow").exists() {
            fetch.push("--depth=1");
        }
        fetch.extend(["--", &g.url, &refspec]);
        run_git(Some(&cache), &fetch, &[])
            .await
            .map_err(|e| match e {
                PpsError::FailedPrecondition(m) if m.contains("couldn't find remote ref") => gone(),
                e => e,
            })?;
        let sha = run_git(Some(&cache), &["rev-parse", "FETCH_HEAD^{commit}"], &[])
            .await?
            .trim()
            .to_string();
        if held.as_deref() == Some(sha.as_str()) {
            // Pushed back to what the input holds between the two calls.
            return Ok(Fetched::Unchanged { sha });
        }
        let work = self
            .scratch
            .join("git")
            .join(format!("checkout-{}", uuid::Uuid::new_v4().simple()));
        let result = self
            .commit_tree(pipeline, g, &cache, &work, (held.as_deref(), &sha), head)
            .await;
        let _ = std::fs::remove_dir_all(&work);
        match result? {
            Some(commit) => {
                tracing::info!(pipeline, repo = %g.name, branch = %g.branch, %sha, %commit, "git input: committed");
                Ok(Fetched::Committed { sha, commit })
            }
            // Another fetch committed first: it holds this head or a newer one.
            None => Ok(Fetched::Unchanged { sha }),
        }
    }

    /// Checks `sha` out into `<work>/pfs/out`, stores the files and commits
    /// them after `head`, which holds the tree of `held` when known: then
    /// only the files that differ between the two are checked out and
    /// written (git's diff), else the whole tree.
    async fn commit_tree(
        &self,
        pipeline: &str,
        g: &GitInput,
        cache: &Path,
        work: &Path,
        (held, sha): (Option<&str>, &str),
        head: Option<String>,
    ) -> Result<Option<String>> {
        let tree = work.join("pfs").join("out");
        std::fs::create_dir_all(&tree).map_err(|e| git_io("create", &tree, e))?;
        let index = work.join("index");
        let env = [("GIT_INDEX_FILE", index.as_path())];
        let git_dir = format!("--git-dir={}", cache.display());
        let work_tree = format!("--work-tree={}", tree.display());
        let diff = match held {
            Some(held) => tree_diff(cache, held, sha).await?,
            None => None,
        };
        run_git(None, &[&git_dir, &work_tree, "read-tree", sha], &env).await?;
        let mut changes = Vec::new();
        match &diff {
            Some((deleted, written)) => {
                changes.extend(deleted.iter().map(|p| Change::Delete(format!("/{p}"))));
                if !written.is_empty() {
                    let mut args = vec![
                        git_dir.as_str(),
                        &work_tree,
                        "checkout-index",
                        "--force",
                        "--",
                    ];
                    args.extend(written.iter().map(String::as_str));
                    run_git(None, &args, &env).await?;
                }
            }
            None => {
                changes.push(Change::Delete("/".into()));
                run_git(
                    None,
                    &[&git_dir, &work_tree, "checkout-index", "--all", "--force"],
                    &env,
                )
                .await?;
            }
        }
        let mut session = self.pfs.content().session();
        let entries = pach_worker::collect(&mut session, work, &HashMap::new())
            .await
            .map_err(|e| {
                PpsError::FailedPrecondition(format!(
                    "git input '{}': storing the tree of {sha}: {e}",
                    g.name
                ))
            })?;
        session.finish().await?;
        changes.extend(entries.into_iter().map(Change::Put));
        let description = format!("{DESCRIPTION_PREFIX}{sha} of {} branch {}", g.url, g.branch);
        Ok(self
            .pfs
            .for_pipeline(pipeline)
            .write_commit_after(&g.name, &g.branch, head.as_deref(), changes, &description)
            .await?)
    }

    /// A push event's body: fetches every running pipeline's git input that
    /// watches the pushed repository and branch (one fetch per input repo
    /// and branch). An empty list: no git input watches them.
    pub async fn git_push(&self, body: &[u8]) -> Result<(String, String, Vec<PushOutcome>)> {
        let event: PushEvent = serde_json::from_slice(body).map_err(|e| {
            PpsError::InvalidArgument(format!(
                "the body is not a push event's JSON ({e}); send GitHub's push event \
                 (content type application/json)"
            ))
        })?;
        let Some(branch) = event.reference.strip_prefix("refs/heads/") else {
            return Err(PpsError::InvalidArgument(format!(
                "ref '{}' is not a branch (refs/heads/NAME); git inputs watch branches",
                event.reference
            )));
        };
        let r = &event.repository;
        let urls: Vec<&str> = [&r.clone_url, &r.git_url, &r.ssh_url, &r.url]
            .into_iter()
            .filter_map(|u| u.as_deref())
            .collect();
        let shown = urls.first().map(|u| u.to_string()).unwrap_or_default();
        if urls.is_empty() {
            return Err(PpsError::InvalidArgument(
                "the push event names no repository URL (repository.clone_url)".into(),
            ));
        }
        let mut outcomes: Vec<PushOutcome> = Vec::new();
        for p in self.list_pipeline_records().await? {
            if p.state != PipelineState::Running {
                continue;
            }
            let Some(input) = &p.spec.input else { continue };
            for g in git_inputs(input) {
                if g.branch != branch || !urls.iter().any(|u| same_url(u, &g.url)) {
                    continue;
                }
                if outcomes
                    .iter()
                    .any(|o| o.repo == g.name && o.branch == g.branch)
                {
                    continue;
                }
                let fetched = self.fetch_git(p.name(), g).await;
                outcomes.push(PushOutcome {
                    pipeline: p.name().to_string(),
                    repo: g.name.clone(),
                    branch: g.branch.clone(),
                    fetched,
                });
            }
        }
        Ok((shown, branch.to_string(), outcomes))
    }

    /// Keeps one git input fetched while its pipeline runs with it and this
    /// pachd leads: at once, then every poll interval.
    pub(crate) async fn run_git_poller(
        &self,
        me: &str,
        pipeline: &str,
        g: &GitInput,
    ) -> Result<()> {
        let mut next = Instant::now();
        loop {
            let p = match self.inspect_pipeline(pipeline).await {
                Ok(p) => p,
                Err(PpsError::PipelineNotFound(_)) => return Ok(()),
                Err(e) => return Err(e),
            };
            let still = p
                .spec
                .input
                .as_ref()
                .is_some_and(|i| git_inputs(i).contains(&g));
            if !still || p.state != PipelineState::Running {
                return Ok(());
            }
            if !self.git_poll.is_zero() && Instant::now() >= next {
                // Only the leading controller polls (another one took over if not).
                if !crate::leader::lead(&**self.pfs.meta(), me).await? {
                    return Ok(());
                }
                if let Err(e) = self.fetch_git(pipeline, g).await {
                    tracing::warn!(pipeline, repo = %g.name, url = %g.url, branch = %g.branch, "git input: {e}");
                }
                next = Instant::now() + self.git_poll;
            }
            // Wakes now and then to see whether the pipeline changed.
            let nap = next
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs(2));
            tokio::time::sleep(nap.max(Duration::from_millis(50))).await;
        }
    }
}

/// Most files a push may change and still be written file by file.
const MAX_DIFF_PATHS: usize = 1000;

/// The files deleted and the files written (added, changed) between the
/// trees of two git commits, or `None` when the whole tree is to be
/// written instead: `from` is not in the bare repository (pachd started
/// afresh), a symbolic link changed (links resolve against the whole
/// tree), or the push changed more than [`MAX_DIFF_PATHS`] files.
async fn tree_diff(
    cache: &Path,
    from: &str,
    to: &str,
) -> Result<Option<(Vec<String>, Vec<String>)>> {
    let present = run_git(
        Some(cache),
        &["cat-file", "-e", &format!("{from}^{{commit}}")],
        &[],
    )
    .await
    .is_ok();
    if !present {
        return Ok(None);
    }
    let raw = run_git(
        Some(cache),
        &["diff-tree", "-r", "-z", "--no-renames", "--raw", from, to],
        &[],
    )
    .await?;
    Ok(parse_diff(&raw))
}

/// `git diff-tree -r -z --raw` output as (deleted, written) paths.
fn parse_diff(raw: &str) -> Option<(Vec<String>, Vec<String>)> {
    let (mut deleted, mut written) = (Vec::new(), Vec::new());
    let mut fields = raw.split('\0').filter(|f| !f.is_empty());
    while let Some(meta) = fields.next() {
        let path = fields.next()?;
        // ":<old mode> <new mode> <old sha> <new sha> <status>"
        let parts: Vec<&str> = meta.trim_start_matches(':').split(' ').collect();
        let [old_mode, new_mode, _, _, status] = parts[..] else {
            return None;
        };
        if old_mode == "120000" || new_mode == "120000" {
            return None;
        }
        match status {
            "D" => deleted.push(path.to_string()),
            // Submodules are not fetched: nothing is written for them.
            _ if new_mode == "160000" => {
                if old_mode != "000000" && old_mode != "160000" {
                    deleted.push(path.to_string());
                }
            }
            "A" | "M" | "T" => written.push(path.to_string()),
            _ => return None,
        }
    }
    (deleted.len() + written.len() <= MAX_DIFF_PATHS).then_some((deleted, written))
}

/// The git commit a commit of a git input's repo holds, from its description.
fn held_sha(description: &str) -> Option<&str> {
    let rest = description.strip_prefix(DESCRIPTION_PREFIX)?;
    let sha = rest.split(' ').next()?;
    (matches!(sha.len(), 40 | 64) && sha.bytes().all(|b| b.is_ascii_hexdigit())).then_some(sha)
}

/// Whether a push event's URL names the input's repository: equal but for
/// case, a trailing `/` and a trailing `.git`.
fn same_url(a: &str, b: &str) -> bool {
    let norm = |u: &str| {
        let u = u.trim_end_matches('/');
        u.strip_suffix(".git").unwrap_or(u).to_ascii_lowercase()
    };
    norm(a) == norm(b)
}

fn git_io(what: &str, path: &Path, e: std::io::Error) -> PpsError {
    PpsError::FailedPrecondition(format!("git input: cannot {what} {}: {e}", path.display()))
}

/// Runs the host's `git` (in `dir` when given) without a terminal or
/// prompts, for at most [`GIT_TIMEOUT`]; returns its stdout. A failure says
/// what git said, or that git is missing and how to get it.
async fn run_git(dir: Option<&Path>, args: &[&str], env: &[(&str, &Path)]) -> Result<String> {
    let mut cmd = Command::new("git");
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ALLOW_PROTOCOL", TRANSPORTS.join(":"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // ssh never asks for a password either, unless the operator chose
    // their own ssh command (a key, a known_hosts file).
    if std::env::var_os("GIT_SSH_COMMAND").is_none() {
        cmd.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
    }
    let shown = args.first().copied().unwrap_or_default().to_string();
    let task = tokio::task::spawn_blocking(move || run_blocking(cmd));
    let (status, stdout, stderr) = task
        .await
        .map_err(|e| PpsError::FailedPrecondition(format!("git {shown}: {e}")))??;
    if !status {
        let said: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        return Err(PpsError::FailedPrecondition(format!(
            "git {shown} failed: {}",
            if said.is_empty() {
                "no message".to_string()
            } else {
                said[said.len().saturating_sub(4)..].join(" / ")
            }
        )));
    }
    Ok(stdout)
}

/// Runs `cmd` to its end or [`GIT_TIMEOUT`]: (success, stdout, stderr).
fn run_blocking(mut cmd: Command) -> Result<(bool, String, String)> {
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            PpsError::FailedPrecondition(
                "git is not installed on pachd's host (no `git` on its PATH); git inputs \
                 fetch with it: install git (e.g. `apt-get install git`) and restart pachd"
                    .into(),
            )
        } else {
            PpsError::FailedPrecondition(format!("cannot run git: {e}"))
        }
    })?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut text);
            }
            text
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() > GIT_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                return Err(PpsError::FailedPrecondition(format!(
                    "waiting for git: {e}"
                )));
            }
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        Some(s) => Ok((s.success(), stdout, stderr)),
        None => Err(PpsError::FailedPrecondition(format!(
            "git did not finish within {}s; check that the repository answers",
            GIT_TIMEOUT.as_secs()
        ))),
    }
}

/// The per-URL locks of fetches (one bare repository, one fetch at a time).
pub(crate) type GitLocks = Arc<std::sync::Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs() {
        let z = "0000000000000000000000000000000000000000";
        let a = "1111111111111111111111111111111111111111";
        let raw = format!(
            ":100644 100644 {a} {a} M\0hello.txt\0:100644 000000 {a} {z} D\0dir/a.txt\0:000000 100755 {z} {a} A\0dir/run.sh\0"
        );
        assert_eq!(
            parse_diff(&raw),
            Some((
                vec!["dir/a.txt".to_string()],
                vec!["hello.txt".to_string(), "dir/run.sh".to_string()]
            ))
        );
        let link = format!(":000000 120000 {z} {a} A\0l\0");
        assert_eq!(parse_diff(&link), None);
        assert_eq!(parse_diff(""), Some((vec![], vec![])));
    }

    #[test]
    fn names_urls_and_descriptions() {
        assert_eq!(
            name_from_url("https://github.com/org/my-code.git"),
            "my-code"
        );
        assert_eq!(name_from_url("file:///srv/git/src.git/"), "src");
        assert!(check_url("git://127.0.0.1:9418/r.git").is_ok());
        assert!(check_url("HTTPS://h/r.git").is_ok());
        assert!(check_url("ext::sh -c id").unwrap_err().contains("file://"));
        assert!(check_url("git@github.com:o/r.git").is_err());
        assert!(check_url("").unwrap_err().contains("required"));
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            held_sha(&format!("git commit {sha} of u branch b")),
            Some(sha)
        );
        assert_eq!(held_sha("git commit nothex of u"), None);
        assert_eq!(held_sha("a user's commit"), None);
        assert!(same_url(
            "https://github.com/o/R.git",
            "https://github.com/o/r"
        ));
        assert!(!same_url(
            "https://github.com/o/r2.git",
            "https://github.com/o/r.git"
        ));
    }
}
