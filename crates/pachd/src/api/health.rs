//! `health.Health`: answers as long as pachd serves its API.

use pach_api::health::health_server::Health;
use tonic::{Request, Response, Status};

pub(crate) struct HealthService;

#[tonic::async_trait]
impl Health for HealthService {
    async fn health(&self, _: Request<()>) -> Result<Response<()>, Status> {
        Ok(Response::new(()))
    }
}
