//! The cluster's administration through pachd's extension service:
//! `extract` and `restore` (a whole cluster as one stream, to stdout / from
//! stdin, or to / from a URL that pachd reads and writes itself), `verify`,
//! `pause`/`resume writes`, `garbage-collect`; and Pachyderm's `inspect
//! cluster`.

use std::io::{Read, Write};

use anyhow::{Context, bail};
use clap::Args;
use futures::StreamExt;
use pach_api::pachrs::v1 as api;

use crate::client::{connect, escape, status};

#[derive(Debug, Args)]
#[group(skip)]
pub struct Extract {
    /// Leave the bucket's objects out (copy the bucket separately, as in the
    /// migration guide).
    #[arg(long)]
    pub no_objects: bool,
    /// Write the stream to this URL (s3://, az://, gs://, file://) instead of stdout.
    #[arg(short, long)]
    pub url: Option<String>,
    /// Only what changed after this checkpoint (printed by an earlier extract);
    /// restoring it on top of that extract's restore brings the target up to date.
    #[arg(long)]
    pub since: Option<String>,
    /// The stream's format: this pachd's own self-checking stream, or
    /// Pachyderm 1.9's (snappy-framed admin.Op messages, which Pachyderm
    /// 1.9's `pachctl restore` reads).
    #[arg(long, value_enum, default_value_t = ExtractFormat::Native)]
    pub format: ExtractFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExtractFormat {
    Native,
    Pachyderm,
}

#[derive(Debug, Args)]
pub struct Restore {
    /// Read the stream from this URL instead of stdin.
    #[arg(short, long)]
    pub url: Option<String>,
    /// For a Pachyderm extract taken with --no-objects: the URL of that
    /// Pachyderm cluster's bucket (cloned), at its storage root (the folder
    /// holding object/, block/ and index/); pachd reads the objects there.
    #[arg(long, value_name = "URL")]
    pub pachyderm_bucket: Option<String>,
}

/// A byte counter on stderr when it is a terminal (streams have no known size).
fn progress(what: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
        "{{spinner}} {what} {{bytes}} ({{bytes_per_sec}}) {{elapsed}}"
    )) {
        bar.set_style(style);
    }
    // Drawn at once: a short transfer may end before the first steady tick.
    bar.tick();
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    Some(bar)
}

fn report(verb: &str, s: Option<api::StreamSummary>) {
    if let Some(s) = s {
        eprintln!(
            "{verb} {} records and {} objects ({} bytes)",
            s.records, s.objects, s.object_bytes
        );
        if !s.checkpoint.is_empty() {
            eprintln!(
                "checkpoint: {} (`pachctl extract --since {}` writes what changes after it)",
                s.checkpoint, s.checkpoint
            );
        }
    }
}

/// `extract --format pachyderm`: admin.API's ops, written as Pachyderm's
/// `pachctl extract` writes them (each op after its length as an 8-byte
/// little-endian integer, the whole snappy-framed), or by pachd to the URL.
async fn extract_pachyderm(a: Extract) -> anyhow::Result<()> {
    if a.since.is_some() {
        anyhow::bail!(
            "--since needs this pachd's own format: Pachyderm's format has no checkpoints; drop --format pachyderm or --since"
        );
    }
    let mut c = connect().await?;
    let mut ops = c
        .admin
        .extract(pach_api::admin::ExtractRequest {
            url: a.url.clone().unwrap_or_default(),
            no_objects: a.no_objects,
            no_repos: false,
            no_pipelines: false,
        })
        .await
        .map_err(status)?
        .into_inner();
    let stdout = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    let mut out = snap::write::FrameEncoder::new(stdout);
    let bar = progress("extracting");
    let mut count = 0u64;
    while let Some(op) = ops.next().await {
        let bytes = prost::Message::encode_to_vec(&op.map_err(status)?);
        out.write_all(&(bytes.len() as i64).to_le_bytes())
            .and_then(|()| out.write_all(&bytes))
            .context("writing the stream to stdout")?;
        count += 1;
        if let Some(b) = &bar {
            b.inc(bytes.len() as u64 + 8);
        }
    }
    out.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|mut w| w.flush())
        .context("writing the stream to stdout")?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if a.url.is_none() {
        eprintln!("extracted {count} ops in Pachyderm 1.9's format");
    }
    Ok(())
}

