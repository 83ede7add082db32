//! `pfs.API`: Pachyderm 1.9's versioned-data service. Only translation lives
//! here (wire messages to `pach_pfs` calls and back); the semantics are
//! `pach_pfs`'s. `BuildCommit` (which names a hashtree object Pachyderm's
//! own workers wrote) is refused with a clear status; the object API
//! (`pfs.ObjectAPI`) is not served.

use super::authz::Scoped;
use futures::{StreamExt, TryStreamExt};
use pach_api::pfs::{self, api_server::Api};
use pach_api::transaction::{TransactionRequest, TransactionResponse};
use pach_pfs::branch::BranchInfo;
use pach_pfs::repo::RepoInfo;
use pach_pfs::{BranchName, CommitRecord, CommitState, FileInfo, Origin, Pfs};
use tonic::{Request, Response, Status, Streaming};

use super::status::status;

type Stream<T> = std::pin::Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send>>;

pub(crate) struct PfsService {
    pub(crate) pfs: Pfs,
    /// Where writes go whose request names a transaction (as 1.9's clients
    /// do inside `start transaction`): appended to it, applied when it finishes.
    pub(crate) transactions: super::transaction::TransactionService,
    /// Who may call what (`authz`).
    pub(crate) authz: super::authz::Authz,
}

impl PfsService {
    /// Refuses a client's write while writes are paused (retryable: UNAVAILABLE).
    async fn writable(&self) -> Result<(), Status> {
        let state = pach_admin::writes_state(&**self.pfs.meta())
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        if state.paused {
            return Err(Status::unavailable(state.refusal()));
        }
        Ok(())
    }

    /// Appends a write to the transaction its request names, if it names
    /// one: the reply of the write run in the transaction's context.
    async fn joined<T>(
        &self,
        req: Request<T>,
        wrap: impl FnOnce(T) -> TransactionRequest,
    ) -> Result<Result<TransactionResponse, Request<T>>, Status> {
        match super::transaction::transaction_of(&req) {
            Some(id) => Ok(Ok(self
                .transactions
                .append(&id, wrap(req.into_inner()))
                .await?)),
            None => Ok(Err(req)),
        }
    }
}

/// A protobuf timestamp for nanoseconds since the epoch.
pub(crate) fn timestamp(ns: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ns.div_euclid(1_000_000_000),
        nanos: ns.rem_euclid(1_000_000_000) as i32,
    }
}

fn repo_msg(name: &str) -> pfs::Repo {
    pfs::Repo { name: name.into() }
}

fn commit_msg(repo: &str, id: &str) -> pfs::Commit {
    pfs::Commit {
        repo: Some(repo_msg(repo)),
        id: id.into(),
    }
}

fn branch_msg(repo: &str, name: &str) -> pfs::Branch {
    pfs::Branch {
        repo: Some(repo_msg(repo)),
        name: name.into(),
    }
}

fn branch_name_msg(b: &BranchName) -> pfs::Branch {
    branch_msg(&b.repo, &b.name)
}

/// The repo a request names; refused when missing or empty.
fn repo_name(repo: Option<pfs::Repo>, what: &str) -> Result<String, Status> {
    match repo {
        Some(r) if !r.name.is_empty() => Ok(r.name),
        _ => Err(Status::invalid_argument(format!(
            "{what} names no repo; give one (REPO@BRANCH)"
        ))),
    }
}

/// `(repo, commit id or branch)` of a commit a request names.
fn commit_ref(commit: Option<pfs::Commit>, what: &str) -> Result<(String, String), Status> {
    let commit = commit.ok_or_else(|| {
        Status::invalid_argument(format!(
            "{what} names no commit; give REPO@BRANCH or REPO@COMMIT"
        ))
    })?;
    let repo = repo_name(commit.repo, what)?;
    if commit.id.is_empty() {
        return Err(Status::invalid_argument(format!(
            "cannot resolve commit with no ID or branch ({what} in repo {repo}); give REPO@BRANCH or REPO@COMMIT"
        )));
    }
    Ok((repo, commit.id))
}

/// `(repo, commit, path)` of a file a request names.
fn file_ref(file: Option<pfs::File>, what: &str) -> Result<(String, String, String), Status> {
    let file = file.ok_or_else(|| {
        Status::invalid_argument(format!("{what} names no file; give REPO@BRANCH:/PATH"))
    })?;
    let (repo, commit) = commit_ref(file.commit, what)?;
    Ok((repo, commit, file.path))
}

