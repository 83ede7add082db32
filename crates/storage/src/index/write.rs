//! Building a new index from a base index and a list of changes.
//!
//! The changes are folded into a [`ChangeSet`]. When they only put or append
//! and the base root's overlay has room for them (see the module docs of
//! [`super`]), they are applied to the overlay and only a root is written:
//! each path's previous entry comes from the overlay, or from the shard whose
//! range holds the path (through the shared node cache), or is absent.
//!
//! Otherwise the base overlay is folded under the changes and the shards
//! are walked in order. A shard owns the paths from its first path up to the
//! next shard's first path (the first shard also owns everything before it),
//! and the effects on those paths are consumed while it is merged.
//! A shard no effect lands in and no delete reaches is reused by reference,
//! unread; a shard wholly inside a deleted directory is dropped, unread;
//! the rest are read, merged with their effects and re-cut into new shards.
//!
//! Memory: the change set, one base shard and at most two shards' worth of
//! pending output, plus the shards being encoded and uploaded.
//!
//! Shard sizes are measured in units: one per entry, more for entries whose
//! encoding exceeds [`UNIT_BYTES`], so a shard holds up to ~4,096 entries or
//! ~1 MiB. Fresh shards are filled to 3/4 so that later inserts into a shard
//! rewrite one shard instead of splitting it; an overfull rewrite is split in
//! two halves; a rewrite that leaves a tiny shard absorbs its successor.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

use object_store::ObjectStore;
use tokio::task::JoinHandle;

use super::{
    IndexNodeOut, NodeCache, OVERLAY_UNITS, RootNode, ShardInfo, cached_root, cached_shard,
    load_shard,
};
use crate::StorageError;
use crate::changes::{ChangeSet, Deletions, Effect, Effects};
use crate::codec::encode_object;
use crate::hash::ContentHash;
use crate::layout::Layout;
use crate::model::{Change, FileEntry, IndexSummary};
use crate::upload::put;

const UNIT_BYTES: usize = 256;
const MAX_IN_FLIGHT: usize = 8;

/// Shard size bounds, in units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ShardLimits {
    /// No shard is cut larger (unless a single entry is).
    max: usize,
    /// Size of shards cut from a long run of entries.
    fill: usize,
    /// Below this a rewritten shard absorbs its successor.
    min: usize,
}

impl ShardLimits {
    /// Limits for shards of up to `capacity` units (default 4,096).
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let max = capacity.max(2);
        ShardLimits {
            max,
            fill: (max * 3 / 4).max(1),
            min: (max / 4).max(1),
        }
    }
}

impl Default for ShardLimits {
    fn default() -> Self {
        ShardLimits::with_capacity(4096)
    }
}

pub(crate) async fn write_index(
    store: &Arc<dyn ObjectStore>,
    layout: &Layout,
    limits: ShardLimits,
    nodes: &NodeCache,
    base: Option<&ContentHash>,
    changes: Vec<Change>,
) -> Result<IndexSummary, StorageError> {
    let mut set = ChangeSet::fold(changes)?;
    let base = match base {
        Some(root) if !set.deleted.everything() => {
            Some(cached_root(&**store, layout, nodes, root).await?)
        }
        _ => None,
    };
    let (root, written) = match base {
        Some(base) if set.deleted.is_empty() && fits_overlay(&base, &set.effects) => (
            with_overlay(&**store, layout, nodes, &base, set.effects).await?,
            0,
        ),
        base => {
            let base_shards = match base {
                Some(base) => {
                    let base = Arc::unwrap_or_clone(base);
                    set.absorb_overlay(base.overlay);
                    base.shards
                }
                None => Vec::new(),
            };
            merge_shards(store, layout, limits, base_shards, set).await?
        }
    };
    let (hash, stored) = root.encode()?;
    put(&**store, &layout.index(&hash), stored.into()).await?;
    tracing::debug!(
        root = %hash,
        files = root.files,
        shards = root.shards.len(),
        overlay = root.overlay.len(),
        written,
        "wrote index"
    );
    let summary = IndexSummary {
        root: hash,
        files: root.files,
        bytes: root.bytes,
    };
    // The next commit of the branch most likely builds on this one.
    nodes.keep_root(hash, Arc::new(root));
    Ok(summary)
}

/// Whether the effects can join the base's overlay: none removes a path,
/// and together they stay within [`OVERLAY_UNITS`].
fn fits_overlay(base: &RootNode, effects: &Effects) -> bool {
    let mut total: usize = base.overlay.iter().map(units).sum();
    for (path, effect) in effects.iter() {
        total += match effect {
            Effect::Set(Some(entry)) => units(entry),
            Effect::Set(None) => return false,
            Effect::Edit(splices) => {
                let tails: usize = splices.iter().map(|s| units(&s.tail)).sum();
                tails + base.overlay_entry(path).map_or(1, units)
            }
        };
        if total > OVERLAY_UNITS {
            return false;
        }
    }
    true
}

