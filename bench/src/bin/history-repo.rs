//! Builds a repo with a long history directly in a stopped pachd's data
//! directory (through PFS, not the API): COMMITS commits of FILES new small
//! files each, every file with its own content. Used by bench/backup.sh to
//! measure extract and restore on a large cluster without first spending
//! hours loading it.
//! Usage: history-repo DATA_DIR REPO COMMITS FILES

use std::sync::Arc;

use pach_storage::{Change, ContentStore};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, data_dir, repo, commits, files] = args.as_slice() else {
        anyhow::bail!("usage: history-repo DATA_DIR REPO COMMITS FILES");
    };
    let (commits, files): (usize, usize) = (commits.parse()?, files.parse()?);
    let data_dir = std::path::PathBuf::from(data_dir);
    let meta = Arc::new(pach_meta::RedbStore::open(&data_dir.join("meta.redb"))?);
    let (store, prefix) = pach_storage::open_url(
        &data_dir.join("objects").display().to_string(),
        &pach_storage::UrlPolicy::operator(),
    )?;
    let pfs = pach_pfs::Pfs::new(meta, ContentStore::new(store, prefix));
    pfs.create_repo(repo, "backup benchmark", false).await?;
    for c in 0..commits {
        let mut session = pfs.content().session();
        let mut changes = Vec::with_capacity(files);
        for f in 0..files {
            let body = format!("commit {c:06} file {f:04}: {}\n", "x".repeat(64));
            let path = format!("/c{:03}/c{c:06}-f{f:04}.txt", c % 1000);
            changes.push(Change::Put(
                session.put_bytes(path, None, body.as_bytes()).await?,
            ));
        }
        session.finish().await?;
        pfs.write_changes(repo, "master", changes).await?;
    }
    println!("{repo}: {commits} commits, {} files", commits * files);
    Ok(())
}
