//! Integration tests of pach-storage against InMemory and LocalFileSystem stores.

mod support;

mod content;
mod fsck;
mod index;
mod model;
mod perf;
