//! The Batch API's wire types, as OpenAI defines them: the file object (`/v1/files`), the
//! batch object (`/v1/batches`), the lines of an input file and of the output and error
//! files, and [`parse_input`], the validation of an input file's JSONL.
//!
//! The parser takes untrusted bytes (a fuzz target and property tests hold it): it never
//! panics, keeps at most [`MAX_REPORTED_ERRORS`] errors, and numbers lines from 1 as OpenAI's
//! `errors.data[].line` does.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

/// The endpoints a batch may target: what the gateway serves.
pub const BATCH_ENDPOINTS: &[&str] = &["/v1/chat/completions", "/v1/embeddings"];

/// The only completion window OpenAI accepts.
pub const COMPLETION_WINDOW: &str = "24h";

/// A `custom_id`'s longest form (OpenAI's limit is not documented; 512 bytes keeps a line's
/// id printable and bounded).
pub const MAX_CUSTOM_ID: usize = 512;

/// The most line errors an invalid file reports (the first ones, by line).
pub const MAX_REPORTED_ERRORS: usize = 100;

/// `metadata`: at most 16 pairs, keys up to 64 characters, values up to 512 (OpenAI's).
pub const MAX_METADATA_PAIRS: usize = 16;
pub const MAX_METADATA_KEY: usize = 64;
pub const MAX_METADATA_VALUE: usize = 512;

/// A file, as `POST /v1/files` and `GET /v1/files/{id}` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileObject {
    pub id: String,
    /// Always `file`.
    pub object: String,
    pub bytes: u64,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; `null` for a file kept until deleted.
    pub expires_at: Option<i64>,
    pub filename: String,
    /// `batch` for an upload, `batch_output` for a batch's output and error files.
    pub purpose: String,
    /// Deprecated by OpenAI, still sent: always `processed` here.
    pub status: String,
    pub status_details: Option<String>,
}

/// `DELETE /v1/files/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDeleted {
    pub id: String,
    /// Always `file`.
    pub object: String,
    pub deleted: bool,
}

/// A page of a list (`GET /v1/files`, `GET /v1/batches`), with OpenAI's cursor fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListPage<T> {
    /// Always `list`.
    pub object: String,
    pub data: Vec<T>,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    pub has_more: bool,
}

/// A batch's status, as OpenAI names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    Validating,
    Failed,
    InProgress,
    Finalizing,
    Completed,
    Expired,
    Cancelling,
    Cancelled,
}

impl BatchStatus {
    pub const ALL: [BatchStatus; 8] = [
        BatchStatus::Validating,
        BatchStatus::Failed,
        BatchStatus::InProgress,
        BatchStatus::Finalizing,
        BatchStatus::Completed,
        BatchStatus::Expired,
        BatchStatus::Cancelling,
        BatchStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BatchStatus::Validating => "validating",
            BatchStatus::Failed => "failed",
            BatchStatus::InProgress => "in_progress",
            BatchStatus::Finalizing => "finalizing",
            BatchStatus::Completed => "completed",
            BatchStatus::Expired => "expired",
            BatchStatus::Cancelling => "cancelling",
            BatchStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<BatchStatus> {
        BatchStatus::ALL.into_iter().find(|b| b.as_str() == s)
    }

    /// Whether the batch has ended (nothing will change it again).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            BatchStatus::Failed
                | BatchStatus::Completed
                | BatchStatus::Expired
                | BatchStatus::Cancelled
        )
    }
}

/// `request_counts`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
}

/// One problem of an input file (`errors.data[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchError {
    pub code: String,
    pub message: String,
    pub param: Option<String>,
    /// The line, from 1; `null` for a problem of the whole file.
    pub line: Option<u64>,
}

impl BatchError {
    fn at(line: u64, code: &str, param: Option<&str>, message: impl Into<String>) -> Self {
        BatchError {
            code: code.to_owned(),
            message: message.into(),
            param: param.map(str::to_owned),
            line: Some(line),
        }
    }