/// The base root with the effects applied to its overlay; shards unchanged.
async fn with_overlay(
    store: &dyn ObjectStore,
    layout: &Layout,
    nodes: &NodeCache,
    base: &RootNode,
    effects: Effects,
) -> Result<RootNode, StorageError> {
    let mut overlay: BTreeMap<String, FileEntry> = base
        .overlay
        .iter()
        .map(|e| (e.path.clone(), e.clone()))
        .collect();
    let (mut files, mut bytes) = (base.files, base.bytes);
    for (path, effect) in effects.drain() {
        let previous = match overlay.remove(&path) {
            Some(entry) => Some(entry),
            None => match base.shard_holding(&path) {
                Some(i) => {
                    let shard = cached_shard(store, layout, nodes, &base.shards[i].hash).await?;
                    shard
                        .binary_search_by(|e| e.path.as_str().cmp(&path))
                        .ok()
                        .map(|j| shard[j].clone())
                }
                None => None,
            },
        };
        let previous_size = previous.as_ref().map(|e| e.size);
        let Some(entry) = effect.apply(previous) else {
            // `fits_overlay` sends removals to the shard merge.
            return Err(StorageError::InvalidEntry {
                path,
                reason: "a removal cannot be kept in an index overlay".into(),
            });
        };
        match previous_size {
            Some(size) => bytes = bytes.saturating_sub(size) + entry.size,
            None => {
                files += 1;
                bytes += entry.size;
            }
        }
        overlay.insert(path, entry);
    }
    Ok(RootNode {
        files,
        bytes,
        shards: base.shards.clone(),
        overlay: overlay.into_values().collect(),
    })
}

/// Merges the change set into the base shards: the new root (without
/// overlay) and how many shards were newly cut.
async fn merge_shards(
    store: &Arc<dyn ObjectStore>,
    layout: &Layout,
    limits: ShardLimits,
    base_shards: Vec<ShardInfo>,
    set: ChangeSet,
) -> Result<(RootNode, usize), StorageError> {
    let ChangeSet {
        mut effects,
        deleted,
    } = set;
    let mut writer = ShardWriter::new(Arc::clone(store), layout.clone(), limits);
    for (i, shard) in base_shards.iter().enumerate() {
        // Shard i owns the paths before the next shard's first path; earlier ones are consumed.
        let owned_until = base_shards.get(i + 1).map(|next| next.first.as_str());
        let has_effects = effects.any_before(owned_until);
        if !has_effects && deleted.remove_all_of(&shard.first, &shard.last) {
            continue;
        }
        let touched = has_effects || deleted.touch(&shard.first, &shard.last);
        if !touched && !writer.wants_more() {
            writer.end_group().await?;
            writer.reuse(shard.clone());
            continue;
        }
        let entries = load_shard(&**store, layout, &shard.hash).await?;
        writer.note_input(shard.hash);
        merge(entries, &mut effects, owned_until, &deleted, &mut writer).await?;
    }
    // With no base shards, everything is new; otherwise the last shard took the rest.
    merge(Vec::new(), &mut effects, None, &deleted, &mut writer).await?;
    writer.end_group().await?;
    writer.finish().await
}

/// Merges one base shard's entries with the effects before `owned_until`, in path order.
async fn merge(
    base: Vec<FileEntry>,
    effects: &mut Effects,
    owned_until: Option<&str>,
    deleted: &Deletions,
    writer: &mut ShardWriter,
) -> Result<(), StorageError> {
    for entry in base {
        while let Some(effect) = effects.pop_before(Some(&entry.path)) {
            writer.push(effect.apply(None)).await?;
        }
        let merged = match effects.pop_at(&entry.path) {
            Some(effect) => effect.apply(Some(entry)),
            None if deleted.covers(&entry.path) => None,
            None => Some(entry),
        };
        writer.push(merged).await?;
    }
    while let Some(effect) = effects.pop_before(owned_until) {
        writer.push(effect.apply(None)).await?;
    }
    Ok(())
}

/// Cuts a sorted stream of entries into shards and uploads them.
struct ShardWriter {
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    limits: ShardLimits,
    pending: Vec<FileEntry>,
    pending_units: usize,
    /// Output shards in order; `None` while its upload task is running.
    slots: Vec<Option<ShardInfo>>,
    in_flight: VecDeque<(usize, JoinHandle<Result<ShardInfo, StorageError>>)>,
    /// Base shards read into the current group: rewriting one unchanged needs no upload.
    inputs: HashSet<ContentHash>,
    /// Shards cut so far (as opposed to reused).
    cut: usize,
}

