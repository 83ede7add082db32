use std::sync::Arc;

use pach_meta::{MetaStore, RedbStore};

use super::*;

async fn fresh() -> (tempfile::TempDir, Auth, Arc<RedbStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(&dir.path().join("meta.redb")).unwrap());
    (dir, Auth::new(store.clone()), store)
}

/// An active cluster with `robot:root` as admin, and root's token.
async fn active() -> (tempfile::TempDir, Auth, Arc<RedbStore>, String) {
    let (dir, auth, store) = fresh().await;
    auth.activate_enterprise("any code", None).await.unwrap();
    let root = auth.activate("robot:root", &[]).await.unwrap();
    (dir, auth, store, root.token)
}

async fn all_values(store: &RedbStore) -> String {
    let mut out = String::new();
    for kv in store.list("", None, 0).await.unwrap() {
        out.push_str(&kv.key);
        out.push_str(&String::from_utf8_lossy(&kv.value));
    }
    out
}

#[tokio::test]
async fn activation_needs_enterprise_and_a_robot() {
    let (_dir, auth, _) = fresh().await;
    assert!(matches!(
        auth.activate("robot:root", &[]).await,
        Err(AuthError::EnterpriseNotActive)
    ));
    assert!(matches!(
        auth.activate_enterprise(" ", None).await,
        Err(AuthError::InvalidRequest(_))
    ));
    auth.activate_enterprise("x", None).await.unwrap();
    assert!(matches!(
        auth.activate("", &[]).await,
        Err(AuthError::GitHubUnavailable)
    ));
    assert!(matches!(
        auth.activate("alice", &[]).await,
        Err(AuthError::GitHubUnavailable)
    ));
    assert!(matches!(
        auth.activate("pipeline:p", &[]).await,
        Err(AuthError::InvalidRequest(_))
    ));
    assert!(!auth.is_active().await.unwrap());
    let root = auth.activate("robot:root", &[]).await.unwrap();
    assert_eq!(root.subject, "robot:root");
    assert!(matches!(
        auth.activate("robot:other", &[]).await,
        Err(AuthError::AlreadyActivated)
    ));
    let caller = auth.caller(Some(&root.token)).await.unwrap();
    assert!(caller.is_admin);
    assert_eq!(auth.who_am_i(&caller).ttl, -1);
    assert_eq!(auth.admins().await.unwrap(), vec!["robot:root".to_string()]);
    assert!(matches!(
        auth.deactivate_enterprise().await,
        Err(AuthError::AuthStillActive)
    ));
}

#[tokio::test]
async fn tokens_are_stored_hashed_and_refused_once_revoked_or_expired() {
    let (_dir, auth, store, root) = active().await;
    let admin = auth.caller(Some(&root)).await.unwrap();
    let alice = auth.get_auth_token(&admin, "robot:alice", 0).await.unwrap();
    let short = auth.get_auth_token(&admin, "robot:bob", 30).await.unwrap();
    let dump = all_values(&store).await;
    for secret in [&root, &alice.token, &short.token] {
        assert!(
            !dump.contains(secret.as_str()),
            "a token is stored in clear"
        );
    }
    assert!(matches!(
        auth.caller(None).await,
        Err(AuthError::NotSignedIn)
    ));
    assert!(matches!(
        auth.caller(Some("nope")).await,
        Err(AuthError::BadToken)
    ));
    let a = auth.caller(Some(&alice.token)).await.unwrap();
    assert!(!a.is_admin);
    // Only admins extend; never shorter than what is left.
    assert!(matches!(
        auth.extend_auth_token(&a, &short.token, 60).await,
        Err(AuthError::NotAuthorized { .. })
    ));
    assert!(matches!(
        auth.extend_auth_token(&admin, &short.token, 5).await,
        Err(AuthError::TooShortTtl { .. })
    ));
    auth.extend_auth_token(&admin, &short.token, 60)
        .await
        .unwrap();
    let b = auth.caller(Some(&short.token)).await.unwrap();
    assert!(auth.who_am_i(&b).ttl > 50);
    // Alice may not revoke bob's token, nor get one for bob.
    assert!(auth.revoke_auth_token(&a, &short.token).await.is_err());
    assert!(auth.get_auth_token(&a, "robot:bob", 0).await.is_err());
    auth.revoke_auth_token(&admin, &short.token).await.unwrap();
    assert!(matches!(
        auth.caller(Some(&short.token)).await,
        Err(AuthError::BadToken)
    ));
    assert!(matches!(
        auth.extend_auth_token(&admin, &short.token, 60).await,
        Err(AuthError::BadToken)
    ));
    // A non-admin's own token cannot outlive theirs: alice's never expires,
    // so hers may; one made from a 1-second token expires with it.
    let brief = auth.get_auth_token(&admin, "robot:carol", 1).await.unwrap();
    let carol = auth.caller(Some(&brief.token)).await.unwrap();
    let derived = auth.get_auth_token(&carol, "", 3600).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert!(matches!(
        auth.caller(Some(&brief.token)).await,
        Err(AuthError::BadToken)
    ));
    assert!(matches!(
        auth.caller(Some(&derived.token)).await,
        Err(AuthError::BadToken)
    ));
}

