//! A spout's `/pfs/out`: a named pipe (FIFO) user code writes tar streams
//! to, as Pachyderm 1.9's spouts do. [`make_out_fifo`] puts the pipe where
//! the sandbox mounts `/pfs/out`; [`read_archives`] reads it on the host,
//! reopening it after each writer closes it, and turns it into
//! [`TarEvent`]s: the regular files of each archive, then the archive's end.
//!
//! An archive ends at tar's end-of-archive marker (a zero block), so one
//! writer may send several archives without closing the pipe, and several
//! writers may open and close it one after another; the zero blocks after
//! the marker (tar pads archives to its record size) are skipped. When the
//! spout stops, an archive not complete is not ended (none of it is kept).
//! (A stream that ends, as a file would, between entries ends its archive
//! there, and in the middle of an entry gives [`TarEvent::Truncated`].)
//!
//! Invariants: nothing is read from anywhere but the pipe; entry names are
//! cleaned into absolute paths without `.` or `..` (entries that leave the
//! root are skipped); only regular files become files (directories are
//! implied, links and devices are skipped and reported).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::{Result, io};

/// How much of an entry's content one [`TarEvent::Data`] carries at most.
const DATA_CHUNK: usize = 1 << 20;
const BLOCK: usize = 512;

/// What [`read_archives`] finds in the pipe.
#[derive(Debug, PartialEq, Eq)]
pub enum TarEvent {
    /// A regular file starts, at this absolute path.
    File(String),
    /// Content of the current file.
    Data(Vec<u8>),
    /// The current archive is complete.
    End,
    /// The writer closed the pipe in the middle of an entry.
    Truncated,
    /// An entry that is not kept (a link, a device, a path leaving the root).
    Skipped { name: String, why: &'static str },
}

/// Creates the named pipe `slot/pfs/out` (mode 0666: user code may run as
/// another user than pachd), replacing what was there.
pub fn make_out_fifo(slot: &Path) -> Result<std::path::PathBuf> {
    let pfs = slot.join("pfs");
    std::fs::create_dir_all(&pfs).map_err(io("cannot create", &pfs))?;
    let out = pfs.join("out");
    match std::fs::symlink_metadata(&out) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(&out).map_err(io("cannot remove", &out))?,
        Ok(_) => std::fs::remove_file(&out).map_err(io("cannot remove", &out))?,
        Err(_) => {}
    }
    let c = std::ffi::CString::new(out.as_os_str().as_encoded_bytes())
        .map_err(|e| io("cannot create", &out)(std::io::Error::other(e)))?;
    // SAFETY: `c` is a valid NUL-terminated path.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o666) } != 0 {
        return Err(io("cannot create the named pipe", &out)(
            std::io::Error::last_os_error(),
        ));
    }
    // mkfifo's mode is filtered by the umask.
    std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .map_err(io("cannot open up", &out))?;
    Ok(out)
}

/// Whether `path` is a named pipe.
pub fn is_fifo(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// Reads archives from the pipe at `fifo` until `stop` is set and nothing
/// more is waiting in the pipe, sending what it finds to `send` (which
/// returns false once nobody listens). Blocking: run it on a thread of its
/// own. An archive not complete when it stops is not ended.
///
/// The pipe is opened for reading and writing, so it never reads as ended
/// and is never closed while user code may open it: a writer that opens it
/// just as a reader closes would see its writes fail (`EPIPE`), which
/// Pachyderm 1.9's spouts leave user code to retry.
pub fn read_archives(
    fifo: &Path,
    stop: &Arc<AtomicBool>,
    mut send: impl FnMut(TarEvent) -> bool,
) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(fifo)
        .map_err(io("cannot open", fifo))?;
    let mut pipe = Stoppable { file, stop };
    match read_stream(&mut pipe, &mut send) {
        Err(e) if stop.load(Ordering::SeqCst) && e.kind() == std::io::ErrorKind::Interrupted => {
            Ok(())
        }
        Err(e) => Err(io("cannot read", fifo)(e)),
        Ok(_) => Ok(()),
    }
}

/// A pipe whose reads end (`Interrupted`) once `stop` is set and nothing is
/// left to read.
struct Stoppable<'a> {
    file: File,
    stop: &'a AtomicBool,
}

