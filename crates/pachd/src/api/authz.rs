//! Who may call what: the one table of scopes per method, for every service
//! pachd serves, checked at the API layer (PFS and PPS know nothing of auth).
//!
//! While auth is not active every check passes without looking at the
//! request, so a cluster without auth behaves exactly as before. While it is
//! active a call carries its token in the `authn-token` metadata (as
//! Pachyderm 1.9's clients send it); a call without one, or with an unknown,
//! expired or revoked one, is refused with UNAUTHENTICATED; a caller without
//! the scope needed gets PERMISSION_DENIED naming the repo and the scope,
//! before anything is changed. Admins may do anything. `versionpb.API` and
//! `health.Health` never check.
//!
//! The table (`Need` of each request; see also `docs/auth.md`):
//! - reads of a repo (inspect, list commits/branches/files, get/glob/walk/
//!   diff file, subscribe, flush): READER on it;
//! - writes (start/finish/delete commit, put/delete file, create/delete
//!   branch): WRITER on it, READER on the repos they take provenance or
//!   content from; deleting a repo: OWNER; creating one: any signed-in
//!   caller, who becomes its OWNER;
//! - pipelines: creating one needs READER on its inputs (and WRITER on its
//!   output to update it), and makes the creator OWNER and `pipeline:NAME`
//!   WRITER of the output, `pipeline:NAME` READER of the inputs; deleting
//!   one needs OWNER of its output; start/stop/run: WRITER on it; a job's
//!   datums: READER on its pipeline's output, stopping/deleting it or
//!   restarting datums: WRITER; logs of a pipeline or job: READER;
//! - admin only: every `DeleteAll`, delete all repos or pipelines, fsck,
//!   garbage collection, extract/restore/verify, pause writes, secrets,
//!   debug dumps/profiles/binaries, job records written by hand;
//! - our `CreateExtendedPipeline`: as `CreatePipeline`, checked by
//!   `pipelines.rs` once the spec is parsed (`pipeline_need`);
//! - any signed-in caller: listing repos, pipelines, jobs and transactions,
//!   inspecting the cluster.

use pach_api::{admin, pfs, pps, transaction as txn_pb};
use pach_auth::{Auth, AuthError, Caller, ErrorKind, PIPELINE_PREFIX, Scope};
use pach_pps::Pps;
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Status};

use super::status::safe_message;

/// What a call needs from its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Need {
    /// A valid token.
    Signed,
    /// A cluster admin; the operation's name for the refusal.
    Admin(&'static str),
    /// At least the scope on each repo.
    Repos(Vec<(String, Scope)>),
    /// At least the scope on the output repo of the job's pipeline.
    Job(String, Scope),
}

impl Need {
    fn repo(repo: impl Into<String>, scope: Scope) -> Need {
        Need::Repos(vec![(repo.into(), scope)])
    }
}

/// A request whose needs the table knows.
pub(crate) trait Scoped {
    fn need(&self) -> Need;
}

/// The auth state as the services check it.
#[derive(Clone)]
pub(crate) struct Authz {
    pub(crate) auth: Auth,
    pps: Pps,
}

impl Authz {
    pub(crate) fn new(pps: Pps, auth: Auth) -> Self {
        Self { auth, pps }
    }

    /// Checks `request` against its row of the table: `None` when auth is
    /// not active, the caller otherwise.
    pub(crate) async fn check<T: Scoped>(
        &self,
        request: &Request<T>,
    ) -> Result<Option<Caller>, Status> {
        self.require(request.metadata(), request.get_ref().need())
            .await
    }

    /// A repo's `auth_info` for the caller (1.9's `RepoInfo.auth_info`:
    /// admins are OWNERs of every repo there); none while auth is off.
    pub(crate) async fn access_level(
        &self,
        caller: &Option<Caller>,
        repo: &str,
    ) -> Result<Option<pfs::RepoAuthInfo>, Status> {
        let Some(caller) = caller else {
            return Ok(None);
        };
        let scope = if caller.is_admin {
            Scope::Owner
        } else {
            self.auth.scope(caller, repo).await.map_err(auth_status)?
        };
        let access_level = match scope {
            Scope::None => pach_api::auth::Scope::None,
            Scope::Reader => pach_api::auth::Scope::Reader,
            Scope::Writer => pach_api::auth::Scope::Writer,
            Scope::Owner => pach_api::auth::Scope::Owner,
        } as i32;
        Ok(Some(pfs::RepoAuthInfo { access_level }))
    }

