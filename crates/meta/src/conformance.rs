//! The behaviour every [`MetaStore`] implementation must show, as one suite that
//! each backend's tests run against a real instance (redb here, etcd in cluster
//! mode). A difference between backends is a failure of this suite.

use std::time::Duration;

use futures::StreamExt;

use crate::{Event, MetaStore, Txn};

/// Runs every check in order against an empty store. Panics on the first
/// violated expectation (it is a test helper).
pub async fn run_all(store: &dyn MetaStore) {
    put_get_and_revisions(store).await;
    list_is_ordered_and_paged(store).await;
    guarded_transactions(store).await;
    delete_prefix(store).await;
    watch_sees_later_transactions(store).await;
    concurrent_guarded_increments(store).await;
    snapshot_is_a_fixed_view(store).await;
}

async fn put_get_and_revisions(store: &dyn MetaStore) {
    let before = store.revision().await.unwrap();
    let rev = store
        .commit(
            Txn::new()
                .put("t1/a", b"x".to_vec())
                .put("t1/b", b"y".to_vec()),
        )
        .await
        .unwrap()
        .expect("unguarded txn commits");
    assert!(rev > before, "revision must grow");
    let a = store.get("t1/a").await.unwrap().expect("t1/a written");
    assert_eq!(a.value, b"x");
    assert_eq!(a.mod_revision, rev, "both keys carry the txn's revision");
    assert_eq!(store.get("t1/b").await.unwrap().unwrap().mod_revision, rev);
    assert!(store.get("t1/missing").await.unwrap().is_none());
    assert_eq!(store.revision().await.unwrap(), rev);
}

async fn list_is_ordered_and_paged(store: &dyn MetaStore) {
    let mut txn = Txn::new();
    for k in ["t2/c", "t2/a", "t2/b", "t2x", "t1z"] {
        txn = txn.put(k, k.as_bytes().to_vec());
    }
    store.commit(txn).await.unwrap().unwrap();
    let keys = |kvs: Vec<crate::KeyValue>| kvs.into_iter().map(|kv| kv.key).collect::<Vec<_>>();
    assert_eq!(
        keys(store.list("t2/", None, 0).await.unwrap()),
        ["t2/a", "t2/b", "t2/c"]
    );
    assert_eq!(
        keys(store.list("t2/", None, 2).await.unwrap()),
        ["t2/a", "t2/b"]
    );
    assert_eq!(
        keys(store.list("t2/", Some("t2/a"), 0).await.unwrap()),
        ["t2/b", "t2/c"]
    );
    assert!(store.list("t2/", Some("t2/c"), 0).await.unwrap().is_empty());
}

async fn guarded_transactions(store: &dyn MetaStore) {
    // Create-if-absent succeeds once.
    let created = store
        .commit(Txn::new().expect("t3/k", 0).put("t3/k", b"1".to_vec()))
        .await
        .unwrap();
    let rev = created.expect("absent key: guard holds");
    let again = store
        .commit(Txn::new().expect("t3/k", 0).put("t3/k", b"2".to_vec()))
        .await
        .unwrap();
    assert!(
        again.is_none(),
        "guard on absence must fail once the key exists"
    );
    // A failed guard writes nothing, not even the unguarded keys of the txn.
    let failed = store
        .commit(
            Txn::new()
                .expect("t3/k", rev + 100)
                .put("t3/other", b"z".to_vec()),
        )
        .await
        .unwrap();
    assert!(failed.is_none());
    assert!(
        store.get("t3/other").await.unwrap().is_none(),
        "failed txn must write nothing"
    );
    assert_eq!(store.get("t3/k").await.unwrap().unwrap().value, b"1");
    // The right revision lets the update through.
    let updated = store
        .commit(Txn::new().expect("t3/k", rev).put("t3/k", b"3".to_vec()))
        .await
        .unwrap();
    assert!(updated.is_some());
    assert_eq!(store.get("t3/k").await.unwrap().unwrap().value, b"3");
}

async fn delete_prefix(store: &dyn MetaStore) {
    store
        .commit(
            Txn::new()
                .put("t4/a/1", vec![])
                .put("t4/a/2", vec![])
                .put("t4/b", vec![]),
        )
        .await
        .unwrap()
        .unwrap();
    store
        .commit(Txn::new().delete_prefix("t4/a/"))
        .await
        .unwrap()
        .unwrap();
    let left: Vec<_> = store
        .list("t4/", None, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.key)
        .collect();
    assert_eq!(left, ["t4/b"]);
    store
        .commit(Txn::new().delete("t4/b"))
        .await
        .unwrap()
        .unwrap();
    assert!(store.get("t4/b").await.unwrap().is_none());
}

