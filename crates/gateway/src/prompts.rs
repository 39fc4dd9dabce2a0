//! Prompt templates at request time: a request names a stored prompt (`model:
//! "prompt:support-answer@production"`, or a `prompt` field), and the gateway renders it into
//! the request before anything else sees it.
//!
//! Every stored version and label is held in memory ([`PromptSet`], read with the flags when
//! the store's control generation moves), so resolving a prompt costs a map lookup, and moving
//! a label takes effect on every replica's next request. Rendering and merging are
//! `switchyard_control::prompt`'s; this module only finds the version.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use switchyard_api::ChatCompletionRequest;
use switchyard_control::prompt::{PromptCall, PromptRef, PromptTemplate, Selector};
use switchyard_store::{SqliteStore, StoreError};

use crate::error::{ErrorKind, GatewayError};
use crate::rollouts::{RolloutSet, Taken};
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
    pub fn load(store: &SqliteStore) -> Result<Self, StoreError> {
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

    /// The request's prompt reference, if it has one, rendered into it. A reference by label
    /// that a prompt rollout covers renders the version of the arm `user` takes. Returns what
    /// ran (`name@version`) for the record, and the arm.
    pub fn render_into(
        &self,
        request: &mut ChatCompletionRequest,
        rollouts: &RolloutSet,
        user: &str,
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
        template.apply_to(request, &call.variables).map_err(|e| {
            GatewayError::invalid(
                Some("prompt"),
                format!("prompt `{}@{version}`: {e}", call.reference.name),
            )
        })?;
        Ok(Some((format!("{}@{version}", call.reference.name), taken)))
    }
}
