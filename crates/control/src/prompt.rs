//! Prompt templates as versioned code: the prompt file format, its validation, the JSON body
//! the store keeps, rendering with minijinja, and references such as `support-answer@production`.
//!
//! A prompt file (TOML, one prompt a file, kept in git and reviewed like code) is parsed and
//! validated the way the config file is: serde reads it with unknown fields refused, then every
//! problem is collected with its field path and line. A validated [`PromptTemplate`] serialises
//! to the JSON body the store keeps per version; bodies only ever gain fields with defaults, so
//! old ones stay readable. [`PromptTemplate::render`] fills the templates in (strict about
//! undefined values, no HTML escaping) and [`PromptTemplate::apply_to`] merges the result into a
//! chat request. [`PromptRef`] names a prompt by label or version; [`PromptCall`] reads which
//! prompt a request names (`model = "prompt:..."` or the `prompt` extension field).
//!
//! This module is pure: it never reads files, talks to the store or serves HTTP. Which version
//! a label points to, and where bodies live, belong to the store and the admin API.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use switchyard_api::{ChatCompletionRequest, ChatMessage, ResponseFormat, Role, Stop};

use crate::diag::{located, syntax_error};
use crate::locate::key_segment;
pub use crate::spec::RenderLimits;
use crate::{ConfigError, Diagnostic};

/// The version of the stored body [`PromptTemplate::to_json`] writes.
pub const FORMAT_VERSION: u32 = 1;
/// The `model` value that names a prompt: `prompt:support-answer@production`.
pub const MODEL_PREFIX: &str = "prompt:";
/// The label a reference without `@` selects.
pub const DEFAULT_LABEL: &str = "production";

/// A validated prompt: what a prompt file says, and what the store keeps as one version's body.
///
/// Serialised field order is the declaration order below; variables are sorted by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptTemplate {
    /// The body format; [`FORMAT_VERSION`] for everything written today.
    #[serde(default = "format_v1")]
    pub format_version: u32,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The default model (a model or route name) used when the caller names only the prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Default request parameters; the caller's own values win.
    #[serde(default)]
    pub params: PromptParams,
    #[serde(default)]
    pub variables: BTreeMap<String, VariableSpec>,
    /// Rendered in order, ahead of the caller's messages.
    #[serde(default)]
    pub messages: Vec<MessageTemplate>,
}

fn format_v1() -> u32 {
    1
}

/// Default request parameters a prompt carries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
}

/// A declared variable. Required unless it has a default; an optional one without a default is
/// undefined when not passed, so its templates test it with `is defined` or `| default(...)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariableSpec {
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One message of the prompt: a role and a minijinja template for its text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageTemplate {
    pub role: Role,
    pub content: String,
}

/// A stored body that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("prompt body is not valid JSON for a prompt: {0}")]
    Json(#[from] serde_json::Error),
    #[error("prompt body has format_version {0}; this Switchyard reads up to {FORMAT_VERSION}")]
    NewerFormat(u32),
}

// ---------------------------------------------------------------------------------------------
// The file as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrompt {
    #[serde(default)]
    format_version: Option<u32>,
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    params: RawParams,
    #[serde(default)]
    variables: BTreeMap<String, RawVariable>,
    #[serde(default)]
    messages: Vec<RawMessage>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParams {
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    seed: Option<i64>,
    /// Read as JSON first, so a wrong shape is reported at this field with a plain message.
    #[serde(default)]
    response_format: Option<Value>,
    #[serde(default)]
    stop: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariable {
    #[serde(default)]
    required: Option<bool>,
    #[serde(default)]
    default: Option<Value>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMessage {
    role: String,
    content: String,
}

// ---------------------------------------------------------------------------------------------
// Parsing and validation.

/// One validation problem: field path, message, and for template errors the line inside the
/// template, so the diagnostic can point into a multi-line string.
struct Issue {
    path: String,
    message: String,
    template_line: Option<usize>,
}

#[derive(Default)]
struct Issues(Vec<Issue>);

impl Issues {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Issue {
            path: path.into(),
            message: message.into(),
            template_line: None,
        });
    }
}

impl PromptTemplate {
    /// Parses and validates a prompt file; `origin` names it in diagnostics (a file name).
    ///
    /// Every problem is reported at once, each with its line and field path, e.g.
    /// ``support-answer.toml:7: `messages[1].content`: uses `qestion`, which is not declared``.
    pub fn parse(text: &str, origin: &str) -> Result<PromptTemplate, ConfigError> {
        let raw: RawPrompt = toml::from_str(text).map_err(|e| syntax_error(text, origin, &e))?;
        let mut issues = Issues::default();
        let prompt = validate(raw, &mut issues);
        if issues.0.is_empty() {
            return Ok(prompt);
        }
        let template_lines: Vec<Option<usize>> = issues.0.iter().map(|i| i.template_line).collect();
        let pairs = issues.0.into_iter().map(|i| (i.path, i.message)).collect();
        let mut diags: Vec<Diagnostic> = located(text, origin, pairs);
        for (d, inner) in diags.iter_mut().zip(template_lines) {
            if let (Some(line), Some(inner)) = (d.line, inner) {
                d.line = Some(line_in_string(text, line, inner));
            }
        }
        Err(ConfigError::Invalid(diags))
    }

    /// The stored body: JSON with a stable field order.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// Reads a stored body. Fields a body lacks take their defaults; a body written by a newer
    /// format is refused rather than half understood.
    pub fn from_json(body: &str) -> Result<PromptTemplate, BodyError> {
        let prompt: PromptTemplate = serde_json::from_str(body)?;
        if prompt.format_version > FORMAT_VERSION {
            return Err(BodyError::NewerFormat(prompt.format_version));
        }
        Ok(prompt)
    }

    /// Declared variables no template uses: worth a note, not an error (a variable may be kept
    /// for callers while a template is being rewritten).
    pub fn unused_variables(&self) -> Vec<String> {
        let env = environment();
        let mut used = BTreeSet::new();
        for m in &self.messages {
            if let Ok(t) = env.template_from_str(&m.content) {
                used.extend(t.undeclared_variables(false));
            }
        }
        self.variables
            .keys()
            .filter(|name| !used.contains(*name))
            .cloned()
            .collect()
    }
}

