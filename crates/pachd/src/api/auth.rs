//! `auth.API` as a Pachyderm 1.9 cluster answers it before auth is activated:
//! every call is refused with Pachyderm's "not activated" status, which
//! clients recognise (and `Activate` says what must come first).

use pach_api::auth::{self, api_server::Api};
use tonic::{Request, Response, Status};

pub(crate) struct AuthService;

/// Pachyderm's status for any auth call on a cluster without auth.
pub(crate) fn not_activated() -> Status {
    Status::unimplemented("the auth service is not activated")
}

/// Implements the service with `Activate` as written and every other method
/// refused with [`not_activated`]. (A macro inside an `async_trait` impl
/// would expand too late, so the macro writes the whole impl.)
macro_rules! auth_service {
    ($($method:ident($req:ident) -> $resp:ident;)*) => {
        #[tonic::async_trait]
        impl Api for AuthService {
            async fn activate(
                &self,
                _: Request<auth::ActivateRequest>,
            ) -> Result<Response<auth::ActivateResponse>, Status> {
                Err(Status::failed_precondition(
                    "auth cannot be activated on this cluster yet: activate enterprise features \
                     first (`pachctl enterprise activate CODE`)",
                ))
            }
            $(
                async fn $method(
                    &self,
                    _: Request<auth::$req>,
                ) -> Result<Response<auth::$resp>, Status> {
                    Err(not_activated())
                }
            )*
        }
    };
}

auth_service! {
    deactivate(DeactivateRequest) -> DeactivateResponse;
    get_configuration(GetConfigurationRequest) -> GetConfigurationResponse;
    set_configuration(SetConfigurationRequest) -> SetConfigurationResponse;
    get_admins(GetAdminsRequest) -> GetAdminsResponse;
    modify_admins(ModifyAdminsRequest) -> ModifyAdminsResponse;
    authenticate(AuthenticateRequest) -> AuthenticateResponse;
    authorize(AuthorizeRequest) -> AuthorizeResponse;
    who_am_i(WhoAmIRequest) -> WhoAmIResponse;
    get_scope(GetScopeRequest) -> GetScopeResponse;
    set_scope(SetScopeRequest) -> SetScopeResponse;
    get_acl(GetAclRequest) -> GetAclResponse;
    set_acl(SetAclRequest) -> SetAclResponse;
    get_auth_token(GetAuthTokenRequest) -> GetAuthTokenResponse;
    extend_auth_token(ExtendAuthTokenRequest) -> ExtendAuthTokenResponse;
    revoke_auth_token(RevokeAuthTokenRequest) -> RevokeAuthTokenResponse;
    set_groups_for_user(SetGroupsForUserRequest) -> SetGroupsForUserResponse;
    modify_members(ModifyMembersRequest) -> ModifyMembersResponse;
    get_groups(GetGroupsRequest) -> GetGroupsResponse;
    get_users(GetUsersRequest) -> GetUsersResponse;
    get_one_time_password(GetOneTimePasswordRequest) -> GetOneTimePasswordResponse;
}
