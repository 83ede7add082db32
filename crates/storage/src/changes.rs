//! Folding an ordered list of [`Change`]s into something that can be merged
//! with a sorted index in one pass.
//!
//! The result has two parts:
//!
//! * [`Effects`]: for each path a change names, what becomes of it: either a
//!   fixed outcome (`Set`: this entry, or gone) or "whatever the base had,
//!   edited by these splices" (`Edit`: each keeps the first pieces of what is
//!   there and appends its own). The merge consumes them in path order, so
//!   the changes are freed as the new index is written;
//! * [`Deletions`]: the path ranges removed by `Delete`s, for base paths that
//!   no later change names. They are kept disjoint and sorted, so a lookup is
//!   one ordered-map probe.
//!
//! Invariant: an `Edit` effect only exists for a path no delete covers,
//! because a splice after a delete is folded into a `Set`. So a path's
//! explicit effect always wins over the deleted ranges.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::StorageError;
use crate::model::{Change, FileEntry, validate_path};

/// What happens to one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    /// The path ends up as this entry, or absent, whatever the base had.
    Set(Option<FileEntry>),
    /// The base entry (or nothing) edited by these splices, in order.
    Edit(Vec<Splice>),
}

/// Keep the first `keep` pieces (None: all), then append `tail`'s pieces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Splice {
    pub(crate) keep: Option<u64>,
    pub(crate) tail: FileEntry,
}

impl Effect {
    /// Applies this effect to the base entry of its path.
    pub(crate) fn apply(self, base: Option<FileEntry>) -> Option<FileEntry> {
        match self {
            Effect::Set(outcome) => outcome,
            Effect::Edit(splices) => splices.into_iter().fold(base, |current, s| {
                Some(match current {
                    Some(current) => current.replaced_from(s.keep, &s.tail),
                    None => s.tail,
                })
            }),
        }
    }
}

/// Effects by path, consumed in path order.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    by_path: BTreeMap<String, Effect>,
}

/// Base paths removed by deletes.
#[derive(Debug, Default)]
pub(crate) struct Deletions {
    /// Disjoint half-open ranges `[start, end)`.
    ranges: BTreeMap<String, String>,
    /// `Delete("/")` was seen: no base path survives.
    all: bool,
}

#[derive(Debug, Default)]
pub(crate) struct ChangeSet {
    pub(crate) effects: Effects,
    pub(crate) deleted: Deletions,
}

impl ChangeSet {
    pub(crate) fn fold(changes: Vec<Change>) -> Result<Self, StorageError> {
        let mut set = ChangeSet::default();
        for change in changes {
            match change {
                Change::Put(entry) => {
                    validate_path(&entry.path, false)?;
                    set.effects
                        .by_path
                        .insert(entry.path.clone(), Effect::Set(Some(entry)));
                }
                Change::Append(entry) => {
                    validate_path(&entry.path, false)?;
                    set.splice(None, entry);
                }
                Change::ReplaceFrom { index: 0, entry } => {
                    validate_path(&entry.path, false)?;
                    set.effects
                        .by_path
                        .insert(entry.path.clone(), Effect::Set(Some(entry)));
                }
                Change::ReplaceFrom { index, entry } => {
                    validate_path(&entry.path, false)?;
                    set.splice(Some(index), entry);
                }
                Change::Delete(path) => {
                    validate_path(&path, true)?;
                    set.delete(&path);
                }
            }
        }
        Ok(set)
    }

    /// Puts an index overlay's entries (see [`crate::index`]) underneath
    /// these changes, as if they had been made first: the base then is the
    /// shards alone. An entry a delete covers is gone; one a later change
    /// edits becomes the edited entry; one a later change sets is replaced.
    pub(crate) fn absorb_overlay(&mut self, overlay: Vec<FileEntry>) {
        for entry in overlay {
            let path = entry.path.clone();
            let effect = match self.effects.by_path.remove(&path) {
                Some(set @ Effect::Set(_)) => set,
                Some(edit @ Effect::Edit(_)) => Effect::Set(edit.apply(Some(entry))),
                None if self.deleted.covers(&path) => continue,
                None => Effect::Set(Some(entry)),
            };
            self.effects.by_path.insert(path, effect);
        }
    }

    fn splice(&mut self, keep: Option<u64>, tail: FileEntry) {
        let path = tail.path.clone();
        let base_gone = self.deleted.covers(&path);
        let effect = match self.effects.by_path.remove(&path) {
            Some(Effect::Set(Some(current))) => {
                Effect::Set(Some(current.replaced_from(keep, &tail)))
            }
            Some(Effect::Set(None)) => Effect::Set(Some(tail)),
            Some(Effect::Edit(mut splices)) => {
                match (keep, splices.last_mut()) {
                    // Appending to the last splice's tail is the same edit.
                    (None, Some(last)) => {
                        let earlier = std::mem::replace(
                            &mut last.tail,
                            FileEntry::from_chunks(String::new(), Vec::new()),
                        );
                        last.tail = earlier.appended(&tail);
                    }
                    _ => splices.push(Splice { keep, tail }),
                }
                Effect::Edit(splices)
            }
            None if base_gone => Effect::Set(Some(tail)),
            None => Effect::Edit(vec![Splice { keep, tail }]),
        };
        self.effects.by_path.insert(path, effect);
    }