/// Prompt names: letters, digits, `-`, `_` and `.`; the model-name rule without `:`, which
/// would read as a second `prompt:` prefix.
fn valid_prompt_name(name: &str) -> bool {
    crate::name::valid_name(name) && !name.contains(':')
}

/// A name a template can use as a plain variable: `[A-Za-z_][A-Za-z0-9_]*`.
fn valid_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

const ROLES: [(&str, Role); 4] = [
    ("system", Role::System),
    ("developer", Role::Developer),
    ("user", Role::User),
    ("assistant", Role::Assistant),
];

fn validate(raw: RawPrompt, c: &mut Issues) -> PromptTemplate {
    if let Some(v) = raw.format_version {
        if v != FORMAT_VERSION {
            c.err(
                "format_version",
                format!("must be {FORMAT_VERSION} (the only prompt file format so far)"),
            );
        }
    }
    if !valid_prompt_name(&raw.name) {
        c.err(
            "name",
            format!(
                "`{}` is not a prompt name: use letters, digits, `-`, `_` and `.`",
                raw.name
            ),
        );
    }
    if let Some(model) = &raw.model {
        if model.starts_with(MODEL_PREFIX) {
            c.err("model", "a prompt's default model cannot be another prompt");
        } else if !crate::name::valid_name(model) {
            c.err("model", format!("`{model}` is not a model or route name"));
        }
    }
    let params = validate_params(raw.params, c);
    let variables = validate_variables(raw.variables, c);
    let messages = validate_messages(raw.messages, &variables, c);

    PromptTemplate {
        format_version: FORMAT_VERSION,
        name: raw.name,
        description: raw.description,
        model: raw.model,
        params,
        variables,
        messages,
    }
}

fn validate_variables(
    raw: BTreeMap<String, RawVariable>,
    c: &mut Issues,
) -> BTreeMap<String, VariableSpec> {
    let mut variables = BTreeMap::new();
    for (name, v) in raw {
        let at = format!("variables.{}", key_segment(&name));
        if !valid_identifier(&name) {
            c.err(
                &at,
                format!("`{name}` is not a template variable name: use letters, digits and `_`, not starting with a digit"),
            );
        }
        let default = v.default.filter(|d| !d.is_null());
        if v.required == Some(true) && default.is_some() {
            c.err(
                format!("{at}.default"),
                "a required variable has no default: drop `required` or `default`",
            );
        }
        let required = v.required.unwrap_or(default.is_none());
        variables.insert(
            name,
            VariableSpec {
                required,
                default,
                description: v.description,
            },
        );
    }
    variables
}

/// Roles, and templates that compile and use only declared variables (or minijinja's globals).
fn validate_messages(
    raw: Vec<RawMessage>,
    variables: &BTreeMap<String, VariableSpec>,
    c: &mut Issues,
) -> Vec<MessageTemplate> {
    if raw.is_empty() {
        c.err("messages", "a prompt needs at least one [[messages]] entry");
    }
    let env = environment();
    let globals: BTreeSet<&str> = env.globals().map(|(name, _)| name).collect();
    let mut messages = Vec::with_capacity(raw.len());
    for (i, m) in raw.into_iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = match ROLES.iter().find(|(name, _)| *name == m.role) {
            Some((_, role)) => *role,
            None => {
                c.err(
                    format!("{at}.role"),
                    format!(
                        "`{}` is not one of \"system\", \"developer\", \"user\", \"assistant\"",
                        m.role
                    ),
                );
                Role::User
            }
        };
        let path = format!("{at}.content");
        if m.content.trim().is_empty() {
            c.err(&path, "must not be empty");
        }
        match env.template_from_str(&m.content) {
            Ok(t) => {
                let mut used: Vec<String> = t.undeclared_variables(false).into_iter().collect();
                used.sort();
                for name in used {
                    if !variables.contains_key(&name) && !globals.contains(name.as_str()) {
                        c.err(
                            &path,
                            format!("uses `{name}`, which is not declared under [variables]"),
                        );
                    }
                }
            }
            Err(e) => c.0.push(Issue {
                path: path.clone(),
                message: format!("not a valid template: {}", template_error(&e)),
                template_line: e.line(),
            }),
        }
        messages.push(MessageTemplate {
            role,
            content: m.content,
        });
    }
    messages
}

fn validate_params(p: RawParams, c: &mut Issues) -> PromptParams {
    if let Some(t) = p.temperature {
        if !(0.0..=2.0).contains(&t) {
            c.err("params.temperature", "must be between 0 and 2");
        }
    }
    if let Some(t) = p.top_p {
        if !(0.0..=1.0).contains(&t) {
            c.err("params.top_p", "must be between 0 and 1");
        }
    }
    for (field, value) in [
        ("max_tokens", p.max_tokens),
        ("max_completion_tokens", p.max_completion_tokens),
    ] {
        if value == Some(0) {
            c.err(format!("params.{field}"), "must be greater than 0");
        }
    }
    let response_format = p.response_format.and_then(|v| {
        serde_json::from_value::<ResponseFormat>(v)
            .map_err(|e| {
                c.err(
                    "params.response_format",
                    format!("not a response format, e.g. {{ type = \"json_object\" }}: {e}"),
                )
            })
            .ok()
    });
    let stop = p.stop.and_then(|v| match v {
        Value::String(s) if !s.is_empty() => Some(Stop::One(s)),
        Value::Array(items) => {
            let strings: Vec<String> = items
                .iter()
                .filter_map(|i| i.as_str().filter(|s| !s.is_empty()).map(str::to_owned))
                .collect();
            if strings.len() != items.len() || strings.is_empty() || strings.len() > 4 {
                c.err("params.stop", "must be one to four non-empty strings");
                None
            } else {
                Some(Stop::Many(strings))
            }
        }
        _ => {
            c.err(
                "params.stop",
                "must be a non-empty string or an array of them",
            );
            None
        }
    });
    PromptParams {
        temperature: p.temperature,
        top_p: p.top_p,
        max_tokens: p.max_tokens,
        max_completion_tokens: p.max_completion_tokens,
        seed: p.seed,
        response_format,
        stop,
    }
}

