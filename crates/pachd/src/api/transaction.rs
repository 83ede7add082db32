//! `transaction.API`: batches of repo, branch and commit operations that apply
//! atomically or not at all, as Pachyderm 1.9 defines them.
//!
//! A transaction is a record (`transactions/<id>`, the `TransactionInfo`
//! message) listing its requests and the answers they got. A request joins a
//! transaction when a client sends it with the transaction's id in the
//! `pach-transaction` metadata: the whole list is then run against an
//! [`Overlay`] of the metadata store — every operation sees the ones before
//! it, nothing reaches the store — so that a request that cannot apply is
//! refused at once, and its answer (a started commit's id) is recorded.
//! Finishing runs the list once more on a fresh overlay, reusing the recorded
//! commit ids, and commits the overlay's writes together with the deletion
//! of the record in one guarded transaction of the store; if anything the
//! batch read changed meanwhile, the batch runs again on the new state.

use std::sync::Arc;

use pach_api::pfs as pfs_pb;
use pach_api::transaction::{self as pb, api_server::Api};
use pach_meta::{MetaStore, Overlay, Txn};
use pach_pfs::{BranchName, ErrorKind, Pfs, PfsError};
use prost::Message;
use tonic::{Request, Response, Status};

use super::status::{status, status_of};

const PREFIX: &str = "transactions/";
/// How often a batch runs again when concurrent writes invalidated it.
const ATTEMPTS: usize = 20;

fn key(id: &str) -> String {
    format!("{PREFIX}{id}")
}

#[derive(Clone)]
pub(crate) struct TransactionService {
    pub(crate) pfs: Pfs,
    /// Who may call what (`authz`).
    pub(crate) authz: super::authz::Authz,
}