fn commit_info(c: &CommitRecord) -> pfs::CommitInfo {
    pfs::CommitInfo {
        commit: Some(commit_msg(&c.repo, &c.id)),
        branch: c.branch.as_deref().map(|b| branch_msg(&c.repo, b)),
        origin: Some(pfs::CommitOrigin {
            kind: match c.origin {
                Origin::User => pfs::OriginKind::User,
                Origin::Auto => pfs::OriginKind::Auto,
            } as i32,
        }),
        description: c.description.clone(),
        parent_commit: c.parent.as_deref().map(|p| commit_msg(&c.repo, p)),
        started: Some(timestamp(c.started_ns)),
        finished: c.finished_ns.map(timestamp),
        size_bytes: c.size_bytes(),
        provenance: c
            .provenance
            .iter()
            .map(|p| pfs::CommitProvenance {
                commit: Some(commit_msg(&p.repo, &p.id)),
                branch: None,
            })
            .collect(),
        ..Default::default()
    }
}

fn repo_info(info: RepoInfo) -> pfs::RepoInfo {
    let name = info.record.name;
    pfs::RepoInfo {
        created: Some(timestamp(info.record.created_ns)),
        size_bytes: info.size_bytes,
        description: info.record.description,
        branches: info.branches.iter().map(|b| branch_msg(&name, b)).collect(),
        repo: Some(repo_msg(&name)),
        auth_info: None,
    }
}

fn branch_info(info: BranchInfo) -> pfs::BranchInfo {
    let r = &info.record;
    pfs::BranchInfo {
        branch: Some(branch_msg(&r.repo, &r.name)),
        head: r.head.as_deref().map(|h| commit_msg(&r.repo, h)),
        provenance: info.provenance.iter().map(branch_name_msg).collect(),
        subvenance: info.subvenance.iter().map(branch_name_msg).collect(),
        direct_provenance: r.provenance.iter().map(branch_name_msg).collect(),
        // 1.9 still fills the name its older clients read.
        name: r.name.clone(),
    }
}

/// A FileInfo; `full` adds what Pachyderm leaves out of listings (objects, children).
fn file_info(f: FileInfo, c: &CommitRecord, full: bool) -> pfs::FileInfo {
    pfs::FileInfo {
        file: Some(pfs::File {
            commit: Some(commit_msg(&c.repo, &c.id)),
            path: f.path,
        }),
        file_type: if f.is_dir {
            pfs::FileType::Dir
        } else {
            pfs::FileType::File
        } as i32,
        size_bytes: f.size_bytes,
        committed: c.finished_ns.map(timestamp),
        children: if full { f.children } else { Vec::new() },
        objects: if full {
            f.pieces
                .iter()
                .map(|p| pfs::Object {
                    hash: p.sha512.as_ref().map(|d| d.to_hex()).unwrap_or_default(),
                })
                .collect()
        } else {
            Vec::new()
        },
        block_refs: Vec::new(),
        hash: f.hash.0.to_vec(),
    }
}

fn commit_state(state: i32) -> Result<CommitState, Status> {
    match pfs::CommitState::try_from(state) {
        Ok(pfs::CommitState::Started) => Ok(CommitState::Started),
        Ok(pfs::CommitState::Ready) => Ok(CommitState::Ready),
        Ok(pfs::CommitState::Finished) => Ok(CommitState::Finished),
        Err(_) => Err(Status::invalid_argument(format!(
            "unknown commit state {state}; use STARTED, READY or FINISHED"
        ))),
    }
}

fn stream_of<T: Send + 'static>(items: Vec<T>) -> Stream<T> {
    futures::stream::iter(items.into_iter().map(Ok)).boxed()
}

/// A non-negative count from a wire int64.
fn count(value: i64, what: &str) -> Result<u64, Status> {
    u64::try_from(value)
        .map_err(|_| Status::invalid_argument(format!("{what} must not be negative (got {value})")))
}

impl PfsService {
    async fn list_commits(&self, r: pfs::ListCommitRequest) -> Result<Vec<CommitRecord>, Status> {
        let repo = repo_name(r.repo, "list commit")?;
        let id = |c: Option<pfs::Commit>| c.map(|c| c.id).filter(|id| !id.is_empty());
        let (from, to) = (id(r.from), id(r.to));
        self.pfs
            .list_commit(
                &repo,
                from.as_deref(),
                to.as_deref(),
                usize::try_from(r.number).unwrap_or(usize::MAX),
                r.reverse,
            )
            .await
            .map_err(status)
    }

