//! What runs now on this replica: the pipeline of the config version in force, a config
//! rollout's candidate pipeline, and the flags, prompts and rollouts in force. The control
//! plane publishes it (each part swapped whole); a request loads each part once.

use std::sync::Arc;

use crate::otel::GenAiMetrics;
use arc_swap::{ArcSwap, ArcSwapOption};
use axum::http::HeaderMap;
use bytes::Bytes;
use opentelemetry_sdk::trace::SdkTracer;
use switchyard_api::ChatCompletionRequest;
use switchyard_rollout::TargetKind;
use switchyard_store::telemetry::TelemetrySender;

use super::flags::user_key_of;
use super::live::Live;
use super::pipeline::{parse_json, Caller, ChatOutcome, Pipeline};
use super::record::{OutcomeSink, RecordGuard};
use crate::error::GatewayError;

pub struct Running {
    pub pipeline: ArcSwap<Pipeline>,
    /// The candidate pipeline of the config rollout in force, if any.
    pub candidate: ArcSwapOption<ConfigCandidate>,
    /// Flags, prompts and rollouts in force, swapped whole when the store's control
    /// generation moves.
    pub live: ArcSwap<Live>,
    /// Where chat requests report their outcome when they end (the SLOs).
    outcomes: Arc<dyn OutcomeSink>,
    /// Where requests start their traces, when traces are exported (`crate::otel`); set
    /// once at start, for the process.
    tracer: Option<SdkTracer>,
    /// The GenAI metrics over OTLP, when asked for (`[telemetry.otlp] metrics`).
    gen_ai: Option<Arc<GenAiMetrics>>,
}

impl Running {
    pub fn new(
        pipeline: Pipeline,
        live: Live,
        outcomes: Arc<dyn OutcomeSink>,
        tracer: Option<SdkTracer>,
        gen_ai: Option<Arc<GenAiMetrics>>,
    ) -> Self {
        Running {
            pipeline: ArcSwap::from_pointee(pipeline),
            candidate: ArcSwapOption::empty(),
            live: ArcSwap::from_pointee(live),
            outcomes,
            tracer,
            gen_ai,
        }
    }
}

/// The candidate pipeline of the config rollout in force.
pub struct ConfigCandidate {
    pub rollout: String,
    /// The running version it is judged against; a request on another version ignores it.
    pub baseline: String,
    pub pipeline: Arc<Pipeline>,
}

impl Running {
    /// The pipeline a request starts on, and its record (which names that config version),
    /// with its trace when traces are exported (a child of `headers`' `traceparent`).
    pub fn begin(
        &self,
        telemetry: TelemetrySender,
        request_id: String,
        endpoint: &'static str,
        headers: &HeaderMap,
    ) -> (Arc<Pipeline>, RecordGuard) {
        let pipeline = self.pipeline.load_full();
        let mut record = RecordGuard::new(
            telemetry,
            request_id,
            endpoint,
            pipeline.config.telemetry.access_log,
            pipeline.labels().clone(),
        );
        record.runs_on(short_version(&pipeline.version), pipeline.labels().clone());
        if let Some(tracer) = &self.tracer {
            record.start_trace(tracer, headers, self.gen_ai.clone());
        }
        (pipeline, record)
    }

    /// A chat request on `running` (from [`Self::begin`]): who is calling and which arm of a
    /// config rollout they take, worked out once, then the stages of the pipeline chosen.
    /// The record reports to the SLOs when it ends.
    pub async fn chat(
        &self,
        running: Arc<Pipeline>,
        record: &mut RecordGuard,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<ChatOutcome, GatewayError> {
        self.chat_as(running, record, None, headers, body).await
    }

    /// [`Self::chat`] as the key the request presents, or (a Batch API line) as the key
    /// whose secret has SHA-256 `key_hash`.
    pub async fn chat_as(
        &self,
        running: Arc<Pipeline>,
        record: &mut RecordGuard,
        key_hash: Option<&[u8; 32]>,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<ChatOutcome, GatewayError> {
        self.chat_read(running, record, key_hash, headers, parse_json(body))
            .await
    }

    /// [`Self::chat_as`] for a request already read from its body as a chat request, or the
    /// error reading it gave (answered only after authentication): how a Responses API or
    /// Messages API request, translated, enters the same stages.
    pub async fn chat_read(
        &self,
        running: Arc<Pipeline>,
        record: &mut RecordGuard,
        key_hash: Option<&[u8; 32]>,
        headers: &HeaderMap,
        request: Result<ChatCompletionRequest, GatewayError>,
    ) -> Result<ChatOutcome, GatewayError> {
        let live = self.live.load_full();
        record.count_for(self.outcomes.clone());
        // Authentication answers before parsing does: a bad key is a 401 whatever the body.
        let key = running.authenticate_as(key_hash, headers);
        let key_id = key.as_ref().map_or("", |k| k.id.as_str());
        let user_field = request.as_ref().ok().and_then(|r| r.user.as_deref());
        let user = user_key_of(headers, user_field, key_id);
        let pipeline = self.config_arm(running.clone(), &live, &user, record);
        // The candidate's config has keys of its own (and their limits).
        let key = if Arc::ptr_eq(&pipeline, &running) {
            key?
        } else {
            pipeline.authenticate_as(key_hash, headers)?
        };
        record.set_key(&key);
        let caller = Caller { key, user, headers };
        // The pipeline's future is tens of KB (every stage's state); on the heap, the futures
        // that wrap it (this one, the handler's, each tower layer's) stay small, and moving
        // them no longer copies it: memcpy had been 15% of a streamed request's instructions
        // (callgrind, issue 18).
        Box::pin(pipeline.chat(record, caller, request?, &live)).await
    }

    /// The pipeline a chat request runs on: the candidate's when a config rollout is in
    /// force over `running` and `user` falls in its arm.
    fn config_arm(
        &self,
        running: Arc<Pipeline>,
        live: &Live,
        user: &str,
        record: &mut RecordGuard,
    ) -> Arc<Pipeline> {
        let Some(candidate) = self.candidate.load_full() else {
            return running;
        };
        if candidate.baseline != running.version {
            return running;
        }
        let Some(taken) = live
            .rollouts
            .take(TargetKind::Config, &running.version, user)
        else {
            return running;
        };
        let chosen = if taken.candidate.is_some() {
            candidate.pipeline.clone()
        } else {
            running
        };
        record.runs_on(short_version(&chosen.version), chosen.labels().clone());
        record.take_arm(taken, live.stats.clone());
        chosen
    }
}

/// The short form of a config version's id, shown in headers, records and listings.
pub fn short_version(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}
