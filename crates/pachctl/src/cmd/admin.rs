//! `extract` and `restore`: a whole cluster as one stream, to stdout / from
//! stdin, or to / from a URL that pachd reads and writes itself.

use std::io::{Read, Write};

use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use pach_api as api;

use crate::client::{connect, status};

#[derive(Debug, Args)]
pub struct Extract {
    /// Leave the bucket's objects out (copy the bucket separately, as in the
    /// migration guide).
    #[arg(long)]
    pub no_objects: bool,
    /// Write the stream to this URL (s3://, az://, gs://, file://) instead of stdout.
    #[arg(long)]
    pub url: Option<String>,
}

#[derive(Debug, Args)]
pub struct Restore {
    /// Read the stream from this URL instead of stdin.
    #[arg(long)]
    pub url: Option<String>,
}

fn report(verb: &str, s: Option<api::StreamSummary>) {
    if let Some(s) = s {
        eprintln!(
            "{verb} {} records and {} objects ({} bytes)",
            s.records, s.objects, s.object_bytes
        );
    }
}

pub async fn extract(a: Extract) -> anyhow::Result<()> {
    let to_stdout = a.url.is_none();
    if to_stdout && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        anyhow::bail!(
            "the extract stream is binary: redirect it (`pachctl extract > backup`) or use --url"
        );
    }
    let mut c = connect().await?;
    let mut replies = c
        .admin
        .extract(api::ExtractRequest {
            no_objects: a.no_objects,
            url: a.url.unwrap_or_default(),
        })
        .await
        .map_err(status)?
        .into_inner();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    let mut last = None;
    while let Some(reply) = replies.next().await {
        let reply = reply.map_err(status)?;
        out.write_all(&reply.data)
            .context("writing the stream to stdout")?;
        if reply.summary.is_some() {
            last = reply.summary;
        }
    }
    out.flush().context("writing the stream to stdout")?;
    if last.is_none() {
        anyhow::bail!("the extract ended early; the output is incomplete");
    }
    report("extracted", last);
    Ok(())
}

pub async fn restore(a: Restore) -> anyhow::Result<()> {
    let mut c = connect().await?;
    let s = if let Some(url) = a.url {
        let first = api::RestoreRequest { data: vec![], url };
        c.admin
            .restore(futures::stream::iter([first]))
            .await
            .map_err(status)?
            .into_inner()
    } else {
        let (tx, rx) = tokio::sync::mpsc::channel::<api::RestoreRequest>(4);
        let reader = std::thread::spawn(move || -> std::io::Result<()> {
            let mut stdin = std::io::stdin().lock();
            loop {
                let mut buf = vec![0u8; 1 << 20];
                let n = stdin.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                buf.truncate(n);
                let msg = api::RestoreRequest {
                    data: buf,
                    url: String::new(),
                };
                if tx.blocking_send(msg).is_err() {
                    return Ok(());
                }
            }
        });
        let result = c
            .admin
            .restore(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await;
        let read = reader
            .join()
            .map_err(|_| anyhow::anyhow!("reading stdin failed"))?;
        read.context("reading the stream from stdin")?;
        result.map_err(status)?.into_inner()
    };
    report("restored", Some(s));
    Ok(())
}
