//! Repo ACLs, cluster admins and groups.
//!
//! A subject's scope on a repo is the highest of its own entry and the
//! entries of its groups (an entry names a group either as the group is
//! named, or as `group:NAME`). Admins may do anything; OWNERs change their
//! repo's ACL.

use std::collections::BTreeSet;

use pach_meta::Txn;

use crate::records::{
    ACLS, ADMINS, AclRecord, MEMBERS, Scope, SetRecord, acl_key, admin_key, group_key, members_key,
};
use crate::tokens::require_admin;
use crate::{Auth, AuthError, Caller, GROUP_PREFIX, Result, canonical_subject, encode};

fn scope_in(acl: &AclRecord, subject: &str, groups: &[String]) -> Scope {
    let mut scope = acl.entries.get(subject).copied().unwrap_or(Scope::None);
    for g in groups {
        for key in [g.clone(), format!("{GROUP_PREFIX}{g}")] {
            if let Some(&s) = acl.entries.get(&key) {
                scope = scope.max(s);
            }
        }
    }
    scope
}

/// Every subject of a list in canonical form (`canonical_subject`).
fn canonical_subjects(subjects: &[String]) -> Result<Vec<String>> {
    subjects.iter().map(|s| canonical_subject(s)).collect()
}

impl Auth {
    async fn acl(&self, repo: &str) -> Result<(AclRecord, u64)> {
        Ok(self.load(&acl_key(repo)).await?.unwrap_or_default())
    }

    /// The caller's own scope on `repo` (admins' ACL entries count as they
    /// are: being an admin is not a scope, as in 1.9).
    pub async fn scope(&self, caller: &Caller, repo: &str) -> Result<Scope> {
        Ok(
            match self.cached::<AclRecord>(&acl_key(repo), true).await? {
                Some(acl) => scope_in(&acl, &caller.subject, &caller.groups),
                None => Scope::None,
            },
        )
    }

    /// Whether the caller may act on `repo` with `scope` (admins always may).
    pub async fn authorize(&self, caller: &Caller, repo: &str, scope: Scope) -> Result<bool> {
        Ok(caller.is_admin || self.scope(caller, repo).await? >= scope)
    }

    /// As [`Auth::authorize`], refusing with the repo and the scope needed.
    pub async fn check(&self, caller: &Caller, repo: &str, scope: Scope) -> Result<()> {
        if self.authorize(caller, repo, scope).await? {
            Ok(())
        } else {
            Err(AuthError::needs(&caller.subject, repo, scope))
        }
    }

    /// Scopes of `username` (the caller when empty) on each of `repos`;
    /// asking about someone else needs READER on each repo (or admin).
    pub async fn get_scope(
        &self,
        caller: &Caller,
        username: &str,
        repos: &[String],
    ) -> Result<Vec<Scope>> {
        self.require_active().await?;
        let (target, groups) = if username.is_empty() {
            (caller.subject.clone(), caller.groups.clone())
        } else {
            let target = canonical_subject(username)?;
            let groups = self.groups_of(&target).await?;
            (target, groups)
        };
        let mut out = Vec::with_capacity(repos.len());
        for repo in repos {
            let (acl, _) = self.acl(repo).await?;
            if !username.is_empty()
                && !caller.is_admin
                && scope_in(&acl, &caller.subject, &caller.groups) < Scope::Reader
            {
                return Err(AuthError::needs(&caller.subject, repo, Scope::Reader));
            }
            out.push(scope_in(&acl, &target, &groups));
        }
        Ok(out)
    }

    /// Sets `username`'s scope on `repo` (NONE removes the entry). Admins and
    /// the repo's OWNERs only; the caller has checked that the repo exists.
    pub async fn set_scope(
        &self,
        caller: &Caller,
        username: &str,
        repo: &str,
        scope: Scope,
    ) -> Result<()> {
        self.require_active().await?;
        if username.is_empty() {
            return Err(AuthError::InvalidRequest("must set username".into()));
        }
        if repo.is_empty() {
            return Err(AuthError::InvalidRequest("must set repo".into()));
        }
        let principal = canonical_subject(username)?;
        let key = acl_key(repo);
        guarded!(self, {
            let (mut acl, rev) = self.acl(repo).await?;
            if !caller.is_admin && scope_in(&acl, &caller.subject, &caller.groups) < Scope::Owner {
                return Err(AuthError::needs(&caller.subject, repo, Scope::Owner));
            }
            if scope == Scope::None {
                acl.entries.remove(&principal);
            } else {
                acl.entries.insert(principal.clone(), scope);
            }
            Ok((put_acl(Txn::new().expect(&key, rev), &key, &acl), ()))
        })
    }