impl Read for Stoppable<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::fd::AsRawFd;
        loop {
            let mut fd = libc::pollfd {
                fd: self.file.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            let ready = unsafe { libc::poll(&mut fd, 1, 200) };
            if ready > 0 {
                return self.file.read(buf);
            }
            if self.stop.load(Ordering::SeqCst) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Interrupted,
                    "the spout stopped",
                ));
            }
        }
    }
}

/// Reads archives until the stream ends (or fails). False when the receiver
/// of the events is gone.
fn read_stream(
    pipe: &mut impl Read,
    send: &mut impl FnMut(TarEvent) -> bool,
) -> std::io::Result<bool> {
    let mut header = [0u8; BLOCK];
    // Entries seen in the current archive.
    let mut entries = 0usize;
    // A long name (GNU 'L', pax 'path') for the next entry.
    let mut long_name: Option<String> = None;
    loop {
        match read_full(pipe, &mut header)? {
            0 => {
                // The writer closed the pipe between entries.
                if entries > 0 && !send(TarEvent::End) {
                    return Ok(false);
                }
                return Ok(true);
            }
            BLOCK => {}
            _ => return Ok(send(TarEvent::Truncated)),
        }
        if header.iter().all(|&b| b == 0) {
            // End of an archive, or the padding after one.
            if entries > 0 && !send(TarEvent::End) {
                return Ok(false);
            }
            entries = 0;
            long_name = None;
            continue;
        }
        let Some(size) = octal(&header[124..136]) else {
            return Ok(send(TarEvent::Truncated));
        };
        let kind = header[156];
        let name = long_name.take().unwrap_or_else(|| header_name(&header));
        entries += 1;
        match kind {
            b'L' | b'x' => {
                let mut data = vec![0u8; size as usize];
                if read_full(pipe, &mut data)? < data.len() || !skip_padding(pipe, size)? {
                    return Ok(send(TarEvent::Truncated));
                }
                long_name = if kind == b'L' {
                    Some(cstr(&data))
                } else {
                    pax_path(&data)
                };
                entries -= 1;
            }
            b'0' | 0 | b'7' => {
                let Some(path) = clean(&name) else {
                    let why = "its path leaves the output's root";
                    if !send(TarEvent::Skipped { name, why }) {
                        return Ok(false);
                    }
                    if !skip(pipe, size)? {
                        return Ok(send(TarEvent::Truncated));
                    }
                    continue;
                };
                if !send(TarEvent::File(path)) {
                    return Ok(false);
                }
                let mut left = size;
                while left > 0 {
                    let mut chunk = vec![0u8; left.min(DATA_CHUNK as u64) as usize];
                    let n = read_full(pipe, &mut chunk)?;
                    if n < chunk.len() {
                        return Ok(send(TarEvent::Truncated));
                    }
                    left -= n as u64;
                    if !send(TarEvent::Data(chunk)) {
                        return Ok(false);
                    }
                }
                if !skip_padding(pipe, size)? {
                    return Ok(send(TarEvent::Truncated));
                }
            }
            b'5' | b'g' => {
                if !skip(pipe, size)? {
                    return Ok(send(TarEvent::Truncated));
                }
            }
            _ => {
                let why = match kind {
                    b'1' | b'2' => "links are not kept; put the file itself in the archive",
                    _ => "only regular files are kept",
                };
                if !send(TarEvent::Skipped { name, why }) {
                    return Ok(false);
                }
                if !skip(pipe, size)? {
                    return Ok(send(TarEvent::Truncated));
                }
            }
        }
    }
}

/// Reads until `buf` is full or the stream ends; the count read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Skips an entry's content and padding; false when the stream ended first.
fn skip(r: &mut impl Read, size: u64) -> std::io::Result<bool> {
    let total = size.div_ceil(BLOCK as u64) * BLOCK as u64;
    let copied = std::io::copy(&mut r.take(total), &mut std::io::sink())?;
    Ok(copied == total)
}

/// Skips the padding after `size` bytes of content.
fn skip_padding(r: &mut impl Read, size: u64) -> std::io::Result<bool> {
    let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
    let copied = std::io::copy(&mut r.take(pad), &mut std::io::sink())?;
    Ok(copied == pad)
}

