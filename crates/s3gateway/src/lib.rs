//! Pachyderm's S3 gateway: the S3 REST API over versioned data, so that S3
//! tools (the aws CLI, boto3, s3fs, Polars, Spark...) read and write repos.
//!
//! Mapping, as in Pachyderm 1.9: a bucket is `BRANCH.REPO` (a bare `REPO`
//! is its `master` branch; `COMMIT.REPO` one commit, read-only); the objects
//! of a bucket are the files of the branch's head commit, keys being paths
//! without their leading `/`. Every write (PutObject, CopyObject,
//! DeleteObject(s), CompleteMultipartUpload) is one write to the branch
//! through PFS: a new commit, or a write into the commit already open there.
//! An object's ETag is its content hash, its Last-Modified the time of the
//! commit it is read from.
//!
//! Invariants: the gateway holds no state of its own (uploads in parts are
//! PFS records, [`pach_pfs::uploads`]), so any pachd of a cluster serves any
//! request; object bytes are streamed in both directions, never held whole;
//! a feature the gateway does not implement answers `NotImplemented`, never
//! a success that did nothing; every request is put to the [`Authorizer`]
//! before anything else happens.
//!
//! Requests are dispatched on method, path and subresource by [`dispatch`];
//! `buckets` serves the service and bucket operations and listings,
//! `objects` the object operations, `multipart` uploads in parts.

mod acl;
mod auth;
mod body;
mod bucket;
mod buckets;
mod checksum;
mod conditional;
mod dispatch;
mod error;
mod metadata;
mod multipart;
mod objects;
mod request;
mod sigv4;
mod time;
mod xml;

use std::future::Future;
use std::sync::Arc;

use pach_pfs::Pfs;

pub use auth::{Access, AllowAll, Authorizer, Caller, Credentials, Signature};
/// What [`Gateway::serve`] accepts connections from.
pub use axum::serve::Listener;
pub use error::S3Error;

/// The location GetBucketLocation reports, as Pachyderm 1.9's gateway did.
pub const LOCATION: &str = "PACHYDERM";

/// The gateway's state: what every request handler needs.
#[derive(Clone)]
pub struct Gateway {
    pub(crate) pfs: Pfs,
    pub(crate) auth: Arc<dyn Authorizer>,
}

impl Gateway {
    /// A gateway over `pfs` that serves whatever `auth` allows.
    pub fn new(pfs: Pfs, auth: Arc<dyn Authorizer>) -> Gateway {
        Gateway { pfs, auth }
    }

    /// Whether the request's caller may do `access` (the authorizer's
    /// answer).
    pub(crate) async fn allow(
        &self,
        req: &request::Req,
        access: Access<'_>,
    ) -> Result<(), S3Error> {
        self.auth.allow(&req.caller, access).await
    }

    /// The HTTP service: every path goes to the S3 dispatcher.
    pub fn router(self) -> axum::Router {
        axum::Router::new()
            .fallback(dispatch::handle)
            .with_state(self)
    }

    /// Serves S3 on `listener` (a `TcpListener`, or pachd's connections over
    /// TLS) until `shutdown` completes.
    pub async fn serve<L>(
        self,
        listener: L,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()>
    where
        L: Listener,
        L::Addr: std::fmt::Debug,
    {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }
}