    async fn list_files(&self, r: pfs::ListFileRequest) -> Result<Stream<pfs::FileInfo>, Status> {
        let (repo, commit, path) = file_ref(r.file, "list file")?;
        let full = r.full;
        if r.history != 0 {
            let versions = self
                .pfs
                .list_file_history(&repo, &commit, &path, r.history)
                .await
                .map_err(status)?;
            return Ok(stream_of(
                versions
                    .into_iter()
                    .map(|(c, f)| file_info(f, &c, full))
                    .collect(),
            ));
        }
        let (commit, files) = self
            .pfs
            .list_file_full(&repo, &commit, &path, false, full)
            .await
            .map_err(status)?;
        Ok(files
            .map(move |f| f.map(|f| file_info(f, &commit, full)).map_err(status))
            .boxed())
    }

    async fn glob_files(&self, r: pfs::GlobFileRequest) -> Result<Vec<pfs::FileInfo>, Status> {
        let (repo, commit) = commit_ref(r.commit, "glob file")?;
        let (commit, files) = self
            .pfs
            .glob_file(&repo, &commit, &r.pattern)
            .await
            .map_err(status)?;
        Ok(files
            .into_iter()
            .map(|f| file_info(f, &commit, false))
            .collect())
    }
}

#[tonic::async_trait]
impl Api for PfsService {
    async fn create_repo(
        &self,
        req: Request<pfs::CreateRepoRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = self.authz.check(&req).await?;
        let created = req.get_ref().repo.as_ref().map(|r| r.name.clone());
        let update = req.get_ref().update;
        self.writable().await?;
        let req = match self
            .joined(req, |r| TransactionRequest {
                create_repo: Some(r),
                ..Default::default()
            })
            .await?
        {
            Ok(_) => {
                if let Some(name) = created.filter(|_| !update) {
                    self.authz.repo_created(&caller, &name).await?;
                }
                return Ok(Response::new(()));
            }
            Err(req) => req,
        };
        let r = req.into_inner();
        let name = repo_name(r.repo, "create repo")?;
        self.pfs
            .create_repo(&name, &r.description, r.update)
            .await
            .map_err(status)?;
        if !r.update {
            self.authz.repo_created(&caller, &name).await?;
        }
        Ok(Response::new(()))
    }

    async fn inspect_repo(
        &self,
        req: Request<pfs::InspectRepoRequest>,
    ) -> Result<Response<pfs::RepoInfo>, Status> {
        let caller = self.authz.check(&req).await?;
        let name = repo_name(req.into_inner().repo, "inspect repo")?;
        let info = self.pfs.inspect_repo(&name).await.map_err(status)?;
        let mut info = repo_info(info);
        info.auth_info = self.authz.access_level(&caller, &name).await?;
        Ok(Response::new(info))
    }

    async fn list_repo(
        &self,
        r: Request<pfs::ListRepoRequest>,
    ) -> Result<Response<pfs::ListRepoResponse>, Status> {
        let caller = self.authz.check(&r).await?;
        let repos = self.pfs.list_repo().await.map_err(status)?;
        let mut repo_info_list = Vec::with_capacity(repos.len());
        for repo in repos {
            let mut info = repo_info(repo);
            let name = info
                .repo
                .as_ref()
                .map(|r| r.name.clone())
                .unwrap_or_default();
            info.auth_info = self.authz.access_level(&caller, &name).await?;
            repo_info_list.push(info);
        }
        Ok(Response::new(pfs::ListRepoResponse {
            repo_info: repo_info_list,
        }))
    }

    async fn delete_repo(
        &self,
        req: Request<pfs::DeleteRepoRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = self.authz.check(&req).await?;
        self.writable().await?;
        let req = match self
            .joined(req, |r| TransactionRequest {
                delete_repo: Some(r),
                ..Default::default()
            })
            .await?
        {
            Ok(_) => return Ok(Response::new(())),
            Err(req) => req,
        };
        let r = req.into_inner();
        if r.all {
            self.pfs.delete_all_repos().await.map_err(status)?;
            self.authz.all_repos_deleted(&caller).await?;
            return Ok(Response::new(()));
        }
        let name = repo_name(r.repo, "delete repo")?;
        match self.pfs.delete_repo(&name, r.force).await {
            // Deleting a repo that is not there is not an error in 1.9.
            Ok(()) | Err(pach_pfs::PfsError::RepoNotFound { .. }) => {
                self.authz.repos_deleted(&caller, &[name]).await?;
                Ok(Response::new(()))
            }
            Err(e) => Err(status(e)),
        }
    }

