//! Sorting on disk, so that extract, restore and verify hold the same amount
//! of memory whatever the number of records and objects they go through.
//!
//! A [`Sorter`] takes entries (a key and a payload, both bytes) in any order
//! and holds at most [`BUFFER`] bytes of them: when full, it sorts them and
//! writes them to a run file in a scratch directory. Once finished, runs are
//! merged until at most [`FAN_IN`] are left; [`Sorted::read`] then gives every
//! entry back in key order (equal keys in the order they were pushed) by
//! merging those runs, reading [`READ_BUFFER`] bytes of each at a time, and as
//! many times as needed.
//!
//! The questions extract, restore and verify ask of large key sets ("is every
//! commit a record names in the stream?", "which records of the target are
//! missing from the key list?") are all answered by walking two sorted
//! sequences side by side (a merge join; see [`Cursor`]). Sorted runs rather
//! than a temporary on-disk B-tree (a second redb): writes and reads are
//! sequential, there is no per-entry page work, and the memory used is
//! exactly the buffer while pushing and one read buffer per run while
//! reading — nothing a database's cache or transaction bookkeeping could grow.
//!
//! Invariant: a sorter holds at most [`BUFFER`] bytes of entries while
//! pushing, and one [`READ_BUFFER`] (plus one entry) per run while merging or
//! reading back, whatever is pushed; [`Stats`] counts what was held, and the
//! crate's memory test proves that extract, restore and verify stay flat.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};

use crate::error::{AdminError, Result, io};

/// Bytes of entries a sorter holds before it writes a run. Tests use tiny
/// budgets so that every run, merge and multi-level merge path is exercised.
pub(crate) const BUFFER: usize = if cfg!(test) { 16 << 10 } else { 1 << 20 };
/// Runs merged at once (and so files open at once while reading).
pub(crate) const FAN_IN: usize = if cfg!(test) { 4 } else { 64 };
/// Read buffer per run.
pub(crate) const READ_BUFFER: usize = if cfg!(test) { 4 << 10 } else { 64 << 10 };
/// What an entry costs in memory besides its bytes (the `Vec` and allocator
/// bookkeeping), so that many tiny entries also fill the buffer.
const ENTRY_OVERHEAD: usize = 40;

/// Unique run file names across sorters of the process.
static NEXT_RUN: AtomicU64 = AtomicU64::new(0);

/// A scratch directory for runs, removed with everything in it when dropped.
pub(crate) struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    /// A new directory inside `parent` (created if needed).
    pub(crate) async fn new_in(parent: &Path) -> Result<Scratch> {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(io(format!("creating {}", parent.display())))?;
        let dir = tempfile::Builder::new()
            .prefix("pach-spill-")
            .tempdir_in(parent)
            .map_err(io(format!(
                "creating a scratch directory in {}",
                parent.display()
            )))?;
        Ok(Scratch { dir })
    }

    /// A new sorter whose runs go into this directory.
    pub(crate) fn sorter(&self) -> Sorter {
        Sorter {
            dir: self.dir.path().to_path_buf(),
            buffer: Vec::new(),
            buffered: 0,
            runs: Vec::new(),
            stats: Stats::default(),
        }
    }
}

/// What a sorter held and wrote, for the tests' proof of its bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    pub entries: u64,
    /// The most bytes (with [`ENTRY_OVERHEAD`]) held in memory at once.
    pub peak_buffered: usize,
    /// Run files written, intermediate merges included.
    pub runs_written: u64,
}

/// Entries in, sorted entries out, at most [`BUFFER`] bytes held.
pub(crate) struct Sorter {
    dir: PathBuf,
    /// Each entry as `key_len:u32le key value`.
    buffer: Vec<Vec<u8>>,
    buffered: usize,
    runs: Vec<PathBuf>,
    stats: Stats,
}

impl Sorter {
    pub(crate) async fn push(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut entry = Vec::with_capacity(4 + key.len() + value.len());
        entry.extend_from_slice(&(key.len() as u32).to_le_bytes());
        entry.extend_from_slice(key);
        entry.extend_from_slice(value);
        self.buffered += entry.len() + ENTRY_OVERHEAD;
        self.buffer.push(entry);
        self.stats.entries += 1;
        self.stats.peak_buffered = self.stats.peak_buffered.max(self.buffered);
        if self.buffered >= BUFFER {
            self.spill().await?;
        }
        Ok(())
    }

    /// Sorts the buffer and writes it as one run.
    async fn spill(&mut self) -> Result<()> {
        // Stable: equal keys keep the order they were pushed in.
        self.buffer.sort_by(|a, b| entry_key(a).cmp(entry_key(b)));
        let path = self.run_path();
        let mut w = RunWriter::create(&path).await?;
        for entry in self.buffer.drain(..) {
            w.write(&entry).await?;
        }
        w.finish().await?;
        self.buffered = 0;
        self.buffer = Vec::new();
        self.runs.push(path);
        self.stats.runs_written += 1;
        Ok(())
    }

