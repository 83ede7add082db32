//! What the retired PPS service (`pps_service.rs`) still uses while it is
//! being replaced: its stream type.

use std::pin::Pin;

use futures::Stream;
use tonic::Status;

pub(crate) type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;
