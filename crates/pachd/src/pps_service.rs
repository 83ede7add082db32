//! The gRPC pipeline service: decode requests, call PPS, encode the JSON views.

use std::collections::HashSet;
use std::time::Duration;

use object_store::ObjectStoreExt;
use pach_api as api;
use pach_api::pps_server::Pps as PpsApi;
use pach_pps::records::{DatumRecord, JobRecord};
use pach_pps::{Pps, PpsError, info};
use tonic::{Request, Response, Status};

use crate::service::Stream_;

pub struct PpsService {
    pub pps: Pps,
}

pub fn status(e: PpsError) -> Status {
    crate::api::status::status(e)
}

fn json(v: serde_json::Value) -> api::Json {
    api::Json {
        json: v.to_string(),
    }
}

impl PpsService {
    async fn set_state(
        &self,
        r: api::PipelineSelection,
        run: bool,
    ) -> Result<Response<api::PipelineNames>, Status> {
        let names = self
            .pps
            .set_pipeline_state(&r.names, r.all, run)
            .await
            .map_err(status)?;
        Ok(Response::new(api::PipelineNames { names }))
    }

    async fn last_jobs(&self) -> Result<Vec<JobRecord>, Status> {
        self.pps.list_job(None).await.map_err(status)
    }
}

#[tonic::async_trait]
impl PpsApi for PpsService {
    async fn create_pipeline(
        &self,
        r: Request<api::CreatePipelineRequest>,
    ) -> Result<Response<api::PipelineNames>, Status> {
        let r = r.into_inner();
        let spec = if r.spec_url.is_empty() {
            r.spec
        } else {
            let (store, path) = crate::service::open_url(&r.spec_url)?;
            let bytes = store
                .get(&path)
                .await
                .map_err(|e| {
                    Status::failed_precondition(format!("cannot read '{}': {e}", r.spec_url))
                })?
                .bytes()
                .await
                .map_err(|e| Status::unavailable(format!("reading '{}': {e}", r.spec_url)))?;
            String::from_utf8(bytes.to_vec()).map_err(|_| {
                Status::invalid_argument(format!("'{}' is not a UTF-8 text spec", r.spec_url))
            })?
        };
        let names = self
            .pps
            .create_pipelines(&spec, r.update, r.reprocess)
            .await
            .map_err(status)?;
        Ok(Response::new(api::PipelineNames { names }))
    }

    async fn inspect_pipeline(
        &self,
        r: Request<api::InspectPipelineRequest>,
    ) -> Result<Response<api::Json>, Status> {
        let p = self
            .pps
            .inspect_pipeline(&r.into_inner().name)
            .await
            .map_err(status)?;
        // Only this pipeline's jobs, newest first.
        let jobs = self.pps.list_job(Some(p.name())).await.map_err(status)?;
        Ok(Response::new(json(info::pipeline_info(&p, jobs.first()))))
    }

    async fn list_pipeline(
        &self,
        _: Request<api::Empty>,
    ) -> Result<Response<api::JsonList>, Status> {
        let pipelines = self.pps.list_pipeline().await.map_err(status)?;
        let jobs = self.last_jobs().await?;
        let items = pipelines
            .iter()
            .map(|p| {
                let last = jobs.iter().find(|j| j.pipeline == p.name());
                info::pipeline_info(p, last).to_string()
            })
            .collect();
        Ok(Response::new(api::JsonList { items }))
    }

    async fn stop_pipeline(
        &self,
        r: Request<api::PipelineSelection>,
    ) -> Result<Response<api::PipelineNames>, Status> {
        self.set_state(r.into_inner(), false).await
    }

    async fn start_pipeline(
        &self,
        r: Request<api::PipelineSelection>,
    ) -> Result<Response<api::PipelineNames>, Status> {
        self.set_state(r.into_inner(), true).await
    }

    async fn delete_pipeline(
        &self,
        r: Request<api::PipelineSelection>,
    ) -> Result<Response<api::PipelineNames>, Status> {
        let r = r.into_inner();
        let names = self
            .pps
            .delete_pipelines(&r.names, r.all, r.force)
            .await
            .map_err(status)?;
        Ok(Response::new(api::PipelineNames { names }))
    }

    async fn list_job(
        &self,
        r: Request<api::ListJobRequest>,
    ) -> Result<Response<api::JsonList>, Status> {
        let p = r.into_inner().pipeline;
        let jobs = self
            .pps
            .list_job(Some(p.as_str()).filter(|p| !p.is_empty()))
            .await
            .map_err(status)?;
        let items = jobs.iter().map(|j| info::job_info(j).to_string()).collect();
        Ok(Response::new(api::JsonList { items }))
    }