    async fn start_commit(
        &self,
        req: Request<pfs::StartCommitRequest>,
    ) -> Result<Response<pfs::Commit>, Status> {
        self.authz.check(&req).await?;
        self.writable().await?;
        let req = match self
            .joined(req, |r| TransactionRequest {
                start_commit: Some(r),
                ..Default::default()
            })
            .await?
        {
            Ok(reply) => {
                return reply.commit.map(Response::new).ok_or_else(|| {
                    Status::internal("the transaction answered start commit with no commit")
                });
            }
            Err(req) => req,
        };
        let r = req.into_inner();
        let parent = r
            .parent
            .ok_or_else(|| Status::invalid_argument("parent cannot be nil: it names the repo"))?;
        let repo = repo_name(parent.repo, "start commit")?;
        let branch = Some(r.branch.as_str()).filter(|b| !b.is_empty());
        let parent_id = Some(parent.id.as_str()).filter(|p| !p.is_empty());
        let provenance = r
            .provenance
            .into_iter()
            .map(|p| commit_ref(p.commit, "start commit's provenance"))
            .collect::<Result<Vec<_>, _>>()?;
        let c = self
            .pfs
            .start_commit_with(&repo, branch, parent_id, &r.description, &provenance)
            .await
            .map_err(status)?;
        Ok(Response::new(commit_msg(&c.repo, &c.id)))
    }

    async fn finish_commit(
        &self,
        req: Request<pfs::FinishCommitRequest>,
    ) -> Result<Response<()>, Status> {
        self.authz.check(&req).await?;
        self.writable().await?;
        let req = match self
            .joined(req, |r| TransactionRequest {
                finish_commit: Some(r),
                ..Default::default()
            })
            .await?
        {
            Ok(_) => return Ok(Response::new(())),
            Err(req) => req,
        };
        let r = req.into_inner();
        if r.tree.is_some() || !r.trees.is_empty() || r.datums.is_some() {
            return Err(Status::unimplemented(
                "finishing a commit with hashtree objects is how Pachyderm's own workers write \
                 output; write files with put file instead",
            ));
        }
        let (repo, commit) = commit_ref(r.commit, "finish commit")?;
        let description = Some(r.description.as_str()).filter(|d| !d.is_empty());
        self.pfs
            .finish_commit_with(&repo, &commit, description, r.empty)
            .await
            .map_err(status)?;
        Ok(Response::new(()))
    }

    async fn inspect_commit(
        &self,
        req: Request<pfs::InspectCommitRequest>,
    ) -> Result<Response<pfs::CommitInfo>, Status> {
        self.authz.check(&req).await?;
        let r = req.into_inner();
        let (repo, commit) = commit_ref(r.commit, "inspect commit")?;
        let state = commit_state(r.block_state)?;
        let record = self
            .pfs
            .inspect_commit_state(&repo, &commit, state)
            .await
            .map_err(status)?;
        let mut info = commit_info(&record);
        info.child_commits = self
            .pfs
            .commit_children(&record.repo, &record.id)
            .await
            .map_err(status)?
            .iter()
            .map(|id| commit_msg(&record.repo, id))
            .collect();
        info.subvenance = self
            .pfs
            .commit_subvenance(&record.repo, &record.id)
            .await
            .map_err(status)?
            .iter()
            .map(|c| pfs::CommitRange {
                lower: Some(commit_msg(&c.repo, &c.id)),
                upper: Some(commit_msg(&c.repo, &c.id)),
            })
            .collect();
        Ok(Response::new(info))
    }

    async fn list_commit(
        &self,
        req: Request<pfs::ListCommitRequest>,
    ) -> Result<Response<pfs::CommitInfos>, Status> {
        self.authz.check(&req).await?;
        let commits = self.list_commits(req.into_inner()).await?;
        Ok(Response::new(pfs::CommitInfos {
            commit_info: commits.iter().map(commit_info).collect(),
        }))
    }

    type ListCommitStreamStream = Stream<pfs::CommitInfo>;
    async fn list_commit_stream(
        &self,
        req: Request<pfs::ListCommitRequest>,
    ) -> Result<Response<Self::ListCommitStreamStream>, Status> {
        self.authz.check(&req).await?;
        let commits = self.list_commits(req.into_inner()).await?;
        Ok(Response::new(stream_of(
            commits.iter().map(commit_info).collect(),
        )))
    }

    async fn delete_commit(
        &self,
        req: Request<pfs::DeleteCommitRequest>,
    ) -> Result<Response<()>, Status> {
        self.authz.check(&req).await?;
        self.writable().await?;
        let req = match self
            .joined(req, |r| TransactionRequest {
                delete_commit: Some(r),
                ..Default::default()
            })
            .await?
        {
            Ok(_) => return Ok(Response::new(())),
            Err(req) => req,
        };
        let (repo, commit) = commit_ref(req.into_inner().commit, "delete commit")?;
        self.pfs
            .delete_commit(&repo, &commit)
            .await
            .map_err(status)?;
        Ok(Response::new(()))
    }

