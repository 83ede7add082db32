//! `auth.API` as Pachyderm 1.9 defines it, served from `pach_auth`: this
//! file only translates. Who the caller is comes from the `authn-token`
//! metadata (`authz`). GitHub cannot be reached from here, so a GitHub token
//! is refused with the way to sign in instead (robots and one-time
//! passwords).

use pach_api::auth::{self as pb, api_server::Api};
use pach_auth::{AuthConfig, IdProvider, IdProviderKind, SamlServiceOptions, Scope};
use pach_pfs::Pfs;
use tonic::{Request, Response, Status};

use super::authz::{Authz, auth_status};
use super::status::status;

pub(crate) struct AuthService {
    pub(crate) authz: Authz,
    pub(crate) pfs: Pfs,
}

type Reply<T> = Result<Response<T>, Status>;

fn scope_of(s: i32) -> Result<Scope, Status> {
    match pb::Scope::try_from(s) {
        Ok(pb::Scope::None) => Ok(Scope::None),
        Ok(pb::Scope::Reader) => Ok(Scope::Reader),
        Ok(pb::Scope::Writer) => Ok(Scope::Writer),
        Ok(pb::Scope::Owner) => Ok(Scope::Owner),
        Err(_) => Err(Status::invalid_argument(format!(
            "unknown scope {s}: one of NONE (0), READER (1), WRITER (2), OWNER (3)"
        ))),
    }
}

fn scope_pb(s: Scope) -> i32 {
    (match s {
        Scope::None => pb::Scope::None,
        Scope::Reader => pb::Scope::Reader,
        Scope::Writer => pb::Scope::Writer,
        Scope::Owner => pb::Scope::Owner,
    }) as i32
}

fn timestamp(unix: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: unix,
        nanos: 0,
    }
}

fn config_of(c: pb::AuthConfig) -> AuthConfig {
    AuthConfig {
        live_config_version: c.live_config_version,
        id_providers: c
            .id_providers
            .into_iter()
            .map(|p| IdProvider {
                name: p.name,
                description: p.description,
                kind: match (p.saml, p.github) {
                    (Some(s), _) => IdProviderKind::Saml {
                        metadata_url: s.metadata_url,
                        metadata_xml: s.metadata_xml,
                        group_attribute: s.group_attribute,
                    },
                    (None, Some(_)) => IdProviderKind::GitHub,
                    (None, None) => IdProviderKind::Unspecified,
                },
            })
            .collect(),
        saml_svc_options: c.saml_svc_options.map(|o| SamlServiceOptions {
            acs_url: o.acs_url,
            metadata_url: o.metadata_url,
            dash_url: o.dash_url,
            session_duration: o.session_duration,
            debug_logging: o.debug_logging,
        }),
    }
}

fn config_pb(c: AuthConfig) -> pb::AuthConfig {
    pb::AuthConfig {
        live_config_version: c.live_config_version,
        id_providers: c
            .id_providers
            .into_iter()
            .map(|p| {
                let (saml, github) = match p.kind {
                    IdProviderKind::Saml {
                        metadata_url,
                        metadata_xml,
                        group_attribute,
                    } => (
                        Some(pb::id_provider::SamlOptions {
                            metadata_url,
                            metadata_xml,
                            group_attribute,
                        }),
                        None,
                    ),
                    IdProviderKind::GitHub => (None, Some(pb::id_provider::GitHubOptions {})),
                    IdProviderKind::Unspecified => (None, None),
                };
                pb::IdProvider {
                    name: p.name,
                    description: p.description,
                    saml,
                    github,
                }
            })
            .collect(),
        saml_svc_options: c
            .saml_svc_options
            .map(|o| pb::auth_config::SamlServiceOptions {
                acs_url: o.acs_url,
                metadata_url: o.metadata_url,
                dash_url: o.dash_url,
                session_duration: o.session_duration,
                debug_logging: o.debug_logging,
            }),
    }
}

impl AuthService {
    /// An ACL is only given to a repo that exists.
    async fn repo_exists(&self, repo: &str) -> Result<(), Status> {
        self.pfs
            .inspect_repo(repo)
            .await
            .map(|_| ())
            .map_err(status)
    }
}

#[tonic::async_trait]
impl Api for AuthService {
    async fn activate(&self, r: Request<pb::ActivateRequest>) -> Reply<pb::ActivateResponse> {
        let r = r.into_inner();
        if !r.github_token.is_empty() {
            return Err(auth_status(pach_auth::AuthError::GitHubUnavailable));
        }
        let pipelines = self.authz.pipelines_access().await?;
        let token = self
            .authz
            .auth
            .activate(&r.subject, &pipelines)
            .await
            .map_err(auth_status)?;
        Ok(Response::new(pb::ActivateResponse {
            pach_token: token.token,
        }))
    }

