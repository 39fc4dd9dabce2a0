//! Prompt templates as versioned code: the prompt file format, its validation, the JSON body
//! the store keeps, rendering with minijinja, and references such as `support-answer@production`.
//!
//! A prompt file (TOML, one prompt a file, kept in git and reviewed like code) is parsed and
//! validated the way the config file is: serde reads it with unknown fields refused, then every
//! problem is collected with its field path and line. A validated [`PromptTemplate`] serialises
//! to the JSON body the store keeps per version; bodies only ever gain fields with defaults, so
//! old ones stay readable. [`PromptTemplate::render`] fills the templates in (strict about
//! undefined values, no HTML escaping) and [`PromptTemplate::apply_to`] merges the result into a
//! chat request. [`PromptRef`] names a prompt by label or version.
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
    crate::validate::valid_name(name) && !name.contains(':')
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
        } else if !crate::validate::valid_name(model) {
            c.err("model", format!("`{model}` is not a model or route name"));
        }
    }
    let params = validate_params(raw.params, c);

    let mut variables = BTreeMap::new();
    for (name, v) in raw.variables {
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

    if raw.messages.is_empty() {
        c.err("messages", "a prompt needs at least one [[messages]] entry");
    }
    let env = environment();
    let globals: BTreeSet<&str> = env.globals().map(|(name, _)| name).collect();
    let mut messages = Vec::with_capacity(raw.messages.len());
    for (i, m) in raw.messages.into_iter().enumerate() {
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

/// The environment every prompt renders in: undefined values are errors, nothing is escaped.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env
}

/// A minijinja error's message with its detail (`undefined value` alone says too little).
fn template_error(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
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
        let env = environment();
        let mut messages = Vec::with_capacity(self.messages.len());
        for (index, m) in self.messages.iter().enumerate() {
            let text = env
                .render_str(&m.content, &context)
                .map_err(|e| RenderError::Template {
                    index,
                    message: template_error(&e),
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

    /// Renders the prompt and merges it into `request`; on error `request` is left unchanged.
    /// The merge rules are those of [`Rendered::apply_to`].
    pub fn apply_to(
        &self,
        request: &mut ChatCompletionRequest,
        vars: &Map<String, Value>,
    ) -> Result<(), RenderError> {
        self.render(vars)?.apply_to(request)
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

impl std::str::FromStr for PromptRef {
    type Err = PromptRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PromptRef::parse(s)
    }
}