/// The file line of line `inner` of a template whose value starts on `value_line`. A
/// multi-line string (`"""` or `'''`) whose delimiter ends its line starts on the next line;
/// a single-line string keeps every template line on its own. Best effort: escaped newlines in
/// a basic string are not counted.
fn line_in_string(text: &str, value_line: usize, inner: usize) -> usize {
    let Some(line) = text.lines().nth(value_line.saturating_sub(1)) else {
        return value_line;
    };
    for delim in ["\"\"\"", "'''"] {
        if let Some(pos) = line.find(delim) {
            let opens_block = line[pos + delim.len()..].is_empty();
            return value_line + inner - usize::from(!opens_block);
        }
    }
    value_line
}

// ---------------------------------------------------------------------------------------------
// Rendering.

/// The environment every prompt renders in: undefined values are errors, nothing is escaped,
/// and a line holding only a block tag (`{% if %}`, `{% for %}`) leaves no blank line behind
/// (`trim_blocks` and `lstrip_blocks`), so templates can be laid out for reading.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env
}

/// A minijinja error's message with its detail (`undefined value` alone says too little).
fn template_error(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    }
}

/// Collects rendered text and refuses a write that would take it past `limit` bytes, so a
/// template's output never grows past the limit in memory.
struct BoundedText {
    text: Vec<u8>,
    limit: usize,
    exceeded: bool,
}

impl std::io::Write for BoundedText {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.text.len().saturating_add(buf.len()) > self.limit {
            self.exceeded = true;
            return Err(std::io::Error::other("the rendering limit is reached"));
        }
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A prompt filled in with variables.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The messages in template order; one that rendered to whitespace only is left out.
    pub messages: Vec<ChatMessage>,
    pub model: Option<String>,
    pub params: PromptParams,
}

/// Why a prompt could not be rendered. All are the caller's doing (HTTP 400) except
/// `Template`, which a stored body that no longer compiles could also cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("prompt variable `{0}` is required")]
    MissingVariable(String),
    #[error("prompt has no variable `{0}`")]
    UnknownVariable(String),
    #[error("prompt message {index} could not be rendered: {message}")]
    Template { index: usize, message: String },
    #[error("prompt message {index} was stopped: the prompt renders more than {max_bytes} bytes (the limit is `prompts.max_rendered_bytes`)")]
    TooLarge { index: usize, max_bytes: usize },
    #[error("prompt message {index} was stopped: the prompt runs more than {fuel} template steps (the limit is `prompts.fuel`)")]
    OutOfFuel { index: usize, fuel: u64 },
    #[error("the request names only the prompt and the prompt has no default model")]
    NoModel,
}

impl PromptTemplate {
    /// Fills the templates in with `vars` over the declared defaults.
    ///
    /// A variable not declared is an error (a typo is caught, not ignored); a required one
    /// missing is an error; a `null` value counts as missing. Rendering is strict: printing,
    /// iterating or testing an undefined value fails, so an optional variable without a default
    /// is tested with `is defined`.
    pub fn render(&self, vars: &Map<String, Value>) -> Result<Rendered, RenderError> {
        self.render_within(vars, &RenderLimits::default())
    }

    /// [`Self::render`] within `limits`: a render that would write more bytes or run more
    /// steps is stopped there ([`RenderError::TooLarge`], [`RenderError::OutOfFuel`]). It
    /// still takes up to the fuel's worth of CPU, so callers on an async runtime run it on a
    /// blocking thread.
    pub fn render_within(
        &self,
        vars: &Map<String, Value>,
        limits: &RenderLimits,
    ) -> Result<Rendered, RenderError> {
        if let Some(unknown) = vars.keys().find(|k| !self.variables.contains_key(*k)) {
            return Err(RenderError::UnknownVariable(unknown.clone()));
        }
        let mut context = Map::new();
        for (name, spec) in &self.variables {
            let given = vars.get(name).filter(|v| !v.is_null());
            match given.or(spec.default.as_ref()) {
                Some(v) => {
                    context.insert(name.clone(), v.clone());
                }
                None if spec.required => return Err(RenderError::MissingVariable(name.clone())),
                None => {}
            }
        }
        let mut env = environment();
        let mut messages = Vec::with_capacity(self.messages.len());
        let (mut fuel, mut room) = (limits.fuel, limits.max_bytes);
        for (index, m) in self.messages.iter().enumerate() {
            let template_error = |e: minijinja::Error| RenderError::Template {
                index,
                message: template_error(&e),
            };
            env.set_fuel(Some(fuel));
            let template = env.template_from_str(&m.content).map_err(template_error)?;
            let mut out = BoundedText {
                text: Vec::new(),
                limit: room,
                exceeded: false,
            };
            let rendered = template.render_captured_to(&context, &mut out);
            if out.exceeded {
                return Err(RenderError::TooLarge {
                    index,
                    max_bytes: limits.max_bytes,
                });
            }
            let captured = match rendered {
                Ok(captured) => captured,
                Err(e) if e.kind() == minijinja::ErrorKind::OutOfFuel => {
                    return Err(RenderError::OutOfFuel {
                        index,
                        fuel: limits.fuel,
                    })
                }
                Err(e) => return Err(template_error(e)),
            };
            let used = captured.state().fuel_levels().map_or(0, |(used, _)| used);
            fuel = fuel.saturating_sub(used);
            room -= out.text.len();
            // minijinja writes whole `str`s, and the writer takes a write whole or not at all.
            let text = String::from_utf8(out.text).map_err(|e| RenderError::Template {
                index,
                message: e.to_string(),
            })?;
            if !text.trim().is_empty() {
                messages.push(ChatMessage::new(m.role, text));
            }
        }
        Ok(Rendered {
            messages,
            model: self.model.clone(),
            params: self.params.clone(),
        })
    }

    /// Renders the prompt within `limits` and merges it into `request`; on error `request` is
    /// left unchanged. The merge rules are those of [`Rendered::apply_to`].
    pub fn apply_to(
        &self,
        request: &mut ChatCompletionRequest,
        vars: &Map<String, Value>,
        limits: &RenderLimits,
    ) -> Result<(), RenderError> {
        self.render_within(vars, limits)?.apply_to(request)
    }