    async fn deactivate(&self, r: Request<pb::DeactivateRequest>) -> Reply<pb::DeactivateResponse> {
        let caller = self.authz.signed(r.metadata()).await?;
        self.authz
            .auth
            .deactivate(&caller)
            .await
            .map_err(auth_status)?;
        Ok(Response::new(pb::DeactivateResponse {}))
    }

    async fn get_configuration(
        &self,
        r: Request<pb::GetConfigurationRequest>,
    ) -> Reply<pb::GetConfigurationResponse> {
        self.authz.signed(r.metadata()).await?;
        let config = self.authz.auth.configuration().await.map_err(auth_status)?;
        Ok(Response::new(pb::GetConfigurationResponse {
            configuration: Some(config_pb(config)),
        }))
    }

    async fn set_configuration(
        &self,
        r: Request<pb::SetConfigurationRequest>,
    ) -> Reply<pb::SetConfigurationResponse> {
        let caller = self.authz.signed(r.metadata()).await?;
        let config = r.into_inner().configuration.map(config_of);
        self.authz
            .auth
            .set_configuration(&caller, config)
            .await
            .map_err(auth_status)?;
        Ok(Response::new(pb::SetConfigurationResponse {}))
    }

    async fn get_admins(&self, r: Request<pb::GetAdminsRequest>) -> Reply<pb::GetAdminsResponse> {
        self.authz.signed(r.metadata()).await?;
        let admins = self.authz.auth.admins().await.map_err(auth_status)?;
        Ok(Response::new(pb::GetAdminsResponse { admins }))
    }

    async fn modify_admins(
        &self,
        r: Request<pb::ModifyAdminsRequest>,
    ) -> Reply<pb::ModifyAdminsResponse> {
        let caller = self.authz.signed(r.metadata()).await?;
        let r = r.into_inner();
        self.authz
            .auth
            .modify_admins(&caller, &r.add, &r.remove)
            .await
            .map_err(auth_status)?;
        Ok(Response::new(pb::ModifyAdminsResponse {}))
    }

    async fn authenticate(
        &self,
        r: Request<pb::AuthenticateRequest>,
    ) -> Reply<pb::AuthenticateResponse> {
        let r = r.into_inner();
        if !self.authz.auth.is_active().await.map_err(auth_status)? {
            return Err(auth_status(pach_auth::AuthError::NotActivated));
        }
        let token = if !r.one_time_password.is_empty() {
            self.authz
                .auth
                .authenticate_otp(&r.one_time_password)
                .await
                .map_err(auth_status)?
        } else if !r.github_token.is_empty() {
            return Err(auth_status(pach_auth::AuthError::GitHubUnavailable));
        } else {
            return Err(Status::invalid_argument(
                "no credential: send a one_time_password (`pachctl auth get-otp` gives one)",
            ));
        };
        Ok(Response::new(pb::AuthenticateResponse {
            pach_token: token.token,
        }))
    }

    async fn authorize(&self, r: Request<pb::AuthorizeRequest>) -> Reply<pb::AuthorizeResponse> {
        let caller = self.authz.signed(r.metadata()).await?;
        let r = r.into_inner();
        let authorized = self
            .authz
            .auth
            .authorize(&caller, &r.repo, scope_of(r.scope)?)
            .await
            .map_err(auth_status)?;
        Ok(Response::new(pb::AuthorizeResponse { authorized }))
    }

    async fn who_am_i(&self, r: Request<pb::WhoAmIRequest>) -> Reply<pb::WhoAmIResponse> {
        let caller = self.authz.signed(r.metadata()).await?;
        let me = self.authz.auth.who_am_i(&caller);
        Ok(Response::new(pb::WhoAmIResponse {
            username: me.username,
            is_admin: me.is_admin,
            ttl: me.ttl,
        }))
    }

    async fn get_scope(&self, r: Request<pb::GetScopeRequest>) -> Reply<pb::GetScopeResponse> {
        let caller = self.authz.signed(r.metadata()).await?;
        let r = r.into_inner();
        let scopes = self
            .authz
            .auth
            .get_scope(&caller, &r.username, &r.repos)
            .await
            .map_err(auth_status)?;
        Ok(Response::new(pb::GetScopeResponse {
            scopes: scopes.into_iter().map(scope_pb).collect(),
        }))
    }

    async fn set_scope(&self, r: Request<pb::SetScopeRequest>) -> Reply<pb::SetScopeResponse> {
        let caller = self.authz.signed(r.metadata()).await?;
        let r = r.into_inner();
        let scope = scope_of(r.scope)?;
        if !r.repo.is_empty() {
            self.repo_exists(&r.repo).await?;
        }
        self.authz
            .auth
            .set_scope(&caller, &r.username, &r.repo, scope)
            .await
            .map_err(auth_status)?;
        Ok(Response::new(pb::SetScopeResponse {}))
    }

