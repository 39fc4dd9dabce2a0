//! `[guards]` and `[guard_policies]`: what checks a request and its answer, and how.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;

use super::checker::Checker;
use super::values::{env_name, http_url};
use crate::locate::key_segment;
use crate::name::{valid_name, NAME_RULE};
use crate::raw::{
    RawBiasGuard, RawComplianceGuard, RawConfig, RawGroundingGuard, RawGuards, RawHarmfulGuard,
    RawInjectionGuard, RawJudgeGuard, RawModel, RawPiiGuard, RawTopicsGuard, RawToxicityGuard,
    RawWebhookGuard,
};
use crate::spec::{
    BiasGuardSpec, ComplianceGuardSpec, ContextSources, GroundingGuardSpec, GuardsSpec,
    HarmfulGuardSpec, InjectionGuardSpec, JudgeGuardSpec, OutputAction, OutputPolicySpec,
    PiiGuardSpec, TopicsGuardSpec, ToxicityGuardSpec, WebhookGuardSpec, DEFAULT_JUDGE_TEMPLATE,
};

/// `[guards]`, the default stage, and each named policy of `[guard_policies]`.
pub(super) fn guard_sections(
    c: &mut Checker,
    raw: &RawConfig,
) -> (GuardsSpec, BTreeMap<String, GuardsSpec>) {
    let guards_spec = guards(c, "guards", &raw.guards, &raw.models);
    let mut guard_policies = BTreeMap::new();
    for (name, g) in &raw.guard_policies {
        let at = format!("guard_policies.{}", key_segment(name));
        c.ensure(valid_name(name), &at, NAME_RULE);
        guard_policies.insert(name.clone(), guards(c, &at, g, &raw.models));
    }
    (guards_spec, guard_policies)
}

fn pii_action(c: &mut Checker, path: &str, name: &str) -> switchyard_pii::Action {
    use switchyard_pii::Action;
    match name {
        "pseudonymize" => Action::Pseudonymize,
        "redact" => Action::Redact,
        "hash" => Action::Hash,
        "block" => Action::Block,
        "flag" => Action::Allow,
        other => {
            c.err(
                path,
                format!("`{other}` is not one of \"pseudonymize\", \"redact\", \"hash\", \"block\", \"flag\""),
            );
            Action::Pseudonymize
        }
    }
}

fn entity_kind(c: &mut Checker, path: &str, label: &str) -> Option<switchyard_pii::EntityKind> {
    let kind = switchyard_pii::EntityKind::from_label(label);
    if kind.is_none() {
        let all: Vec<&str> = switchyard_pii::EntityKind::ALL
            .iter()
            .map(|k| k.label())
            .collect();
        c.err(
            path,
            format!("unknown entity kind `{label}`; kinds: {}", all.join(", ")),
        );
    }
    kind
}

/// The kinds on when the config names none: the ones a checksum or a fixed format makes
/// precise (eval/pii.md: F1 ≥ 0.99), not the name and place recognisers, which flag much
/// benign text.
pub(crate) const DEFAULT_PII_KINDS: [switchyard_pii::EntityKind; 7] = [
    switchyard_pii::EntityKind::Email,
    switchyard_pii::EntityKind::Phone,
    switchyard_pii::EntityKind::CreditCard,
    switchyard_pii::EntityKind::Iban,
    switchyard_pii::EntityKind::UsSsn,
    switchyard_pii::EntityKind::IpAddress,
    switchyard_pii::EntityKind::Secret,
];

/// One guard stage (`[guards]` or a policy), its guards in the order they are checked.
fn guards(
    c: &mut Checker,
    at: &str,
    g: &RawGuards,
    models: &BTreeMap<String, RawModel>,
) -> GuardsSpec {
    let pii = g.pii.as_ref().map(|p| pii(c, at, p));
    let injection = g.injection.as_ref().and_then(|i| injection(c, at, i));
    let toxicity = g.toxicity.as_ref().and_then(|t| toxicity(c, at, t));
    let compliance = g.compliance.as_ref().map(|r| compliance(c, at, r));
    c.ensure(
        !g.output.safe_answer.trim().is_empty(),
        format!("{at}.output.safe_answer"),
        "must not be empty",
    );
    c.ensure(
        g.output.retries <= 5,
        format!("{at}.output.retries"),
        "at most 5: each retry is a paid call",
    );
    let webhook = g.webhook.as_ref().map(|w| webhook(c, at, w));
    let judge = g.judge.as_ref().and_then(|j| judge(c, at, j, models));
    let screen_first = c.one_of(
        format!("{at}.screen"),
        g.screen.as_deref().unwrap_or("alongside"),
        &[("alongside", false), ("first", true)],
        false,
    );
    let topics = g.topics.as_ref().map(|t| topics_guard(c, at, t));
    let grounding = g.grounding.as_ref().map(|r| grounding(c, at, r));
    let bias = g.bias.as_ref().map(|b| bias(c, at, b));
    let harmful = g.harmful.as_ref().and_then(|h| harmful(c, at, h));
    GuardsSpec {
        screen_first,
        pii,
        injection,
        toxicity,
        compliance,
        webhook,
        judge,
        topics,
        grounding,
        bias,
        harmful,
        output: OutputPolicySpec {
            retries: g.output.retries,
            corrective_note: g.output.corrective_note,
            safe_answer: g.output.safe_answer.clone(),
        },
    }
}

