//! Property test: write_index agrees with a BTreeMap model of the file tree.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use object_store::path::Path;
use pach_storage::{Change, ContentStore, FileEntry};
use proptest::prelude::*;

use crate::index::fake_entry;
use crate::support::Backend;

fn path_strategy() -> impl Strategy<Value = String> {
    // Few names, nested up to three levels, so that deletes of directories
    // and of files that are also directory prefixes ("/a" and "/a/b") happen.
    prop::collection::vec(
        prop::sample::select(vec!["a", "a.txt", "b", "c0", "d"]),
        1..=3,
    )
    .prop_map(|parts| format!("/{}", parts.join("/")))
}

fn change_strategy() -> impl Strategy<Value = Change> {
    prop_oneof![
        4 => (path_strategy(), any::<u64>()).prop_map(|(p, seed)| Change::Put(fake_entry(&p, seed))),
        3 => (path_strategy(), any::<u64>()).prop_map(|(p, seed)| Change::Append(fake_entry(&p, seed))),
        2 => (path_strategy(), any::<u64>(), 0u64..4).prop_map(|(p, seed, index)| {
            Change::ReplaceFrom { index, entry: fake_entry(&p, seed) }
        }),
        2 => path_strategy().prop_map(Change::Delete),
        1 => Just(Change::Delete("/".to_string())),
    ]
}

fn apply(model: &mut BTreeMap<String, FileEntry>, change: &Change) {
    match change {
        Change::Put(entry) => {
            model.insert(entry.path.clone(), entry.clone());
        }
        Change::Append(tail) => {
            let next = match model.remove(&tail.path) {
                Some(current) => current.appended(tail),
                None => tail.clone(),
            };
            model.insert(tail.path.clone(), next);
        }
        Change::ReplaceFrom { index, entry } => {
            let next = match model.remove(&entry.path) {
                Some(current) => current.replaced_from(Some(*index), entry),
                None => entry.clone(),
            };
            model.insert(entry.path.clone(), next);
        }
        Change::Delete(path) if path == "/" => model.clear(),
        Change::Delete(path) => {
            let under = format!("{path}/");
            model.retain(|p, _| p != path && !p.starts_with(&under));
        }
    }
}

async fn check(batches: Vec<Vec<Change>>, capacity: usize) -> Result<(), TestCaseError> {
    let content =
        ContentStore::new(Backend::Memory.store(), Path::default()).with_shard_capacity(capacity);
    let mut model = BTreeMap::new();
    let mut root = None;
    for batch in batches {
        for change in &batch {
            apply(&mut model, change);
        }
        let summary = content
            .write_index(root.as_ref(), batch)
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(summary.files, model.len() as u64);
        prop_assert_eq!(summary.bytes, model.values().map(|e| e.size).sum::<u64>());
        root = Some(summary.root);
    }
    let reader = content
        .open_index(root.as_ref())
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let listed: Vec<FileEntry> = reader
        .range("", None)
        .try_collect()
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let expected: Vec<FileEntry> = model.values().cloned().collect();
    prop_assert_eq!(&listed, &expected);
    let shards = reader.shards();
    prop_assert!(
        shards
            .iter()
            .all(|s| s.files >= 1 && s.files <= capacity as u64),
        "shard sizes {:?}",
        shards
    );
    prop_assert!(shards.windows(2).all(|w| w[0].last < w[1].first));
    // Overlay entries replace shard entries or add to them.
    let in_shards = shards.iter().map(|s| s.files).sum::<u64>();
    prop_assert!(in_shards <= reader.files());
    prop_assert!(reader.files() - in_shards <= reader.overlay().len() as u64);
    prop_assert!(reader.overlay().windows(2).all(|w| w[0].path < w[1].path));
    for path in ["/a", "/a/b", "/a.txt/d", "/zz"] {
        let got = reader
            .get(path)
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(got.as_ref(), model.get(path));
        let from: Vec<FileEntry> = reader
            .range(path, Some("/c"))
            .try_collect()
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let want: Vec<FileEntry> = model
            .values()
            .filter(|e| e.path.as_str() >= path && e.path.as_str() < "/c")
            .cloned()
            .collect();
        prop_assert_eq!(from, want);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn write_index_matches_model(
        batches in prop::collection::vec(prop::collection::vec(change_strategy(), 0..40), 1..5),
        capacity in 2usize..12,
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
        runtime.block_on(check(batches, capacity))?;
    }
}