/// The transaction a request names in its metadata, if any.
pub(crate) fn transaction_of<T>(req: &Request<T>) -> Option<String> {
    req.metadata()
        .get(pach_api::TRANSACTION_KEY)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

fn not_found(id: &str) -> Status {
    status_of(
        ErrorKind::NotFound,
        &format!("transaction {id} not found; `pachctl list transaction` shows the open ones"),
    )
}

fn corrupt(id: &str, e: prost::DecodeError) -> Status {
    status_of(
        ErrorKind::Internal,
        &format!("the record of transaction {id} is unreadable ({e}); delete the transaction"),
    )
}

fn meta_error(e: pach_meta::MetaError) -> Status {
    status(PfsError::from(e))
}

fn now() -> prost_types::Timestamp {
    prost_types::Timestamp::from(std::time::SystemTime::now())
}

impl TransactionService {
    async fn load(&self, id: &str) -> Result<(pb::TransactionInfo, u64), Status> {
        let kv = self
            .pfs
            .meta()
            .get(&key(id))
            .await
            .map_err(meta_error)?
            .ok_or_else(|| not_found(id))?;
        let info = pb::TransactionInfo::decode(kv.value.as_slice()).map_err(|e| corrupt(id, e))?;
        Ok((info, kv.mod_revision))
    }

    /// Runs `info`'s requests against an overlay of the store; returns the
    /// overlay (holding the writes) and the answers.
    async fn run(
        &self,
        info: &pb::TransactionInfo,
    ) -> Result<(Arc<Overlay>, Vec<pb::TransactionResponse>), Status> {
        let overlay = Arc::new(Overlay::new(self.pfs.meta().clone()));
        let pfs = self.pfs.with_meta(overlay.clone());
        let own_id = info.transaction.as_ref().map(|t| t.id.as_str());
        let total = info.requests.len();
        let mut responses = Vec::with_capacity(total);
        for (i, request) in info.requests.iter().enumerate() {
            let earlier = info.responses.get(i).and_then(|r| r.commit.as_ref());
            let response = execute(&pfs, &overlay, request, earlier, own_id)
                .await
                .map_err(|s| {
                    Status::new(
                        s.code(),
                        format!(
                            "error running request {} of {total}: {}",
                            i + 1,
                            s.message()
                        ),
                    )
                })?;
            responses.push(response);
        }
        Ok((overlay, responses))
    }

    /// Runs a batch and commits it, again on conflicts; `record` is the
    /// transaction record to delete in the same commit.
    async fn apply(
        &self,
        mut info: pb::TransactionInfo,
        record: Option<&str>,
    ) -> Result<pb::TransactionInfo, Status> {
        for _ in 0..ATTEMPTS {
            if let Some(id) = record {
                // Re-read: a request may have joined since the caller looked.
                info = self.load(id).await?.0;
            }
            let (overlay, responses) = self.run(&info).await?;
            if let Some(id) = record {
                let k = key(id);
                let rev = overlay
                    .get(&k)
                    .await
                    .map_err(meta_error)?
                    .map_or(0, |kv| kv.mod_revision);
                overlay
                    .commit(Txn::new().expect(&k, rev).delete(&k))
                    .await
                    .map_err(meta_error)?;
            }
            if overlay.commit_to_base().await.map_err(meta_error)? {
                info.responses = responses;
                return Ok(info);
            }
        }
        Err(status_of(
            ErrorKind::Unavailable,
            "the transaction kept conflicting with concurrent writes; retry it",
        ))
    }

    /// Adds `request` to transaction `id` if the whole list still applies,
    /// and returns the answer it got.
    pub(crate) async fn append(
        &self,
        id: &str,
        request: pb::TransactionRequest,
    ) -> Result<pb::TransactionResponse, Status> {
        for _ in 0..ATTEMPTS {
            let (mut info, rev) = self.load(id).await?;
            info.requests.push(request.clone());
            let (_, responses) = self.run(&info).await?;
            let answer = responses.last().cloned().unwrap_or_default();
            info.responses = responses;
            let k = key(id);
            let txn = Txn::new().expect(&k, rev).put(&k, info.encode_to_vec());
            if self
                .pfs
                .meta()
                .commit(txn)
                .await
                .map_err(meta_error)?
                .is_some()
            {
                return Ok(answer);
            }
        }
        Err(status_of(
            ErrorKind::Unavailable,
            &format!("transaction {id} kept changing while a request joined it; retry"),
        ))
    }
}

/// Runs one request of a transaction on `pfs` (backed by `overlay`).
/// `earlier` is the commit a StartCommit got when it joined.
async fn execute(
    pfs: &Pfs,
    overlay: &Overlay,
    request: &pb::TransactionRequest,
    earlier: Option<&pfs_pb::Commit>,
    own_id: Option<&str>,
) -> Result<pb::TransactionResponse, Status> {
    let done = Ok(pb::TransactionResponse::default());
    let repo_name =
        |r: &Option<pfs_pb::Repo>| r.as_ref().map(|r| r.name.clone()).unwrap_or_default();
    if let Some(r) = &request.create_repo {
        pfs.create_repo(&repo_name(&r.repo), &r.description, r.update)
            .await
            .map_err(status)?;
        return done;
    }
    if let Some(r) = &request.delete_repo {
        if r.all {
            pfs.delete_all_repos().await.map_err(status)?;
        } else {
            match pfs.delete_repo(&repo_name(&r.repo), r.force).await {
                // Deleting a repo that does not exist is not an error in 1.9.
                Err(PfsError::RepoNotFound { .. }) | Ok(()) => {}
                Err(e) => return Err(status(e)),
            }
        }
        return done;
    }
    if let Some(r) = &request.start_commit {
        let parent = r.parent.as_ref();
        let repo = parent.map(|p| repo_name(&p.repo)).unwrap_or_default();
        let parent_id = parent.map(|p| p.id.as_str()).filter(|p| !p.is_empty());
        let branch = Some(r.branch.as_str()).filter(|b| !b.is_empty());
        let provenance = r
            .provenance
            .iter()
            .map(|p| commit_of(&p.commit))
            .collect::<Result<Vec<_>, _>>()?;
        let commit = pfs
            .start_commit_with_id(
                earlier.map(|c| c.id.as_str()),
                &repo,
                branch,
                parent_id,
                &r.description,
                &provenance,
            )
            .await
            .map_err(status)?;
        return Ok(pb::TransactionResponse {
            commit: Some(pfs_pb::Commit {
                repo: Some(pfs_pb::Repo { name: commit.repo }),
                id: commit.id,
            }),
        });
    }
    if let Some(r) = &request.finish_commit {
        let (repo, id) = commit_of(&r.commit)?;
        let description = Some(r.description.as_str()).filter(|d| !d.is_empty());
        pfs.finish_commit(&repo, &id, description)
            .await
            .map_err(status)?;
        return done;
    }
    if let Some(r) = &request.delete_commit {
        let (repo, id) = commit_of(&r.commit)?;
        pfs.delete_commit(&repo, &id).await.map_err(status)?;
        return done;
    }
    if let Some(r) = &request.create_branch {
        let branch = r.branch.as_ref();
        let repo = branch
            .map(|b| repo_name(&b.repo))
            .or_else(|| r.head.as_ref().map(|h| repo_name(&h.repo)))
            .unwrap_or_default();
        let name = branch
            .map(|b| b.name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| r.s_branch.clone());
        let head = r
            .head
            .as_ref()
            .map(|h| h.id.as_str())
            .filter(|h| !h.is_empty());
        let provenance: Vec<BranchName> = r
            .provenance
            .iter()
            .map(|p| BranchName {
                repo: repo_name(&p.repo),
                name: p.name.clone(),
            })
            .collect();
        let provenance = (!provenance.is_empty()).then_some(provenance);
        pfs.create_branch(&repo, &name, head, provenance)
            .await
            .map_err(status)?;
        return done;
    }
    if let Some(r) = &request.delete_branch {
        let b = r.branch.clone().unwrap_or_default();
        pfs.delete_branch(&repo_name(&b.repo), &b.name, r.force)
            .await
            .map_err(status)?;
        return done;
    }
    if request.delete_all.is_some() {
        // Every other transaction goes; this one is finishing.
        let others = overlay.list(PREFIX, None, 0).await.map_err(meta_error)?;
        let mut txn = Txn::new();
        for kv in others {
            if own_id.is_none_or(|id| kv.key != key(id)) {
                txn = txn.delete(kv.key);
            }
        }
        overlay.commit(txn).await.map_err(meta_error)?;
        return done;
    }
    if request.update_job_state.is_some() {
        return Err(status_of(
            ErrorKind::InvalidArgument,
            "job states are set by pachd's own workers here; a transaction cannot change them",
        ));
    }
    Err(status_of(
        ErrorKind::InvalidArgument,
        "the transaction request names no operation",
    ))
}

fn commit_of(c: &Option<pfs_pb::Commit>) -> Result<(String, String), Status> {
    let c = c.as_ref().ok_or_else(|| {
        status_of(
            ErrorKind::InvalidArgument,
            "a commit (REPO@BRANCH or REPO@COMMIT) is required",
        )
    })?;
    let repo = c.repo.as_ref().map(|r| r.name.clone()).unwrap_or_default();
    Ok((repo, c.id.clone()))
}

#[tonic::async_trait]
impl Api for TransactionService {
    async fn batch_transaction(
        &self,
        req: Request<pb::BatchTransactionRequest>,
    ) -> Result<Response<pb::TransactionInfo>, Status> {
        let caller = self.authz.check(&req).await?;
        let created: Vec<String> = req
            .get_ref()
            .requests
            .iter()
            .filter_map(|r| r.create_repo.as_ref())
            .filter(|c| !c.update)
            .filter_map(|c| c.repo.as_ref().map(|r| r.name.clone()))
            .collect();
        let info = pb::TransactionInfo {
            transaction: Some(pb::Transaction {
                id: uuid::Uuid::new_v4().simple().to_string(),
            }),
            requests: req.into_inner().requests,
            responses: vec![],
            started: Some(now()),
        };
        let applied = self.apply(info, None).await?;
        for repo in &created {
            self.authz.repo_created(&caller, repo).await?;
        }
        Ok(Response::new(applied))
    }

    async fn start_transaction(
        &self,
        r: Request<pb::StartTransactionRequest>,
    ) -> Result<Response<pb::Transaction>, Status> {
        self.authz.check(&r).await?;
        let transaction = pb::Transaction {
            id: uuid::Uuid::new_v4().simple().to_string(),
        };
        let info = pb::TransactionInfo {
            transaction: Some(transaction.clone()),
            requests: vec![],
            responses: vec![],
            started: Some(now()),
        };
        let k = key(&transaction.id);
        let txn = Txn::new().expect(&k, 0).put(&k, info.encode_to_vec());
        self.pfs.meta().commit(txn).await.map_err(meta_error)?;
        Ok(Response::new(transaction))
    }

    async fn inspect_transaction(
        &self,
        req: Request<pb::InspectTransactionRequest>,
    ) -> Result<Response<pb::TransactionInfo>, Status> {
        self.authz.check(&req).await?;
        let id = req.into_inner().transaction.unwrap_or_default().id;
        Ok(Response::new(self.load(&id).await?.0))
    }

    async fn delete_transaction(
        &self,
        req: Request<pb::DeleteTransactionRequest>,
    ) -> Result<Response<()>, Status> {
        self.authz.check(&req).await?;
        let id = req.into_inner().transaction.unwrap_or_default().id;
        let (_, rev) = self.load(&id).await?;
        let k = key(&id);
        let done = self
            .pfs
            .meta()
            .commit(Txn::new().expect(&k, rev).delete(&k))
            .await
            .map_err(meta_error)?;
        if done.is_none() {
            // Finished or changed meanwhile: report what it is now.
            self.load(&id).await?;
        }
        Ok(Response::new(()))
    }

    async fn list_transaction(
        &self,
        r: Request<pb::ListTransactionRequest>,
    ) -> Result<Response<pb::TransactionInfos>, Status> {
        self.authz.check(&r).await?;
        let records = self
            .pfs
            .meta()
            .list(PREFIX, None, 0)
            .await
            .map_err(meta_error)?;
        let mut infos = Vec::with_capacity(records.len());
        for kv in records {
            let id = kv.key.trim_start_matches(PREFIX);
            infos.push(
                pb::TransactionInfo::decode(kv.value.as_slice()).map_err(|e| corrupt(id, e))?,
            );
        }
        infos.sort_by_key(|i| i.started.map(|t| (t.seconds, t.nanos)));
        Ok(Response::new(pb::TransactionInfos {
            transaction_info: infos,
        }))
    }

    async fn finish_transaction(
        &self,
        req: Request<pb::FinishTransactionRequest>,
    ) -> Result<Response<pb::TransactionInfo>, Status> {
        self.authz.check(&req).await?;
        let id = req.into_inner().transaction.unwrap_or_default().id;
        let (info, _) = self.load(&id).await?;
        Ok(Response::new(self.apply(info, Some(&id)).await?))
    }

    async fn delete_all(&self, r: Request<pb::DeleteAllRequest>) -> Result<Response<()>, Status> {
        self.authz.check(&r).await?;
        self.pfs
            .meta()
            .commit(Txn::new().delete_prefix(PREFIX))
            .await
            .map_err(meta_error)?;
        Ok(Response::new(()))
    }
}
