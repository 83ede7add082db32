//! `versionpb.API`: the Pachyderm version whose API pachd speaks (clients gate
//! features on it), with this project's own version in `additional`.

use pach_api::versionpb::{self, api_server::Api};
use tonic::{Request, Response, Status};

pub(crate) struct VersionService;

/// The version pachd reports: Pachyderm's API release, and ours after a `+`.
pub(crate) fn version() -> versionpb::Version {
    let (major, minor, micro) = pach_api::PACHYDERM_VERSION;
    versionpb::Version {
        major,
        minor,
        micro,
        additional: format!("+pachyderm-rs.{}", env!("CARGO_PKG_VERSION")),
    }
}

#[tonic::async_trait]
impl Api for VersionService {
    async fn get_version(&self, _: Request<()>) -> Result<Response<versionpb::Version>, Status> {
        Ok(Response::new(version()))
    }
}
