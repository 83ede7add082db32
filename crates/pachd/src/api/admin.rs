//! `admin.API`: the cluster's identity as Pachyderm 1.9 reports it. Its
//! extract and restore in Pachyderm's `Op` format are not served yet; they
//! say so and name our own self-checking stream (`pachrs.v1.Extension`,
//! `pachctl extract` / `pachctl restore`), which moves a whole cluster.

use pach_api::admin::{self, api_server::Api};
use tonic::{Request, Response, Status, Streaming};

use super::ReplyStream;
use super::status::unimplemented;
use crate::cluster::ClusterInfo;

pub(crate) struct AdminService {
    pub(crate) cluster: ClusterInfo,
}

fn not_yet(what: &str) -> Status {
    unimplemented(&format!(
        "{what} in Pachyderm's op format is not supported by this pachd yet; \
         `pachctl extract > backup` and `pachctl restore < backup` move a whole cluster \
         in this pachd's own self-checking stream"
    ))
}

#[tonic::async_trait]
impl Api for AdminService {
    type ExtractStream = ReplyStream<admin::Op>;

    async fn extract(
        &self,
        _: Request<admin::ExtractRequest>,
    ) -> Result<Response<Self::ExtractStream>, Status> {
        Err(not_yet("admin.API/Extract"))
    }

    async fn extract_pipeline(
        &self,
        _: Request<admin::ExtractPipelineRequest>,
    ) -> Result<Response<admin::Op>, Status> {
        Err(not_yet("admin.API/ExtractPipeline"))
    }

    async fn restore(
        &self,
        _: Request<Streaming<admin::RestoreRequest>>,
    ) -> Result<Response<()>, Status> {
        Err(not_yet("admin.API/Restore"))
    }

    async fn inspect_cluster(
        &self,
        _: Request<()>,
    ) -> Result<Response<admin::ClusterInfo>, Status> {
        Ok(Response::new(admin::ClusterInfo {
            id: self.cluster.id.clone(),
        }))
    }
}