/// A classifying input screen's `action` (`block` or `flag`), `on_error` and optional
/// `threshold` (a probability) under `section`: whether it blocks, and whether it fails open.
fn screen_settings(
    c: &mut Checker,
    section: &str,
    action: &str,
    on_error: &str,
    threshold: Option<f32>,
) -> (bool, bool) {
    let block = c.one_of(
        format!("{section}.action"),
        action,
        &[("block", true), ("flag", false)],
        true,
    );
    let fail_open = c.fail_open(format!("{section}.on_error"), on_error);
    if let Some(t) = threshold {
        c.within(t, 0.0..=1.0, format!("{section}.threshold"));
    }
    (block, fail_open)
}

fn harmful(c: &mut Checker, at: &str, h: &RawHarmfulGuard) -> Option<HarmfulGuardSpec> {
    use switchyard_textclass::harmful::{category, Embedding, CATEGORIES};
    let (block, fail_open) = screen_settings(
        c,
        &format!("{at}.harmful"),
        &h.action,
        &h.on_error,
        h.threshold,
    );
    let categories = match &h.categories {
        None => CATEGORIES.into_iter().collect(),
        Some(list) => {
            c.ensure(
                !list.is_empty(),
                format!("{at}.harmful.categories"),
                "must name at least one category (remove the guard to turn it off)",
            );
            list.iter()
                .enumerate()
                .filter_map(|(i, name)| {
                    let found = category(name);
                    if found.is_none() {
                        c.err(
                            format!("{at}.harmful.categories[{i}]"),
                            format!(
                                "unknown category `{name}`; categories: {}",
                                CATEGORIES.join(", ")
                            ),
                        );
                    }
                    found
                })
                .collect()
        }
    };
    let artifact = crate::builtin::load_harmful(&h.artifact)
        .map_err(|e| c.err(format!("{at}.harmful.artifact"), e))
        .ok()?;
    match artifact.embedding {
        Embedding::Minilm => c.err(
            format!("{at}.harmful.artifact"),
            "this classifier needs MiniLM embeddings; the gateway's guard embeds with the \
             static model only (`embedding` \"static\" or \"none\")",
        ),
        Embedding::Static => {
            c.ensure(
                !h.embedder.trim().is_empty(),
                format!("{at}.harmful.embedder"),
                "must name the static model's folder",
            );
        }
        Embedding::None => {}
    }
    Some(HarmfulGuardSpec {
        block,
        threshold: h.threshold,
        source: h.artifact.clone(),
        artifact: std::sync::Arc::new(artifact),
        categories,
        embedder: PathBuf::from(&h.embedder),
        fail_open,
    })
}

/// What an output guard does with a failing answer.
fn output_action(c: &mut Checker, path: &str, a: &str) -> OutputAction {
    c.one_of(
        path.to_owned(),
        a,
        &[
            ("retry", OutputAction::Retry),
            ("block", OutputAction::Block),
            ("flag", OutputAction::Flag),
        ],
        OutputAction::Retry,
    )
}

fn pii(c: &mut Checker, at: &str, p: &RawPiiGuard) -> PiiGuardSpec {
    let action = pii_action(c, &format!("{at}.pii.action"), &p.action);
    let kinds: BTreeSet<switchyard_pii::EntityKind> = match &p.kinds {
        None => DEFAULT_PII_KINDS.into_iter().collect(),
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(i, k)| entity_kind(c, &format!("{at}.pii.kinds[{i}]"), k))
            .collect(),
    };
    let mut policy = switchyard_pii::MaskPolicy::uniform(action);
    for (label, a) in &p.actions {
        let path = format!("{at}.pii.actions.{}", key_segment(label));
        if let Some(kind) = entity_kind(c, &path, label) {
            policy = policy.with(kind, pii_action(c, &path, a));
        }
    }
    env_name(c, &format!("{at}.pii.hash_salt_env"), &p.hash_salt_env);
    PiiGuardSpec {
        kinds,
        policy,
        hash_salt_env: p.hash_salt_env.clone(),
    }
}

