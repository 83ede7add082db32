//! Services: a pipeline whose user code runs on over the current inputs and
//! serves a port (Pachyderm 1.9's `service`). Each input's branch head is
//! written under `/pfs/<input>` and user code started; when an input branch
//! gets a new commit, user code is stopped and started again over the new
//! heads. It listens on `internal_port` in the sandbox's own network
//! namespace; pachd listens on `service.ip:external_port` on the host and
//! carries each connection through the slot's Unix socket to it (see
//! `pach_worker::agent::SERVICE_SOCKET`), so nothing of the host — pachd's
//! own ports least of all — becomes reachable from user code.
//!
//! A service has no jobs and its output branch no provenance: what it
//! writes to `/pfs/out` is not kept. It runs under the same runner as spouts
//! (`spout`): restarted when it exits, ended by stop, update or delete. A
//! spout serving a port (`spout.service`) is published the same way.

use std::time::Duration;

use pach_worker::Command;
use tokio::net::{TcpListener, UnixStream};

use crate::error::Result;
use crate::pipeline::Pps;
use crate::records::PipelineRecord;
use crate::runlog::LogTail;
use crate::spec::Service;
use crate::spout::{Ended, failed, run, whole_output};

/// How often a service checks its input branches for new commits.
const INPUT_CHECK: Duration = Duration::from_millis(250);

impl Pps {
    /// One run of a service's user code over its inputs' current heads.
    pub(crate) async fn service_once(&self, p: &PipelineRecord) -> Result<Ended> {
        let name = p.name().to_string();
        let Some(service) = &p.spec.service else {
            return Ok(Ended::Changed);
        };
        let slot = self.scratch.join("services").join(&name);
        let _ = tokio::fs::remove_dir_all(&slot).await;
        let heads = self.input_heads(p).await?;
        let mut env: Vec<(String, String)> = p
            .spec
            .transform
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (input, repo, _, head) in &heads {
            let dir = slot.join("pfs").join(input);
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))?;
            if let Some(head) = head {
                self.write_tree(repo, head, "/", &dir).await?;
                env.push((format!("{input}_COMMIT"), head.clone()));
            }
            env.push((input.clone(), format!("/pfs/{input}")));
        }
        env.push(("PPS_PIPELINE_NAME".into(), name.clone()));
        let internal = u16::try_from(service.internal_port).map_err(failed)?;
        env.extend(self.s3_endpoint(Some(internal)));
        let secrets = self.resolve_secrets(&p.spec).await?;
        env.extend(secrets.env.iter().cloned());
        let (memory, file_size) = crate::spec::enforced_limits(&p.spec);
        let sandbox = self
            .detect_sandbox()
            .map_err(failed)?
            .with_service_port(internal)
            .with_limits(memory, file_size);
        let mut sandbox = self.sandbox_with_gateway(sandbox, &name, Some(internal));
        if !secrets.mounts.is_empty() {
            sandbox = sandbox
                .with_files(&slot.join("secrets"), &secrets.mounts)
                .map_err(failed)?;
        }
        let listener = self.publish(&name, service).await?;
        let mut session = sandbox
            .start(&slot, self.datum_network(p))
            .await
            .map_err(failed)?;
        let socket = session.service_socket();
        let t = &p.spec.transform;
        let command = Command {
            cmd: t.cmd.clone(),
            stdin: t.stdin.clone(),
            env,
            working_dir: t.working_dir.clone(),
            timeout: None,
        };
        let mut log = LogTail::new(session.log_file());
        let ended = tokio::select! {
            r = run(&mut session, &command) => r,
            () = accept(listener, socket) => Ok(Ended::Changed),
            () = self.keep_user_log(p, &mut log) => Ok(Ended::Changed),
            () = self.await_change(p) => Ok(Ended::Changed),
            r = self.await_new_inputs(p, &heads) => r.map(|()| Ended::Changed),
        };
        self.finish_user_log(p, &mut log, whole_output(&ended))
            .await;
        drop(session);
        ended
    }

    /// Listens where `service` is published on the host (`service.ip`,
    /// else pachd's own address), for [`accept`] to carry in.
    pub(crate) async fn publish(&self, name: &str, service: &Service) -> Result<TcpListener> {
        let ip = if service.ip.is_empty() {
            self.service_host.as_str()
        } else {
            service.ip.as_str()
        };
        let port = service.external_port;
        let listener = TcpListener::bind((ip, port as u16))
            .await
            .map_err(|e| failed(format!("cannot listen on {ip}:{port} for the service: {e}")))?;
        tracing::info!(pipeline = %name, "service listening on {ip}:{port}");
        Ok(listener)
    }

    /// (input name, repo, branch, head commit) of each input of `p`.
    async fn input_heads(
        &self,
        p: &PipelineRecord,
    ) -> Result<Vec<(String, String, String, Option<String>)>> {
        let mut out = Vec::new();
        let Some(input) = &p.spec.input else {
            return Ok(out);
        };
        for i in input.walk() {
            let Some(pfs) = &i.pfs else { continue };
            let head = match self.pfs.inspect_branch(&pfs.repo, &pfs.branch).await {
                Ok(b) => b.record.head,
                Err(pach_pfs::PfsError::BranchNotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            };
            out.push((pfs.name.clone(), pfs.repo.clone(), pfs.branch.clone(), head));
        }
        Ok(out)
    }

    /// Returns once an input branch's head is another commit.
    async fn await_new_inputs(
        &self,
        p: &PipelineRecord,
        heads: &[(String, String, String, Option<String>)],
    ) -> Result<()> {
        loop {
            tokio::time::sleep(INPUT_CHECK).await;
            if self.input_heads(p).await? != heads {
                tracing::info!(pipeline = %p.name(), "service: new input commit; starting it again");
                return Ok(());
            }
        }
    }
}

/// Carries each connection to the service's port into the sandbox.
pub(crate) async fn accept(listener: TcpListener, socket: std::path::PathBuf) {
    loop {
        let Ok((mut tcp, _)) = listener.accept().await else {
            continue;
        };
        let socket = socket.clone();
        tokio::spawn(async move {
            if let Ok(mut unix) = UnixStream::connect(&socket).await {
                let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
            }
        });
    }
}
