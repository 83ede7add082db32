//! The one typed configuration of pachd: flags, each also readable from the
//! environment, with defaults that work on a laptop.

use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "pachd",
    version,
    about = "The pachd server: versioned data and pipelines"
)]
pub struct Config {
    /// Directory holding the embedded metadata store and, unless --storage says
    /// otherwise, the objects. Default: $XDG_DATA_HOME/pachd or ~/.local/share/pachd.
    #[arg(long, env = "PACHD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Address to serve the gRPC API on (HOST:PORT).
    #[arg(long, env = "PACHD_ADDRESS", default_value = "localhost:30650")]
    pub address: String,

    /// Object store URL for content: a path, file:///path, s3://bucket[/prefix],
    /// az://container, gs://bucket or memory://. Default: <data-dir>/objects.
    /// S3 endpoint, region and credentials come from the AWS_* environment variables.
    #[arg(long, env = "PACHD_STORAGE")]
    pub storage: Option<String>,

    /// Log filter (error, warn, info, debug, trace; or tracing directives).
    /// PACHD_LOG overrides it.
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

impl Config {
    pub fn data_dir(&self) -> PathBuf {
        if let Some(d) = &self.data_dir {
            return d.clone();
        }
        let base = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("pachd")
    }

    pub fn storage_url(&self, data_dir: &std::path::Path) -> String {
        match &self.storage {
            Some(s) => s.clone(),
            None => data_dir.join("objects").display().to_string(),
        }
    }
}