#[tokio::test]
async fn one_time_passwords_work_once() {
    let (_dir, auth, store, root) = active().await;
    let admin = auth.caller(Some(&root)).await.unwrap();
    let otp = auth
        .get_one_time_password(&admin, "robot:alice", 0)
        .await
        .unwrap();
    assert!(otp.code.starts_with("otp/"));
    assert!(!all_values(&store).await.contains(&otp.code));
    let session = auth.authenticate_otp(&otp.code).await.unwrap();
    assert_eq!(session.subject, "robot:alice");
    let alice = auth.caller(Some(&session.token)).await.unwrap();
    assert!(auth.who_am_i(&alice).ttl > DEFAULT_SESSION_TTL_SECS - 60);
    assert!(matches!(
        auth.authenticate_otp(&otp.code).await,
        Err(AuthError::BadOtp)
    ));
    // A non-admin's password for someone else is refused.
    assert!(
        auth.get_one_time_password(&alice, "robot:root", 0)
            .await
            .is_err()
    );
    let expiring = auth.get_one_time_password(&admin, "", 1).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert!(matches!(
        auth.authenticate_otp(&expiring.code).await,
        Err(AuthError::BadOtp)
    ));
}

#[tokio::test]
async fn acls_scopes_and_groups() {
    let (_dir, auth, _, root) = active().await;
    let admin = auth.caller(Some(&root)).await.unwrap();
    let alice_tok = auth
        .get_auth_token(&admin, "robot:alice", 0)
        .await
        .unwrap()
        .token;
    let bob_tok = auth
        .get_auth_token(&admin, "robot:bob", 0)
        .await
        .unwrap()
        .token;
    let alice = auth.caller(Some(&alice_tok)).await.unwrap();
    auth.grant("images", "robot:alice", Scope::Owner)
        .await
        .unwrap();
    assert!(
        auth.authorize(&admin, "images", Scope::Owner)
            .await
            .unwrap()
    );
    assert_eq!(auth.scope(&admin, "images").await.unwrap(), Scope::None);
    let bob = auth.caller(Some(&bob_tok)).await.unwrap();
    let refused = auth.check(&bob, "images", Scope::Reader).await.unwrap_err();
    assert_eq!(
        refused.to_string(),
        "robot:bob is not authorized to perform this operation on the repo images, must have at \
         least READER access"
    );
    assert!(
        auth.set_scope(&bob, "robot:bob", "images", Scope::Reader)
            .await
            .is_err()
    );
    auth.set_scope(&alice, "robot:bob", "images", Scope::Writer)
        .await
        .unwrap();
    assert!(auth.authorize(&bob, "images", Scope::Writer).await.unwrap());
    assert!(!auth.authorize(&bob, "images", Scope::Owner).await.unwrap());
    // Asking about someone else needs READER on the repo.
    let carol_tok = auth
        .get_auth_token(&admin, "robot:carol", 0)
        .await
        .unwrap()
        .token;
    let carol = auth.caller(Some(&carol_tok)).await.unwrap();
    assert!(
        auth.get_scope(&carol, "robot:bob", &["images".into()])
            .await
            .is_err()
    );
    assert_eq!(
        auth.get_scope(&carol, "", &["images".into()])
            .await
            .unwrap(),
        vec![Scope::None]
    );
    // Groups: an entry `group:NAME` reaches the group's members.
    auth.set_groups_for_user(&admin, "robot:carol", &["devs".into()])
        .await
        .unwrap();
    auth.set_scope(&admin, "group:devs", "images", Scope::Reader)
        .await
        .unwrap();
    let carol = auth.caller(Some(&carol_tok)).await.unwrap();
    assert_eq!(carol.groups, vec!["devs".to_string()]);
    assert!(
        auth.authorize(&carol, "images", Scope::Reader)
            .await
            .unwrap()
    );
    assert_eq!(
        auth.get_users(&admin, "devs").await.unwrap(),
        vec!["robot:carol".to_string()]
    );
    auth.modify_members(&admin, "devs", &[], &["robot:carol".into()])
        .await
        .unwrap();
    assert!(auth.get_users(&admin, "devs").await.unwrap().is_empty());
    let carol = auth.caller(Some(&carol_tok)).await.unwrap();
    assert!(
        !auth
            .authorize(&carol, "images", Scope::Reader)
            .await
            .unwrap()
    );
    // SetACL replaces; NONE entries are dropped; bad subjects refused.
    auth.set_acl(
        &alice,
        "images",
        &[
            ("robot:alice".into(), Scope::Owner),
            ("robot:bob".into(), Scope::None),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        auth.get_acl("images").await.unwrap(),
        vec![("robot:alice".to_string(), Scope::Owner)]
    );
    assert!(matches!(
        auth.set_acl(&alice, "images", &[("saml:x".into(), Scope::Owner)])
            .await,
        Err(AuthError::InvalidSubject { .. })
    ));
    auth.forget_repo("images").await.unwrap();
    assert!(auth.get_acl("images").await.unwrap().is_empty());
}

#[tokio::test]
async fn admins_never_run_out_and_deactivation_clears_everything() {
    let (_dir, auth, store, root) = active().await;
    let admin = auth.caller(Some(&root)).await.unwrap();
    assert!(matches!(
        auth.modify_admins(&admin, &[], &["robot:root".into()])
            .await,
        Err(AuthError::LastAdmin)
    ));
    auth.modify_admins(&admin, &["robot:someuser".into()], &[])
        .await
        .unwrap();
    assert_eq!(
        auth.admins().await.unwrap(),
        vec!["robot:root".to_string(), "robot:someuser".into()]
    );
    let other = auth
        .get_auth_token(&admin, "robot:x", 0)
        .await
        .unwrap()
        .token;
    let other = auth.caller(Some(&other)).await.unwrap();
    assert!(matches!(
        auth.deactivate(&other).await,
        Err(AuthError::NotAuthorized { .. })
    ));
    let mut config = auth.configuration().await.unwrap();
    assert_eq!(config.live_config_version, 1);
    auth.set_configuration(&admin, Some(config.clone()))
        .await
        .unwrap();
    assert!(matches!(
        auth.set_configuration(&admin, Some(config.clone())).await,
        Err(AuthError::ConfigVersion {
            expected: 1,
            live: 2
        })
    ));
    config.live_config_version = 0;
    auth.set_configuration(&admin, Some(config)).await.unwrap();
    assert_eq!(auth.configuration().await.unwrap().live_config_version, 3);
    auth.grant("r", "robot:root", Scope::Owner).await.unwrap();
    auth.deactivate(&admin).await.unwrap();
    assert!(!auth.is_active().await.unwrap());
    let left: Vec<String> = store
        .list(PREFIX, None, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(left, vec!["auth/enterprise".to_string()]);
    assert!(matches!(auth.admins().await, Err(AuthError::NotActivated)));
    auth.deactivate_enterprise().await.unwrap();
    assert!(auth.enterprise().await.unwrap().is_none());
}

#[test]
fn subjects_are_canonical() {
    assert_eq!(canonical_subject("alice").unwrap(), "github:alice");
    assert_eq!(canonical_subject("robot:r").unwrap(), "robot:r");
    assert!(canonical_subject("github:a:b").is_err());
    assert!(canonical_subject("robot:").is_err());
    assert!(canonical_subject("ldap:x").is_err());
}

/// A store that counts the reads made through it.
struct Counting {
    inner: Arc<RedbStore>,
    reads: std::sync::atomic::AtomicUsize,
}

impl Counting {
    fn reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl MetaStore for Counting {
    async fn get(&self, key: &str) -> pach_meta::Result<Option<pach_meta::KeyValue>> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.get(key).await
    }
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> pach_meta::Result<Vec<pach_meta::KeyValue>> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.list(prefix, start_after, limit).await
    }
    async fn commit(&self, txn: pach_meta::Txn) -> pach_meta::Result<Option<pach_meta::Revision>> {
        self.inner.commit(txn).await
    }
    async fn watch(
        &self,
        prefix: &str,
    ) -> pach_meta::Result<futures::stream::BoxStream<'static, pach_meta::Result<pach_meta::Event>>>
    {
        self.inner.watch(prefix).await
    }
    async fn revision(&self) -> pach_meta::Result<pach_meta::Revision> {
        self.inner.revision().await
    }
    async fn snapshot(&self) -> pach_meta::Result<Box<dyn pach_meta::Snapshot>> {
        self.inner.snapshot().await
    }
}

async fn counted() -> (tempfile::TempDir, Auth, Arc<Counting>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Counting {
        inner: Arc::new(RedbStore::open(&dir.path().join("meta.redb")).unwrap()),
        reads: Default::default(),
    });
    let auth = Auth::new(store.clone());
    auth.cache.wait_live().await;
    (dir, auth, store)
}

