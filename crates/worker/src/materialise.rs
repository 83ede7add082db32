//! Writes a datum's input files where user code expects them.

use std::path::Path;

use futures::StreamExt;
use pach_storage::{ContentStore, FileEntry};
use tokio::io::AsyncWriteExt;

use crate::{Result, io};

/// One input file of a datum: mounted at `/pfs/<input>/<entry.path>`.
#[derive(Debug, Clone)]
pub struct InputMount {
    pub input: String,
    pub entry: FileEntry,
    /// `empty_files`: the file exists but holds no bytes.
    pub empty: bool,
}

/// Creates `<dir>/pfs/out`, a directory per input name (present even when the
/// datum holds no file of it) and every input file under `<dir>/pfs/<input>/`.
pub async fn materialise(
    content: &ContentStore,
    dir: &Path,
    inputs: &[String],
    mounts: &[InputMount],
) -> Result<()> {
    let pfs = dir.join("pfs");
    for d in std::iter::once("out").chain(inputs.iter().map(String::as_str)) {
        let d = pfs.join(d);
        tokio::fs::create_dir_all(&d)
            .await
            .map_err(io("cannot create", &d))?;
    }
    for m in mounts {
        let rel = m.entry.path.trim_start_matches('/');
        let target = pfs.join(&m.input).join(rel);
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(io("cannot create", parent))?;
        }
        let mut file = tokio::fs::File::create(&target)
            .await
            .map_err(io("cannot create", &target))?;
        if !m.empty {
            let mut bytes = content.read_file(&m.entry, 0, None);
            while let Some(chunk) = bytes.next().await {
                file.write_all(&chunk?)
                    .await
                    .map_err(io("cannot write", &target))?;
            }
        }
        file.flush().await.map_err(io("cannot write", &target))?;
    }
    Ok(())
}
