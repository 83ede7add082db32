//! `create/inspect/list/delete secret`: the secrets pipelines give their
//! user code (`transform.secrets`). A secret file is a Kubernetes secret
//! manifest (JSON or YAML), the form Pachyderm 1.9 users keep them in:
//! `metadata.name`, base64 values under `data`, plain ones under
//! `stringData`. Values are never printed back.

use std::collections::HashMap;
use std::io::{Read, Write};

use anyhow::{Context, bail};
use base64::Engine;
use clap::Args;
use pach_api::json::FieldNames;
use pach_api::pachrs::v1 as ext;
use serde_json::Value;

use crate::client::{connect, status};
use crate::output::{self, Format, Table, message_json};

#[derive(Debug, Args)]
pub struct CreateSecret {
    /// The Kubernetes secret manifest (JSON or YAML), or - for stdin.
    #[arg(short = 'f', long = "file")]
    pub file: String,
}

/// The request a Kubernetes secret manifest describes.
fn request_of(text: &str) -> anyhow::Result<ext::CreateSecretRequest> {
    let v: Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).context("the secret file is not valid JSON")?
    } else {
        serde_yaml_ng::from_str(text).context("the secret file is not valid YAML")?
    };
    if let Some(kind) = v.get("kind").and_then(Value::as_str)
        && kind != "Secret"
    {
        bail!("the file describes a Kubernetes '{kind}', not a Secret");
    }
    let name = v["metadata"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .context("the secret has no metadata.name")?
        .to_string();
    let mut data: HashMap<String, Vec<u8>> = HashMap::new();
    if let Some(m) = v.get("data").and_then(Value::as_object) {
        for (k, val) in m {
            let text = val
                .as_str()
                .with_context(|| format!("data.{k} is not a base64 string"))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .with_context(|| {
                    format!("data.{k} is not valid base64 (plain text goes under stringData)")
                })?;
            data.insert(k.clone(), bytes);
        }
    }
    if let Some(m) = v.get("stringData").and_then(Value::as_object) {
        for (k, val) in m {
            let text = val
                .as_str()
                .with_context(|| format!("stringData.{k} is not a string"))?;
            data.insert(k.clone(), text.as_bytes().to_vec());
        }
    }
    if data.is_empty() {
        bail!("secret '{name}' has no values; put them under data (base64) or stringData");
    }
    Ok(ext::CreateSecretRequest {
        name,
        r#type: v["type"].as_str().unwrap_or_default().to_string(),
        data,
    })
}

pub async fn create(a: CreateSecret) -> anyhow::Result<()> {
    let text = if a.file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the secret from stdin")?;
        s
    } else {
        std::fs::read_to_string(&a.file)
            .with_context(|| format!("cannot read the secret file '{}'", a.file))?
    };
    let request = request_of(&text)?;
    let mut c = connect().await?;
    c.extension.create_secret(request).await.map_err(status)?;
    Ok(())
}

fn ns(t: &Option<prost_types::Timestamp>) -> i64 {
    super::pipeline::ns(t)
}

pub async fn inspect(name: &str, format: &Format) -> anyhow::Result<()> {
    let mut c = connect().await?;
    let s = c
        .extension
        .inspect_secret(ext::SecretRequest { name: name.into() })
        .await
        .map_err(status)?
        .into_inner();
    let mut out = super::stdout();
    if format.is_human() {
        writeln!(out, "Name: {}", s.name)?;
        writeln!(out, "Type: {}", s.r#type)?;
        writeln!(out, "Keys: {}", s.keys.join(", "))?;
        writeln!(out, "Created: {}", output::ago(ns(&s.created)))?;
    } else {
        format.print(&mut out, &[message_json(&s, FieldNames::Proto)?])?;
    }
    super::finish(out)
}

pub async fn list(format: &Format) -> anyhow::Result<()> {
    let mut c = connect().await?;
    let all = c
        .extension
        .list_secret(())
        .await
        .map_err(status)?
        .into_inner()
        .secret_info;
    let mut out = super::stdout();
    if format.is_human() {
        let mut t = Table::new(&["NAME", "TYPE", "KEYS", "CREATED"]);
        for s in &all {
            t.row(vec![
                s.name.clone(),
                s.r#type.clone(),
                s.keys.join(", "),
                output::ago(ns(&s.created)),
            ]);
        }
        t.print(&mut out)?;
    } else {
        let objects = all
            .iter()
            .map(|s| message_json(s, FieldNames::Proto))
            .collect::<anyhow::Result<Vec<_>>>()?;
        format.print(&mut out, &objects)?;
    }
    super::finish(out)
}

pub async fn delete(name: &str) -> anyhow::Result<()> {
    let mut c = connect().await?;
    c.extension
        .delete_secret(ext::SecretRequest { name: name.into() })
        .await
        .map_err(status)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_manifests_become_requests() {
        let r = request_of(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\ntype: Opaque\ndata: {password: aHVudGVyMg==}\nstringData: {user: admin}\n",
        )
        .unwrap();
        assert_eq!(r.name, "db");
        assert_eq!(r.r#type, "Opaque");
        assert_eq!(r.data["password"], b"hunter2");
        assert_eq!(r.data["user"], b"admin");
        let err = request_of(r#"{"kind": "ConfigMap", "metadata": {"name": "x"}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("ConfigMap"), "{err}");
        let err = request_of(r#"{"metadata": {"name": "x"}, "data": {"k": "not base64!"}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("data.k") && err.contains("stringData"),
            "{err}"
        );
        let err = request_of(r#"{"metadata": {"name": "x"}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no values"), "{err}");
    }
}