    /// Renders the prompt once with sample values (each variable's default, else a short
    /// string) and says whether that already breaks `limits`: a template that loops or
    /// repeats past them whatever it is given is refused when it is stored, not on its first
    /// request. Other render errors are not the template's (a sample value of the wrong shape)
    /// and pass. Takes up to the fuel's worth of CPU.
    pub fn check_limits(&self, limits: &RenderLimits) -> Result<(), RenderError> {
        let samples: Map<String, Value> = self
            .variables
            .iter()
            .map(|(name, spec)| {
                let sample = spec
                    .default
                    .clone()
                    .unwrap_or_else(|| Value::from("sample"));
                (name.clone(), sample)
            })
            .collect();
        match self.render_within(&samples, limits) {
            Err(e @ (RenderError::TooLarge { .. } | RenderError::OutOfFuel { .. })) => Err(e),
            _ => Ok(()),
        }
    }
}

impl Rendered {
    /// Merges the rendered prompt into a caller's request:
    ///
    /// 1. Messages: the prompt's come first, then the caller's own, in their order.
    /// 2. Model: when the caller's `model` is a prompt reference (`prompt:...`) or empty, it
    ///    becomes the prompt's default model ([`RenderError::NoModel`] if there is none);
    ///    otherwise the caller's model stands.
    /// 3. Parameters: each fills only a field the caller left unset. `max_tokens` and
    ///    `max_completion_tokens` are one setting, the output cap: if the caller set either,
    ///    the prompt sets neither, so a prompt never tightens or loosens a caller's cap.
    ///
    /// On error `request` is left unchanged.
    pub fn apply_to(self, request: &mut ChatCompletionRequest) -> Result<(), RenderError> {
        let names_prompt = request.model.is_empty() || request.model.starts_with(MODEL_PREFIX);
        if names_prompt {
            request.model = self.model.ok_or(RenderError::NoModel)?;
        }
        let mut messages = self.messages;
        messages.append(&mut request.messages);
        request.messages = messages;

        let p = self.params;
        fill(&mut request.temperature, p.temperature);
        fill(&mut request.top_p, p.top_p);
        fill(&mut request.seed, p.seed);
        fill(&mut request.response_format, p.response_format);
        fill(&mut request.stop, p.stop);
        if request.output_cap().is_none() {
            request.max_tokens = p.max_tokens;
            request.max_completion_tokens = p.max_completion_tokens;
        }
        Ok(())
    }
}

fn fill<T>(field: &mut Option<T>, default: Option<T>) {
    if field.is_none() {
        *field = default;
    }
}

// ---------------------------------------------------------------------------------------------
// References.

/// Which version of a prompt a reference selects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selector {
    /// A movable label such as `production`, `staging` or `canary`: `[a-z0-9_-]+`, not all digits.
    Label(String),
    /// A fixed version, counted from 1.
    Version(u32),
}

/// A reference to a prompt: `support-answer`, `support-answer@staging`, `support-answer@3`,
/// or as a model value `prompt:support-answer@staging`. Without `@` it selects the label
/// [`DEFAULT_LABEL`]. `Display` writes the selector out (`support-answer@production`), and
/// parsing that gives the same reference back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PromptRef {
    pub name: String,
    pub selector: Selector,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a prompt reference: {reason}")]
pub struct PromptRefError {
    pub input: String,
    pub reason: String,
}

impl PromptRef {
    /// Parses `name`, `name@label` or `name@version`, with or without the `prompt:` prefix.
    /// A selector of digits only is a version: a positive integer without leading zeros.
    pub fn parse(s: &str) -> Result<PromptRef, PromptRefError> {
        let fail = |reason: &str| PromptRefError {
            input: s.to_owned(),
            reason: reason.to_owned(),
        };
        let body = s.strip_prefix(MODEL_PREFIX).unwrap_or(s);
        let (name, selector) = match body.split_once('@') {
            None => (body, None),
            Some((name, selector)) => (name, Some(selector)),
        };
        if !valid_prompt_name(name) {
            return Err(fail("the name must be letters, digits, `-`, `_` and `.`"));
        }
        let selector = match selector {
            None => Selector::Label(DEFAULT_LABEL.to_owned()),
            Some("") => return Err(fail("nothing follows `@`")),
            Some(sel) if sel.bytes().all(|b| b.is_ascii_digit()) => match sel.parse::<u32>() {
                Ok(v) if v > 0 && !sel.starts_with('0') => Selector::Version(v),
                _ => {
                    return Err(fail(
                        "a version is a positive integer without leading zeros",
                    ))
                }
            },
            Some(sel)
                if sel.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                }) =>
            {
                Selector::Label(sel.to_owned())
            }
            Some(_) => return Err(fail("a label is lowercase letters, digits, `-` and `_`")),
        };
        Ok(PromptRef {
            name: name.to_owned(),
            selector,
        })
    }

    /// The reference a `model` value makes: `None` unless it starts with `prompt:`.
    pub fn from_model(model: &str) -> Option<Result<PromptRef, PromptRefError>> {
        model
            .starts_with(MODEL_PREFIX)
            .then(|| PromptRef::parse(model))
    }

    /// The `model` value naming this reference: `prompt:name@selector`.
    pub fn to_model(&self) -> String {
        format!("{MODEL_PREFIX}{self}")
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Label(label) => f.write_str(label),
            Selector::Version(v) => write!(f, "{v}"),
        }
    }
}

impl fmt::Display for PromptRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.selector)
    }
}

// ---------------------------------------------------------------------------------------------
// A request that names a prompt.

/// The request extension field that names a prompt and carries its variables:
/// `"prompt": {"id": "support-answer@staging", "variables": {"question": "..."}}`.
pub const PROMPT_FIELD: &str = "prompt";

/// What a chat request asks of a prompt: which one, and with what variables.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptCall {
    pub reference: PromptRef,
    pub variables: Map<String, Value>,
}

/// A request that names a prompt in a way that cannot be followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromptCallError {
    #[error(transparent)]
    Ref(#[from] PromptRefError),
    #[error("the `prompt` field {0}")]
    Field(String),
}