    /// Checks `need` for the caller of `metadata` (for requests whose need
    /// does not follow from their type alone).
    pub(crate) async fn require(
        &self,
        metadata: &MetadataMap,
        need: Need,
    ) -> Result<Option<Caller>, Status> {
        if !self.auth.is_active().await.map_err(auth_status)? {
            return Ok(None);
        }
        let caller = self
            .auth
            .caller(token(metadata))
            .await
            .map_err(auth_status)?;
        match need {
            Need::Signed => {}
            Need::Admin(op) => {
                if !caller.is_admin {
                    return Err(auth_status(AuthError::admin_only(&caller.subject, op)));
                }
            }
            Need::Repos(repos) => {
                for (repo, scope) in repos {
                    self.auth
                        .check(&caller, &repo, scope)
                        .await
                        .map_err(auth_status)?;
                }
            }
            Need::Job(id, scope) => {
                // An unknown job passes here; the call then says it is unknown.
                if let Ok(job) = self.pps.inspect_job(&id, false).await {
                    self.auth
                        .check(&caller, &job.pipeline, scope)
                        .await
                        .map_err(auth_status)?;
                }
            }
        }
        Ok(Some(caller))
    }

    /// The caller of an auth call: auth must be active and the token valid.
    pub(crate) async fn signed(&self, metadata: &MetadataMap) -> Result<Caller, Status> {
        if !self.auth.is_active().await.map_err(auth_status)? {
            return Err(auth_status(AuthError::NotActivated));
        }
        self.auth.caller(token(metadata)).await.map_err(auth_status)
    }

    /// After a repo is created: its creator is its one OWNER.
    pub(crate) async fn repo_created(
        &self,
        caller: &Option<Caller>,
        repo: &str,
    ) -> Result<(), Status> {
        if let Some(caller) = caller {
            self.auth.forget_repo(repo).await.map_err(auth_status)?;
            self.auth
                .grant(repo, &caller.subject, Scope::Owner)
                .await
                .map_err(auth_status)?;
        }
        Ok(())
    }

    /// After repos are deleted: their ACLs go with them, so a repo made
    /// later under the same name starts afresh.
    pub(crate) async fn repos_deleted(
        &self,
        caller: &Option<Caller>,
        repos: &[String],
    ) -> Result<(), Status> {
        if caller.is_some() {
            for repo in repos {
                self.auth.forget_repo(repo).await.map_err(auth_status)?;
            }
        }
        Ok(())
    }

    /// After every repo is deleted.
    pub(crate) async fn all_repos_deleted(&self, caller: &Option<Caller>) -> Result<(), Status> {
        if caller.is_some() {
            let repos: Vec<String> = self
                .auth
                .acls()
                .await
                .map_err(auth_status)?
                .into_iter()
                .map(|(r, _)| r)
                .collect();
            self.repos_deleted(caller, &repos).await?;
        }
        Ok(())
    }

    /// What the pipelines already there get in the ACLs when auth is
    /// activated (their jobs are checked from then on): each its job's
    /// needs, as (repo, `pipeline:NAME`, scope).
    pub(crate) async fn pipelines_access(&self) -> Result<Vec<(String, String, Scope)>, Status> {
        let pipelines = self
            .pps
            .list_pipeline()
            .await
            .map_err(super::status::status)?;
        let mut grants = Vec::new();
        for p in pipelines {
            let me = format!("{PIPELINE_PREFIX}{}", p.name());
            for (repo, scope) in job_need(p.name(), &p.spec.pfs_input_repos()) {
                grants.push((repo, me.clone(), scope));
            }
        }
        Ok(grants)
    }

