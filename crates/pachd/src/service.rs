//! What the retired services (`pps_service.rs`, `admin_service.rs`) still
//! share while they are being replaced: their stream type and the opening
//! of URLs. The retired PFS service is gone: `api/pfs.rs` serves `pfs.API`.

use std::pin::Pin;

use futures::Stream;
use tonic::Status;

pub(crate) type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The object store and path a URL names (http(s), s3, gs, az, file), with
/// settings and credentials from the standard AWS_*, AZURE_* and GOOGLE_*
/// environment variables (see `pach_storage::open_object_url`).
pub(crate) fn open_url(
    url: &str,
) -> Result<(Box<dyn object_store::ObjectStore>, object_store::path::Path), Status> {
    pach_storage::open_object_url(url)
        .map_err(|e| Status::invalid_argument(format!("cannot read '{url}': {e}")))
}