    type FlushCommitStream = Stream<pfs::CommitInfo>;
    async fn flush_commit(
        &self,
        req: Request<pfs::FlushCommitRequest>,
    ) -> Result<Response<Self::FlushCommitStream>, Status> {
        self.authz.check(&req).await?;
        let r = req.into_inner();
        let commits = r
            .commits
            .into_iter()
            .map(|c| commit_ref(Some(c), "flush commit"))
            .collect::<Result<Vec<_>, _>>()?;
        let to_repos: Vec<String> = r.to_repos.into_iter().map(|r| r.name).collect();
        let pfs = self.pfs.clone();
        // Waiting happens as the client reads, so a long flush holds no request open idle.
        let flushed = futures::stream::once(async move {
            pfs.flush_commit(&commits, &to_repos).await.map_err(status)
        })
        .map_ok(|commits| futures::stream::iter(commits.into_iter().map(Ok)))
        .try_flatten()
        .map_ok(|c| commit_info(&c));
        Ok(Response::new(flushed.boxed()))
    }

    type SubscribeCommitStream = Stream<pfs::CommitInfo>;
    async fn subscribe_commit(
        &self,
        req: Request<pfs::SubscribeCommitRequest>,
    ) -> Result<Response<Self::SubscribeCommitStream>, Status> {
        self.authz.check(&req).await?;
        let r = req.into_inner();
        let repo = repo_name(r.repo, "subscribe commit")?;
        if r.prov.is_some() {
            return Err(Status::unimplemented(
                "subscribing to commits by provenance is not supported; subscribe to the branch",
            ));
        }
        let branch = if r.branch.is_empty() {
            "master".to_string()
        } else {
            r.branch
        };
        let from = r.from.map(|c| c.id).filter(|id| !id.is_empty());
        let stream = self
            .pfs
            .subscribe_commit(&repo, &branch, from.as_deref(), commit_state(r.state)?)
            .await
            .map_err(status)?;
        Ok(Response::new(
            stream
                .map(|c| c.map(|c| commit_info(&c)).map_err(status))
                .boxed(),
        ))
    }

    async fn build_commit(
        &self,
        r: Request<pfs::BuildCommitRequest>,
    ) -> Result<Response<pfs::Commit>, Status> {
        self.authz.check(&r).await?;
        Err(Status::unimplemented(
            "BuildCommit makes a commit from a hashtree object, which this pachd does not store; \
             start a commit and put files into it instead",
        ))
    }

    async fn create_branch(
        &self,
        req: Request<pfs::CreateBranchRequest>,
    ) -> Result<Response<()>, Status> {
        self.authz.check(&req).await?;
        self.writable().await?;
        let req = match self
            .joined(req, |r| TransactionRequest {
                create_branch: Some(r),
                ..Default::default()
            })
            .await?
        {
            Ok(_) => return Ok(Response::new(())),
            Err(req) => req,
        };
        let r = req.into_inner();
        let (repo, name) = match r.branch {
            Some(b) => (repo_name(b.repo, "create branch")?, b.name),
            // Older clients name the branch in s_branch, the repo in head.
            None => (
                repo_name(
                    r.head.as_ref().and_then(|h| h.repo.clone()),
                    "create branch",
                )?,
                r.s_branch,
            ),
        };
        let head = r.head.map(|h| h.id).filter(|id| !id.is_empty());
        let provenance = if r.provenance.is_empty() {
            None
        } else {
            Some(
                r.provenance
                    .into_iter()
                    .map(|b| {
                        Ok(BranchName {
                            repo: repo_name(b.repo, "a provenance branch")?,
                            name: b.name,
                        })
                    })
                    .collect::<Result<Vec<_>, Status>>()?,
            )
        };
        self.pfs
            .create_branch(&repo, &name, head.as_deref(), provenance)
            .await
            .map_err(status)?;
        Ok(Response::new(()))
    }

    async fn inspect_branch(
        &self,
        req: Request<pfs::InspectBranchRequest>,
    ) -> Result<Response<pfs::BranchInfo>, Status> {
        self.authz.check(&req).await?;
        let b = req.into_inner().branch.ok_or_else(|| {
            Status::invalid_argument("inspect branch names no branch; give REPO@BRANCH")
        })?;
        let repo = repo_name(b.repo, "inspect branch")?;
        let info = self
            .pfs
            .inspect_branch(&repo, &b.name)
            .await
            .map_err(status)?;
        Ok(Response::new(branch_info(info)))
    }

