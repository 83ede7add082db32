//! check_index reports exactly the objects that went missing or bad.

use object_store::ObjectStoreExt;
use object_store::path::Path;
use pach_storage::{Change, ChunkLocation, ContentStore};

use crate::support::*;

#[tokio::test]
async fn check_index_names_missing_and_corrupt_objects() {
    let store = Backend::Memory.store();
    let content = ContentStore::new(store.clone(), Path::from("c")).with_shard_capacity(4);
    let mut session = content.session();
    let big = session
        .put_bytes("/big".into(), None, &random_bytes(2 << 20, 1))
        .await
        .unwrap();
    let mut smalls = Vec::new();
    for i in 0..10 {
        smalls.push(
            session
                .put_bytes(format!("/small/{i}"), None, format!("body {i}").as_bytes())
                .await
                .unwrap(),
        );
    }
    session.finish().await.unwrap();
    let changes = std::iter::once(big.clone())
        .chain(smalls.clone())
        .map(Change::Put)
        .collect();
    let summary = content.write_index(None, changes).await.unwrap();
    assert!(content.check_index(&summary.root).await.unwrap().is_empty());
    assert!(
        content
            .check_index_deep(&summary.root)
            .await
            .unwrap()
            .is_empty()
    );

    // A loose chunk goes missing.
    let loose = content.chunk_key(&big.chunks[0].hash);
    store.delete(&loose).await.unwrap();
    let report = content.check_index(&summary.root).await.unwrap();
    assert_eq!(report.len(), 1, "{report:?}");
    assert!(
        report[0].contains(loose.as_ref()) && report[0].contains("/big"),
        "{report:?}"
    );

    // The pack goes missing.
    let ChunkLocation::Packed { pack, .. } = smalls[0].chunks[0].loc else {
        panic!("not packed")
    };
    let pack = content.pack_key(&pack);
    let pack_bytes = store.get(&pack).await.unwrap().bytes().await.unwrap();
    store.delete(&pack).await.unwrap();
    let report = content.check_index(&summary.root).await.unwrap();
    assert_eq!(report.len(), 2, "{report:?}");
    assert!(
        report.iter().any(|line| line.contains(pack.as_ref())),
        "{report:?}"
    );

    // The pack comes back with a flipped bit: only the deep check can see it.
    let mut damaged = pack_bytes.to_vec();
    damaged[3] ^= 1;
    store.put(&pack, damaged.into()).await.unwrap();
    assert_eq!(content.check_index(&summary.root).await.unwrap().len(), 1);
    let deep = content.check_index_deep(&summary.root).await.unwrap();
    assert!(
        deep.iter()
            .any(|line| line.contains("corrupt") && line.contains(pack.as_ref())),
        "{deep:?}"
    );

    // A shard goes missing.
    let reader = content.open_index(Some(&summary.root)).await.unwrap();
    let shard = content.index_key(&reader.shards()[1].hash);
    store.delete(&shard).await.unwrap();
    let report = content.check_index(&summary.root).await.unwrap();
    assert!(
        report.iter().any(|line| line.contains(shard.as_ref())),
        "{report:?}"
    );

    // The root itself goes missing.
    let root = content.index_key(&summary.root);
    store.delete(&root).await.unwrap();
    let report = content.check_index(&summary.root).await.unwrap();
    assert_eq!(report.len(), 1);
    assert!(report[0].contains(root.as_ref()), "{report:?}");
}
