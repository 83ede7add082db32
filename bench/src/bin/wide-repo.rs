//! Builds a repo with one directory of N files directly in a stopped pachd's
//! data directory (through PFS, not the API), so that the `list file`
//! benchmark does not first spend minutes creating N files on disk.
//! Usage: wide-repo DATA_DIR REPO N

use std::sync::Arc;

use pach_storage::{Change, ContentStore, FileEntry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, data_dir, repo, n] = args.as_slice() else {
        anyhow::bail!("usage: wide-repo DATA_DIR REPO N");
    };
    let n: usize = n.parse()?;
    let data_dir = std::path::PathBuf::from(data_dir);
    let meta = Arc::new(pach_meta::RedbStore::open(&data_dir.join("meta.redb"))?);
    let (store, prefix) = pach_storage::open_url(
        &data_dir.join("objects").display().to_string(),
        &pach_storage::UrlPolicy::operator(),
    )?;
    let pfs = pach_pfs::Pfs::new(meta, ContentStore::new(store, prefix));
    pfs.create_repo(repo, "list file benchmark", false).await?;
    let mut session = pfs.content().session();
    session.begin_file("/template".into(), None);
    session.write(b"one small file\n").await?;
    let template = session.end_file().await?;
    session.finish().await?;
    let changes: Vec<Change> = (0..n)
        .map(|i| {
            Change::Put(FileEntry {
                path: format!("/wide/f{i:08}"),
                ..template.clone()
            })
        })
        .collect();
    let commit = pfs.write_changes(repo, "master", changes).await?;
    println!("{repo}@{commit}: {n} files under /wide");
    Ok(())
}