impl PromptCall {
    /// Reads the prompt a request names and takes the `prompt` extension field out of it, so
    /// the field never reaches a provider. `Ok(None)`: the request names no prompt.
    ///
    /// 1. `model = "prompt:NAME[@SELECTOR]"` names the prompt; `prompt` may then carry only
    ///    `variables`.
    /// 2. Otherwise `prompt.id` (`NAME[@SELECTOR]`) names it, and `prompt.version` (a string or
    ///    a positive integer, as OpenAI's Responses API spells it) may select the version when
    ///    `id` has no `@`. The caller's `model` stays; see [`Rendered::apply_to`].
    /// 3. `prompt.variables` is an object, default empty; other keys are refused.
    ///
    /// On error the request is left unchanged.
    pub fn take_from(
        request: &mut ChatCompletionRequest,
    ) -> Result<Option<PromptCall>, PromptCallError> {
        let from_model = PromptRef::from_model(&request.model).transpose()?;
        let Some(field) = request.extra.get(PROMPT_FIELD) else {
            return Ok(from_model.map(|reference| PromptCall {
                reference,
                variables: Map::new(),
            }));
        };
        let call = read_field(field, from_model)?;
        request.extra.remove(PROMPT_FIELD);
        Ok(Some(call))
    }
}

fn read_field(field: &Value, from_model: Option<PromptRef>) -> Result<PromptCall, PromptCallError> {
    let bad = |why: &str| PromptCallError::Field(why.to_owned());
    let Value::Object(obj) = field else {
        return Err(bad(
            "must be an object: {\"id\": \"NAME@LABEL\", \"variables\": {...}}",
        ));
    };
    if let Some(key) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "id" | "version" | "variables"))
    {
        return Err(PromptCallError::Field(format!(
            "has no key `{key}`: it takes `id`, `version` and `variables`"
        )));
    }
    let variables = match obj.get("variables") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(v)) => v.clone(),
        Some(_) => return Err(bad("`variables` must be an object")),
    };
    let id = match obj.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id.as_str()),
        Some(_) => {
            return Err(bad(
                "`id` must be a string such as \"support-answer@production\"",
            ))
        }
    };
    let version = match obj.get("version") {
        None | Some(Value::Null) => None,
        Some(Value::String(v)) => Some(v.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err(bad("`version` must be a string or a number")),
    };
    let reference = match (from_model, id) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "names a prompt while `model` names one too: use one of them",
            ))
        }
        (Some(_), None) if version.is_some() => {
            return Err(bad(
                "`version` cannot select a prompt `model` names: write `prompt:NAME@VERSION`",
            ))
        }
        (Some(reference), None) => reference,
        (None, None) => return Err(bad("needs an `id` when `model` names no prompt")),
        (None, Some(id)) => match version {
            None => PromptRef::parse(id)?,
            Some(_) if id.contains('@') => {
                return Err(bad(
                    "gives both `id` with `@` and `version`: use one of them",
                ))
            }
            Some(v) => PromptRef::parse(&format!("{id}@{v}"))?,
        },
    };
    Ok(PromptCall {
        reference,
        variables,
    })
}

impl std::str::FromStr for PromptRef {
    type Err = PromptRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PromptRef::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EXAMPLE: &str = include_str!("../../../examples/prompts/support-answer.toml");

    fn vars(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn errors(text: &str) -> Vec<Diagnostic> {
        match PromptTemplate::parse(text, "p.toml") {
            Err(ConfigError::Invalid(d)) => d,
            other => panic!("expected diagnostics, got {other:?}"),
        }
    }

    fn prompt(text: &str) -> PromptTemplate {
        PromptTemplate::parse(text, "p.toml").unwrap()
    }

    fn request(model: &str) -> ChatCompletionRequest {
        serde_json::from_value(json!({
            "model": model,
            "messages": [{"role": "user", "content": "and one more thing"}]
        }))
        .unwrap()
    }

    #[test]
    fn example_file_parses_and_renders() {
        let p = PromptTemplate::parse(EXAMPLE, "support-answer.toml").unwrap();
        assert_eq!(p.name, "support-answer");
        assert_eq!(p.model.as_deref(), Some("auto"));
        assert_eq!(p.params.temperature, Some(0.2));
        assert_eq!(p.params.max_completion_tokens, Some(400));
        assert!(p.variables["question"].required);
        assert!(!p.variables["product"].required);
        assert!(p.unused_variables().is_empty());

        let r = p
            .render(&vars(json!({
                "question": "How do I rotate a key?",
                "articles": ["  Keys rotate with `switchyard keys new`. ", "Old keys stay valid for a day."]
            })))
            .unwrap();
        assert_eq!(r.messages.len(), 2);
        assert_eq!(
            r.messages[0].text(),
            "You are the support assistant for Switchyard. Be brief and answer only from the articles.\n\
             Articles:\n\
             1. Keys rotate with `switchyard keys new`.\n\
             2. Old keys stay valid for a day.\n"
        );
        assert_eq!(r.messages[1].role, Role::User);
        assert_eq!(r.messages[1].text(), "How do I rotate a key?");

        let r = p.render(&vars(json!({"question": "q"}))).unwrap();
        assert!(r.messages[0].text().contains("No article matched"));
    }

    #[test]
    fn a_typo_in_the_example_is_reported_as_the_docs_show() {
        let text = EXAMPLE.replace("{{ question }}", "{{ qestion }}");
        let d = match PromptTemplate::parse(&text, "support-answer.toml") {
            Err(ConfigError::Invalid(d)) => d,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            d[0].to_string(),
            "support-answer.toml:33: `messages[1].content`: uses `qestion`, which is not declared under [variables]"
        );
    }

    #[test]
    fn every_validation_error_is_reported_with_its_line_and_path() {
        let text = r#"name = "bad name"
model = "prompt:other"

[params]
temperature = 3.5

[variables]
topic = { required = true, default = "x" }
"2nd" = { default = 1 }

[[messages]]
role = "wizard"
content = "Talk about {{ topic }}."

[[messages]]
role = "user"
content = """
Line one
{{ qestion }}
{% for x in %}
"""
"#;
        let d = errors(text);
        let got: Vec<(Option<usize>, &str)> = d.iter().map(|d| (d.line, d.path.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (Some(1), "name"),
                (Some(2), "model"),
                (Some(5), "params.temperature"),
                (Some(9), "variables.2nd"),
                (Some(8), "variables.topic.default"),
                (Some(12), "messages[0].role"),
                (Some(20), "messages[1].content"),
            ],
            "{d:#?}"
        );
        assert!(d[6].message.contains("not a valid template"), "{}", d[6]);
        assert!(d[6].message.contains("syntax error"), "{}", d[6]);
    }

    #[test]
    fn undeclared_variables_are_errors_and_globals_are_not() {
        let text = "name = \"p\"\n\n[variables]\nproduct = {}\n\n[[messages]]\nrole = \"system\"\ncontent = \"{{ produkt }} {% for i in range(3) %}{{ loop.index }}{% endfor %}\"\n";
        let d = errors(text);
        assert_eq!(d.len(), 1, "{d:#?}");
        assert_eq!(
            d[0].to_string(),
            "p.toml:8: `messages[0].content`: uses `produkt`, which is not declared under [variables]"
        );
    }

    #[test]
    fn serde_errors_point_at_their_line() {
        let d = errors("name = \"p\"\n[params]\ntemperature = 0.1\ntempreature = 0.2\n");
        assert_eq!(d[0].line, Some(4), "{d:?}");
        assert!(d[0].message.contains("unknown field `tempreature`"));

        let d = errors("name = \"p\"\n[params]\ntemperature = \"hot\"\n");
        assert_eq!(d[0].line, Some(3), "{d:?}");

        let d = errors("name = \"p\"\n[[messages]]\nrole = \"user\"\n");
        assert!(d[0].message.contains("missing field `content`"), "{d:?}");
    }

    #[test]
    fn params_are_checked() {
        let text = "name = \"p\"\n[params]\ntop_p = 1.5\nmax_tokens = 0\nresponse_format = { type = \"xml\" }\nstop = [\"a\", 1]\n[[messages]]\nrole = \"user\"\ncontent = \"hi\"\n";
        let paths: Vec<String> = errors(text).into_iter().map(|d| d.path).collect();
        assert_eq!(
            paths,
            [
                "params.top_p",
                "params.max_tokens",
                "params.response_format",
                "params.stop"
            ]
        );

        let p = prompt("name = \"p\"\n[params]\nseed = 7\nstop = \"END\"\nresponse_format = { type = \"json_object\" }\ntemperature = 1\n[[messages]]\nrole = \"user\"\ncontent = \"hi\"\n");
        assert_eq!(p.params.seed, Some(7));
        assert_eq!(p.params.stop, Some(Stop::One("END".into())));
        assert_eq!(p.params.response_format, Some(ResponseFormat::JsonObject));
        assert_eq!(p.params.temperature, Some(1.0));
    }

    #[test]
    fn a_prompt_needs_messages_and_a_known_format() {
        let d = errors("name = \"p\"\nformat_version = 2\n");
        let paths: Vec<&str> = d.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["format_version", "messages"]);
    }

