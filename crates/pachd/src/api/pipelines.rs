//! The pipeline methods of `pachrs.v1.Extension` (which `extension.rs`
//! serves by calling these): what pachd offers for pipelines beyond
//! Pachyderm 1.9's `pps.API` — secrets, and specs whose input uses what later
//! Pachyderm releases added (group inputs, group_by, outer joins, projects).
//! Translation only: secrets and specs are `pach_pps`'s.

use std::collections::BTreeMap;

use pach_api::json::FieldNames;
use pach_api::pachrs::v1 as ext;
use pach_pps::Pps;
use pach_pps::secrets::SecretInfo;
use tonic::{Request, Response, Status};

use super::pps::{invalid, pps_status, spec_json, timestamp, with_warnings};

pub(crate) struct PipelineExtension {
    pub pps: Pps,
    pub authz: super::authz::Authz,
}

fn secret_info(s: SecretInfo) -> ext::SecretInfo {
    ext::SecretInfo {
        name: s.name,
        r#type: s.kind,
        keys: s.keys,
        created: timestamp(s.created_ns),
    }
}

impl PipelineExtension {
    pub(crate) async fn create_secret(
        &self,
        r: Request<ext::CreateSecretRequest>,
    ) -> Result<Response<()>, Status> {
        let r = r.into_inner();
        let data: BTreeMap<String, Vec<u8>> = r.data.into_iter().collect();
        self.pps
            .create_secret(&r.name, &r.r#type, data)
            .await
            .map_err(pps_status)?;
        Ok(Response::new(()))
    }

    pub(crate) async fn inspect_secret(
        &self,
        r: Request<ext::SecretRequest>,
    ) -> Result<Response<ext::SecretInfo>, Status> {
        let s = self
            .pps
            .inspect_secret(&r.into_inner().name)
            .await
            .map_err(pps_status)?;
        Ok(Response::new(secret_info(s)))
    }

    pub(crate) async fn list_secret(
        &self,
        _: Request<()>,
    ) -> Result<Response<ext::SecretInfos>, Status> {
        let all = self.pps.list_secret().await.map_err(pps_status)?;
        Ok(Response::new(ext::SecretInfos {
            secret_info: all.into_iter().map(secret_info).collect(),
        }))
    }

    pub(crate) async fn delete_secret(
        &self,
        r: Request<ext::SecretRequest>,
    ) -> Result<Response<()>, Status> {
        self.pps
            .delete_secret(&r.into_inner().name)
            .await
            .map_err(pps_status)?;
        Ok(Response::new(()))
    }

    pub(crate) async fn create_extended_pipeline(
        &self,
        r: Request<ext::CreateExtendedPipelineRequest>,
    ) -> Result<Response<()>, Status> {
        let metadata = r.metadata().clone();
        let r = r.into_inner();
        let request = r
            .request
            .ok_or_else(|| invalid("the request carries no pipeline spec"))?;
        let (mut json, update, reprocess) = spec_json(request)?;
        if let Some(input) = &r.input {
            json["input"] = pach_api::json::to_json(input, FieldNames::Proto)
                .map_err(|e| Status::internal(format!("encoding the input: {e}")))?;
        }
        if !r.project.is_empty() {
            json["pipeline"]["project"] = serde_json::json!({"name": r.project});
        }
        let spec = pach_pps::spec::parse_value(json).map_err(pps_status)?;
        // The same row of the table as pps.API's CreatePipeline, over the
        // parsed spec's pfs inputs.
        let inputs = spec.pfs_input_repos();
        let name = spec.pipeline.name.clone();
        let caller = self
            .authz
            .require(
                &metadata,
                super::authz::pipeline_need(&inputs, &name, update),
            )
            .await?;
        let warnings = pach_pps::spec::warnings(&spec);
        self.authz
            .create_pipeline(&caller, &name, update, async {
                self.pps
                    .create_pipeline(spec, update, reprocess)
                    .await
                    .map_err(pps_status)
            })
            .await?;
        Ok(with_warnings(Response::new(()), &warnings))
    }
}
