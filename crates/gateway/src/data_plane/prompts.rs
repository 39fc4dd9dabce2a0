//! Prompt templates at request time: a request names a stored prompt (`model:
//! "prompt:support-answer@production"`, or a `prompt` field), and the gateway renders it into
//! the request before anything else sees it.
//!
//! Every stored version and label is held in memory ([`PromptSet`], read with the flags when
//! the store's control generation moves), so resolving a prompt costs a map lookup, and moving
//! a label takes effect on every replica's next request. Rendering and merging are
//! `switchyard_control::prompt`'s; this module finds the version and renders it on a blocking
//! thread within the config's `[prompts]` limits, so a heavy template never holds an async
//! worker (and with it `/healthz` and every other request on that worker).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use switchyard_api::ChatCompletionRequest;
use switchyard_control::prompt::{
    PromptCall, PromptRef, PromptTemplate, RenderError, RenderLimits, Selector,
};
use switchyard_store::{Store, StoreError};

use crate::data_plane::arms::{RolloutSet, Taken};
use crate::error::{ErrorKind, GatewayError};
use switchyard_rollout::TargetKind;

#[derive(Debug, Default)]
struct Prompt {
    labels: BTreeMap<String, u32>,
    versions: BTreeMap<u32, Arc<PromptTemplate>>,
}

/// Every stored prompt version and label.
#[derive(Debug, Default)]
pub struct PromptSet {
    by_name: HashMap<String, Prompt>,
}

impl PromptSet {
    /// Reads every prompt from the store. A stored body this build cannot read (written by a
    /// newer one) is left out with a warning rather than failing every other prompt.
    pub fn load(store: &dyn Store) -> Result<Self, StoreError> {
        let mut by_name = HashMap::new();
        for summary in store.prompt_names()? {
            let mut prompt = Prompt {
                labels: summary.labels,
                versions: BTreeMap::new(),
            };
            for row in store.prompt_versions(&summary.name)? {
                match PromptTemplate::from_json(&row.body) {
                    Ok(t) => {
                        prompt.versions.insert(row.version, Arc::new(t));
                    }
                    Err(e) => tracing::warn!(
                        prompt = %row.name,
                        version = row.version,
                        error = %e,
                        "a stored prompt version cannot be read by this build"
                    ),
                }
            }
            by_name.insert(summary.name, prompt);
        }
        Ok(PromptSet { by_name })
    }

    /// The version a reference names, and its template.
    pub fn resolve(&self, r: &PromptRef) -> Result<(u32, Arc<PromptTemplate>), GatewayError> {
        let not_found = |what: String| {
            let mut e = GatewayError::new(ErrorKind::NotFound, "prompt_not_found", what);
            e.param = Some("prompt".into());
            e
        };
        let prompt = self
            .by_name
            .get(&r.name)
            .ok_or_else(|| not_found(format!("no prompt `{}` is stored", r.name)))?;
        let version = match &r.selector {
            Selector::Version(v) => *v,
            Selector::Label(l) => *prompt
                .labels
                .get(l)
                .ok_or_else(|| not_found(format!("prompt `{}` has no label `{l}`", r.name)))?,
        };
        let template =
            prompt.versions.get(&version).cloned().ok_or_else(|| {
                not_found(format!("prompt `{}` has no version {version}", r.name))
            })?;
        Ok((version, template))
    }