    /// A repo's ACL entries, by subject. Any signed-in caller may read one
    /// (as 1.9).
    pub async fn get_acl(&self, repo: &str) -> Result<Vec<(String, Scope)>> {
        self.require_active().await?;
        if repo.is_empty() {
            return Err(AuthError::InvalidRequest(
                "must provide name of repo to get that repo's ACL".into(),
            ));
        }
        Ok(self.acl(repo).await?.0.entries.into_iter().collect())
    }

    /// Replaces a repo's ACL. Admins and the repo's OWNERs only.
    pub async fn set_acl(
        &self,
        caller: &Caller,
        repo: &str,
        entries: &[(String, Scope)],
    ) -> Result<()> {
        self.require_active().await?;
        if repo.is_empty() {
            return Err(AuthError::InvalidRequest(
                "must provide name of repo you want to modify".into(),
            ));
        }
        let mut new = AclRecord::default();
        for (subject, scope) in entries {
            if *scope != Scope::None {
                new.entries.insert(canonical_subject(subject)?, *scope);
            }
        }
        let key = acl_key(repo);
        guarded!(self, {
            let (acl, rev) = self.acl(repo).await?;
            if !caller.is_admin && scope_in(&acl, &caller.subject, &caller.groups) < Scope::Owner {
                return Err(AuthError::needs(&caller.subject, repo, Scope::Owner));
            }
            Ok((put_acl(Txn::new().expect(&key, rev), &key, &new), ()))
        })
    }

    /// Raises `subject`'s scope on `repo` to at least `scope` (a repo's
    /// creator becomes its OWNER; a pipeline gets WRITER on its output and
    /// READER on its inputs). No-op while auth is inactive.
    pub async fn grant(&self, repo: &str, subject: &str, scope: Scope) -> Result<()> {
        if !self.is_active().await? {
            return Ok(());
        }
        let key = acl_key(repo);
        guarded!(self, {
            let (mut acl, rev) = self.acl(repo).await?;
            let entry = acl
                .entries
                .entry(subject.to_string())
                .or_insert(Scope::None);
            if *entry >= scope {
                return Ok((Txn::new(), ()));
            }
            *entry = scope;
            Ok((put_acl(Txn::new().expect(&key, rev), &key, &acl), ()))
        })
    }

    /// Forgets a deleted repo's ACL, so a repo made later under the same
    /// name starts with its creator alone.
    pub async fn forget_repo(&self, repo: &str) -> Result<()> {
        self.commit(Txn::new().delete(acl_key(repo))).await?;
        Ok(())
    }

    /// Every repo with an ACL, and its entries.
    pub async fn acls(&self) -> Result<Vec<(String, Vec<(String, Scope)>)>> {
        Ok(self
            .list::<AclRecord>(ACLS)
            .await?
            .into_iter()
            .map(|(repo, acl)| (repo, acl.entries.into_iter().collect()))
            .collect())
    }

    /// The cluster admins (any signed-in caller may ask, as in 1.9).
    pub async fn admins(&self) -> Result<Vec<String>> {
        self.require_active().await?;
        Ok(self
            .meta
            .list(ADMINS, None, 0)
            .await?
            .into_iter()
            .map(|kv| kv.key[ADMINS.len()..].to_string())
            .collect())
    }

    /// Adds and removes admins (admins only), never leaving none.
    pub async fn modify_admins(
        &self,
        caller: &Caller,
        add: &[String],
        remove: &[String],
    ) -> Result<()> {
        self.require_active().await?;
        require_admin(caller, "ModifyAdmins")?;
        let (add, remove) = (canonical_subjects(add)?, canonical_subjects(remove)?);
        guarded!(self, {
            let current = self.meta.list(ADMINS, None, 0).await?;
            let mut txn = Txn::new();
            let mut after = BTreeSet::new();
            for kv in &current {
                txn = txn.expect(&kv.key, kv.mod_revision);
                after.insert(kv.key[ADMINS.len()..].to_string());
            }
            for a in &add {
                if after.insert(a.clone()) {
                    txn = txn
                        .expect(admin_key(a), 0)
                        .put(admin_key(a), b"{}".to_vec());
                }
            }
            for r in &remove {
                if after.remove(r) {
                    txn = txn.delete(admin_key(r));
                }
            }
            if after.is_empty() {
                return Err(AuthError::LastAdmin);
            }
            Ok((txn, ()))
        })
    }