    fn delete(&mut self, path: &str) {
        if path == "/" {
            self.effects.by_path.clear();
            self.deleted.ranges.clear();
            self.deleted.all = true;
            return;
        }
        let (point, subtree) = deleted_ranges(path);
        self.effects.forget(&point);
        self.effects.forget(&subtree);
        self.deleted.add(point, subtree);
    }
}

impl Effects {
    /// Whether some effect lies before `bound` (None = anywhere).
    pub(crate) fn any_before(&self, bound: Option<&str>) -> bool {
        self.by_path
            .first_key_value()
            .is_some_and(|(path, _)| is_before(path, bound))
    }

    /// Removes and returns the first effect if it lies before `bound` (None = anywhere).
    pub(crate) fn pop_before(&mut self, bound: Option<&str>) -> Option<Effect> {
        if !self.any_before(bound) {
            return None;
        }
        self.by_path.pop_first().map(|(_, effect)| effect)
    }

    /// Removes and returns the first effect if it is on exactly `path`.
    pub(crate) fn pop_at(&mut self, path: &str) -> Option<Effect> {
        match self.by_path.first_key_value() {
            Some((first, _)) if first == path => self.by_path.pop_first().map(|(_, effect)| effect),
            _ => None,
        }
    }

    /// Every effect in path order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &Effect)> {
        self.by_path.iter()
    }

    /// Removes and returns every effect with its path, in path order.
    pub(crate) fn drain(self) -> impl Iterator<Item = (String, Effect)> {
        self.by_path.into_iter()
    }

    #[cfg(test)]
    pub(crate) fn get(&self, path: &str) -> Option<&Effect> {
        self.by_path.get(path)
    }

    fn forget(&mut self, range: &(String, String)) {
        let doomed: Vec<String> = self
            .by_path
            .range(range.0.clone()..range.1.clone())
            .map(|(k, _)| k.clone())
            .collect();
        for path in doomed {
            self.by_path.remove(&path);
        }
    }
}

fn is_before(path: &str, bound: Option<&str>) -> bool {
    bound.is_none_or(|bound| path < bound)
}

impl Deletions {
    /// Whether `Delete("/")` removed every base path.
    pub(crate) fn everything(&self) -> bool {
        self.all
    }

    /// Whether no delete was seen.
    pub(crate) fn is_empty(&self) -> bool {
        !self.all && self.ranges.is_empty()
    }

    /// Whether base path `path` was removed by a delete.
    pub(crate) fn covers(&self, path: &str) -> bool {
        self.all || self.range_at(path).is_some_and(|end| path < end)
    }

    /// Whether a delete removes some base path in `[first, last]`.
    pub(crate) fn touch(&self, first: &str, last: &str) -> bool {
        self.covers(first)
            || self
                .ranges
                .range::<str, _>((Bound::Excluded(first), Bound::Included(last)))
                .next()
                .is_some()
    }

    /// Whether a delete removes every base path in `[first, last]`.
    pub(crate) fn remove_all_of(&self, first: &str, last: &str) -> bool {
        self.all || self.range_at(first).is_some_and(|end| last < end)
    }

    /// The end of the range with the greatest start `<= path`.
    fn range_at(&self, path: &str) -> Option<&str> {
        self.ranges
            .range::<str, _>((Bound::Unbounded, Bound::Included(path)))
            .next_back()
            .map(|(_, end)| end.as_str())
    }

    fn add(&mut self, point: (String, String), subtree: (String, String)) {
        if self.covers(&point.0) && self.covers(&subtree.0) {
            return;
        }
        // Ranges inside the new subtree are subsumed by it.
        let inner: Vec<String> = self
            .ranges
            .range(subtree.0.clone()..subtree.1.clone())
            .map(|(k, _)| k.clone())
            .collect();
        for start in inner {
            self.ranges.remove(&start);
        }
        if !self.covers(&point.0) {
            self.ranges.insert(point.0, point.1);
        }
        self.ranges.insert(subtree.0, subtree.1);
    }
}

