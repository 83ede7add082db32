//! `enterprise.API` as a Pachyderm 1.9 cluster answers it before activation:
//! the state is NONE.

use pach_api::enterprise::{self, api_server::Api};
use tonic::{Request, Response, Status};

pub(crate) struct EnterpriseService;

#[tonic::async_trait]
impl Api for EnterpriseService {
    async fn activate(
        &self,
        _: Request<enterprise::ActivateRequest>,
    ) -> Result<Response<enterprise::ActivateResponse>, Status> {
        Err(Status::unimplemented(
            "enterprise activation is not available on this cluster yet",
        ))
    }

    async fn get_state(
        &self,
        _: Request<enterprise::GetStateRequest>,
    ) -> Result<Response<enterprise::GetStateResponse>, Status> {
        Ok(Response::new(enterprise::GetStateResponse {
            state: enterprise::State::None as i32,
            ..Default::default()
        }))
    }

    async fn deactivate(
        &self,
        _: Request<enterprise::DeactivateRequest>,
    ) -> Result<Response<enterprise::DeactivateResponse>, Status> {
        Ok(Response::new(enterprise::DeactivateResponse {}))
    }
}