async fn watch_sees_later_transactions(store: &dyn MetaStore) {
    store
        .commit(Txn::new().put("t5/before", vec![]))
        .await
        .unwrap()
        .unwrap();
    let mut watch = store.watch("t5/").await.unwrap();
    store
        .commit(Txn::new().put("t6/elsewhere", vec![]))
        .await
        .unwrap()
        .unwrap();
    let rev = store
        .commit(Txn::new().put("t5/x", b"v".to_vec()))
        .await
        .unwrap()
        .unwrap();
    store
        .commit(Txn::new().delete("t5/x"))
        .await
        .unwrap()
        .unwrap();
    match next_event(&mut watch).await {
        Event::Put(kv) => {
            assert_eq!(
                (kv.key.as_str(), kv.value.as_slice(), kv.mod_revision),
                ("t5/x", b"v".as_slice(), rev)
            );
        }
        other => panic!("expected put of t5/x, got {other:?}"),
    }
    match next_event(&mut watch).await {
        Event::Delete { key, .. } => assert_eq!(key, "t5/x"),
        other => panic!("expected delete of t5/x, got {other:?}"),
    }
}

async fn concurrent_guarded_increments(store: &dyn MetaStore) {
    // Optimistic read-modify-write from several tasks: no update may be lost.
    async fn increment(store: &dyn MetaStore) {
        loop {
            let current = store.get("t7/counter").await.unwrap();
            let (value, rev) = match &current {
                Some(kv) => (
                    String::from_utf8(kv.value.clone())
                        .unwrap()
                        .parse::<u64>()
                        .unwrap(),
                    kv.mod_revision,
                ),
                None => (0, 0),
            };
            let txn = Txn::new()
                .expect("t7/counter", rev)
                .put("t7/counter", (value + 1).to_string().into_bytes());
            if store.commit(txn).await.unwrap().is_some() {
                return;
            }
        }
    }
    let tasks = (0..8).map(|_| async {
        for _ in 0..10 {
            increment(store).await;
        }
    });
    futures::future::join_all(tasks).await;
    let kv = store.get("t7/counter").await.unwrap().unwrap();
    assert_eq!(kv.value, b"80");
}

async fn snapshot_is_a_fixed_view(store: &dyn MetaStore) {
    let rev = store
        .commit(
            Txn::new()
                .put("t8/a", b"1".to_vec())
                .put("t8/b", b"1".to_vec()),
        )
        .await
        .unwrap()
        .unwrap();
    let snap = store.snapshot().await.unwrap();
    assert_eq!(snap.revision(), store.revision().await.unwrap());
    // Writes after the snapshot: a change, a deletion, a new key.
    store
        .commit(
            Txn::new()
                .put("t8/a", b"2".to_vec())
                .delete("t8/b")
                .put("t8/c", b"2".to_vec()),
        )
        .await
        .unwrap()
        .unwrap();
    let seen = |kvs: Vec<crate::KeyValue>| {
        kvs.into_iter()
            .map(|kv| (kv.key, kv.value, kv.mod_revision))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        seen(snap.list("t8/", None, 0).await.unwrap()),
        [
            ("t8/a".to_string(), b"1".to_vec(), rev),
            ("t8/b".to_string(), b"1".to_vec(), rev)
        ],
        "a snapshot shows the keys as of its revision"
    );
    // Paged the same way as the store.
    assert_eq!(
        seen(snap.list("t8/", Some("t8/a"), 1).await.unwrap()),
        [("t8/b".to_string(), b"1".to_vec(), rev)]
    );
    assert!(snap.list("t8/", Some("t8/b"), 0).await.unwrap().is_empty());
    // The store itself, and a new snapshot, show the writes.
    let now: Vec<String> = store
        .list("t8/", None, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(now, ["t8/a", "t8/c"]);
    let later = store.snapshot().await.unwrap();
    assert!(later.revision() > snap.revision());
    assert_eq!(later.list("t8/", None, 0).await.unwrap().len(), 2);
}

async fn next_event(
    watch: &mut futures::stream::BoxStream<'static, crate::Result<Event>>,
) -> Event {
    tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("watch event within 5 s")
        .expect("watch stream open")
        .expect("no watch error")
}