    fn run_path(&self) -> PathBuf {
        let n = NEXT_RUN.fetch_add(1, AtomicOrdering::Relaxed);
        self.dir.join(format!("{n:08}.run"))
    }

    /// Writes what is buffered and merges runs until at most [`FAN_IN`] are
    /// left. Each level merges consecutive groups of runs and keeps the
    /// groups in order, so equal keys stay in push order and every entry is
    /// rewritten once per level (log base FAN_IN of the run count).
    pub(crate) async fn finish(mut self) -> Result<Sorted> {
        if !self.buffer.is_empty() || self.runs.is_empty() {
            self.spill().await?;
        }
        while self.runs.len() > FAN_IN {
            let mut merged = Vec::with_capacity(self.runs.len().div_ceil(FAN_IN));
            for group in self.runs.chunks(FAN_IN) {
                let path = self.run_path();
                let mut merge = Merge::open(group).await?;
                let mut w = RunWriter::create(&path).await?;
                while let Some(entry) = merge.next().await? {
                    w.write(&entry.0).await?;
                }
                w.finish().await?;
                for run in group {
                    let _ = tokio::fs::remove_file(run).await;
                }
                merged.push(path);
                self.stats.runs_written += 1;
            }
            self.runs = merged;
        }
        tracing::debug!(
            entries = self.stats.entries,
            runs = self.stats.runs_written,
            peak_buffered = self.stats.peak_buffered,
            "sorted on disk"
        );
        Ok(Sorted {
            runs: self.runs,
            #[cfg(test)]
            stats: self.stats,
        })
    }
}

fn entry_key(entry: &[u8]) -> &[u8] {
    let len = u32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]) as usize;
    &entry[4..4 + len]
}

/// The finished runs of a sorter; read them back as often as needed.
pub(crate) struct Sorted {
    runs: Vec<PathBuf>,
    #[cfg(test)]
    stats: Stats,
}

impl Sorted {
    /// Every entry in key order.
    pub(crate) async fn read(&self) -> Result<Merge> {
        Merge::open(&self.runs).await
    }

    /// Keys in order, for membership checks.
    pub(crate) async fn cursor(&self) -> Result<Cursor> {
        Ok(Cursor {
            merge: self.read().await?,
            head: None,
            started: false,
        })
    }

    #[cfg(test)]
    pub(crate) fn stats(&self) -> Stats {
        self.stats
    }
}

/// One entry read back.
pub(crate) struct Entry(Vec<u8>);

impl Entry {
    pub(crate) fn key(&self) -> &[u8] {
        entry_key(&self.0)
    }
    pub(crate) fn value(&self) -> &[u8] {
        &self.0[4 + self.key().len()..]
    }
}

/// The smallest next entry of each run; ties go to the earlier run.
struct Head {
    entry: Entry,
    run: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap pops the largest, we want the smallest.
        (other.entry.key(), other.run).cmp(&(self.entry.key(), self.run))
    }
}

/// Entries of several runs, merged in key order.
pub(crate) struct Merge {
    runs: Vec<RunReader>,
    heads: BinaryHeap<Head>,
}

impl Merge {
    async fn open(paths: &[PathBuf]) -> Result<Merge> {
        let mut runs = Vec::with_capacity(paths.len());
        let mut heads = BinaryHeap::with_capacity(paths.len());
        for (run, path) in paths.iter().enumerate() {
            let mut reader = RunReader::open(path).await?;
            if let Some(entry) = reader.next().await? {
                heads.push(Head { entry, run });
            }
            runs.push(reader);
        }
        Ok(Merge { runs, heads })
    }

    pub(crate) async fn next(&mut self) -> Result<Option<Entry>> {
        let Some(Head { entry, run }) = self.heads.pop() else {
            return Ok(None);
        };
        if let Some(next) = self.runs[run].next().await? {
            self.heads.push(Head { entry: next, run });
        }
        Ok(Some(entry))
    }
}

/// Sorted keys asked about in ascending order: each question moves forward,
/// so the whole check reads the keys once.
pub(crate) struct Cursor {
    merge: Merge,
    head: Option<Entry>,
    started: bool,
}

impl Cursor {
    /// Whether `key` is among the keys. Keys must be asked in ascending
    /// (non-decreasing) order.
    pub(crate) async fn contains(&mut self, key: &[u8]) -> Result<bool> {
        if !self.started {
            self.head = self.merge.next().await?;
            self.started = true;
        }
        while let Some(head) = &self.head {
            match head.key().cmp(key) {
                Ordering::Less => self.head = self.merge.next().await?,
                Ordering::Equal => return Ok(true),
                Ordering::Greater => return Ok(false),
            }
        }
        Ok(false)
    }
}

struct RunWriter {
    path: PathBuf,
    out: BufWriter<tokio::fs::File>,
}

