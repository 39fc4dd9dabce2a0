//! The Batch API (OpenAI's `/v1/files` and `/v1/batches`): what each endpoint does, over the
//! store's `BatchStore`; [`worker`] runs the batches' lines.
//!
//! Files and batches belong to the tenant of the key that made them: another tenant's are
//! "not found", as OpenAI answers for another organisation's. An input file is checked when
//! a batch is created ([`switchyard_api::batch::parse_input`]): a bad one makes the batch
//! `failed` at once with its `errors` by line, as OpenAI's validation does; a good one is
//! stored as the batch's lines, `validating` until the worker starts it.

pub mod worker;

use std::sync::Arc;

use switchyard_api::batch::{
    parse_input, Batch, BatchErrors, BatchStatus, CreateBatch, FileDeleted, FileObject, ListPage,
    RequestCounts,
};
use switchyard_store::batches::{Cancel, NewLine, StoredBatch, StoredFile};
use switchyard_store::{Store, StoreError};

use crate::control_plane::state::ControlPlane;
use crate::error::{ErrorKind, GatewayError};

/// The purpose of an upload a batch reads.
pub const INPUT_PURPOSE: &str = "batch";
/// A batch's completion window, in seconds (`24h`, the only one).
const WINDOW_SECS: i64 = 86_400;

/// Who is asking: the tenant owns what they make; a batch runs as the key that made it.
#[derive(Debug, Clone)]
pub struct Owner {
    pub tenant: String,
    pub key_id: String,
    /// The SHA-256 of the key's secret.
    pub key_hash: [u8; 32],
}

/// The purpose of a batch's output and error files.
pub const OUTPUT_PURPOSE: &str = "batch_output";

