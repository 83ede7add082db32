//! `enterprise.API` as Pachyderm 1.9 defines it. Nothing here is paid: any
//! activation code activates (`pach_auth`'s enterprise state); the calls
//! exist for the clients that make them. While auth is active only admins
//! change the state.

use pach_api::enterprise::{self as pb, api_server::Api};
use tonic::{Request, Response, Status};

use super::authz::{Authz, Need, auth_status};

pub(crate) struct EnterpriseService {
    pub(crate) authz: Authz,
}

fn timestamp(unix: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: unix,
        nanos: 0,
    }
}

#[tonic::async_trait]
impl Api for EnterpriseService {
    async fn activate(
        &self,
        r: Request<pb::ActivateRequest>,
    ) -> Result<Response<pb::ActivateResponse>, Status> {
        self.authz
            .require(r.metadata(), Need::Admin("enterprise.Activate"))
            .await?;
        let r = r.into_inner();
        let record = self
            .authz
            .auth
            .activate_enterprise(&r.activation_code, r.expires.map(|t| t.seconds))
            .await
            .map_err(auth_status)?;
        Ok(Response::new(pb::ActivateResponse {
            info: Some(pb::TokenInfo {
                expires: record.expires.map(timestamp),
            }),
        }))
    }

    async fn get_state(
        &self,
        _: Request<pb::GetStateRequest>,
    ) -> Result<Response<pb::GetStateResponse>, Status> {
        let record = self.authz.auth.enterprise().await.map_err(auth_status)?;
        Ok(Response::new(match record {
            None => pb::GetStateResponse {
                state: pb::State::None as i32,
                ..Default::default()
            },
            Some(r) => pb::GetStateResponse {
                state: if r.is_active() {
                    pb::State::Active
                } else {
                    pb::State::Expired
                } as i32,
                info: Some(pb::TokenInfo {
                    expires: r.expires.map(timestamp),
                }),
                activation_code: r.activation_code,
            },
        }))
    }

    async fn deactivate(
        &self,
        r: Request<pb::DeactivateRequest>,
    ) -> Result<Response<pb::DeactivateResponse>, Status> {
        self.authz
            .require(r.metadata(), Need::Admin("enterprise.Deactivate"))
            .await?;
        self.authz
            .auth
            .deactivate_enterprise()
            .await
            .map_err(auth_status)?;
        Ok(Response::new(pb::DeactivateResponse {}))
    }
}