    fn file(code: &str, message: impl Into<String>) -> Self {
        BatchError {
            code: code.to_owned(),
            message: message.into(),
            param: None,
            line: None,
        }
    }
}

/// `errors`: `{"object": "list", "data": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchErrors {
    pub object: String,
    pub data: Vec<BatchError>,
}

impl BatchErrors {
    pub fn new(data: Vec<BatchError>) -> Self {
        BatchErrors {
            object: "list".to_owned(),
            data,
        }
    }
}

/// A batch, as every `/v1/batches` endpoint answers. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub id: String,
    /// Always `batch`.
    pub object: String,
    pub endpoint: String,
    pub errors: Option<BatchErrors>,
    pub input_file_id: String,
    pub completion_window: String,
    pub status: BatchStatus,
    pub output_file_id: Option<String>,
    pub error_file_id: Option<String>,
    pub created_at: i64,
    pub in_progress_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub finalizing_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub failed_at: Option<i64>,
    pub expired_at: Option<i64>,
    pub cancelling_at: Option<i64>,
    pub cancelled_at: Option<i64>,
    pub request_counts: RequestCounts,
    pub metadata: Option<BTreeMap<String, String>>,
}

/// `POST /v1/batches`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CreateBatch {
    pub input_file_id: String,
    pub endpoint: String,
    pub completion_window: String,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