impl ShardWriter {
    fn new(store: Arc<dyn ObjectStore>, layout: Layout, limits: ShardLimits) -> Self {
        ShardWriter {
            store,
            layout,
            limits,
            pending: Vec::new(),
            pending_units: 0,
            slots: Vec::new(),
            in_flight: VecDeque::new(),
            inputs: HashSet::new(),
            cut: 0,
        }
    }

    /// True when the pending output is too small to stand as a shard of its own.
    fn wants_more(&self) -> bool {
        !self.pending.is_empty() && self.pending_units < self.limits.min
    }

    fn note_input(&mut self, hash: ContentHash) {
        self.inputs.insert(hash);
    }

    fn reuse(&mut self, shard: ShardInfo) {
        self.slots.push(Some(shard));
    }

    async fn push(&mut self, entry: Option<FileEntry>) -> Result<(), StorageError> {
        let Some(entry) = entry else {
            return Ok(());
        };
        self.pending_units += units(&entry);
        self.pending.push(entry);
        if self.pending_units >= self.limits.fill + self.limits.max {
            let cut = split_point(&self.pending, self.limits.fill);
            self.emit(cut).await?;
        }
        Ok(())
    }

    /// Flushes the pending entries: one shard, or two halves if too big for one.
    async fn end_group(&mut self) -> Result<(), StorageError> {
        if self.pending_units > self.limits.max && self.pending.len() > 1 {
            let cut = split_point(&self.pending, self.pending_units / 2);
            self.emit(cut).await?;
        }
        if !self.pending.is_empty() {
            self.emit(self.pending.len()).await?;
        }
        self.inputs.clear();
        Ok(())
    }

    /// Turns the first `count` pending entries into a shard.
    async fn emit(&mut self, count: usize) -> Result<(), StorageError> {
        let entries: Vec<FileEntry> = self.pending.drain(..count).collect();
        self.pending_units = self.pending.iter().map(units).sum();
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            self.settle_oldest().await?;
        }
        let store = Arc::clone(&self.store);
        let layout = self.layout.clone();
        let inputs = self.inputs.clone();
        let task =
            tokio::spawn(async move { upload_shard(&*store, &layout, entries, &inputs).await });
        self.in_flight.push_back((self.slots.len(), task));
        self.slots.push(None);
        self.cut += 1;
        Ok(())
    }

    async fn settle_oldest(&mut self) -> Result<(), StorageError> {
        if let Some((slot, task)) = self.in_flight.pop_front() {
            let shard = task.await??;
            self.slots[slot] = Some(shard);
        }
        Ok(())
    }

    /// Waits for all uploads; returns the root describing the shards and
    /// how many of them were newly cut.
    async fn finish(mut self) -> Result<(RootNode, usize), StorageError> {
        while !self.in_flight.is_empty() {
            self.settle_oldest().await?;
        }
        let written = self.cut;
        let shards: Vec<ShardInfo> = self.slots.into_iter().flatten().collect();
        let root = RootNode {
            files: shards.iter().map(|s| s.files).sum(),
            bytes: shards.iter().map(|s| s.bytes).sum(),
            shards,
            overlay: Vec::new(),
        };
        Ok((root, written))
    }
}

async fn upload_shard(
    store: &dyn ObjectStore,
    layout: &Layout,
    entries: Vec<FileEntry>,
    unchanged_if: &HashSet<ContentHash>,
) -> Result<ShardInfo, StorageError> {
    let (hash, stored) = encode_object("index shard", &IndexNodeOut::ShardV2(&entries))?;
    if !unchanged_if.contains(&hash) {
        put(store, &layout.index(&hash), stored.into()).await?;
    }
    let (first, last) = match (entries.first(), entries.last()) {
        (Some(first), Some(last)) => (first.path.clone(), last.path.clone()),
        _ => {
            return Err(StorageError::Encode {
                what: "index shard",
                reason: "empty shard".into(),
            });
        }
    };
    Ok(ShardInfo {
        first,
        last,
        files: entries.len() as u64,
        bytes: entries.iter().map(|e| e.size).sum(),
        hash,
    })
}

/// The shard-size weight of an entry: one unit per started [`UNIT_BYTES`] of encoding.
fn units(entry: &FileEntry) -> usize {
    // Close to postcard's size: path, size, hash, per chunk hash, len and
    // location, per piece length and digest.
    let approx = entry.path.len() + 48 + entry.chunks.len() * 80 + entry.pieces.len() * 72;
    approx.div_ceil(UNIT_BYTES).max(1)
}

/// How many leading entries make up at least `target` units (at least one, not all if avoidable).
fn split_point(entries: &[FileEntry], target: usize) -> usize {
    let mut total = 0;
    for (i, entry) in entries.iter().enumerate() {
        total += units(entry);
        if total >= target {
            return (i + 1).min(entries.len().saturating_sub(1)).max(1);
        }
    }
    entries.len()
}