/// A numeric header field: octal text, or GNU's base-256 (high bit set).
fn octal(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(v);
    }
    let text = cstr(field);
    let text = text.trim();
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// The entry's name: ustar's prefix and name.
fn header_name(h: &[u8; BLOCK]) -> String {
    let name = cstr(&h[0..100]);
    let ustar = &h[257..262] == b"ustar";
    let prefix = if ustar {
        cstr(&h[345..500])
    } else {
        String::new()
    };
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    }
}

/// The `path` record of a pax extended header ("LEN path=VALUE\n" records).
fn pax_path(data: &[u8]) -> Option<String> {
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        if len <= space || len > rest.len() {
            return None;
        }
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(v) = record.strip_prefix(b"path=") {
            return Some(String::from_utf8_lossy(v).into_owned());
        }
        rest = &rest[len..];
    }
    None
}

/// An entry name as an absolute path: `./a/b`, `a//b/` and `/a/b` are
/// `/a/b`; None when it is empty or `..` leaves the root.
fn clean(name: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(format!("/{}", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ustar header for a file of `size` bytes (checksum left out: not read).
    fn header(name: &str, kind: u8, size: usize) -> Vec<u8> {
        let mut h = vec![0u8; BLOCK];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let s = format!("{size:011o}");
        h[124..135].copy_from_slice(s.as_bytes());
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h
    }

    fn entry(name: &str, data: &[u8]) -> Vec<u8> {
        let mut v = header(name, b'0', data.len());
        v.extend_from_slice(data);
        v.resize(v.len() + (BLOCK - data.len() % BLOCK) % BLOCK, 0);
        v
    }

    fn events(stream: &[u8]) -> Vec<TarEvent> {
        let mut out = Vec::new();
        read_stream(&mut &stream[..], &mut |e| {
            out.push(e);
            true
        })
        .unwrap();
        out
    }

    #[test]
    fn archives_in_one_stream_end_at_their_markers() {
        let mut s = entry("./a.txt", b"hello");
        s.extend(header("./dir/", b'5', 0));
        s.extend(entry("dir/b", b""));
        s.extend(vec![0u8; BLOCK * 20]); // end marker and record padding
        s.extend(entry("/c", &[7u8; 1000]));
        s.extend(header("l", b'2', 0));
        // Closed without an end marker: the archive ends there.
        assert_eq!(
            events(&s),
            [
                TarEvent::File("/a.txt".into()),
                TarEvent::Data(b"hello".to_vec()),
                TarEvent::File("/dir/b".into()),
                TarEvent::End,
                TarEvent::File("/c".into()),
                TarEvent::Data(vec![7u8; 1000]),
                TarEvent::Skipped {
                    name: "l".into(),
                    why: "links are not kept; put the file itself in the archive"
                },
                TarEvent::End,
            ]
        );
    }

    #[test]
    fn long_names_escapes_and_truncation() {
        let long = format!("{}/f", "d".repeat(150));
        let mut s = header("././@LongLink", b'L', long.len() + 1);
        s.extend(format!("{long}\0").as_bytes());
        s.resize(BLOCK * 2, 0);
        s.extend(entry("short", b"x"));
        let pax = "12 path=p/q\n";
        assert_eq!(pax.len(), 12);
        s.extend(header("PaxHeader", b'x', pax.len()));
        s.extend(pax.as_bytes());
        s.resize(s.len() + BLOCK - pax.len(), 0);
        s.extend(entry("ignored-name", b"y"));
        s.extend(entry("../../etc/passwd", b"z"));
        let mut cut = entry("big", &[1u8; 2000]);
        cut.truncate(BLOCK + 100);
        s.extend(cut);
        let e = events(&s);
        assert_eq!(e[0], TarEvent::File(format!("/{long}")));
        assert_eq!(e[2], TarEvent::File("/p/q".into()));
        assert!(matches!(&e[4], TarEvent::Skipped { name, .. } if name == "../../etc/passwd"));
        assert_eq!(e[5], TarEvent::File("/big".into()));
        assert_eq!(e.last(), Some(&TarEvent::Truncated));
        assert_eq!(clean("a/../b"), Some("/b".into()));
        assert_eq!(clean("./"), None);
    }
}