    async fn inspect_job(
        &self,
        r: Request<api::JobRequest>,
    ) -> Result<Response<api::Json>, Status> {
        let r = r.into_inner();
        let j = self.pps.inspect_job(&r.job, r.wait).await.map_err(status)?;
        Ok(Response::new(json(info::job_info(&j))))
    }

    async fn stop_job(&self, r: Request<api::JobRequest>) -> Result<Response<api::Empty>, Status> {
        self.pps
            .stop_job(&r.into_inner().job)
            .await
            .map_err(status)?;
        Ok(Response::new(api::Empty {}))
    }

    async fn delete_job(
        &self,
        r: Request<api::JobRequest>,
    ) -> Result<Response<api::Empty>, Status> {
        self.pps
            .delete_job(&r.into_inner().job)
            .await
            .map_err(status)?;
        Ok(Response::new(api::Empty {}))
    }

    async fn list_datum(
        &self,
        r: Request<api::JobRequest>,
    ) -> Result<Response<api::JsonList>, Status> {
        let datums = self
            .pps
            .list_datum(&r.into_inner().job)
            .await
            .map_err(status)?;
        let items = datums
            .iter()
            .map(|d| info::datum_info(d).to_string())
            .collect();
        Ok(Response::new(api::JsonList { items }))
    }

    async fn inspect_datum(
        &self,
        r: Request<api::DatumRequest>,
    ) -> Result<Response<api::Json>, Status> {
        let r = r.into_inner();
        let d = self
            .pps
            .inspect_datum(&r.job, &r.datum)
            .await
            .map_err(status)?;
        Ok(Response::new(json(info::datum_info(&d))))
    }

    async fn restart_datum(
        &self,
        r: Request<api::DatumRequest>,
    ) -> Result<Response<api::Json>, Status> {
        let r = r.into_inner();
        let job = self
            .pps
            .restart_datum(&r.job, std::slice::from_ref(&r.datum))
            .await
            .map_err(status)?
            .unwrap_or_default();
        Ok(Response::new(json(serde_json::json!({"job": {"id": job}}))))
    }

    type GetLogsStream = Stream_<api::LogLine>;

    async fn get_logs(
        &self,
        r: Request<api::GetLogsRequest>,
    ) -> Result<Response<Self::GetLogsStream>, Status> {
        let r = r.into_inner();
        if r.pipeline.is_empty() && r.job.is_empty() {
            return Err(Status::invalid_argument(
                "name a pipeline (--pipeline NAME) or a job (--job ID) to read logs of",
            ));
        }
        if !r.pipeline.is_empty() {
            self.pps
                .inspect_pipeline(&r.pipeline)
                .await
                .map_err(status)?;
        }
        if !r.job.is_empty() {
            self.pps.inspect_job(&r.job, false).await.map_err(status)?;
        }
        let pps = self.pps.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            let mut sent: HashSet<(String, String)> = HashSet::new();
            loop {
                let jobs = match logs_jobs(&pps, &r).await {
                    Ok(j) => j,
                    Err(e) => {
                        let _ = tx.send(Err(status(e))).await;
                        return;
                    }
                };
                let mut all_done = true;
                for job in jobs.iter().rev() {
                    all_done &= job.state.is_terminal();
                    let datums = match pps.list_datum(&job.id).await {
                        Ok(d) => d,
                        Err(_) => continue,
                    };
                    for d in datums
                        .into_iter()
                        .filter(|d| r.datum.is_empty() || d.id == r.datum)
                    {
                        if !sent.insert((job.id.clone(), d.id.clone())) {
                            continue;
                        }
                        if send_datum_logs(&pps, job, &d, &tx).await.is_err() {
                            return;
                        }
                    }
                }
                let job_finished = !r.job.is_empty() && all_done;
                if !r.follow || job_finished {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                if tx.is_closed() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

async fn logs_jobs(pps: &Pps, r: &api::GetLogsRequest) -> Result<Vec<JobRecord>, PpsError> {
    if !r.job.is_empty() {
        return Ok(vec![pps.inspect_job(&r.job, false).await?]);
    }
    pps.list_job(Some(&r.pipeline)).await
}

async fn send_datum_logs(
    pps: &Pps,
    job: &JobRecord,
    d: &DatumRecord,
    tx: &tokio::sync::mpsc::Sender<Result<api::LogLine, Status>>,
) -> Result<(), ()> {
    let bytes = pps.datum_logs(d).await.unwrap_or_default();
    for line in String::from_utf8_lossy(&bytes).lines() {
        let l = api::LogLine {
            pipeline: job.pipeline.clone(),
            job: job.id.clone(),
            datum: d.id.clone(),
            message: line.to_string(),
        };
        tx.send(Ok(l)).await.map_err(|_| ())?;
    }
    Ok(())
}