#[tokio::test]
async fn checks_read_the_store_once_then_from_memory() {
    let (_dir, auth, store) = counted().await;
    // Auth off: a check is one atomic load, no read at all.
    let before = store.reads();
    for _ in 0..100 {
        assert!(!auth.is_active().await.unwrap());
    }
    assert_eq!(store.reads(), before);

    auth.activate_enterprise("x", None).await.unwrap();
    let root = auth.activate("robot:root", &[]).await.unwrap();
    assert!(auth.is_active().await.unwrap());
    let admin = auth.caller(Some(&root.token)).await.unwrap();
    auth.set_scope(&admin, "robot:alice", "repo", Scope::Writer)
        .await
        .unwrap();
    let alice = auth.get_auth_token(&admin, "robot:alice", 0).await.unwrap();
    // The first check of alice reads her token, groups, the admins, the ACL;
    // the next ones read nothing but what a refresh (every `MAX_AGE`) drops.
    let who = auth.caller(Some(&alice.token)).await.unwrap();
    auth.check(&who, "repo", Scope::Writer).await.unwrap();
    let warm = store.reads();
    for _ in 0..100 {
        let who = auth.caller(Some(&alice.token)).await.unwrap();
        auth.check(&who, "repo", Scope::Writer).await.unwrap();
    }
    assert!(
        store.reads() - warm < 20,
        "{} reads for 100 warm checks",
        store.reads() - warm
    );
    assert!(auth.cache.kept() >= 4);
}