impl CreateBatch {
    /// What OpenAI answers 400 for: the endpoint, the window, the metadata's bounds. The
    /// field at fault and why.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !BATCH_ENDPOINTS.contains(&self.endpoint.as_str()) {
            return Err((
                "endpoint",
                format!(
                    "endpoint `{}` is not supported; use one of {}",
                    self.endpoint,
                    BATCH_ENDPOINTS.join(", ")
                ),
            ));
        }
        if self.completion_window != COMPLETION_WINDOW {
            return Err((
                "completion_window",
                format!("completion_window must be `{COMPLETION_WINDOW}`"),
            ));
        }
        if let Some(metadata) = &self.metadata {
            if metadata.len() > MAX_METADATA_PAIRS {
                return Err((
                    "metadata",
                    format!("metadata holds at most {MAX_METADATA_PAIRS} pairs"),
                ));
            }
            for (k, v) in metadata {
                if k.chars().count() > MAX_METADATA_KEY || v.chars().count() > MAX_METADATA_VALUE {
                    return Err((
                        "metadata",
                        format!(
                            "metadata keys are at most {MAX_METADATA_KEY} characters and values at most {MAX_METADATA_VALUE}"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A valid line of an input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputLine {
    /// From 1, counting blank lines.
    pub line: u64,
    pub custom_id: String,
    /// The request's body, as JSON text.
    pub body: String,
}

/// What a line is read as; every field optional so that a missing one is reported by name.
#[derive(Deserialize)]
struct RawLine {
    custom_id: Option<serde_json::Value>,
    method: Option<serde_json::Value>,
    url: Option<serde_json::Value>,
    body: Option<serde_json::Value>,
}

/// Reads an input file: each non-blank line a JSON object with a `custom_id` (a string,
/// unique in the file), `method` `POST`, `url` equal to the batch's `endpoint` and a `body`
/// object. Returns every line, or the file's errors (the first [`MAX_REPORTED_ERRORS`]).
/// A file with no line, or more than `max_lines`, fails as a whole.
pub fn parse_input(
    bytes: &[u8],
    endpoint: &str,
    max_lines: usize,
) -> Result<Vec<InputLine>, Vec<BatchError>> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err(vec![BatchError::file(
            "invalid_file_format",
            "the file is not UTF-8 text",
        )]);
    };
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    // The ids seen: as big as the file at most, which the upload limit bounds.
    let mut seen: HashSet<String> = HashSet::new();
    let mut count = 0usize;
    for (i, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.trim().is_empty() {
            continue;
        }
        count += 1;
        if count > max_lines {
            return Err(vec![BatchError::file(
                "too_many_requests",
                format!("the file has more than {max_lines} requests, the most a batch takes"),
            )]);
        }
        let line = i as u64 + 1;
        match parse_line(raw, line, endpoint) {
            Ok((custom_id, body)) => {
                if seen.contains(&custom_id) {
                    push_error(
                        &mut errors,
                        BatchError::at(
                            line,
                            "duplicate_custom_id",
                            Some("custom_id"),
                            format!("custom_id `{custom_id}` is used by an earlier line"),
                        ),
                    );
                } else {
                    seen.insert(custom_id.clone());
                    if errors.is_empty() {
                        lines.push(InputLine {
                            line,
                            custom_id,
                            body,
                        });
                    }
                }
            }
            Err(e) => push_error(&mut errors, e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if lines.is_empty() {
        return Err(vec![BatchError::file(
            "empty_file",
            "the file has no requests",
        )]);
    }
    Ok(lines)
}

fn push_error(errors: &mut Vec<BatchError>, e: BatchError) {
    if errors.len() < MAX_REPORTED_ERRORS {
        errors.push(e);
    }
}

/// One line's `custom_id` and body, or its error.
fn parse_line(raw: &str, line: u64, endpoint: &str) -> Result<(String, String), BatchError> {
    let invalid = || {
        BatchError::at(
            line,
            "invalid_json_line",
            None,
            "this line is not a JSON object",
        )
    };
    let parsed: RawLine = serde_json::from_str(raw).map_err(|_| invalid())?;
    let missing = |param: &str| {
        BatchError::at(
            line,
            "missing_required_parameter",
            Some(param),
            format!("the line has no `{param}`"),
        )
    };
    let custom_id = match parsed.custom_id {
        None | Some(serde_json::Value::Null) => return Err(missing("custom_id")),
        Some(serde_json::Value::String(s)) if !s.is_empty() && s.len() <= MAX_CUSTOM_ID => s,
        Some(_) => {
            return Err(BatchError::at(
                line,
                "invalid_custom_id",
                Some("custom_id"),
                format!("custom_id must be a string of 1 to {MAX_CUSTOM_ID} bytes"),
            ))
        }
    };
    match parsed.method {
        None | Some(serde_json::Value::Null) => return Err(missing("method")),
        Some(serde_json::Value::String(m)) if m == "POST" => {}
        Some(_) => {
            return Err(BatchError::at(
                line,
                "invalid_method",
                Some("method"),
                "method must be `POST`",
            ))
        }
    }
    match parsed.url {
        None | Some(serde_json::Value::Null) => return Err(missing("url")),
        Some(serde_json::Value::String(u)) if u == endpoint => {}
        Some(_) => {
            return Err(BatchError::at(
                line,
                "invalid_url",
                Some("url"),
                format!("url must be the batch's endpoint, `{endpoint}`"),
            ))
        }
    }
    let body = match parsed.body {
        None | Some(serde_json::Value::Null) => return Err(missing("body")),
        Some(body @ serde_json::Value::Object(_)) => body.to_string(),
        Some(_) => {
            return Err(BatchError::at(
                line,
                "invalid_body",
                Some("body"),
                "body must be a JSON object",
            ))
        }
    };
    Ok((custom_id, body))
}

/// A line of the output or error file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputLine {
    /// `batch_req_...`.
    pub id: String,
    pub custom_id: String,
    pub response: Option<OutputResponse>,
    pub error: Option<OutputError>,
}

/// The answer a line got: its HTTP status, its request id and its body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputResponse {
    pub status_code: u16,
    pub request_id: String,
    pub body: serde_json::Value,
}

/// Why a line has no answer (`batch_expired`, `batch_cancelled`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputError {
    pub code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAT: &str = "/v1/chat/completions";

    fn line(id: &str) -> String {
        format!(
            r#"{{"custom_id":"{id}","method":"POST","url":"{CHAT}","body":{{"model":"m","messages":[]}}}}"#
        )
    }

    fn codes(r: Result<Vec<InputLine>, Vec<BatchError>>) -> Vec<(String, Option<u64>)> {
        r.unwrap_err()
            .into_iter()
            .map(|e| (e.code, e.line))
            .collect()
    }

    #[test]
    fn valid_lines_are_read_with_their_numbers() {
        let text = format!("{}\n\n{}\r\n", line("a"), line("b"));
        let lines = parse_input(text.as_bytes(), CHAT, 10).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[0].line, lines[0].custom_id.as_str()), (1, "a"));
        assert_eq!((lines[1].line, lines[1].custom_id.as_str()), (3, "b"));
        let body: serde_json::Value = serde_json::from_str(&lines[1].body).unwrap();
        assert_eq!(body["model"], "m");
    }

    #[test]
    fn each_bad_line_is_reported_by_number() {
        let text = [
            line("a"),
            "not json".to_owned(),
            line("a"),
            r#"{"custom_id":"c","method":"GET","url":"/v1/chat/completions","body":{}}"#.into(),
            r#"{"custom_id":"d","method":"POST","url":"/v1/embeddings","body":{}}"#.into(),
            r#"{"custom_id":"e","method":"POST","url":"/v1/chat/completions","body":[]}"#.into(),
            r#"{"method":"POST","url":"/v1/chat/completions","body":{}}"#.into(),
            r#"{"custom_id":5,"method":"POST","url":"/v1/chat/completions","body":{}}"#.into(),
            r#"[1]"#.into(),
        ]
        .join("\n");
        let found = codes(parse_input(text.as_bytes(), CHAT, 100));
        let want: Vec<(String, Option<u64>)> = [
            ("invalid_json_line", 2),
            ("duplicate_custom_id", 3),
            ("invalid_method", 4),
            ("invalid_url", 5),
            ("invalid_body", 6),
            ("missing_required_parameter", 7),
            ("invalid_custom_id", 8),
            ("invalid_json_line", 9),
        ]
        .iter()
        .map(|(c, l)| ((*c).to_owned(), Some(*l)))
        .collect();
        assert_eq!(found, want);
    }

    #[test]
    fn whole_file_problems_have_no_line() {
        assert_eq!(
            codes(parse_input(b"\n\n", CHAT, 10)),
            [("empty_file".to_owned(), None)]
        );
        let three = [line("a"), line("b"), line("c")].join("\n");
        assert_eq!(
            codes(parse_input(three.as_bytes(), CHAT, 2)),
            [("too_many_requests".to_owned(), None)]
        );
        assert_eq!(
            codes(parse_input(&[0xff, 0xfe], CHAT, 2)),
            [("invalid_file_format".to_owned(), None)]
        );
    }

    #[test]
    fn errors_are_bounded() {
        let text = "x\n".repeat(MAX_REPORTED_ERRORS * 3);
        let errors = parse_input(text.as_bytes(), CHAT, usize::MAX).unwrap_err();
        assert_eq!(errors.len(), MAX_REPORTED_ERRORS);
    }

    #[test]
    fn a_batch_request_is_checked_as_openai_does() {
        let ok = CreateBatch {
            input_file_id: "file-1".into(),
            endpoint: CHAT.into(),
            completion_window: "24h".into(),
            metadata: None,
        };
        assert!(ok.check().is_ok());
        let mut bad = ok.clone();
        bad.endpoint = "/v1/completions".into();
        assert_eq!(bad.check().unwrap_err().0, "endpoint");
        let mut bad = ok.clone();
        bad.completion_window = "1h".into();
        assert_eq!(bad.check().unwrap_err().0, "completion_window");
        let mut bad = ok;
        bad.metadata = Some((0..17).map(|i| (i.to_string(), String::new())).collect());
        assert_eq!(bad.check().unwrap_err().0, "metadata");
    }

    #[test]
    fn statuses_round_trip_by_name() {
        for s in BatchStatus::ALL {
            assert_eq!(BatchStatus::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::String(s.as_str().to_owned())
            );
        }
    }
}