    async fn list_branch(
        &self,
        req: Request<pfs::ListBranchRequest>,
    ) -> Result<Response<pfs::BranchInfos>, Status> {
        self.authz.check(&req).await?;
        let r = req.into_inner();
        let repo = repo_name(r.repo, "list branch")?;
        let mut infos = self.pfs.list_branch(&repo).await.map_err(status)?;
        if r.reverse {
            infos.reverse();
        }
        Ok(Response::new(pfs::BranchInfos {
            branch_info: infos.into_iter().map(branch_info).collect(),
        }))
    }

    async fn delete_branch(
        &self,
        req: Request<pfs::DeleteBranchRequest>,
    ) -> Result<Response<()>, Status> {
        self.authz.check(&req).await?;
        self.writable().await?;
        let req = match self
            .joined(req, |r| TransactionRequest {
                delete_branch: Some(r),
                ..Default::default()
            })
            .await?
        {
            Ok(_) => return Ok(Response::new(())),
            Err(req) => req,
        };
        let r = req.into_inner();
        let b = r.branch.ok_or_else(|| {
            Status::invalid_argument("delete branch names no branch; give REPO@BRANCH")
        })?;
        let repo = repo_name(b.repo, "delete branch")?;
        self.pfs
            .delete_branch(&repo, &b.name, r.force)
            .await
            .map_err(status)?;
        Ok(Response::new(()))
    }

    async fn put_file(
        &self,
        req: Request<Streaming<pfs::PutFileRequest>>,
    ) -> Result<Response<()>, Status> {
        let metadata = req.metadata().clone();
        self.writable().await?;
        let mut stream = read_ahead(req.into_inner());
        let mut put: Option<(pach_pfs::PutFiles, String, String)> = None;
        while let Some(r) = stream.recv().await.transpose()? {
            let Some(file) = r.file else {
                let Some((p, _, _)) = put.as_mut() else {
                    return Err(Status::invalid_argument(
                        "must send a request with a file first: the first message of a put file \
                         stream names the file",
                    ));
                };
                p.write(&r.value).await.map_err(status)?;
                continue;
            };
            self.authz
                .require(
                    &metadata,
                    pfs::PutFileRequest {
                        file: Some(file.clone()),
                        ..Default::default()
                    }
                    .need(),
                )
                .await?;
            let (repo, commit, path) = file_ref(Some(file), "put file")?;
            let split = split_options(
                r.delimiter,
                [r.target_file_datums, r.target_file_bytes, r.header_records],
                &r.url,
            )?;
            let overwrite = r
                .overwrite_index
                .map(|o| count(o.index, "overwrite_index"))
                .transpose()?;
            let p = match &mut put {
                None => {
                    let p = self.pfs.put_files(&repo, &commit).await.map_err(status)?;
                    &mut put.insert((p, repo, commit)).0
                }
                Some((p, first_repo, first_commit)) => {
                    if commit != *first_commit {
                        return Err(Status::invalid_argument(format!(
                            "all requests in a put files call must have the same commit ID; \
                             expected '{first_commit}', got '{commit}'"
                        )));
                    }
                    if repo != *first_repo {
                        return Err(Status::invalid_argument(format!(
                            "all requests in a put files call must have the same repo name; \
                             expected '{first_repo}', got '{repo}'"
                        )));
                    }
                    p
                }
            };
            if !r.url.is_empty() {
                let (store, object) = crate::urls::open_url(&r.url)?;
                p.put_url(&path, &r.url, (&*store, &object), r.recursive, overwrite)
                    .await
                    .map_err(status)?;
                continue;
            }
            match split {
                Some(options) => p
                    .start_split(&path, options, overwrite == Some(0))
                    .await
                    .map_err(status)?,
                None => p.start_file(&path, overwrite).await.map_err(status)?,
            }
            p.write(&r.value).await.map_err(status)?;
        }
        if let Some((p, _, _)) = put {
            p.finish().await.map_err(status)?;
        }
        Ok(Response::new(()))
    }

    async fn copy_file(&self, req: Request<pfs::CopyFileRequest>) -> Result<Response<()>, Status> {
        self.authz.check(&req).await?;
        self.writable().await?;
        let r = req.into_inner();
        let (sr, sc, sp) = file_ref(r.src, "copy file's source")?;
        let (dr, dc, dp) = file_ref(r.dst, "copy file's destination")?;
        self.pfs
            .copy_file((&sr, &sc, &sp), (&dr, &dc, &dp), r.overwrite)
            .await
            .map_err(status)?;
        Ok(Response::new(()))
    }