fn injection(c: &mut Checker, at: &str, i: &RawInjectionGuard) -> Option<InjectionGuardSpec> {
    let (block, fail_open) = screen_settings(
        c,
        &format!("{at}.injection"),
        &i.action,
        &i.on_error,
        i.threshold,
    );
    let artifact =
        crate::builtin::load_classifier(&i.artifact, crate::builtin::INJECTION_DETECTORS)
            .map_err(|e| c.err(format!("{at}.injection.artifact"), e))
            .ok()?;
    Some(InjectionGuardSpec {
        block,
        threshold: i.threshold,
        source: i.artifact.clone(),
        artifact: std::sync::Arc::new(artifact),
        scan_tool_results: i.scan_tool_results,
        fail_open,
    })
}

fn toxicity(c: &mut Checker, at: &str, t: &RawToxicityGuard) -> Option<ToxicityGuardSpec> {
    let action = output_action(c, &format!("{at}.toxicity.action"), &t.action);
    if let Some(v) = t.threshold {
        c.ensure(
            (0.0..=1.0).contains(&v),
            format!("{at}.toxicity.threshold"),
            "must be between 0 and 1",
        );
    }
    let artifact = crate::builtin::load_classifier(&t.artifact, crate::builtin::TOXICITY_DETECTORS)
        .map_err(|e| c.err(format!("{at}.toxicity.artifact"), e))
        .ok()?;
    Some(ToxicityGuardSpec {
        action,
        threshold: t.threshold,
        source: t.artifact.clone(),
        artifact: std::sync::Arc::new(artifact),
    })
}

fn compliance(c: &mut Checker, at: &str, r: &RawComplianceGuard) -> ComplianceGuardSpec {
    let action = output_action(c, &format!("{at}.compliance.action"), &r.action);
    let regex = |c: &mut Checker, path: String, pattern: &str| {
        Regex::new(pattern)
            .map_err(|e| c.err(path, format!("not a valid regex: {e}")))
            .ok()
    };
    let forbidden = r
        .forbidden
        .iter()
        .enumerate()
        .filter_map(|(i, p)| regex(c, format!("{at}.compliance.forbidden[{i}]"), p))
        .collect();
    let disclaimers = r
        .disclaimers
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            c.ensure(
                !d.text.trim().is_empty(),
                format!("{at}.compliance.disclaimers[{i}].text"),
                "must not be empty",
            );
            regex(c, format!("{at}.compliance.disclaimers[{i}].when"), &d.when)
                .map(|re| (re, d.text.clone()))
        })
        .collect();
    c.ensure(
        r.max_chars != Some(0),
        format!("{at}.compliance.max_chars"),
        "must be greater than 0 (omit it for no limit)",
    );
    ComplianceGuardSpec {
        action,
        forbidden,
        disclaimers,
        max_chars: r.max_chars,
        json: r.json,
    }
}

fn webhook(c: &mut Checker, at: &str, w: &RawWebhookGuard) -> WebhookGuardSpec {
    let url = http_url(c, &format!("{at}.webhook.url"), &w.url);
    c.ensure(
        w.timeout_ms > 0,
        format!("{at}.webhook.timeout_ms"),
        "must be greater than 0",
    );
    let fail_open = c.fail_open(format!("{at}.webhook.on_error"), &w.on_error);
    WebhookGuardSpec {
        url,
        timeout: Duration::from_millis(w.timeout_ms),
        fail_open,
    }
}

fn judge(
    c: &mut Checker,
    at: &str,
    j: &RawJudgeGuard,
    models: &BTreeMap<String, RawModel>,
) -> Option<JudgeGuardSpec> {
    c.ensure(
        models.contains_key(&j.model),
        format!("{at}.judge.model"),
        format!("no model `{}` is declared under [models]", j.model),
    );
    let template = j
        .template
        .clone()
        .unwrap_or_else(|| DEFAULT_JUDGE_TEMPLATE.to_owned());
    if let Err(e) = minijinja::Environment::new().template_from_str(&template) {
        c.err(
            format!("{at}.judge.template"),
            format!("not a valid template: {e}"),
        );
    }
    let action = output_action(c, &format!("{at}.judge.action"), &j.action);
    let unsafe_pattern = Regex::new(&j.unsafe_pattern)
        .map_err(|e| {
            c.err(
                format!("{at}.judge.unsafe_pattern"),
                format!("not a valid regex: {e}"),
            )
        })
        .ok()?;
    Some(JudgeGuardSpec {
        model: j.model.clone(),
        template,
        unsafe_pattern,
        action,
    })
}

