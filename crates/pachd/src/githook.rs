//! The webhook endpoint of git inputs, Pachyderm 1.9's `githook` service:
//! `POST /v1/handle/push` with a push event's JSON (GitHub's, and what
//! speaks its dialect: Gitea, Gogs) fetches at once every git input that
//! watches the pushed repository and branch (`pach_pps::git`). The answer
//! says what each fetch did; 1.9 answered 200 to everything.
//!
//! No token is asked: a request can only make pachd fetch a URL a pipeline
//! already names, never choose what is fetched or what is committed. With
//! `--githook-secret`, events must also carry the git host's signature
//! (HMAC-SHA256 of the body with that secret), so that nobody else can make
//! pachd fetch.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use pach_pps::git::Fetched;

/// The path of the endpoint, as 1.9 served it.
pub const HOOK_PATH: &str = "/v1/handle/push";

/// GitHub's largest push event (25 MiB).
const MAX_BODY: usize = 25 << 20;

#[derive(Clone)]
struct Hook {
    pps: pach_pps::Pps,
    secret: Option<std::sync::Arc<ring::hmac::Key>>,
}

pub fn router(pps: pach_pps::Pps, secret: Option<&str>) -> Router {
    let secret = secret
        .map(|s| std::sync::Arc::new(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, s.as_bytes())));
    Router::new()
        .route(HOOK_PATH, post(push))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Hook { pps, secret })
}

/// Whether the event carries the signature of the body with the secret:
/// GitHub's `X-Hub-Signature-256: sha256=HEX`, or Gitea's and Gogs'
/// `X-Gitea-Signature`/`X-Gogs-Signature: HEX`.
fn signed(key: &ring::hmac::Key, headers: &HeaderMap, body: &[u8]) -> Result<(), &'static str> {
    let given = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("sha256=").unwrap_or(v))
        .or_else(|| {
            ["x-gitea-signature", "x-gogs-signature"]
                .iter()
                .find_map(|h| headers.get(*h)?.to_str().ok())
        })
        .ok_or("the event is not signed (no X-Hub-Signature-256 header)")?;
    let tag = hex::decode(given.trim()).map_err(|_| "the event's signature is not hex")?;
    ring::hmac::verify(key, body, &tag).map_err(|_| "the event's signature does not match")
}

async fn push(State(hook): State<Hook>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    if let Some(key) = &hook.secret
        && let Err(why) = signed(key, &headers, &body)
    {
        return (
            StatusCode::UNAUTHORIZED,
            format!(
                "{why}: pachd's git webhook has a secret (--githook-secret); set the same \
                 secret in the git host's webhook settings\n"
            ),
        );
    }
    let pps = &hook.pps;
    let event = ["x-github-event", "x-gitea-event", "x-gogs-event"]
        .iter()
        .find_map(|h| headers.get(*h)?.to_str().ok());
    match event {
        Some("ping") => return (StatusCode::OK, "pong\n".into()),
        // A push event is what 1.9 took; a request without the header is
        // taken as one too (curl, scripts).
        Some("push") | None => {}
        Some(other) => {
            return (
                StatusCode::OK,
                format!("ignored: a '{other}' event; git inputs fetch on 'push' events\n"),
            );
        }
    }
    let (url, branch, outcomes) = match pps.git_push(&body).await {
        Ok(found) => found,
        Err(e) => {
            let code = match e.kind() {
                pach_pfs::ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            return (code, format!("{e}\n"));
        }
    };
    if outcomes.is_empty() {
        return (
            StatusCode::NOT_FOUND,
            format!(
                "no running pipeline has a git input on {url} branch {branch}; the input's \
                 input.git.URL must be this URL (`pachctl inspect pipeline NAME` shows it)\n"
            ),
        );
    }
    let mut failed = false;
    let mut text = String::new();
    for o in outcomes {
        let line = match o.fetched {
            Ok(Fetched::Committed { sha, commit }) => {
                format!(
                    "{}@{}: committed {sha} as commit {commit}",
                    o.repo, o.branch
                )
            }
            Ok(Fetched::Unchanged { sha }) => {
                format!("{}@{}: already at {sha}", o.repo, o.branch)
            }
            Err(e) => {
                failed = true;
                tracing::warn!(pipeline = %o.pipeline, repo = %o.repo, "git input: {e}");
                format!("{}@{}: {e}", o.repo, o.branch)
            }
        };
        text.push_str(&line);
        text.push('\n');
    }
    let code = if failed {
        StatusCode::BAD_GATEWAY
    } else {
        StatusCode::OK
    };
    (code, text)
}