    /// Creates or updates a pipeline through `create`: a new output repo
    /// belongs to its creator, from before the pipeline exists (PPS then
    /// grants `pipeline:NAME` its access through `JobAccess::grant`). A
    /// new pipeline that is not created leaves no ACL behind for its output.
    pub(crate) async fn create_pipeline(
        &self,
        caller: &Option<Caller>,
        pipeline: &str,
        update: bool,
        create: impl std::future::Future<Output = Result<(), Status>>,
    ) -> Result<(), Status> {
        let Some(caller) = caller else {
            return create.await;
        };
        // A repo of that name already there is not this pipeline's (the
        // creation then fails): its ACL stays as it is.
        let new_output = !update
            && match self.pps.pfs().inspect_repo(pipeline).await {
                Ok(_) => false,
                Err(pach_pfs::PfsError::RepoNotFound { .. }) => true,
                Err(e) => return Err(super::status::status(e)),
            };
        if new_output {
            self.repo_created(&Some(caller.clone()), pipeline).await?;
        }
        let created = create.await;
        if created.is_err() && new_output {
            self.auth.forget_repo(pipeline).await.map_err(auth_status)?;
        }
        created
    }
}

/// What a pipeline's job needs, acting as `pipeline:NAME`: READER on each
/// input repo, WRITER on its output repo (what `JobAccess::grant` and
/// activation give it, and an owner may take back).
fn job_need(pipeline: &str, inputs: &[String]) -> Vec<(String, Scope)> {
    inputs
        .iter()
        .map(|i| (i.clone(), Scope::Reader))
        .chain(std::iter::once((pipeline.to_string(), Scope::Writer)))
        .collect()
}

/// Pipelines' access, as PPS gives it when a pipeline is written and asks
/// for it when a job starts and before it writes.
pub(crate) struct JobAccess {
    pub(crate) auth: Auth,
}

fn internal(e: AuthError) -> pach_pps::PpsError {
    pach_pps::PpsError::FailedPrecondition(e.to_string())
}

impl pach_pps::JobAccess for JobAccess {
    fn grant<'a>(
        &'a self,
        pipeline: &'a str,
        inputs: &'a [String],
    ) -> futures::future::BoxFuture<'a, pach_pps::Result<()>> {
        Box::pin(async move {
            let me = format!("{PIPELINE_PREFIX}{pipeline}");
            for (repo, scope) in job_need(pipeline, inputs) {
                // A no-op while auth is off.
                self.auth.grant(&repo, &me, scope).await.map_err(internal)?;
            }
            Ok(())
        })
    }

    fn refusal<'a>(
        &'a self,
        pipeline: &'a str,
        inputs: &'a [String],
    ) -> futures::future::BoxFuture<'a, pach_pps::Result<Option<String>>> {
        Box::pin(async move {
            if !self.auth.is_active().await.map_err(internal)? {
                return Ok(None);
            }
            let me = self
                .auth
                .as_subject(&format!("{PIPELINE_PREFIX}{pipeline}"))
                .await
                .map_err(internal)?;
            for (repo, scope) in job_need(pipeline, inputs) {
                if let Err(e) = self.auth.check(&me, &repo, scope).await {
                    return match e.kind() {
                        ErrorKind::PermissionDenied => Ok(Some(e.to_string())),
                        _ => Err(internal(e)),
                    };
                }
            }
            Ok(None)
        })
    }
}

/// The token a request carries, if any.
pub(crate) fn token(metadata: &MetadataMap) -> Option<&str> {
    metadata
        .get(pach_api::AUTH_TOKEN_KEY)
        .and_then(|v| v.to_str().ok())
}

/// The status of an auth error (1.9's codes: UNIMPLEMENTED for "not
/// activated", which clients recognise).
pub(crate) fn auth_status(e: AuthError) -> Status {
    let code = match e.kind() {
        ErrorKind::NotActivated => Code::Unimplemented,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::Aborted => Code::Aborted,
        ErrorKind::Internal => Code::Internal,
    };
    let message = safe_message(&e.to_string());
    if code == Code::Internal {
        tracing::error!(error = %message, "internal error");
    }
    Status::new(code, message)
}

fn repo_name(repo: &Option<pfs::Repo>) -> String {
    repo.as_ref().map(|r| r.name.clone()).unwrap_or_default()
}

fn commit_repo(commit: &Option<pfs::Commit>) -> String {
    commit
        .as_ref()
        .map(|c| repo_name(&c.repo))
        .unwrap_or_default()
}

fn branch_repo(branch: &Option<pfs::Branch>) -> String {
    branch
        .as_ref()
        .map(|b| repo_name(&b.repo))
        .unwrap_or_default()
}

fn file_repo(file: &Option<pfs::File>) -> String {
    file.as_ref()
        .map(|f| commit_repo(&f.commit))
        .unwrap_or_default()
}

