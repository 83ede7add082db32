//! The auth configuration (1.9's `AuthConfig`): identity providers and SAML
//! options, versioned so that concurrent editors do not overwrite each other.
//! It is kept and returned as given; no identity provider is reached from
//! here (see `docs/auth.md`).

use pach_meta::Txn;
use serde::{Deserialize, Serialize};

use crate::records::CONFIG;
use crate::tokens::require_admin;
use crate::{Auth, AuthError, Caller, Result, encode};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfig {
    pub live_config_version: i64,
    pub id_providers: Vec<IdProvider>,
    pub saml_svc_options: Option<SamlServiceOptions>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdProvider {
    pub name: String,
    pub description: String,
    pub kind: IdProviderKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdProviderKind {
    GitHub,
    Saml {
        metadata_url: String,
        metadata_xml: Vec<u8>,
        group_attribute: String,
    },
    /// A provider that names neither GitHub nor SAML.
    Unspecified,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamlServiceOptions {
    pub acs_url: String,
    pub metadata_url: String,
    pub dash_url: String,
    pub session_duration: String,
    pub debug_logging: bool,
}

impl Default for AuthConfig {
    /// 1.9's default: version 1, GitHub as the one provider.
    fn default() -> Self {
        AuthConfig {
            live_config_version: 1,
            id_providers: vec![IdProvider {
                name: "GitHub".into(),
                description: "oauth-based authentication with github.com".into(),
                kind: IdProviderKind::GitHub,
            }],
            saml_svc_options: None,
        }
    }
}

impl Auth {
    /// The configuration (the default until one is set). Any signed-in caller.
    pub async fn configuration(&self) -> Result<AuthConfig> {
        self.require_active().await?;
        Ok(self.load(CONFIG).await?.map(|(c, _)| c).unwrap_or_default())
    }

    /// Replaces the configuration (admins only; `None` restores the default).
    /// A `live_config_version` above 0 must match the live one; the stored
    /// configuration gets the next version.
    pub async fn set_configuration(
        &self,
        caller: &Caller,
        config: Option<AuthConfig>,
    ) -> Result<()> {
        self.require_active().await?;
        require_admin(caller, "SetConfiguration")?;
        for idp in config.iter().flat_map(|c| &c.id_providers) {
            if idp.name.is_empty() || idp.name.contains(':') {
                return Err(AuthError::InvalidRequest(format!(
                    "identity provider name \"{}\" must be non-empty and have no ':'",
                    idp.name
                )));
            }
        }
        guarded!(self, {
            let (live, rev) = self
                .load::<AuthConfig>(CONFIG)
                .await?
                .unwrap_or_else(|| (AuthConfig::default(), 0));
            let mut next = config.clone().unwrap_or_default();
            if next.live_config_version > 0 && next.live_config_version != live.live_config_version
            {
                return Err(AuthError::ConfigVersion {
                    expected: next.live_config_version,
                    live: live.live_config_version,
                });
            }
            next.live_config_version = live.live_config_version + 1;
            Ok((
                Txn::new().expect(CONFIG, rev).put(CONFIG, encode(&next)),
                (),
            ))
        })
    }
}