#[tokio::test]
async fn changes_are_enforced_at_once_by_the_writer_and_soon_by_another() {
    let (dir, here, store) = counted().await;
    // Another `Auth` over the same store stands for a restore or another
    // part of the process writing around this one: it reaches `here` only
    // through the watch.
    let there = Auth::new(store.clone());
    there.cache.wait_live().await;
    here.activate_enterprise("x", None).await.unwrap();
    let root = here.activate("robot:root", &[]).await.unwrap();
    let admin = here.caller(Some(&root.token)).await.unwrap();
    let alice = here.get_auth_token(&admin, "robot:alice", 0).await.unwrap();
    here.set_scope(&admin, "robot:alice", "repo", Scope::Reader)
        .await
        .unwrap();
    let a = here.caller(Some(&alice.token)).await.unwrap();
    here.check(&a, "repo", Scope::Reader).await.unwrap();
    // The writer itself: refused on the very next call.
    here.set_scope(&admin, "robot:alice", "repo", Scope::None)
        .await
        .unwrap();
    assert!(matches!(
        here.check(&a, "repo", Scope::Reader).await,
        Err(AuthError::NotAuthorized { .. })
    ));
    here.revoke_auth_token(&admin, &alice.token).await.unwrap();
    assert!(matches!(
        here.caller(Some(&alice.token)).await,
        Err(AuthError::BadToken)
    ));
    // Through the other: seen as soon as its event arrives.
    let bob = here.get_auth_token(&admin, "robot:bob", 0).await.unwrap();
    here.caller(Some(&bob.token)).await.unwrap();
    let admin_there = there.caller(Some(&root.token)).await.unwrap();
    there
        .revoke_auth_token(&admin_there, &bob.token)
        .await
        .unwrap();
    let start = std::time::Instant::now();
    while here.caller(Some(&bob.token)).await.is_ok() {
        assert!(start.elapsed() < MAX_AGE, "a revocation went unseen");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    // Through the watch, not the periodic refresh.
    assert!(
        start.elapsed() < MAX_AGE / 4,
        "seen after {:?}",
        start.elapsed()
    );
    there.deactivate(&admin_there).await.unwrap();
    let start = std::time::Instant::now();
    while here.is_active().await.unwrap() {
        assert!(start.elapsed() < MAX_AGE, "a deactivation went unseen");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    drop(dir);
}