pub async fn extract(a: Extract) -> anyhow::Result<()> {
    let to_stdout = a.url.is_none();
    if to_stdout && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        anyhow::bail!(
            "the extract stream is binary: redirect it (`pachctl extract > backup`) or use --url"
        );
    }
    if a.format == ExtractFormat::Pachyderm {
        return extract_pachyderm(a).await;
    }
    let mut c = connect().await?;
    let mut replies = c
        .extension
        .extract(api::ExtractRequest {
            no_objects: a.no_objects,
            url: a.url.unwrap_or_default(),
            since: a.since.unwrap_or_default(),
        })
        .await
        .map_err(status)?
        .into_inner();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    let mut last = None;
    let bar = progress("extracting");
    while let Some(reply) = replies.next().await {
        let reply = reply.map_err(status)?;
        out.write_all(&reply.data)
            .context("writing the stream to stdout")?;
        if let Some(b) = &bar {
            b.inc(reply.data.len() as u64);
        }
        if reply.summary.is_some() {
            last = reply.summary;
        }
    }
    out.flush().context("writing the stream to stdout")?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if last.is_none() {
        anyhow::bail!("the extract ended early; the output is incomplete");
    }
    report("extracted", last);
    Ok(())
}

/// Where a restore or verify reads its stream from.
enum Source {
    Stdin,
    Url(String),
}

/// Sends a stream to pachd as `RestoreRequest`s: the bytes of stdin, or
/// just the URL for pachd to read; `bar` counts the bytes sent from stdin.
async fn send_stream(
    source: Source,
    pachyderm_bucket: String,
    bar: Option<indicatif::ProgressBar>,
) -> anyhow::Result<(
    tokio_stream::wrappers::ReceiverStream<api::RestoreRequest>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
)> {
    let (tx, rx) = tokio::sync::mpsc::channel::<api::RestoreRequest>(4);
    let task = match source {
        Source::Url(url) => tokio::spawn(async move {
            let first = api::RestoreRequest {
                data: vec![],
                url,
                pachyderm_bucket,
            };
            let _ = tx.send(first).await;
            Ok(())
        }),
        Source::Stdin => tokio::task::spawn_blocking(move || {
            if !pachyderm_bucket.is_empty() {
                let first = api::RestoreRequest {
                    pachyderm_bucket,
                    ..Default::default()
                };
                if tx.blocking_send(first).is_err() {
                    return Ok(());
                }
            }
            let mut stdin = std::io::stdin().lock();
            loop {
                let mut buf = vec![0u8; 1 << 20];
                let n = stdin
                    .read(&mut buf)
                    .context("reading the stream from stdin")?;
                if n == 0 {
                    return Ok(());
                }
                buf.truncate(n);
                if let Some(b) = &bar {
                    b.inc(n as u64);
                }
                let msg = api::RestoreRequest {
                    data: buf,
                    ..Default::default()
                };
                if tx.blocking_send(msg).is_err() {
                    return Ok(());
                }
            }
        }),
    };
    Ok((tokio_stream::wrappers::ReceiverStream::new(rx), task))
}

pub async fn restore(a: Restore) -> anyhow::Result<()> {
    let source = a.url.map(Source::Url).unwrap_or(Source::Stdin);
    let mut c = connect().await?;
    // Bytes sent, then (the stream is validated whole before it is applied)
    // the time pachd takes to check and apply it.
    let bar = progress("restoring: sent");
    let bucket = a.pachyderm_bucket.unwrap_or_default();
    let (requests, task) = send_stream(source, bucket, bar.clone()).await?;
    let result = c.extension.restore(requests).await;
    task.await??;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    report("restored", Some(result.map_err(status)?.into_inner()));
    Ok(())
}

#[derive(Debug, Args)]
pub struct Verify {
    /// Read the stream from this URL instead of stdin.
    #[arg(short, long)]
    pub url: Option<String>,
    /// Compare with another cluster (HOST:PORT, as pachd reaches it) instead
    /// of a stream: pachd reads that cluster's records itself.
    #[arg(long, conflicts_with = "url")]
    pub from: Option<String>,
}