    /// Makes `username`'s groups exactly `groups` (admins only).
    pub async fn set_groups_for_user(
        &self,
        caller: &Caller,
        username: &str,
        groups: &[String],
    ) -> Result<()> {
        self.require_active().await?;
        require_admin(caller, "SetGroupsForUser")?;
        let subject = canonical_subject(username)?;
        let wanted: BTreeSet<String> = groups.iter().cloned().collect();
        guarded!(self, {
            let mkey = members_key(&subject);
            let (old, rev) = self.load::<SetRecord>(&mkey).await?.unwrap_or_default();
            let mut txn = Txn::new().expect(&mkey, rev);
            txn = put_set(
                txn,
                &mkey,
                &SetRecord {
                    names: wanted.clone(),
                },
            );
            for g in old.names.symmetric_difference(&wanted) {
                let gkey = group_key(g);
                let (mut members, grev) = self.load::<SetRecord>(&gkey).await?.unwrap_or_default();
                if wanted.contains(g) {
                    members.names.insert(subject.clone());
                } else {
                    members.names.remove(&subject);
                }
                txn = put_set(txn.expect(&gkey, grev), &gkey, &members);
            }
            Ok((txn, ()))
        })
    }

    /// Adds and removes members of `group` (admins only).
    pub async fn modify_members(
        &self,
        caller: &Caller,
        group: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<()> {
        self.require_active().await?;
        require_admin(caller, "ModifyMembers")?;
        if group.is_empty() {
            return Err(AuthError::InvalidRequest("must name the group".into()));
        }
        let (add, remove) = (canonical_subjects(add)?, canonical_subjects(remove)?);
        guarded!(self, {
            let gkey = group_key(group);
            let (mut members, grev) = self.load::<SetRecord>(&gkey).await?.unwrap_or_default();
            let mut txn = Txn::new().expect(&gkey, grev);
            for (subject, join) in add
                .iter()
                .map(|s| (s, true))
                .chain(remove.iter().map(|s| (s, false)))
            {
                let mkey = members_key(subject);
                let (mut groups, mrev) = self.load::<SetRecord>(&mkey).await?.unwrap_or_default();
                if join {
                    groups.names.insert(group.to_string());
                    members.names.insert(subject.clone());
                } else {
                    groups.names.remove(group);
                    members.names.remove(subject);
                }
                txn = put_set(txn.expect(&mkey, mrev), &mkey, &groups);
            }
            // The group's record stays, empty, once its last member leaves:
            // asking for its members then answers "none", not an error.
            txn = txn.put(&gkey, encode(&members));
            Ok((txn, ()))
        })
    }

    /// The groups of `username` (the caller's own when empty; others'
    /// for admins only).
    pub async fn get_groups(&self, caller: &Caller, username: &str) -> Result<Vec<String>> {
        self.require_active().await?;
        if username.is_empty() || username == caller.subject {
            return Ok(caller.groups.clone());
        }
        require_admin(caller, "GetGroups")?;
        self.groups_of(&canonical_subject(username)?).await
    }

    /// The members of `group`, or every subject in some group when empty
    /// (admins only).
    pub async fn get_users(&self, caller: &Caller, group: &str) -> Result<Vec<String>> {
        self.require_active().await?;
        require_admin(caller, "GetUsers")?;
        if group.is_empty() {
            return Ok(self
                .list::<SetRecord>(MEMBERS)
                .await?
                .into_iter()
                .filter(|(_, r)| !r.names.is_empty())
                .map(|(s, _)| s)
                .collect());
        }
        Ok(self
            .load::<SetRecord>(&group_key(group))
            .await?
            .map(|(r, _)| r.names.into_iter().collect())
            .unwrap_or_default())
    }
}

fn put_acl(txn: Txn, key: &str, acl: &AclRecord) -> Txn {
    if acl.entries.is_empty() {
        txn.delete(key)
    } else {
        txn.put(key, encode(acl))
    }
}

fn put_set(txn: Txn, key: &str, set: &SetRecord) -> Txn {
    if set.names.is_empty() {
        txn.delete(key)
    } else {
        txn.put(key, encode(set))
    }
}