    async fn get_acl(&self, r: Request<pb::GetAclRequest>) -> Reply<pb::GetAclResponse> {
        self.authz.signed(r.metadata()).await?;
        let entries = self
            .authz
            .auth
            .get_acl(&r.into_inner().repo)
            .await
            .map_err(auth_status)?;
        Ok(Response::new(pb::GetAclResponse {
            entries: entries
                .into_iter()
                .map(|(username, scope)| pb::AclEntry {
                    username,
                    scope: scope_pb(scope),
                })
                .collect(),
            robot_entries: Vec::new(),
        }))
    }

    async fn set_acl(&self, r: Request<pb::SetAclRequest>) -> Reply<pb::SetAclResponse> {
        let caller = self.authz.signed(r.metadata()).await?;
        let r = r.into_inner();
        let entries = r
            .entries
            .into_iter()
            .map(|e| Ok((e.username, scope_of(e.scope)?)))
            .collect::<Result<Vec<_>, Status>>()?;
        if !r.repo.is_empty() {
            self.repo_exists(&r.repo).await?;
        }
        self.authz
            .auth
            .set_acl(&caller, &r.repo, &entries)
            .await
            .map_err(auth_status)?;
        Ok(Response::new(pb::SetAclResponse {}))
    }

    async fn get_auth_token(
        &self,
        r: Request<pb::GetAuthTokenRequest>,
    ) -> Reply<pb::GetAuthTokenResponse> {
        let caller = self.authz.signed(r.metadata()).await?;
        let r = r.into_inner();
        let token = self
            .authz
            .auth
            .get_auth_token(&caller, &r.subject, r.ttl)
            .await
            .map_err(auth_status)?;
        Ok(Response::new(pb::GetAuthTokenResponse {
            subject: token.subject,
            token: token.token,
        }))
    }

    async fn extend_auth_token(
        &self,
        r: Request<pb::ExtendAuthTokenRequest>,
    ) -> Reply<pb::ExtendAuthTokenResponse> {
        let caller = self.authz.signed(r.metadata()).await?;
        let r = r.into_inner();
        self.authz
            .auth
            .extend_auth_token(&caller, &r.token, r.ttl)
            .await
            .map_err(auth_status)?;
        Ok(Response::new(pb::ExtendAuthTokenResponse {}))
    }

    async fn revoke_auth_token(
        &self,
        r: Request<pb::RevokeAuthTokenRequest>,
    ) -> Reply<pb::RevokeAuthTokenResponse> {
        let caller = self.authz.signed(r.metadata()).await?;
        self.authz
            .auth
            .revoke_auth_token(&caller, &r.into_inner().token)
            .await
            .map_err(auth_status)?;
        Ok(Response::new(pb::RevokeAuthTokenResponse {}))
    }

    async fn set_groups_for_user(
        &self,
        r: Request<pb::SetGroupsForUserRequest>,
    ) -> Reply<pb::SetGroupsForUserResponse> {
        let caller = self.authz.signed(r.metadata()).await?;
        let r = r.into_inner();
        self.authz
            .auth
            .set_groups_for_user(&caller, &r.username, &r.groups)
            .await
            .map_err(auth_status)?;
        Ok(Response::new(pb::SetGroupsForUserResponse {}))
    }

    async fn modify_members(
        &self,
        r: Request<pb::ModifyMembersRequest>,
    ) -> Reply<pb::ModifyMembersResponse> {
        let caller = self.authz.signed(r.metadata()).await?;
        let r = r.into_inner();
        self.authz
            .auth
            .modify_members(&caller, &r.group, &r.add, &r.remove)
            .await
            .map_err(auth_status)?;
        Ok(Response::new(pb::ModifyMembersResponse {}))
    }

    async fn get_groups(&self, r: Request<pb::GetGroupsRequest>) -> Reply<pb::GetGroupsResponse> {
        let caller = self.authz.signed(r.metadata()).await?;
        let groups = self
            .authz
            .auth
            .get_groups(&caller, &r.into_inner().username)
            .await
            .map_err(auth_status)?;
        Ok(Response::new(pb::GetGroupsResponse { groups }))
    }

    async fn get_users(&self, r: Request<pb::GetUsersRequest>) -> Reply<pb::GetUsersResponse> {
        let caller = self.authz.signed(r.metadata()).await?;
        let usernames = self
            .authz
            .auth
            .get_users(&caller, &r.into_inner().group)
            .await
            .map_err(auth_status)?;
        Ok(Response::new(pb::GetUsersResponse { usernames }))
    }

    async fn get_one_time_password(
        &self,
        r: Request<pb::GetOneTimePasswordRequest>,
    ) -> Reply<pb::GetOneTimePasswordResponse> {
        let caller = self.authz.signed(r.metadata()).await?;
        let r = r.into_inner();
        let otp = self
            .authz
            .auth
            .get_one_time_password(&caller, &r.subject, r.ttl)
            .await
            .map_err(auth_status)?;
        Ok(Response::new(pb::GetOneTimePasswordResponse {
            code: otp.code,
            otp_expiration: Some(timestamp(otp.expires)),
        }))
    }
}
