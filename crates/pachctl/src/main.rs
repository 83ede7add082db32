//! `pachctl`: the command line of pachd, with Pachyderm 1.x syntax
//! (`pachctl VERB NOUN ARGS`). Parsing and wiring only; each noun's commands
//! live in `cmd/`.

mod client;
mod cmd;
mod compat;
mod config;
mod mount;
mod output;
mod refs;

use std::io::Write;

use clap::{CommandFactory, Parser, Subcommand};

use crate::cmd::{
    admin, auth, branch, commit, debug, enterprise, file, job, misc, pipeline, repo, secret,
    transaction,
};
use crate::output::Format;

#[derive(Debug, Parser)]
#[command(
    name = "pachctl",
    version,
    about = "Version-controlled data and pipelines: the pachd command line"
)]
struct Cli {
    /// Print what pachctl does on stderr: the pachd it connects to, and how.
    #[arg(short, long, global = true)]
    verbose: bool,
    /// Turn off colours (in `diff file`'s output; pachctl prints none itself).
    #[arg(long, global = true)]
    no_color: bool,
    /// Print times in full (RFC 3339, UTC) instead of "3 minutes ago".
    #[arg(long, global = true)]
    full_timestamps: bool,
    #[command(subcommand)]
    command: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Print the versions of pachctl and pachd.
    Version {
        /// Print only the version of pachctl (do not contact pachd).
        #[arg(long)]
        client_only: bool,
        /// Give up on pachd after this long (e.g. 5s); 0s waits forever.
        #[arg(long, default_value = "default")]
        timeout: String,
        #[command(flatten)]
        format: Format,
    },
    /// Create a repo or a branch.
    #[command(subcommand)]
    Create(CreateNoun),
    /// Update a repo or a pipeline.
    #[command(subcommand)]
    Update(UpdateNoun),
    /// List repos, commits, branches or files.
    #[command(subcommand)]
    List(ListNoun),
    /// Show details of a repo, commit, branch or file.
    #[command(subcommand)]
    Inspect(InspectNoun),
    /// Delete a repo, commit, branch or file.
    #[command(subcommand)]
    Delete(DeleteNoun),
    /// Start a commit or a stopped pipeline.
    #[command(subcommand)]
    Start(StartNoun),
    /// Finish a commit.
    #[command(subcommand)]
    Finish(FinishNoun),
    /// Wait for a commit to finish.
    #[command(subcommand)]
    Wait(WaitNoun),
    /// Wait for every commit downstream of the given ones to finish.
    #[command(subcommand)]
    Flush(FlushNoun),
    /// Print commits as they are finished on a branch.
    #[command(subcommand)]
    Subscribe(SubscribeNoun),
    /// Put files into a repo.
    #[command(subcommand)]
    Put(PutNoun),
    /// Get files out of a repo.
    #[command(subcommand)]
    Get(GetNoun),
    /// List the files matching a glob pattern.
    #[command(subcommand)]
    Glob(GlobNoun),
    /// Show the files that differ between two commits.
    #[command(subcommand)]
    Diff(DiffNoun),
    /// Copy files between commits (by reference: no bytes are copied).
    #[command(subcommand)]
    Copy(CopyNoun),
    /// Stop a pipeline (no new jobs) or a running job.
    #[command(subcommand)]
    Stop(StopNoun),
    /// Restart a failed datum (a new job retries it).
    #[command(subcommand)]
    Restart(RestartNoun),
    /// Run a pipeline now (on chosen input commits), or a cron pipeline's tick.
    #[command(subcommand)]
    Run(RunNoun),
    /// Print the logs of a pipeline's, a job's or a datum's user code.
    Logs(job::Logs),
    /// Mount PFS on a local directory (FUSE): one directory per repo. This
    /// command blocks until the directory is unmounted.
    Mount(mount::Mount),
    /// Unmount PFS mounts.
    Unmount(mount::Unmount),
    /// Access control: activation, login, tokens, ACLs, admins.
    #[command(subcommand)]
    Auth(auth::AuthCmd),
    /// Enterprise features (any activation code activates them).
    #[command(subcommand)]
    Enterprise(enterprise::EnterpriseCmd),
    /// Write the whole cluster (metadata and, by default, objects) as one
    /// stream; `extract pipeline NAME` prints a pipeline's spec.
    #[command(args_conflicts_with_subcommands = true)]
    Extract {
        #[command(subcommand)]
        noun: Option<ExtractNoun>,
        #[command(flatten)]
        cluster: admin::Extract,
    },
    /// Edit a pipeline's spec in an editor, then update the pipeline.
    #[command(subcommand)]
    Edit(EditNoun),
    /// Restore a stream written by extract; it is validated entirely first.
    Restore(admin::Restore),
    /// Compare this cluster with an extract stream or another cluster.
    Verify(admin::Verify),
    /// Delete the objects nothing refers to any more (after deletes).
    GarbageCollect(admin::GarbageCollect),
    /// Pause clients' writes (for maintenance); pipelines keep running.
    #[command(subcommand)]
    Pause(PauseNoun),
    /// Resume clients' writes.
    #[command(subcommand)]
    Resume(ResumeNoun),
    /// Check that every record refers only to objects that exist and are intact.
    Fsck {
        /// Repair records naming what is gone (missing objects cannot be fixed).
        #[arg(short, long)]
        fix: bool,
    },
    /// Diagnose pachd: its state and recent logs, a CPU profile, its binary.
    #[command(subcommand)]
    Debug(debug::DebugVerb),
    /// Manage pachctl's contexts (which pachd to talk to).
    #[command(subcommand)]
    Config(misc::ConfigVerb),
    /// Print (or install) a shell completion script: bash, zsh or fish.
    Completion {
        #[arg(value_parser = ["bash", "zsh", "fish"], default_value = "bash")]
        shell: String,
        /// Write the script to --path instead of printing it.
        #[arg(long)]
        install: bool,
        /// Where --install writes the script.
        #[arg(long, default_value = "/etc/bash_completion.d/pachctl")]
        path: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ExtractNoun {
    /// Print the spec a pipeline was created with (JSON, or YAML with -o yaml).
    Pipeline(pipeline::ExtractPipeline),
}
#[derive(Debug, Subcommand)]
enum EditNoun {
    /// Edit a pipeline's spec in $EDITOR; saved changes update the pipeline.
    Pipeline(pipeline::EditPipeline),
}

#[derive(Debug, Subcommand)]
enum PauseNoun {
    /// Refuse clients' writes with a retryable error until resumed.
    Writes {
        /// Why, shown to the clients that are refused.
        #[arg(long, default_value = "")]
        reason: String,
    },
}
#[derive(Debug, Subcommand)]
enum ResumeNoun {
    /// Accept clients' writes again.
    Writes,
    /// Make an open transaction the active one again.
    Transaction { transaction: String },
}
#[derive(Debug, Subcommand)]
enum CreateNoun {
    /// Create a repo.
    Repo(repo::CreateRepo),
    /// Create a branch (or move its head / change its provenance).
    Branch(branch::CreateBranch),
    /// Create pipelines from a spec file (JSON or YAML).
    Pipeline(pipeline::CreatePipeline),
    /// Create a secret for pipelines from a Kubernetes secret manifest.
    Secret(secret::CreateSecret),
}
#[derive(Debug, Subcommand)]
enum UpdateNoun {
    /// Update a repo's description.
    Repo(repo::CreateRepo),
    /// Update pipelines from a spec file; new data runs with the new spec.
    Pipeline(pipeline::UpdatePipeline),
}
#[derive(Debug, Subcommand)]
enum ListNoun {
    /// List the open transactions.
    Transaction {
        #[command(flatten)]
        format: Format,
    },
    /// List repos.
    Repo {
        #[command(flatten)]
        format: Format,
    },
    /// List the commits of a repo or of a branch's history.
    Commit(commit::ListCommit),
    /// List the branches of a repo.
    Branch {
        repo: String,
        #[command(flatten)]
        format: Format,
    },
    /// List the files of a directory in a commit.
    File(file::ListFile),
    /// List pipelines (upstream first).
    Pipeline(pipeline::ListPipeline),
    /// List jobs, newest first.
    Job(job::ListJob),
    /// List the datums of a job (failed first).
    Datum(job::ListDatum),
    /// List secrets (names and keys; never values).
    Secret {
        #[command(flatten)]
        format: Format,
    },
}
#[derive(Debug, Subcommand)]
enum InspectNoun {
    /// Show a transaction's commands.
    Transaction {
        #[command(flatten)]
        transaction: transaction::Optional,
        #[command(flatten)]
        format: Format,
    },
    /// Print the cluster's id.
    Cluster,
    /// Show a repo.
    Repo {
        repo: String,
        #[command(flatten)]
        format: Format,
    },
    /// Show a commit.
    Commit(commit::InspectCommit),
    /// Show a branch.
    Branch {
        /// REPO@BRANCH
        branch: String,
        #[command(flatten)]
        format: Format,
    },
    /// Show a file.
    File {
        /// REPO@BRANCH:/PATH
        file: String,
        #[command(flatten)]
        format: Format,
    },
    /// Show a pipeline.
    Pipeline {
        pipeline: String,
        #[command(flatten)]
        format: Format,
    },
    /// Show a job.
    Job {
        job: String,
        /// Wait for the job to end first.
        #[arg(short = 'b', long = "block", alias = "wait")]
        wait: bool,
        #[command(flatten)]
        format: Format,
    },
    /// Show a secret's keys (never its values).
    Secret {
        secret: String,
        #[command(flatten)]
        format: Format,
    },
    /// Show a datum of a job.
    Datum {
        job: String,
        datum: String,
        #[command(flatten)]
        format: Format,
    },
}
#[derive(Debug, Subcommand)]
enum DeleteNoun {
    /// Delete a repo (or all of them).
    Repo(repo::DeleteRepo),
    /// Cancel and delete a transaction.
    Transaction(transaction::Optional),
    /// Delete a commit and everything computed from it.
    Commit {
        /// REPO@COMMIT
        commit: String,
    },
    /// Delete a branch (its commits stay).
    Branch {
        /// REPO@BRANCH
        branch: String,
        /// Delete even if other branches have it in their provenance.
        #[arg(short, long)]
        force: bool,
    },
    /// Delete a file or directory (a new commit, or in an open commit).
    File {
        /// REPO@BRANCH:/PATH
        file: String,
    },
    /// Delete pipelines with their jobs and output repos.
    Pipeline(pipeline::DeletePipeline),
    /// Delete a job's records (its output commit stays).
    Job { job: String },
    /// Delete a secret no pipeline uses.
    Secret { secret: String },
    /// Delete every pipeline, then every repo (secrets stay).
    All,
}
#[derive(Debug, Subcommand)]
enum StartNoun {
    /// Start a commit on a branch; prints its id.
    Commit(commit::StartCommit),
    /// Start a transaction: repo, commit and branch commands join it until it is finished.
    Transaction,
    /// Start stopped pipelines; they process what arrived meanwhile.
    Pipeline(pipeline::Selection),
}
#[derive(Debug, Subcommand)]
enum StopNoun {
    /// Stop pipelines: they start no new job until started again.
    Pipeline(pipeline::Selection),
    /// Stop adding commands to the active transaction (it stays open).
    Transaction,
    /// Stop a running job: its datums are killed, its output commit finished empty-handed.
    Job { job: String },
}
#[derive(Debug, Subcommand)]
enum RestartNoun {
    /// Retry failed datums of a finished job; prints the id of the job that runs them.
    Datum {
        job: String,
        /// Datum ids, or paths or hashes of their input files, comma-separated.
        datum: String,
    },
}
#[derive(Debug, Subcommand)]
enum RunNoun {
    /// Start a job of a pipeline now, on chosen input commits or its inputs' heads;
    /// prints the job's id.
    Pipeline(pipeline::RunPipeline),
    /// Tick a cron pipeline's cron inputs now.
    Cron { pipeline: String },
}
#[derive(Debug, Subcommand)]
enum FinishNoun {
    /// Finish an open commit.
    Commit(commit::FinishCommit),
    /// Run every command of a transaction at once (all or none).
    Transaction(transaction::Optional),
}
#[derive(Debug, Subcommand)]
enum WaitNoun {
    /// Wait for a commit to finish, then show it.
    Commit {
        /// REPO@COMMIT
        commit: String,
        #[command(flatten)]
        format: Format,
    },
    /// Wait for a job to end, then show it.
    Job {
        job: String,
        #[command(flatten)]
        format: Format,
    },
}
#[derive(Debug, Subcommand)]
enum FlushNoun {
    /// Wait for every commit with the given commits in its provenance.
    Commit(commit::FlushCommit),
    /// Wait for every job downstream of the given commits, and show them.
    Job(job::FlushJob),
}
#[derive(Debug, Subcommand)]
enum SubscribeNoun {
    /// Print commits as they are finished on a branch.
    Commit(commit::SubscribeCommit),
}
#[derive(Debug, Subcommand)]
enum PutNoun {
    /// Put files (from paths, directories, URLs or stdin) into a branch or open commit.
    File(file::PutFile),
}
#[derive(Debug, Subcommand)]
enum GetNoun {
    /// Get a file (to stdout or -o), or a directory with -r.
    File(file::GetFile),
    /// The bytes of a file's piece by its hash (Pachyderm 1.9's object;
    /// `inspect file` lists a file's objects).
    Object { hash: String },
    /// Pachyderm 1.9's tagged object (refused: see docs/pachctl.md).
    Tag { tag: String },
}
#[derive(Debug, Subcommand)]
enum GlobNoun {
    /// List the files and directories matching a pattern, e.g. images@master:/*/*.png
    File {
        /// REPO@BRANCH:PATTERN
        pattern: String,
        #[command(flatten)]
        format: Format,
    },
}
#[derive(Debug, Subcommand)]
enum DiffNoun {
    /// Show the files that differ between two commits (default: the
    /// commit's parent): new versions (+) and old ones (-).
    File(file::DiffFile),
}
#[derive(Debug, Subcommand)]
enum CopyNoun {
    /// Copy a file or directory to another commit (appended to what is
    /// there, as put file does).
    File {
        /// SRC_REPO@COMMIT:/PATH
        src: String,
        /// DST_REPO@BRANCH:/PATH
        dst: String,
        /// Overwrite the destination instead of appending to it.
        #[arg(short, long)]
        overwrite: bool,
    },
}

#[tokio::main]
async fn main() {
    quiet_on_closed_pipes();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // 1.8's names are plain words; a command line that is not UTF-8 (a
    // file name) is parsed as it is.
    let cli = match args
        .iter()
        .map(|a| a.to_str().map(str::to_string))
        .collect::<Option<Vec<String>>>()
    {
        Some(text) => {
            let (args, warning) = compat::rewrite(text, &Cli::command());
            if let Some(w) = warning {
                eprintln!("{w}");
            }
            Cli::parse_from(args)
        }
        None => Cli::parse_from(args),
    };
    client::set_verbose(cli.verbose);
    output::set_full_timestamps(cli.full_timestamps);
    output::set_no_color(cli.no_color);
    if let Err(e) = run(cli.command).await {
        if cmd::broken_pipe(&e) {
            // The reader has gone (`| head`): nothing more to say.
            std::process::exit(0);
        }
        // Escaped: a message may echo a name or a server's words, and
        // neither may drive the terminal.
        let message = client::escape(&format!("{e:#}"));
        let _ = writeln!(std::io::stderr(), "error: {message}");
        std::process::exit(1);
    }
}

/// A closed stdout or stderr (`pachctl ... | head`) ends pachctl quietly,
/// wherever the write happens. Writes that return errors are handled where
/// they are made (`cmd::finish`, `main`); `println!`/`eprintln!` (and
/// anything else printing through std) panic on a closed pipe, and this
/// hook turns exactly that panic into a quiet exit. (Restoring SIGPIPE's
/// default action instead would also kill pachctl when pachd closes a
/// connection during a vectored socket write, which sends no MSG_NOSIGNAL.)
fn quiet_on_closed_pipes() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to std") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

async fn run(verb: Verb) -> anyhow::Result<()> {
    match verb {
        Verb::Version {
            client_only,
            timeout,
            format,
        } => misc::version(client_only, &timeout, &format).await,
        Verb::Config(c) => misc::config(c),
        Verb::Debug(d) => debug::run(d).await,
        Verb::Auth(a) => auth::run(a).await,
        Verb::Enterprise(e) => enterprise::run(e).await,
        Verb::Completion {
            shell,
            install,
            path,
        } => misc::completion::<Cli>(&shell, install.then_some(path.as_path())),
        Verb::Fsck { fix } => misc::fsck(fix).await,
        Verb::Mount(a) => mount::mount(a).await,
        Verb::Unmount(a) => mount::unmount(a),
        Verb::Extract {
            noun: Some(ExtractNoun::Pipeline(a)),
            ..
        } => pipeline::extract(a).await,
        Verb::Extract { cluster, .. } => admin::extract(cluster).await,
        Verb::Edit(EditNoun::Pipeline(a)) => pipeline::edit(a).await,
        Verb::Restore(a) => admin::restore(a).await,
        Verb::Verify(a) => admin::verify(a).await,
        Verb::GarbageCollect(a) => admin::garbage_collect(a).await,
        Verb::Pause(PauseNoun::Writes { reason }) => admin::set_writes(true, reason).await,
        Verb::Resume(ResumeNoun::Writes) => admin::set_writes(false, String::new()).await,
        Verb::Start(StartNoun::Transaction) => transaction::start().await,
        Verb::Stop(StopNoun::Transaction) => transaction::stop().await,
        Verb::Finish(FinishNoun::Transaction(a)) => transaction::finish(a).await,
        Verb::Delete(DeleteNoun::Transaction(a)) => transaction::delete(a).await,
        Verb::Resume(ResumeNoun::Transaction { transaction }) => {
            transaction::resume(transaction).await
        }
        Verb::Inspect(InspectNoun::Transaction {
            transaction,
            format,
        }) => transaction::inspect(transaction, &format).await,
        Verb::List(ListNoun::Transaction { format }) => transaction::list(&format).await,
        Verb::Create(CreateNoun::Repo(a)) => repo::create(a, false).await,
        Verb::Update(UpdateNoun::Repo(a)) => repo::create(a, true).await,
        Verb::Create(CreateNoun::Branch(a)) => branch::create(a).await,
        Verb::List(ListNoun::Repo { format }) => repo::list(&format).await,
        Verb::List(ListNoun::Commit(a)) => commit::list(a).await,
        Verb::List(ListNoun::Branch { repo, format }) => branch::list(&repo, &format).await,
        Verb::List(ListNoun::File(a)) => file::list(a).await,
        Verb::Inspect(InspectNoun::Cluster) => admin::inspect_cluster().await,
        Verb::Inspect(InspectNoun::Repo { repo, format }) => repo::inspect(&repo, &format).await,
        Verb::Inspect(InspectNoun::Commit(a)) => commit::inspect(a).await,
        Verb::Inspect(InspectNoun::Branch { branch, format }) => {
            branch::inspect(&branch, &format).await
        }
        Verb::Inspect(InspectNoun::File { file, format }) => file::inspect(&file, &format).await,
        Verb::Delete(DeleteNoun::Repo(a)) => repo::delete(a).await,
        Verb::Delete(DeleteNoun::Commit { commit }) => commit::delete(&commit).await,
        Verb::Delete(DeleteNoun::Branch { branch, force }) => branch::delete(&branch, force).await,
        Verb::Delete(DeleteNoun::File { file }) => file::delete(&file).await,
        Verb::Start(StartNoun::Commit(a)) => commit::start(a).await,
        Verb::Finish(FinishNoun::Commit(a)) => commit::finish(a).await,
        Verb::Wait(WaitNoun::Commit { commit, format }) => commit::wait(&commit, &format).await,
        Verb::Flush(FlushNoun::Commit(a)) => commit::flush(a).await,
        Verb::Subscribe(SubscribeNoun::Commit(a)) => commit::subscribe(a).await,
        Verb::Put(PutNoun::File(a)) => file::put(a).await,
        Verb::Get(GetNoun::File(a)) => file::get(a).await,
        Verb::Get(GetNoun::Object { hash }) => file::get_object(&hash).await,
        Verb::Get(GetNoun::Tag { tag }) => file::get_tag(&tag),
        Verb::Glob(GlobNoun::File { pattern, format }) => file::glob(&pattern, &format).await,
        Verb::Diff(DiffNoun::File(a)) => file::diff(a).await,
        Verb::Copy(CopyNoun::File {
            src,
            dst,
            overwrite,
        }) => file::copy(&src, &dst, overwrite).await,
        Verb::Create(CreateNoun::Pipeline(a)) => pipeline::create(a, false, false).await,
        Verb::Update(UpdateNoun::Pipeline(a)) => {
            pipeline::create(a.create, true, a.reprocess).await
        }
        Verb::List(ListNoun::Pipeline(a)) => pipeline::list(a).await,
        Verb::Inspect(InspectNoun::Pipeline { pipeline, format }) => {
            pipeline::inspect(&pipeline, &format).await
        }
        Verb::Stop(StopNoun::Pipeline(s)) => pipeline::set_state(s, false).await,
        Verb::Start(StartNoun::Pipeline(s)) => pipeline::set_state(s, true).await,
        Verb::Delete(DeleteNoun::Pipeline(a)) => pipeline::delete(a).await,
        Verb::List(ListNoun::Job(a)) => job::list(a).await,
        Verb::Inspect(InspectNoun::Job { job, wait, format }) => {
            job::inspect(&job, wait, &format).await
        }
        Verb::Wait(WaitNoun::Job { job, format }) => job::inspect(&job, true, &format).await,
        Verb::Stop(StopNoun::Job { job }) => job::stop(&job).await,
        Verb::Delete(DeleteNoun::Job { job }) => job::delete(&job).await,
        Verb::List(ListNoun::Datum(a)) => job::list_datum(a).await,
        Verb::Inspect(InspectNoun::Datum { job, datum, format }) => {
            job::inspect_datum(&job, &datum, &format).await
        }
        Verb::Restart(RestartNoun::Datum { job, datum }) => job::restart_datum(&job, &datum).await,
        Verb::Logs(a) => job::logs(a).await,
        Verb::Run(RunNoun::Pipeline(a)) => pipeline::run(a).await,
        Verb::Run(RunNoun::Cron { pipeline }) => pipeline::run_cron(&pipeline).await,
        Verb::Flush(FlushNoun::Job(a)) => job::flush(a).await,
        Verb::Delete(DeleteNoun::All) => pipeline::delete_all().await,
        Verb::Create(CreateNoun::Secret(a)) => secret::create(a).await,
        Verb::List(ListNoun::Secret { format }) => secret::list(&format).await,
        Verb::Inspect(InspectNoun::Secret { secret, format }) => {
            secret::inspect(&secret, &format).await
        }
        Verb::Delete(DeleteNoun::Secret { secret }) => secret::delete(&secret).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