    #[test]
    fn unused_variables_are_a_note_not_an_error() {
        let p = prompt("name = \"p\"\n[variables]\nspare = { default = 1 }\n[[messages]]\nrole = \"user\"\ncontent = \"hi\"\n");
        assert_eq!(p.unused_variables(), ["spare"]);
    }

    const RENDER: &str = r#"name = "r"
[variables]
who = { default = "world" }
items = {}
note = { required = false }
[[messages]]
role = "system"
content = "{% if note is defined %}Note: {{ note }}{% endif %}"
[[messages]]
role = "user"
content = "Hello {{ who | upper }}: {{ items | join(', ') }} <b>&</b>"
"#;

    #[test]
    fn render_applies_defaults_and_filters_without_escaping() {
        let p = prompt(RENDER);
        let r = p.render(&vars(json!({"items": ["a", "b"]}))).unwrap();
        // The system message rendered to nothing and is left out.
        assert_eq!(r.messages.len(), 1);
        assert_eq!(r.messages[0].text(), "Hello WORLD: a, b <b>&</b>");

        let r = p
            .render(&vars(json!({"items": [], "who": "you", "note": "n"})))
            .unwrap();
        assert_eq!(r.messages[0].text(), "Note: n");
        assert_eq!(r.messages[1].text(), "Hello YOU:  <b>&</b>");
    }

    #[test]
    fn render_refuses_missing_unknown_and_undefined() {
        let p = prompt(RENDER);
        assert_eq!(
            p.render(&Map::new()),
            Err(RenderError::MissingVariable("items".into()))
        );
        // null counts as missing.
        assert_eq!(
            p.render(&vars(json!({"items": null}))),
            Err(RenderError::MissingVariable("items".into()))
        );
        assert_eq!(
            p.render(&vars(json!({"items": [], "iterms": []}))),
            Err(RenderError::UnknownVariable("iterms".into()))
        );

        // Strict undefined: an optional variable printed without a test fails, and so does a
        // missing attribute of a value the caller passed.
        let p = prompt("name = \"s\"\n[variables]\nopt = { required = false }\nuser = {}\n[[messages]]\nrole = \"user\"\ncontent = \"{{ user.name }}{% if opt %}x{% endif %}\"\n");
        let e = p.render(&vars(json!({"user": {"nmae": "x"}}))).unwrap_err();
        assert!(
            matches!(&e, RenderError::Template { index: 0, message } if message.contains("undefined")),
            "{e:?}"
        );
        let e = p.render(&vars(json!({"user": {"name": "x"}}))).unwrap_err();
        assert!(matches!(e, RenderError::Template { index: 0, .. }), "{e:?}");
        assert!(p
            .render(&vars(json!({"user": {"name": "x"}, "opt": true})))
            .is_ok());
    }

    /// A prompt of one user message whose template is `content`, with an optional variable
    /// `text` (default "ab").
    fn one_message(content: &str) -> PromptTemplate {
        prompt(&format!(
            "name = \"heavy\"\n[variables]\ntext = {{ default = \"ab\" }}\n[[messages]]\nrole = \"user\"\ncontent = '''{content}'''\n"
        ))
    }

    /// Small limits, so a test that breaks them is quick.
    const LIMITS: RenderLimits = RenderLimits {
        max_bytes: 64 * 1024,
        fuel: 200_000,
    };

    /// A loop as long as minijinja's `range` allows, nested: 10^10 steps, each printing `body`.
    fn nested_loop(body: &str) -> PromptTemplate {
        one_message(&format!(
            "{{% for i in range(100000) %}}{{% for j in range(100000) %}}{body}{{% endfor %}}{{% endfor %}}"
        ))
    }