fn provenance_repos(
    provenance: &[pfs::CommitProvenance],
) -> impl Iterator<Item = (String, Scope)> + '_ {
    provenance.iter().map(|p| {
        let repo = match (&p.commit, &p.branch) {
            (Some(c), _) => repo_name(&c.repo),
            (None, b) => branch_repo(b),
        };
        (repo, Scope::Reader)
    })
}

fn pipeline_repo(pipeline: &Option<pps::Pipeline>) -> String {
    pipeline
        .as_ref()
        .map(|p| p.name.clone())
        .unwrap_or_default()
}

fn job_id(job: &Option<pps::Job>) -> String {
    job.as_ref().map(|j| j.id.clone()).unwrap_or_default()
}

/// Every pfs repo an input reads.
pub(crate) fn input_repos(input: &Option<pps::Input>) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack: Vec<&pps::Input> = input.iter().collect();
    while let Some(i) = stack.pop() {
        if let Some(p) = &i.pfs {
            out.push(p.repo.clone());
        }
        stack.extend(i.join.iter().chain(&i.cross).chain(&i.union));
    }
    out.sort();
    out.dedup();
    out
}

/// Creating a pipeline: READER on its inputs; updating one also WRITER on
/// its output (`CreatePipeline` and our `CreateExtendedPipeline`).
pub(crate) fn pipeline_need(inputs: &[String], pipeline: &str, update: bool) -> Need {
    let mut repos: Vec<(String, Scope)> =
        inputs.iter().map(|i| (i.clone(), Scope::Reader)).collect();
    if update {
        repos.push((pipeline.to_string(), Scope::Writer));
    }
    Need::Repos(repos)
}

macro_rules! table {
    ($($ty:ty => |$r:ident| $need:expr;)*) => {
        $(impl Scoped for $ty {
            fn need(&self) -> Need {
                let $r = self;
                $need
            }
        })*
    };
}