    /// The request's prompt reference, if it has one, rendered into it within `limits`. A
    /// reference by label that a prompt rollout covers renders the version of the arm `user`
    /// takes. Returns what ran (`name@version`) for the record, and the arm.
    pub async fn render_into(
        &self,
        request: &mut ChatCompletionRequest,
        rollouts: &RolloutSet,
        user: &str,
        limits: &RenderLimits,
    ) -> Result<Option<(String, Option<Taken>)>, GatewayError> {
        let call = PromptCall::take_from(request)
            .map_err(|e| GatewayError::invalid(Some("prompt"), e.to_string()))?;
        let Some(call) = call else {
            return Ok(None);
        };
        let mut reference = call.reference.clone();
        let mut taken = None;
        if let Selector::Label(label) = &call.reference.selector {
            let baseline = format!("{}@{label}", call.reference.name);
            if let Some(t) = rollouts.take(TargetKind::Prompt, &baseline, user) {
                if let Some(candidate) = &t.candidate {
                    reference = PromptRef::parse(candidate).map_err(|e| {
                        GatewayError::new(ErrorKind::Internal, "rollout_target", e.to_string())
                    })?;
                }
                taken = Some(t);
            }
        }
        let (version, template) = self.resolve(&reference)?;
        let ran = format!("{}@{version}", call.reference.name);
        let limits = *limits;
        // Up to the fuel's worth of CPU: not on an async worker. A caller that hangs up does
        // not stop it; the limits do.
        let rendered =
            tokio::task::spawn_blocking(move || template.render_within(&call.variables, &limits))
                .await
                .map_err(|_| {
                    GatewayError::new(
                        ErrorKind::Internal,
                        "internal_error",
                        format!("rendering prompt `{ran}` failed"),
                    )
                })?;
        rendered
            .and_then(|r| r.apply_to(request))
            .map_err(|e| render_error(&ran, &e))?;
        Ok(Some((ran, taken)))
    }
}

/// A prompt that could not be rendered, named (`name@version`), in OpenAI's shape: a limit
/// has its own code, so a client can tell "too big" from a mistake in its variables.
pub fn render_error(prompt: &str, e: &RenderError) -> GatewayError {
    let message = format!("prompt `{prompt}`: {e}");
    let mut err = match e {
        RenderError::TooLarge { .. } | RenderError::OutOfFuel { .. } => {
            GatewayError::new(ErrorKind::InvalidRequest, "prompt_render_limit", message)
        }
        _ => GatewayError::invalid(None, message),
    };
    err.param = Some("prompt".into());
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A set holding `template` as `heavy@1`, labelled `production`.
    fn set_of(template: &str) -> PromptSet {
        let text = format!(
            "name = \"heavy\"\nmodel = \"m\"\n[[messages]]\nrole = \"user\"\ncontent = '''{template}'''\n"
        );
        let parsed = PromptTemplate::parse(&text, "heavy.toml").unwrap();
        let prompt = Prompt {
            labels: BTreeMap::from([("production".to_owned(), 1)]),
            versions: BTreeMap::from([(1, Arc::new(parsed))]),
        };
        PromptSet {
            by_name: HashMap::from([("heavy".to_owned(), prompt)]),
        }
    }

    fn request() -> ChatCompletionRequest {
        serde_json::from_value(serde_json::json!({"model": "prompt:heavy", "messages": []}))
            .unwrap()
    }

    /// On a runtime with one thread, a render that ran on that thread would finish inside
    /// the first poll of `render_into`; on a blocking thread, the first poll is pending and
    /// the other branch (always ready) wins.
    #[tokio::test(flavor = "current_thread")]
    async fn rendering_runs_off_the_async_thread() {
        let set = set_of(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% set k = j %}{% endfor %}{% endfor %}",
        );
        let limits = RenderLimits {
            max_bytes: 1024,
            fuel: 2_000_000,
        };
        let (mut req, rollouts) = (request(), RolloutSet::default());
        let render = set.render_into(&mut req, &rollouts, "u", &limits);
        tokio::pin!(render);
        let render_finished_first = tokio::select! {
            biased;
            _ = &mut render => true,
            () = std::future::ready(()) => false,
        };
        assert!(!render_finished_first, "the render held the async thread");
        let e = render.await.unwrap_err();
        assert_eq!(e.code, Some("prompt_render_limit"));
        assert_eq!(e.param.as_deref(), Some("prompt"));
        assert!(e.message.starts_with("prompt `heavy@1`: "), "{}", e.message);
    }
}