    #[test]
    fn renders_past_the_limits_are_stopped_with_their_limit_named() {
        let limits = LIMITS;
        let nested = nested_loop("{{ j }}");
        let e = nested.render_within(&Map::new(), &limits).unwrap_err();
        assert!(
            matches!(e, RenderError::TooLarge { index: 0, max_bytes } if max_bytes == limits.max_bytes),
            "{e:?}"
        );
        let wide = RenderLimits {
            max_bytes: usize::MAX,
            ..limits
        };
        let e = nested.render_within(&Map::new(), &wide).unwrap_err();
        assert_eq!(
            e,
            RenderError::OutOfFuel {
                index: 0,
                fuel: 200_000
            }
        );
        assert!(e.to_string().contains("prompts.fuel"), "{e}");
        // A loop that writes nothing runs out of fuel all the same.
        let silent = one_message("{% for i in range(100000) %}{% set x = i %}{% endfor %}done");
        assert!(matches!(
            silent.render_within(&Map::new(), &limits),
            Err(RenderError::OutOfFuel { .. })
        ));
        // A string multiplied: one step, 100 MB.
        let repeated = one_message("{{ 'x' * 100000000 }}");
        let e = repeated.render_within(&Map::new(), &limits).unwrap_err();
        assert!(matches!(e, RenderError::TooLarge { .. }), "{e:?}");
        assert!(e.to_string().contains("prompts.max_rendered_bytes"), "{e}");
        // The caller's own variable, repeated.
        let echoed = one_message("{% for i in range(1000) %}{{ text }}{% endfor %}");
        let big = vars(json!({"text": "y".repeat(1_000)}));
        assert!(matches!(
            echoed.render_within(&big, &limits),
            Err(RenderError::TooLarge { .. })
        ));
        // The limits hold over every message together, not each alone.
        let two = prompt(
            "name = \"two\"\n[[messages]]\nrole = \"system\"\ncontent = \"{{ 'a' * 40000 }}\"\n[[messages]]\nrole = \"user\"\ncontent = \"{{ 'b' * 40000 }}\"\n",
        );
        assert!(matches!(
            two.render_within(&Map::new(), &limits),
            Err(RenderError::TooLarge { index: 1, .. })
        ));
        // What fits is rendered as before.
        let fine = echoed
            .render_within(&vars(json!({"text": "z"})), &limits)
            .unwrap();
        assert_eq!(fine.messages[0].text(), "z".repeat(1000));
    }

    #[test]
    fn storing_checks_the_limits_with_sample_values() {
        let limits = LIMITS;
        assert!(nested_loop("{{ text }}").check_limits(&limits).is_err());
        // A template that needs a real value (a list) where the sample is a string is not the
        // template's fault.
        let shaped = prompt(
            "name = \"s\"\n[variables]\nitems = {}\n[[messages]]\nrole = \"user\"\ncontent = \"{{ items[0].name }}\"\n",
        );
        assert!(shaped.check_limits(&limits).is_ok());
        assert!(prompt(RENDER).check_limits(&limits).is_ok());
    }

    const APPLY: &str = r#"name = "a"
model = "small"
[params]
temperature = 0.2
max_completion_tokens = 100
stop = "END"
[[messages]]
role = "system"
content = "Be brief."
"#;