/// The two ranges a `Delete(path)` removes: the path itself and its subtree.
///
/// In byte order `path + "/"`.. `path + "0"` is exactly the set of strings
/// starting with `path + "/"` ('0' follows '/'), and `path`..`path + "\0"`
/// is `path` alone (paths never contain NUL).
fn deleted_ranges(path: &str) -> ((String, String), (String, String)) {
    let point = (path.to_string(), format!("{path}\0"));
    let subtree = (format!("{path}/"), format!("{path}0"));
    (point, subtree)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::ContentHash;
    use crate::model::{ChunkLocation, ChunkRef};

    fn entry(path: &str, data: &[u8]) -> FileEntry {
        FileEntry::from_chunks(
            path.to_string(),
            vec![ChunkRef {
                hash: ContentHash::of(data),
                len: data.len() as u32,
                loc: ChunkLocation::Loose,
            }],
        )
    }

    #[test]
    fn delete_covers_path_and_subtree_only() {
        let set = ChangeSet::fold(vec![Change::Delete("/a".into())]).unwrap();
        let deleted = &set.deleted;
        assert!(deleted.covers("/a"));
        assert!(deleted.covers("/a/b"));
        assert!(deleted.covers("/a/b/c"));
        assert!(!deleted.covers("/a.txt"));
        assert!(!deleted.covers("/ab"));
        assert!(!deleted.covers("/"));
        assert!(deleted.touch("/a.txt", "/b"));
        assert!(!deleted.touch("/a.txt", "/a.z"));
        assert!(deleted.remove_all_of("/a/b", "/a/z"));
        assert!(!deleted.remove_all_of("/a", "/a/z"));
    }

    #[test]
    fn nested_deletes_collapse() {
        let set = ChangeSet::fold(vec![
            Change::Delete("/a/b".into()),
            Change::Delete("/a/c".into()),
            Change::Delete("/a".into()),
            Change::Delete("/a/d".into()),
        ])
        .unwrap();
        assert_eq!(set.deleted.ranges.len(), 2);
        assert!(set.deleted.covers("/a/b/x"));
    }

    #[test]
    fn order_matters() {
        let set = ChangeSet::fold(vec![
            Change::Put(entry("/d/x", b"1")),
            Change::Delete("/d".into()),
            Change::Append(entry("/d/y", b"2")),
            Change::Append(entry("/e", b"3")),
            Change::Append(entry("/e", b"4")),
        ])
        .unwrap();
        assert!(set.effects.get("/d/x").is_none());
        assert_eq!(
            set.effects.get("/d/y"),
            Some(&Effect::Set(Some(entry("/d/y", b"2"))))
        );
        assert_eq!(
            set.effects.get("/e"),
            Some(&Effect::Edit(vec![Splice {
                keep: None,
                tail: entry("/e", b"3").appended(&entry("/e", b"4"))
            }]))
        );
    }

    #[test]
    fn replace_from_folds_onto_what_is_known_and_defers_the_rest() {
        let base = entry("/f", b"1").appended(&entry("/f", b"2"));
        // On a file put in the same change list: applied at once.
        let set = ChangeSet::fold(vec![
            Change::Put(base.clone()),
            Change::ReplaceFrom {
                index: 1,
                entry: entry("/f", b"3"),
            },
        ])
        .unwrap();
        assert_eq!(
            set.effects.get("/f"),
            Some(&Effect::Set(Some(
                entry("/f", b"1").appended(&entry("/f", b"3"))
            )))
        );
        // On the base index's file: deferred until the base is read.
        let mut set = ChangeSet::fold(vec![
            Change::Append(entry("/f", b"3")),
            Change::ReplaceFrom {
                index: 1,
                entry: entry("/f", b"4"),
            },
            Change::Append(entry("/f", b"5")),
        ])
        .unwrap();
        let effect = set.effects.pop_at("/f").unwrap();
        let out = effect.apply(Some(base)).unwrap();
        let expected = entry("/f", b"1")
            .appended(&entry("/f", b"4"))
            .appended(&entry("/f", b"5"));
        assert_eq!(out, expected);
        // Index 0 replaces whatever was there.
        let set = ChangeSet::fold(vec![Change::ReplaceFrom {
            index: 0,
            entry: entry("/g", b"9"),
        }])
        .unwrap();
        assert_eq!(
            set.effects.get("/g"),
            Some(&Effect::Set(Some(entry("/g", b"9"))))
        );
    }

    #[test]
    fn delete_root_clears_everything() {
        let set = ChangeSet::fold(vec![
            Change::Put(entry("/x", b"1")),
            Change::Delete("/".into()),
            Change::Append(entry("/y", b"2")),
        ])
        .unwrap();
        assert!(set.deleted.everything());
        assert_eq!(set.effects.by_path.len(), 1);
        assert_eq!(
            set.effects.get("/y"),
            Some(&Effect::Set(Some(entry("/y", b"2"))))
        );
    }

    #[test]
    fn effects_are_consumed_in_order() {
        let mut set = ChangeSet::fold(vec![
            Change::Put(entry("/b", b"1")),
            Change::Put(entry("/a", b"2")),
            Change::Put(entry("/c", b"3")),
        ])
        .unwrap();
        let effects = &mut set.effects;
        assert!(!effects.any_before(Some("/a")));
        assert!(effects.any_before(Some("/a0")));
        assert_eq!(effects.pop_at("/b"), None);
        assert_eq!(
            effects.pop_before(Some("/b")),
            Some(Effect::Set(Some(entry("/a", b"2"))))
        );
        assert_eq!(effects.pop_before(Some("/b")), None);
        assert_eq!(
            effects.pop_at("/b"),
            Some(Effect::Set(Some(entry("/b", b"1"))))
        );
        assert!(effects.pop_before(None).is_some());
        assert!(!effects.any_before(None));
    }

    #[test]
    fn invalid_paths_are_rejected() {
        assert!(ChangeSet::fold(vec![Change::Put(entry("relative", b"1"))]).is_err());
        assert!(ChangeSet::fold(vec![Change::Delete("/a/".into())]).is_err());
    }
}