table! {
    // pfs.API
    pfs::CreateRepoRequest => |r| if r.update { Need::repo(repo_name(&r.repo), Scope::Writer) } else { Need::Signed };
    pfs::InspectRepoRequest => |r| Need::repo(repo_name(&r.repo), Scope::Reader);
    pfs::ListRepoRequest => |_r| Need::Signed;
    pfs::DeleteRepoRequest => |r| if r.all { Need::Admin("DeleteRepo with all") } else { Need::repo(repo_name(&r.repo), Scope::Owner) };
    pfs::StartCommitRequest => |r| Need::Repos(
        std::iter::once((commit_repo(&r.parent), Scope::Writer)).chain(provenance_repos(&r.provenance)).collect());
    pfs::BuildCommitRequest => |r| Need::Repos(
        std::iter::once((commit_repo(&r.parent), Scope::Writer)).chain(provenance_repos(&r.provenance)).collect());
    pfs::FinishCommitRequest => |r| Need::repo(commit_repo(&r.commit), Scope::Writer);
    pfs::InspectCommitRequest => |r| Need::repo(commit_repo(&r.commit), Scope::Reader);
    pfs::ListCommitRequest => |r| Need::repo(repo_name(&r.repo), Scope::Reader);
    pfs::DeleteCommitRequest => |r| Need::repo(commit_repo(&r.commit), Scope::Writer);
    pfs::FlushCommitRequest => |r| Need::Repos(
        r.commits.iter().map(|c| (repo_name(&c.repo), Scope::Reader))
            .chain(r.to_repos.iter().map(|t| (t.name.clone(), Scope::Reader))).collect());
    pfs::SubscribeCommitRequest => |r| Need::repo(repo_name(&r.repo), Scope::Reader);
    pfs::CreateBranchRequest => |r| {
        let mut repos = vec![(branch_repo(&r.branch), Scope::Writer)];
        if r.head.is_some() {
            repos.push((commit_repo(&r.head), Scope::Reader));
        }
        repos.extend(r.provenance.iter().map(|b| (repo_name(&b.repo), Scope::Reader)));
        Need::Repos(repos)
    };
    pfs::InspectBranchRequest => |r| Need::repo(branch_repo(&r.branch), Scope::Reader);
    pfs::ListBranchRequest => |r| Need::repo(repo_name(&r.repo), Scope::Reader);
    pfs::DeleteBranchRequest => |r| Need::repo(branch_repo(&r.branch), Scope::Writer);
    pfs::PutFileRequest => |r| Need::repo(file_repo(&r.file), Scope::Writer);
    pfs::CopyFileRequest => |r| Need::Repos(vec![(file_repo(&r.src), Scope::Reader), (file_repo(&r.dst), Scope::Writer)]);
    pfs::GetFileRequest => |r| Need::repo(file_repo(&r.file), Scope::Reader);
    pfs::InspectFileRequest => |r| Need::repo(file_repo(&r.file), Scope::Reader);
    pfs::ListFileRequest => |r| Need::repo(file_repo(&r.file), Scope::Reader);
    pfs::WalkFileRequest => |r| Need::repo(file_repo(&r.file), Scope::Reader);
    pfs::GlobFileRequest => |r| Need::repo(commit_repo(&r.commit), Scope::Reader);
    pfs::DiffFileRequest => |r| {
        let mut repos = vec![(file_repo(&r.new_file), Scope::Reader)];
        if r.old_file.is_some() {
            repos.push((file_repo(&r.old_file), Scope::Reader));
        }
        Need::Repos(repos)
    };
    pfs::DeleteFileRequest => |r| Need::repo(file_repo(&r.file), Scope::Writer);
    pfs::FsckRequest => |_r| Need::Admin("Fsck");

    // pps.API
    pps::CreateJobRequest => |_r| Need::Admin("CreateJob");
    pps::UpdateJobStateRequest => |_r| Need::Admin("UpdateJobState");
    pps::InspectJobRequest => |_r| Need::Signed;
    pps::ListJobRequest => |_r| Need::Signed;
    pps::FlushJobRequest => |r| Need::Repos(r.commits.iter().map(|c| (repo_name(&c.repo), Scope::Reader)).collect());
    pps::DeleteJobRequest => |r| Need::Job(job_id(&r.job), Scope::Writer);
    pps::StopJobRequest => |r| Need::Job(job_id(&r.job), Scope::Writer);
    pps::RestartDatumRequest => |r| Need::Job(job_id(&r.job), Scope::Writer);
    pps::InspectDatumRequest => |r| Need::Job(r.datum.as_ref().map(|d| job_id(&d.job)).unwrap_or_default(), Scope::Reader);
    pps::ListDatumRequest => |r| Need::Job(job_id(&r.job), Scope::Reader);
pps::CreatePipelineRequest => |r| pipeline_need(&input_repos(&r.input), &pipeline_repo(&r.pipeline), r.update);
    pps::InspectPipelineRequest => |_r| Need::Signed;
    pps::ListPipelineRequest => |_r| Need::Signed;
    pps::DeletePipelineRequest => |r| if r.all { Need::Admin("DeletePipeline with all") } else { Need::repo(pipeline_repo(&r.pipeline), Scope::Owner) };
    pps::StartPipelineRequest => |r| Need::repo(pipeline_repo(&r.pipeline), Scope::Writer);
    pps::StopPipelineRequest => |r| Need::repo(pipeline_repo(&r.pipeline), Scope::Writer);
    pps::RunPipelineRequest => |r| Need::repo(pipeline_repo(&r.pipeline), Scope::Writer);
    pps::RunCronRequest => |r| Need::repo(pipeline_repo(&r.pipeline), Scope::Writer);
    pps::GetLogsRequest => |r| match (&r.pipeline, &r.job) {
        (Some(p), _) if !p.name.is_empty() => Need::repo(p.name.clone(), Scope::Reader),
        (_, Some(j)) if !j.id.is_empty() => Need::Job(j.id.clone(), Scope::Reader),
        _ => Need::Admin("GetLogs of the whole cluster"),
    };
    pps::GarbageCollectRequest => |_r| Need::Admin("GarbageCollect");
    pps::ActivateAuthRequest => |_r| Need::Admin("ActivateAuth");

    // admin.API
    admin::ExtractRequest => |_r| Need::Admin("Extract");
    admin::ExtractPipelineRequest => |_r| Need::Admin("ExtractPipeline");

    // transaction.API: a transaction's requests are checked as they are
    // appended (pfs.API with the transaction's metadata) or batched.
    txn_pb::StartTransactionRequest => |_r| Need::Signed;
    txn_pb::InspectTransactionRequest => |_r| Need::Signed;
    txn_pb::DeleteTransactionRequest => |_r| Need::Signed;
    txn_pb::ListTransactionRequest => |_r| Need::Signed;
    txn_pb::FinishTransactionRequest => |_r| Need::Signed;
    txn_pb::DeleteAllRequest => |_r| Need::Admin("DeleteAll");
    txn_pb::BatchTransactionRequest => |r| {
        let mut repos = Vec::new();
        for q in &r.requests {
            match q.need() {
                Need::Repos(more) => repos.extend(more),
                Need::Signed => {}
                other => return other,
            }
        }
        Need::Repos(repos)
    };
    txn_pb::TransactionRequest => |r| {
        let needs = [
            r.create_repo.as_ref().map(Scoped::need),
            r.delete_repo.as_ref().map(Scoped::need),
            r.start_commit.as_ref().map(Scoped::need),
            r.finish_commit.as_ref().map(Scoped::need),
            r.delete_commit.as_ref().map(Scoped::need),
            r.create_branch.as_ref().map(Scoped::need),
            r.delete_branch.as_ref().map(Scoped::need),
            r.update_job_state.as_ref().map(Scoped::need),
            r.delete_all.as_ref().map(Scoped::need),
        ];
        let mut repos = Vec::new();
        for need in needs.into_iter().flatten() {
            match need {
                Need::Repos(more) => repos.extend(more),
                Need::Signed => {}
                other => return other,
            }
        }
        Need::Repos(repos)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(name: &str) -> Option<pfs::Repo> {
        Some(pfs::Repo { name: name.into() })
    }

    #[test]
    fn writes_need_writer_reads_reader_deletes_owner() {
        let commit = Some(pfs::Commit {
            repo: repo("a"),
            id: "master".into(),
        });
        let file = Some(pfs::File {
            commit: commit.clone(),
            path: "/x".into(),
        });
        assert_eq!(
            pfs::PutFileRequest {
                file: file.clone(),
                ..Default::default()
            }
            .need(),
            Need::repo("a", Scope::Writer)
        );
        assert_eq!(
            pfs::GetFileRequest {
                file: file.clone(),
                ..Default::default()
            }
            .need(),
            Need::repo("a", Scope::Reader)
        );
        assert_eq!(
            pfs::DeleteRepoRequest {
                repo: repo("a"),
                ..Default::default()
            }
            .need(),
            Need::repo("a", Scope::Owner)
        );
        let other = Some(pfs::File {
            commit: Some(pfs::Commit {
                repo: repo("b"),
                id: "master".into(),
            }),
            path: "/y".into(),
        });
        assert_eq!(
            pfs::CopyFileRequest {
                src: file,
                dst: other,
                overwrite: false
            }
            .need(),
            Need::Repos(vec![
                ("a".into(), Scope::Reader),
                ("b".into(), Scope::Writer)
            ])
        );
        assert_eq!(
            pfs::DeleteRepoRequest {
                all: true,
                ..Default::default()
            }
            .need(),
            Need::Admin("DeleteRepo with all")
        );
    }

    #[test]
    fn a_batch_needs_what_each_request_needs() {
        let batch = txn_pb::BatchTransactionRequest {
            requests: vec![
                txn_pb::TransactionRequest {
                    create_repo: Some(pfs::CreateRepoRequest {
                        repo: repo("new"),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                txn_pb::TransactionRequest {
                    delete_repo: Some(pfs::DeleteRepoRequest {
                        repo: repo("old"),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ],
        };
        assert_eq!(
            batch.need(),
            Need::Repos(vec![("old".into(), Scope::Owner)])
        );
    }

    #[test]
    fn pipelines_need_reader_on_every_input() {
        let pfs_input = |r: &str| pps::Input {
            pfs: Some(pps::PfsInput {
                repo: r.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let input = Some(pps::Input {
            cross: vec![pfs_input("x"), pfs_input("y"), pfs_input("x")],
            ..Default::default()
        });
        let request = pps::CreatePipelineRequest {
            pipeline: Some(pps::Pipeline { name: "p".into() }),
            input,
            update: true,
            ..Default::default()
        };
        assert_eq!(
            request.need(),
            Need::Repos(vec![
                ("x".into(), Scope::Reader),
                ("y".into(), Scope::Reader),
                ("p".into(), Scope::Writer)
            ])
        );
    }
}