    #[test]
    fn apply_puts_prompt_messages_first_and_fills_unset_params() {
        let p = prompt(APPLY);
        let mut req = request("prompt:a@production");
        req.temperature = Some(0.9);
        p.apply_to(&mut req, &Map::new(), &RenderLimits::default())
            .unwrap();
        assert_eq!(req.model, "small");
        let roles: Vec<Role> = req.messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::System, Role::User]);
        assert_eq!(req.messages[1].text(), "and one more thing");
        assert_eq!(req.temperature, Some(0.9), "the caller's value wins");
        assert_eq!(req.max_completion_tokens, Some(100));
        assert_eq!(req.stop, Some(Stop::One("END".into())));
    }

    #[test]
    fn apply_keeps_a_real_model_and_the_callers_output_cap() {
        let p = prompt(APPLY);
        let mut req = request("large");
        req.max_tokens = Some(10);
        p.apply_to(&mut req, &Map::new(), &RenderLimits::default())
            .unwrap();
        assert_eq!(req.model, "large");
        assert_eq!(req.max_tokens, Some(10));
        assert_eq!(req.max_completion_tokens, None, "the cap is the caller's");
        assert_eq!(req.output_cap(), Some(10));

        let mut req = request("");
        p.apply_to(&mut req, &Map::new(), &RenderLimits::default())
            .unwrap();
        assert_eq!(req.model, "small");
    }

    #[test]
    fn apply_without_a_model_leaves_the_request_alone() {
        let p = prompt("name = \"a\"\n[[messages]]\nrole = \"system\"\ncontent = \"x\"\n");
        let mut req = request("prompt:a");
        let before = req.clone();
        assert_eq!(
            p.apply_to(&mut req, &Map::new(), &RenderLimits::default()),
            Err(RenderError::NoModel)
        );
        assert_eq!(req, before);
        let e = p.apply_to(&mut req, &vars(json!({"x": 1})), &RenderLimits::default());
        assert_eq!(e, Err(RenderError::UnknownVariable("x".into())));
        assert_eq!(req, before);
    }

    #[test]
    fn json_body_round_trips_in_a_stable_order() {
        let p = PromptTemplate::parse(EXAMPLE, "support-answer.toml").unwrap();
        let body = p.to_json().unwrap();
        assert!(
            body.starts_with(r#"{"format_version":1,"name":"support-answer","description":"#),
            "{body}"
        );
        assert_eq!(PromptTemplate::from_json(&body).unwrap(), p);
        assert_eq!(p.to_json().unwrap(), body);
    }

    #[test]
    fn old_bodies_stay_readable_and_newer_ones_are_refused() {
        let old = r#"{"name":"p","messages":[{"role":"user","content":"hi"}]}"#;
        let p = PromptTemplate::from_json(old).unwrap();
        assert_eq!(p.format_version, 1);
        assert_eq!(p.params, PromptParams::default());
        assert!(p.variables.is_empty());
        assert_eq!(p.render(&Map::new()).unwrap().messages[0].text(), "hi");

        let newer = r#"{"format_version":2,"name":"p","messages":[]}"#;
        assert!(matches!(
            PromptTemplate::from_json(newer),
            Err(BodyError::NewerFormat(2))
        ));
    }

    #[test]
    fn references_parse_in_every_form() {
        let r = PromptRef::parse("support-answer").unwrap();
        assert_eq!(r.selector, Selector::Label(DEFAULT_LABEL.into()));
        assert_eq!(r.to_string(), "support-answer@production");
        assert_eq!(
            PromptRef::parse("support-answer@3").unwrap().selector,
            Selector::Version(3)
        );
        assert_eq!(
            PromptRef::parse("v1.2_x@canary-2").unwrap(),
            PromptRef {
                name: "v1.2_x".into(),
                selector: Selector::Label("canary-2".into())
            }
        );
        let r = PromptRef::parse("prompt:support-answer@staging").unwrap();
        assert_eq!(r.name, "support-answer");
        assert_eq!(r.to_model(), "prompt:support-answer@staging");
        assert_eq!("a@2".parse::<PromptRef>().unwrap().to_string(), "a@2");

        assert!(PromptRef::from_model("gpt-4.1").is_none());
        assert_eq!(
            PromptRef::from_model("prompt:a@7"),
            Some(Ok(PromptRef {
                name: "a".into(),
                selector: Selector::Version(7)
            }))
        );
        assert!(matches!(PromptRef::from_model("prompt:"), Some(Err(_))));
    }

    #[test]
    fn bad_references_say_why() {
        for (input, reason) in [
            ("", "name"),
            ("a b", "name"),
            ("x:y", "name"),
            ("@prod", "name"),
            ("a@", "nothing follows"),
            ("a@0", "positive"),
            ("a@007", "leading zeros"),
            ("a@99999999999", "positive"),
            ("a@Prod", "lowercase"),
            ("a@b@c", "lowercase"),
        ] {
            let e = PromptRef::parse(input).unwrap_err();
            assert!(e.reason.contains(reason), "{input}: {e}");
        }
    }

    fn with_field(model: &str, field: Value) -> ChatCompletionRequest {
        let mut req = request(model);
        req.extra.insert(PROMPT_FIELD.into(), field);
        req
    }

    #[test]
    fn a_request_names_a_prompt_by_model_or_by_field() {
        let mut req = request("gpt-4.1");
        assert_eq!(PromptCall::take_from(&mut req), Ok(None));

        let mut req = request("prompt:a@canary");
        let call = PromptCall::take_from(&mut req).unwrap().unwrap();
        assert_eq!(call.reference.to_string(), "a@canary");
        assert!(call.variables.is_empty());

        let mut req = with_field("prompt:a", json!({"variables": {"q": "hi"}}));
        let call = PromptCall::take_from(&mut req).unwrap().unwrap();
        assert_eq!(call.reference.to_string(), "a@production");
        assert_eq!(call.variables["q"], json!("hi"));
        assert!(req.extra.is_empty(), "the field never reaches a provider");

        let mut req = with_field("small", json!({"id": "a", "version": 3}));
        let call = PromptCall::take_from(&mut req).unwrap().unwrap();
        assert_eq!(call.reference.selector, Selector::Version(3));
        assert_eq!(req.model, "small");
        let mut req = with_field("small", json!({"id": "a@staging", "variables": null}));
        let call = PromptCall::take_from(&mut req).unwrap().unwrap();
        assert_eq!(call.reference.to_string(), "a@staging");
    }

    #[test]
    fn a_prompt_field_that_cannot_be_followed_is_refused_and_kept() {
        for (model, field, why) in [
            ("small", json!("a@production"), "must be an object"),
            ("small", json!({"id": "a", "vars": {}}), "has no key `vars`"),
            ("small", json!({"variables": {}}), "needs an `id`"),
            ("small", json!({"id": 7}), "`id` must be a string"),
            (
                "small",
                json!({"id": "a", "variables": []}),
                "`variables` must be an object",
            ),
            (
                "small",
                json!({"id": "a@2", "version": "3"}),
                "use one of them",
            ),
            ("prompt:a", json!({"id": "b"}), "`model` names one too"),
            (
                "prompt:a",
                json!({"version": 2}),
                "write `prompt:NAME@VERSION`",
            ),
            (
                "small",
                json!({"id": "a", "version": true}),
                "string or a number",
            ),
        ] {
            let mut req = with_field(model, field);
            let before = req.clone();
            let e = PromptCall::take_from(&mut req).unwrap_err();
            assert!(e.to_string().contains(why), "{e}");
            assert_eq!(req, before);
        }
        let mut req = with_field("small", json!({"id": "a", "version": 0}));
        assert!(matches!(
            PromptCall::take_from(&mut req),
            Err(PromptCallError::Ref(_))
        ));
        let mut req = request("prompt:A B");
        assert!(matches!(
            PromptCall::take_from(&mut req),
            Err(PromptCallError::Ref(_))
        ));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn reference() -> impl Strategy<Value = PromptRef> {
            let selector = prop_oneof![
                (1u32..).prop_map(Selector::Version),
                "[a-z0-9_-]{0,11}[a-z_-]".prop_map(Selector::Label),
            ];
            ("[A-Za-z0-9._-]{1,20}", selector)
                .prop_map(|(name, selector)| PromptRef { name, selector })
        }

        proptest! {
            #[test]
            fn display_then_parse_gives_the_reference_back(r in reference()) {
                prop_assert_eq!(PromptRef::parse(&r.to_string()), Ok(r.clone()));
                prop_assert_eq!(PromptRef::from_model(&r.to_model()), Some(Ok(r)));
            }

            #[test]
            fn parse_never_panics_and_what_parses_round_trips(s in any::<String>()) {
                if let Ok(r) = PromptRef::parse(&s) {
                    prop_assert_eq!(PromptRef::parse(&r.to_string()), Ok(r));
                }
            }

            #[test]
            fn near_misses_never_panic(s in "(prompt:)?[a-z0-9.:@_ -]{0,12}(@[A-Za-z0-9@-]{0,6})?") {
                if let Ok(r) = PromptRef::parse(&s) {
                    prop_assert_eq!(PromptRef::parse(&r.to_string()), Ok(r));
                }
            }
        }
    }
}