    type GetFileStream = Stream<Vec<u8>>;
    async fn get_file(
        &self,
        req: Request<pfs::GetFileRequest>,
    ) -> Result<Response<Self::GetFileStream>, Status> {
        self.authz.check(&req).await?;
        let r = req.into_inner();
        let (repo, commit, path) = file_ref(r.file, "get file")?;
        let offset = count(r.offset_bytes, "offset_bytes")?;
        let len = Some(count(r.size_bytes, "size_bytes")?).filter(|&n| n != 0);
        let bytes = self
            .pfs
            .get_file(&repo, &commit, &path, offset, len)
            .await
            .map_err(status)?;
        // One message per item: items never span pieces, so clients see them.
        Ok(Response::new(
            bytes.map(|b| b.map(Vec::from).map_err(status)).boxed(),
        ))
    }

    async fn inspect_file(
        &self,
        req: Request<pfs::InspectFileRequest>,
    ) -> Result<Response<pfs::FileInfo>, Status> {
        self.authz.check(&req).await?;
        let (repo, commit, path) = file_ref(req.into_inner().file, "inspect file")?;
        let (commit, mut info) = self
            .pfs
            .inspect_file(&repo, &commit, &path)
            .await
            .map_err(status)?;
        // 1.9 answers with the path as the client gave it.
        info.path = path;
        Ok(Response::new(file_info(info, &commit, true)))
    }

    async fn list_file(
        &self,
        req: Request<pfs::ListFileRequest>,
    ) -> Result<Response<pfs::FileInfos>, Status> {
        self.authz.check(&req).await?;
        let files: Vec<pfs::FileInfo> = self
            .list_files(req.into_inner())
            .await?
            .try_collect()
            .await?;
        Ok(Response::new(pfs::FileInfos { file_info: files }))
    }

    type ListFileStreamStream = Stream<pfs::FileInfo>;
    async fn list_file_stream(
        &self,
        req: Request<pfs::ListFileRequest>,
    ) -> Result<Response<Self::ListFileStreamStream>, Status> {
        self.authz.check(&req).await?;
        Ok(Response::new(self.list_files(req.into_inner()).await?))
    }

    type WalkFileStream = Stream<pfs::FileInfo>;
    async fn walk_file(
        &self,
        req: Request<pfs::WalkFileRequest>,
    ) -> Result<Response<Self::WalkFileStream>, Status> {
        self.authz.check(&req).await?;
        let (repo, commit, path) = file_ref(req.into_inner().file, "walk file")?;
        let (commit, files) = self
            .pfs
            .walk_file(&repo, &commit, &path)
            .await
            .map_err(status)?;
        Ok(Response::new(stream_of(
            files
                .into_iter()
                .map(|f| file_info(f, &commit, false))
                .collect(),
        )))
    }

    async fn glob_file(
        &self,
        req: Request<pfs::GlobFileRequest>,
    ) -> Result<Response<pfs::FileInfos>, Status> {
        self.authz.check(&req).await?;
        let files = self.glob_files(req.into_inner()).await?;
        Ok(Response::new(pfs::FileInfos { file_info: files }))
    }

    type GlobFileStreamStream = Stream<pfs::FileInfo>;
    async fn glob_file_stream(
        &self,
        req: Request<pfs::GlobFileRequest>,
    ) -> Result<Response<Self::GlobFileStreamStream>, Status> {
        self.authz.check(&req).await?;
        Ok(Response::new(stream_of(
            self.glob_files(req.into_inner()).await?,
        )))
    }

    async fn diff_file(
        &self,
        req: Request<pfs::DiffFileRequest>,
    ) -> Result<Response<pfs::DiffFileResponse>, Status> {
        self.authz.check(&req).await?;
        let r = req.into_inner();
        let (nr, nc, np) = file_ref(r.new_file, "diff file")?;
        let old = match r.old_file {
            Some(f) if f.commit.is_some() => Some(file_ref(Some(f), "diff file's old file")?),
            _ => None,
        };
        let diff = self
            .pfs
            .diff_file(
                (&nr, &nc, &np),
                old.as_ref()
                    .map(|(r, c, p)| (r.as_str(), c.as_str(), p.as_str())),
                r.shallow,
            )
            .await
            .map_err(status)?;
        let new_commit = diff.new_commit;
        let old_commit = diff.old_commit;
        Ok(Response::new(pfs::DiffFileResponse {
            new_files: diff
                .new_files
                .into_iter()
                .map(|f| file_info(f, &new_commit, false))
                .collect(),
            old_files: match &old_commit {
                Some(c) => diff
                    .old_files
                    .into_iter()
                    .map(|f| file_info(f, c, false))
                    .collect(),
                None => Vec::new(),
            },
        }))
    }

    async fn delete_file(
        &self,
        req: Request<pfs::DeleteFileRequest>,
    ) -> Result<Response<()>, Status> {
        self.authz.check(&req).await?;
        self.writable().await?;
        let (repo, commit, path) = file_ref(req.into_inner().file, "delete file")?;
        self.pfs
            .delete_file(&repo, &commit, &path)
            .await
            .map_err(status)?;
        Ok(Response::new(()))
    }

