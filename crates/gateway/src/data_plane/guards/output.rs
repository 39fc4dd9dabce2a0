//! The output guards of a guard policy, built from config as a list (toxicity, grounding,
//! bias, compliance: the order they run in); the checks themselves are
//! `switchyard_guards`'s.

use std::sync::Arc;

use switchyard_control::GuardsSpec;
use switchyard_grounding::Grounding;
use switchyard_guards::{BiasCheck, GroundingCheck, OutputCheck, OutputChecks, ToxicityCheck};
use switchyard_textclass::toxicity::ToxicityDetector;
use switchyard_topics::BiasDetector;

use super::errors::GuardBuildError;

/// The output checks `spec` configures; `None` when there is none.
pub fn build_checks(spec: &GuardsSpec) -> Result<Option<Arc<OutputChecks>>, GuardBuildError> {
    let mut checks = Vec::new();
    if let Some(t) = &spec.toxicity {
        let mut detector = ToxicityDetector::from_artifact(&t.artifact)?;
        if let Some(v) = t.threshold {
            detector = detector.with_threshold(v);
        }
        checks.push(OutputCheck::Toxicity(ToxicityCheck {
            detector,
            action: t.action,
        }));
    }
    if let Some(g) = &spec.grounding {
        // The lexical head: it needs no model, and the static head measured no better
        // (eval/hallucination.md). Its threshold is the artifact's unless configured.
        let scorer = Grounding::embedded()?;
        checks.push(OutputCheck::Grounding(GroundingCheck {
            scorer: match g.threshold {
                Some(t) => scorer.with_threshold(t),
                None => scorer,
            },
            action: g.action,
            sources: g.context,
        }));
    }
    if let Some(b) = &spec.bias {
        checks.push(OutputCheck::Bias(BiasCheck {
            detector: match b.threshold {
                Some(t) => BiasDetector::default().with_threshold(t),
                None => BiasDetector::default(),
            },
            action: b.action,
        }));
    }
    if let Some(c) = &spec.compliance {
        checks.push(OutputCheck::Compliance(c.clone()));
    }
    Ok(OutputChecks::new(checks).map(Arc::new))
}