fn grounding(c: &mut Checker, at: &str, r: &RawGroundingGuard) -> GroundingGuardSpec {
    let action = output_action(c, &format!("{at}.grounding.action"), &r.action);
    c.ensure(
        r.threshold.is_none_or(|t| (0.0..=1.0).contains(&t)),
        format!("{at}.grounding.threshold"),
        "must be between 0 and 1",
    );
    let mut context = ContextSources::default();
    for (i, source) in r.context.iter().enumerate() {
        match source.as_str() {
            "field" => context.field = true,
            "tools" => context.tools = true,
            "system" => context.system = true,
            other => c.err(
                format!("{at}.grounding.context[{i}]"),
                format!("`{other}` is not one of \"field\", \"tools\", \"system\""),
            ),
        }
    }
    c.ensure(
        context != ContextSources::default(),
        format!("{at}.grounding.context"),
        "name at least one place to read the context from",
    );
    GroundingGuardSpec {
        action,
        threshold: r.threshold,
        context,
    }
}

fn bias(c: &mut Checker, at: &str, b: &RawBiasGuard) -> BiasGuardSpec {
    let action = output_action(c, &format!("{at}.bias.action"), &b.action);
    if let Some(v) = b.threshold {
        c.ensure(
            (0.0..=1.0).contains(&v),
            format!("{at}.bias.threshold"),
            "must be between 0 and 1",
        );
    }
    BiasGuardSpec {
        action,
        threshold: b.threshold,
    }
}

fn topics_guard(c: &mut Checker, at: &str, t: &RawTopicsGuard) -> TopicsGuardSpec {
    let refuse = c.one_of(
        format!("{at}.topics.action"),
        &t.action,
        &[("refuse", true), ("flag", false)],
        true,
    );
    let fail_open = c.fail_open(format!("{at}.topics.on_error"), &t.on_error);
    c.ensure(
        !t.allowed.is_empty() || !t.denied.is_empty(),
        format!("{at}.topics"),
        "declare at least one [[...topics.allowed]] or [[...topics.denied]] topic",
    );
    c.ensure(
        !t.refusal.trim().is_empty(),
        format!("{at}.topics.refusal"),
        "must not be empty",
    );
    c.ensure(
        !t.embedder.trim().is_empty(),
        format!("{at}.topics.embedder"),
        "must name the static model's folder",
    );
    let defaults = switchyard_topics::Thresholds::default();
    let mut thresholds = defaults;
    for (field, value, slot) in [
        ("allow_threshold", t.allow_threshold, &mut thresholds.allow),
        ("deny_threshold", t.deny_threshold, &mut thresholds.deny),
    ] {
        if let Some(v) = value {
            c.ensure(
                (-1.0..=1.0).contains(&v),
                format!("{at}.topics.{field}"),
                "a cosine: between -1 and 1",
            );
            *slot = v;
        }
    }
    let mut topics = Vec::new();
    let mut names = BTreeSet::new();
    for (list, kind, raw) in [
        ("allowed", switchyard_topics::TopicKind::Allowed, &t.allowed),
        ("denied", switchyard_topics::TopicKind::Denied, &t.denied),
    ] {
        for (i, topic) in raw.iter().enumerate() {
            let path = format!("{at}.topics.{list}[{i}]");
            let name = topic.name.trim();
            c.ensure(
                !name.is_empty(),
                format!("{path}.name"),
                "must not be empty",
            );
            c.ensure(
                name.is_empty() || names.insert(name.to_owned()),
                format!("{path}.name"),
                format!("topic `{name}` is declared twice"),
            );
            let has_phrase = topic.examples.iter().any(|e| !e.trim().is_empty())
                || topic
                    .description
                    .as_deref()
                    .is_some_and(|d| !d.trim().is_empty())
                || topic.keywords.iter().any(|k| !k.trim().is_empty());
            c.ensure(
                has_phrase,
                path.clone(),
                "give the topic examples, a description or keywords",
            );
            topics.push(switchyard_topics::TopicSpec {
                name: name.to_owned(),
                examples: topic.examples.clone(),
                description: topic.description.clone(),
                keywords: topic.keywords.clone(),
                kind,
            });
        }
    }
    TopicsGuardSpec {
        topics,
        thresholds,
        refuse,
        refusal: t.refusal.clone(),
        embedder: PathBuf::from(&t.embedder),
        fail_open,
    }
}