    async fn delete_all(&self, r: Request<()>) -> Result<Response<()>, Status> {
        let caller = self
            .authz
            .require(r.metadata(), super::authz::Need::Admin("DeleteAll"))
            .await?;
        self.writable().await?;
        self.pfs.delete_all_repos().await.map_err(status)?;
        self.authz.all_repos_deleted(&caller).await?;
        Ok(Response::new(()))
    }

    type FsckStream = Stream<pfs::FsckResponse>;
    async fn fsck(
        &self,
        req: Request<pfs::FsckRequest>,
    ) -> Result<Response<Self::FsckStream>, Status> {
        self.authz.check(&req).await?;
        let fix = req.into_inner().fix;
        let report = if fix {
            self.writable().await?;
            self.pfs.fsck_fix().await.map_err(status)?
        } else {
            self.pfs.fsck().await.map_err(status)?
        };
        // As 1.9: a message per repair (`fix`) and per problem (`error`).
        let fixed = report.fixed.into_iter().map(|fix| pfs::FsckResponse {
            fix,
            error: String::new(),
        });
        let problems = report.problems.into_iter().map(|error| pfs::FsckResponse {
            fix: String::new(),
            error,
        });
        Ok(Response::new(stream_of(fixed.chain(problems).collect())))
    }
}

/// A put's messages, the next one received and decoded while the last is
/// stored: clients that send few large messages (python-pachyderm sends 20
/// MiB each) would otherwise wait for each to be stored before the next
/// could cross the flow-control window.
fn read_ahead<M: Send + 'static>(
    mut stream: Streaming<M>,
) -> tokio::sync::mpsc::Receiver<Result<M, Status>> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        while let Some(m) = stream.message().await.transpose() {
            let failed = m.is_err();
            if tx.send(m).await.is_err() || failed {
                break;
            }
        }
    });
    rx
}

/// A put file request's split options (`delimiter`, `target_file_datums`,
/// `target_file_bytes`, `header_records`), as Pachyderm 1.9 checks them.
fn split_options(
    delimiter: i32,
    [datums, bytes, header]: [i64; 3],
    url: &str,
) -> Result<Option<pach_pfs::split::SplitOptions>, Status> {
    use pach_pfs::split::{Delimiter, SplitOptions};
    let delimiter = match pfs::Delimiter::try_from(delimiter) {
        Ok(pfs::Delimiter::None) => None,
        Ok(pfs::Delimiter::Line) => Some(Delimiter::Line),
        Ok(pfs::Delimiter::Json) => Some(Delimiter::Json),
        Ok(pfs::Delimiter::Sql) => Some(Delimiter::Sql),
        Ok(pfs::Delimiter::Csv) => Some(Delimiter::Csv),
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "unknown delimiter {delimiter}; use LINE, JSON, SQL or CSV (or NONE: no split)"
            )));
        }
    };
    let options = datums != 0 || bytes != 0 || header != 0;
    let Some(delimiter) = delimiter else {
        if options {
            return Err(Status::invalid_argument(
                "cannot set split options (target_file_datums, target_file_bytes, \
                 header_records) without a delimiter: give --split line, json, sql or csv",
            ));
        }
        return Ok(None);
    };
    if !url.is_empty() {
        return Err(Status::invalid_argument(
            "a put file from a URL cannot be split; get the data, then put it with --split",
        ));
    }
    Ok(Some(SplitOptions {
        delimiter,
        target_file_datums: count(datums, "target_file_datums")?,
        target_file_bytes: count(bytes, "target_file_bytes")?,
        header_records: count(header, "header_records")?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_keep_nanoseconds_and_handle_the_past() {
        let t = timestamp(1_500_000_000_123_456_789);
        assert_eq!((t.seconds, t.nanos), (1_500_000_000, 123_456_789));
        let t = timestamp(-1);
        assert_eq!((t.seconds, t.nanos), (-1, 999_999_999));
    }

    #[test]
    fn requests_without_repo_or_commit_are_refused_with_the_way_out() {
        let err = commit_ref(None, "inspect commit").unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("REPO@BRANCH"), "{}", err.message());
        let err = commit_ref(Some(commit_msg("r", "")), "finish commit").unwrap_err();
        assert!(
            err.message().contains("no ID or branch"),
            "{}",
            err.message()
        );
        assert!(repo_name(Some(repo_msg("")), "create repo").is_err());
        assert_eq!(
            count(-1, "size_bytes").unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }
}