impl RunWriter {
    async fn create(path: &Path) -> Result<RunWriter> {
        let file = tokio::fs::File::create(path)
            .await
            .map_err(io(format!("creating {}", path.display())))?;
        Ok(RunWriter {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(READ_BUFFER, file),
        })
    }

    async fn write(&mut self, entry: &[u8]) -> Result<()> {
        let err = || io(format!("writing {}", self.path.display()));
        self.out
            .write_all(&(entry.len() as u32).to_le_bytes())
            .await
            .map_err(err())?;
        self.out.write_all(entry).await.map_err(err())
    }

    async fn finish(mut self) -> Result<()> {
        self.out
            .flush()
            .await
            .map_err(io(format!("writing {}", self.path.display())))
    }
}

struct RunReader {
    path: PathBuf,
    input: BufReader<tokio::fs::File>,
}

impl RunReader {
    async fn open(path: &Path) -> Result<RunReader> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(io(format!("reading {}", path.display())))?;
        Ok(RunReader {
            path: path.to_path_buf(),
            input: BufReader::with_capacity(READ_BUFFER, file),
        })
    }

    async fn next(&mut self) -> Result<Option<Entry>> {
        let mut len = [0u8; 4];
        match self.input.read_exact(&mut len).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(io(format!("reading {}", self.path.display()))(e)),
        }
        let len = u32::from_le_bytes(len) as usize;
        if len < 4 {
            return Err(AdminError::Io {
                what: format!("reading {}", self.path.display()),
                source: std::io::Error::other("a run entry shorter than its header"),
            });
        }
        let mut entry = vec![0u8; len];
        self.input
            .read_exact(&mut entry)
            .await
            .map_err(io(format!("reading {}", self.path.display())))?;
        Ok(Some(Entry(entry)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sorted_keys(sorted: &Sorted) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut m = sorted.read().await.unwrap();
        let mut out = Vec::new();
        while let Some(e) = m.next().await.unwrap() {
            out.push((e.key().to_vec(), e.value().to_vec()));
        }
        out
    }

    #[tokio::test]
    async fn sorts_far_more_than_its_buffer_holds() {
        let _serial = crate::testkit::serial().await;
        let dir = tempfile::tempdir().unwrap();
        let scratch = Scratch::new_in(dir.path()).await.unwrap();
        let mut s = scratch.sorter();
        // A permutation of 0..N, with a duplicate key per hundred.
        let n: u64 = 20_000;
        let mut expected = Vec::new();
        for i in 0..n {
            let k = (i * 7919) % n;
            let key = format!("key-{k:06}").into_bytes();
            s.push(&key, &i.to_le_bytes()).await.unwrap();
            expected.push((key.clone(), i.to_le_bytes().to_vec()));
            if k.is_multiple_of(100) {
                s.push(&key, b"again").await.unwrap();
                expected.push((key, b"again".to_vec()));
            }
        }
        let sorted = s.finish().await.unwrap();
        // Stable: the sort keeps push order among equal keys.
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(sorted_keys(&sorted).await, expected);
        // Read twice, same result.
        assert_eq!(sorted_keys(&sorted).await.len(), expected.len());
        let stats = sorted.stats();
        assert_eq!(stats.entries, expected.len() as u64);
        assert!(
            stats.peak_buffered <= BUFFER + 64 + ENTRY_OVERHEAD,
            "{stats:?}"
        );
        // Many runs, merged over several levels down to FAN_IN.
        assert!(stats.runs_written as usize > 2 * FAN_IN, "{stats:?}");
        assert!(sorted.runs.len() <= FAN_IN);
    }

    #[tokio::test]
    async fn empty_and_cursor() {
        let _serial = crate::testkit::serial().await;
        let dir = tempfile::tempdir().unwrap();
        let scratch = Scratch::new_in(&dir.path().join("new")).await.unwrap();
        let empty = scratch.sorter().finish().await.unwrap();
        assert!(sorted_keys(&empty).await.is_empty());
        assert!(!empty.cursor().await.unwrap().contains(b"a").await.unwrap());

        let mut s = scratch.sorter();
        for k in ["d", "b", "f", "b", "a"] {
            s.push(k.as_bytes(), b"").await.unwrap();
        }
        let sorted = s.finish().await.unwrap();
        let mut c = sorted.cursor().await.unwrap();
        let mut found = Vec::new();
        for k in ["0", "a", "b", "b", "c", "d", "e", "f", "g"] {
            found.push((k, c.contains(k.as_bytes()).await.unwrap()));
        }
        assert_eq!(
            found,
            [
                ("0", false),
                ("a", true),
                ("b", true),
                ("b", true),
                ("c", false),
                ("d", true),
                ("e", false),
                ("f", true),
                ("g", false)
            ]
        );
        // The scratch directory goes with its runs.
        let path = scratch.dir.path().to_path_buf();
        drop(scratch);
        assert!(!path.exists());
    }
}