/// A new id with OpenAI's prefix (`file-`, `batch_`, `batch_req_`).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// A stored batch as OpenAI's object.
pub fn to_wire(b: &StoredBatch) -> Batch {
    let errors = b
        .errors
        .as_deref()
        .and_then(|e| serde_json::from_str::<BatchErrors>(e).ok());
    let metadata = b
        .metadata
        .as_deref()
        .and_then(|m| serde_json::from_str(m).ok());
    Batch {
        id: b.id.clone(),
        object: "batch".to_owned(),
        endpoint: b.endpoint.clone(),
        errors,
        input_file_id: b.input_file_id.clone(),
        completion_window: b.completion_window.clone(),
        status: BatchStatus::parse(&b.status).unwrap_or(BatchStatus::Failed),
        output_file_id: b.output_file_id.clone(),
        error_file_id: b.error_file_id.clone(),
        created_at: b.created_ms.div_euclid(1000),
        in_progress_at: b.in_progress_at,
        expires_at: Some(b.expires_at),
        finalizing_at: b.finalizing_at,
        completed_at: b.completed_at,
        failed_at: b.failed_at,
        expired_at: b.expired_at,
        cancelling_at: b.cancelling_at,
        cancelled_at: b.cancelled_at,
        request_counts: RequestCounts {
            total: b.total,
            completed: b.completed,
            failed: b.failed,
        },
        metadata,
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Runs `f` on the store off the async threads; a store that fails is a 503 to retry.
async fn on_store<T: Send + 'static>(
    control: &Arc<ControlPlane>,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, GatewayError> {
    let store = control.store.clone();
    crate::tasks::spawn_blocking(move || f(&*store))
        .await
        .unwrap_or(Err(StoreError::Interrupted))
        .map_err(|e| {
            tracing::error!(error = %e, "the Batch API's store failed");
            GatewayError::store_unavailable("the batch store cannot answer now; retry")
        })
}

fn not_found(what: &str, id: &str) -> GatewayError {
    GatewayError::new(
        ErrorKind::NotFound,
        "not_found",
        format!("No such {what} object: {id}"),
    )
}

fn retention_secs(control: &ControlPlane) -> i64 {
    let spec = control.running.pipeline.load().config.batch;
    i64::try_from(spec.retention.as_secs()).unwrap_or(i64::MAX)
}

/// A stored file as OpenAI's object.
pub fn file_object(f: &StoredFile) -> FileObject {
    FileObject {
        id: f.id.clone(),
        object: "file".to_owned(),
        bytes: f.bytes,
        created_at: f.created_ms.div_euclid(1000),
        expires_at: f.expires_at,
        filename: f.filename.clone(),
        purpose: f.purpose.clone(),
        status: "processed".to_owned(),
        status_details: None,
    }
}

/// A page of a list, with OpenAI's cursors; `rows` holds one more than the page when
/// there are more.
fn page<T>(mut rows: Vec<T>, limit: usize, id: impl Fn(&T) -> String) -> ListPage<T> {
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    ListPage {
        object: "list".to_owned(),
        first_id: rows.first().map(&id),
        last_id: rows.last().map(&id),
        data: rows,
        has_more,
    }
}

/// `POST /v1/files`: keeps an upload of `purpose` `batch`.
pub async fn upload(
    control: &Arc<ControlPlane>,
    owner: &Owner,
    filename: String,
    purpose: &str,
    content: Vec<u8>,
) -> Result<FileObject, GatewayError> {
    if purpose != INPUT_PURPOSE {
        return Err(GatewayError::invalid(
            Some("purpose"),
            format!("purpose must be `{INPUT_PURPOSE}`: this gateway keeps files for the Batch API only"),
        ));
    }
    let now = now_ms();
    let file = StoredFile {
        id: new_id("file-"),
        tenant: owner.tenant.clone(),
        filename,
        purpose: purpose.to_owned(),
        bytes: content.len() as u64,
        created_ms: now,
        expires_at: Some(now / 1000 + retention_secs(control)),
    };
    let kept = file.clone();
    on_store(control, move |s| s.put_file(&kept, &content)).await?;
    Ok(file_object(&file))
}

/// `GET /v1/files/{id}`.
pub async fn file(
    control: &Arc<ControlPlane>,
    tenant: &str,
    id: &str,
) -> Result<FileObject, GatewayError> {
    let (t, i) = (tenant.to_owned(), id.to_owned());
    on_store(control, move |s| s.file(&t, &i))
        .await?
        .map(|f| file_object(&f))
        .ok_or_else(|| not_found("File", id))
}

/// `GET /v1/files/{id}/content`.
pub async fn file_content(
    control: &Arc<ControlPlane>,
    tenant: &str,
    id: &str,
) -> Result<Vec<u8>, GatewayError> {
    let (t, i) = (tenant.to_owned(), id.to_owned());
    on_store(control, move |s| s.file_content(&t, &i))
        .await?
        .ok_or_else(|| not_found("File", id))
}

/// `GET /v1/files`: newest first, `limit` from 1 to 10 000.
pub async fn files(
    control: &Arc<ControlPlane>,
    tenant: &str,
    purpose: Option<String>,
    after: Option<String>,
    limit: usize,
) -> Result<ListPage<FileObject>, GatewayError> {
    let t = tenant.to_owned();
    let rows = on_store(control, move |s| {
        s.files(&t, purpose.as_deref(), after.as_deref(), limit + 1)
    })
    .await?;
    let objects = rows.iter().map(file_object).collect();
    Ok(page(objects, limit, |f: &FileObject| f.id.clone()))
}

/// `DELETE /v1/files/{id}`.
pub async fn delete_file(
    control: &Arc<ControlPlane>,
    tenant: &str,
    id: &str,
) -> Result<FileDeleted, GatewayError> {
    let (t, i) = (tenant.to_owned(), id.to_owned());
    if !on_store(control, move |s| s.delete_file(&t, &i)).await? {
        return Err(not_found("File", id));
    }
    Ok(FileDeleted {
        id: id.to_owned(),
        object: "file".to_owned(),
        deleted: true,
    })
}

/// `POST /v1/batches`: the request checked (400s as OpenAI's), the input file read and
/// checked line by line, the batch stored `validating` with its lines, or `failed` with the
/// file's errors.
pub async fn create(
    control: &Arc<ControlPlane>,
    owner: &Owner,
    request: CreateBatch,
) -> Result<Batch, GatewayError> {
    request
        .check()
        .map_err(|(param, message)| GatewayError::invalid(Some(param), message))?;
    let input = file(control, &owner.tenant, &request.input_file_id)
        .await
        .map_err(|e| e.with_param("input_file_id"))?;
    if input.purpose != INPUT_PURPOSE {
        return Err(GatewayError::invalid(
            Some("input_file_id"),
            format!(
                "file {} has purpose `{}`, not `{INPUT_PURPOSE}`",
                input.id, input.purpose
            ),
        ));
    }
    let max_lines = control.running.pipeline.load().config.batch.max_lines;
    let (tenant, file_id, endpoint) = (
        owner.tenant.clone(),
        input.id.clone(),
        request.endpoint.clone(),
    );
    let parsed = on_store(control, move |s| {
        let content = s.file_content(&tenant, &file_id)?.unwrap_or_default();
        Ok(parse_input(&content, &endpoint, max_lines))
    })
    .await?;
    let now = now_ms();
    let mut batch = StoredBatch {
        id: new_id("batch_"),
        tenant: owner.tenant.clone(),
        key_id: owner.key_id.clone(),
        key_hash: hex::encode(owner.key_hash),
        endpoint: request.endpoint,
        input_file_id: input.id,
        completion_window: request.completion_window,
        status: BatchStatus::Validating.as_str().to_owned(),
        metadata: request
            .metadata
            .as_ref()
            .and_then(|m| serde_json::to_string(m).ok()),
        created_ms: now,
        expires_at: now / 1000 + WINDOW_SECS,
        ..StoredBatch::default()
    };
    let lines: Vec<NewLine> = match parsed {
        Ok(lines) => lines
            .into_iter()
            .map(|l| NewLine {
                line: l.line,
                custom_id: l.custom_id,
                body: l.body,
            })
            .collect(),
        Err(errors) => {
            batch.status = BatchStatus::Failed.as_str().to_owned();
            batch.failed_at = Some(now / 1000);
            batch.errors = serde_json::to_string(&BatchErrors::new(errors)).ok();
            Vec::new()
        }
    };
    batch.total = lines.len() as u64;
    let kept = batch.clone();
    on_store(control, move |s| s.create_batch(&kept, &lines)).await?;
    Ok(to_wire(&batch))
}

/// `GET /v1/batches/{id}`.
pub async fn batch(
    control: &Arc<ControlPlane>,
    tenant: &str,
    id: &str,
) -> Result<Batch, GatewayError> {
    let (t, i) = (tenant.to_owned(), id.to_owned());
    on_store(control, move |s| s.batch(&t, &i))
        .await?
        .map(|b| to_wire(&b))
        .ok_or_else(|| not_found("Batch", id))
}

/// `GET /v1/batches`: newest first, `limit` from 1 to 100.
pub async fn batches(
    control: &Arc<ControlPlane>,
    tenant: &str,
    after: Option<String>,
    limit: usize,
) -> Result<ListPage<Batch>, GatewayError> {
    let t = tenant.to_owned();
    let rows = on_store(control, move |s| s.batches(&t, after.as_deref(), limit + 1)).await?;
    let objects = rows.iter().map(to_wire).collect();
    Ok(page(objects, limit, |b: &Batch| b.id.clone()))
}

/// `POST /v1/batches/{id}/cancel`: `cancelling` at once (lines not started never run), then
/// `cancelled` once the lines in flight ended (the worker finalises it). A batch that has
/// ended cannot be cancelled (400, as OpenAI answers).
pub async fn cancel(
    control: &Arc<ControlPlane>,
    tenant: &str,
    id: &str,
) -> Result<Batch, GatewayError> {
    let (t, i) = (tenant.to_owned(), id.to_owned());
    match on_store(control, move |s| s.cancel_batch(&t, &i, now_ms() / 1000)).await? {
        Cancel::Cancelling(b) => Ok(to_wire(&b)),
        Cancel::Ended(b) => Err(GatewayError::invalid(
            None,
            format!("Cannot cancel a batch with status '{}'.", b.status),
        )),
        Cancel::NotFound => Err(not_found("Batch", id)),
    }
}
