//! Pachyderm's own extract format (written by Pachyderm 1.7, 1.8 and 1.9):
//! its framing (`frames`), its ops in one shape whatever their version
//! (`ops`), its commits' file trees (`hashtree`), its pipeline requests as
//! our specs (`spec`), and the import of a whole extract into this cluster
//! (`import`, with its on-disk `index` of names). The facts of the format are in `docs/pachyderm-restore.md`.
//!
//! Invariant: as for our own stream, an extract that does not validate
//! changes nothing in the cluster.

mod extract;
#[cfg(test)]
use extract::tree_bytes;
pub mod bucket;
pub mod frames;
pub mod hashtree;
mod import;
mod index;
pub mod ops;
pub mod spec;

pub use extract::extract;
pub use import::{import, import_with};

#[cfg(test)]
mod tests;