/// Compares this cluster with a stream or another cluster; prints each
/// difference as it is found and fails when there is any.
pub async fn verify(a: Verify) -> anyhow::Result<()> {
    let mut c = connect().await?;
    let (replies, task) = match a.from {
        Some(address) => {
            let replies = c
                .extension
                .verify_from(api::VerifyFromRequest { address })
                .await;
            (replies, None)
        }
        None => {
            let source = a.url.map(Source::Url).unwrap_or(Source::Stdin);
            let (requests, task) = send_stream(source, String::new(), None).await?;
            (c.extension.verify(requests).await, Some(task))
        }
    };
    let mut replies = replies.map_err(status)?.into_inner();
    let mut out = super::stdout();
    let mut summary = None;
    while let Some(reply) = replies.next().await {
        let reply = reply.map_err(status)?;
        for d in &reply.differences {
            writeln!(out, "{}", escape(&d.description))?;
        }
        if reply.summary.is_some() {
            summary = reply.summary;
        }
    }
    super::finish(out)?;
    if let Some(task) = task {
        task.await??;
    }
    match summary {
        None => anyhow::bail!("the comparison ended early; run verify again"),
        Some(s) if s.differences > 0 => anyhow::bail!("{} difference(s)", s.differences),
        Some(_) => {
            eprintln!("no differences");
            Ok(())
        }
    }
}

/// `pause writes` / `resume writes`.
pub async fn set_writes(paused: bool, reason: String) -> anyhow::Result<()> {
    let mut c = connect().await?;
    let s = c
        .extension
        .set_writes(api::SetWritesRequest { paused, reason })
        .await
        .map_err(status)?
        .into_inner();
    if s.paused {
        eprintln!(
            "writes paused since {}: clients get a retryable error until `pachctl resume writes`",
            s.since
        );
    } else {
        eprintln!("writes resumed");
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct GarbageCollect {
    /// Keep objects younger than this (uploads in flight), e.g. 10m, 1h, 0s.
    #[arg(long, default_value = "10m")]
    pub grace: String,
    /// Pachyderm 1.9's memory for garbage collection (e.g. 100MB). Ours
    /// sorts on disk, so its memory stays small whatever the cluster's size:
    /// the value is checked, and needs no tuning.
    #[arg(short, long, default_value = "0")]
    pub memory: String,
}

/// A memory size as 1.9 reads `-m` (`0`, `512`, `10MB`, `1.5GiB`...), in bytes.
fn memory_size(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let scale: u64 = match unit.trim_end_matches('b') {
        "" => 1,
        "k" | "ki" => 1 << 10,
        "m" | "mi" => 1 << 20,
        "g" | "gi" => 1 << 30,
        "t" | "ti" => 1 << 40,
        _ => 0,
    };
    match number.parse::<f64>() {
        Ok(n) if scale != 0 && n >= 0.0 => Ok((n * scale as f64) as u64),
        _ => bail!("--memory '{text}' is not a size; give one like 0, 100MB or 1GiB"),
    }
}

pub async fn garbage_collect(a: GarbageCollect) -> anyhow::Result<()> {
    memory_size(&a.memory)?;
    let grace = humantime::parse_duration(&a.grace)
        .with_context(|| format!("--grace '{}' is not a duration like 10m or 1h", a.grace))?;
    let mut c = connect().await?;
    let r = c
        .extension
        .garbage_collect(api::GarbageCollectRequest {
            grace_seconds: grace.as_secs(),
        })
        .await
        .map_err(status)?
        .into_inner();
    eprintln!(
        "deleted {} objects ({}), kept {}",
        r.deleted,
        crate::output::bytes(r.deleted_bytes),
        r.kept
    );
    Ok(())
}

/// `inspect cluster`: the cluster's id, as Pachyderm prints it.
pub async fn inspect_cluster() -> anyhow::Result<()> {
    let mut c = connect().await?;
    let info = c
        .admin
        .inspect_cluster(())
        .await
        .map_err(status)?
        .into_inner();
    let mut out = super::stdout();
    writeln!(out, "{}", escape(&info.id))?;
    super::finish(out)
}
