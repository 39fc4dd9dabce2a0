//! Reads the TOML text into the `raw` types and finds every shape mistake of the file in one
//! run: unknown fields (with the nearest known name), wrong types, numbers out of their type's
//! range, values that are not one of an enum's names, missing required fields.
//!
//! toml's own deserializer stops at the first mistake, because serde's derived code does: a
//! field that fails to deserialize fails its struct, and so on up. So this is a deserializer of
//! its own over toml's spanned document (`DeTable`), driven by the same derived `Deserialize`
//! impls (the `raw` types stay the one description of the file):
//!
//! 1. Every value is checked against what the derived code asks for (`deserialize_u32`,
//!    `deserialize_struct` with its field names, `deserialize_enum` with its variants) before
//!    the visitor sees it. A mistake is recorded with the value's span and field path, and the
//!    visitor gets a neutral value of the kind it asked for (0, "", false, empty, the first
//!    variant), so deserializing goes on and finds the next mistake.
//! 2. Unknown fields are recorded and never shown to the visitor.
//! 3. The mistakes only a visitor can see (a required field that is absent) fail the run. The
//!    mistake is recorded, its path is marked to get a neutral value, and the run starts again;
//!    each run marks one more path, so a file with N such mistakes takes N + 1 runs.
//! 4. Each mistake names the path whose value was replaced, so that validation's findings at or
//!    under that path (consequences of the neutral value) are not reported a second time.
//!
//! One convention beyond serde's data model: a table read as an enum is tagged by its `kind`
//! field (`[providers.x] kind = "sim"`); serde's own internally tagged enums buffer their
//! contents and would lose the paths and spans of everything inside.
//!
//! Adding a field to a `raw` type needs nothing here.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::locate::key_segment;

/// The field a table read as an enum names its variant with.
const TAG: &str = "kind";

/// Runs after which [`read`] gives up restarting (rule 3); every mistake found is reported.
const MAX_RUNS: usize = 64;

/// One mistake in the file's shape (or its TOML syntax, with an empty path).
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    /// Byte range in the text.
    pub span: Range<usize>,
    pub path: String,
    pub message: String,
    /// The path whose value was replaced by a neutral one (rule 4).
    pub replaced: Option<String>,
}

/// Reads `text` as a `T`. The value is `None` when the text is not TOML, or when a mistake
/// could not be got past; the problems are every mistake found, in no particular order.
pub(crate) fn read<T: DeserializeOwned>(text: &str) -> (Option<T>, Vec<Problem>) {
    let (doc, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        let problems = syntax
            .iter()
            .map(|e| Problem {
                span: e.span().unwrap_or(0..0),
                path: String::new(),
                message: e.message().trim().to_owned(),
                replaced: None,
            })
            .collect();
        return (None, problems);
    }
    let span = doc.span();
    let root = Spanned::new(span.clone(), DeValue::Table(doc.into_inner()));
    let mut neutral = BTreeSet::new();
    let mut raised = Vec::new();
    loop {
        let run = Run {
            problems: RefCell::new(Vec::new()),
            neutral: &neutral,
        };
        let result = T::deserialize(Node::new(&run, String::new(), Some(&root), span.clone()));
        let mut found = run.problems.into_inner();
        let problem = match result {
            Ok(value) => {
                raised.append(&mut found);
                return (Some(value), raised);
            }
            Err(Error::At(p)) => p,
            Err(other) => Problem {
                span: span.clone(),
                path: String::new(),
                message: other.to_string(),
                replaced: None,
            },
        };
        let again = problem
            .replaced
            .clone()
            .filter(|p| neutral.len() < MAX_RUNS && !neutral.contains(p));
        raised.push(problem);
        match again {
            Some(path) => {
                neutral.insert(path);
            }
            None => {
                raised.append(&mut found);
                return (None, raised);
            }
        }
    }
}

/// One run over the document.
struct Run<'s> {
    problems: RefCell<Vec<Problem>>,
    /// Paths answered with a neutral value (rule 3).
    neutral: &'s BTreeSet<String>,
}

impl Run<'_> {
    /// Records a mistake at `path`; `replaced` names the path that gets a stand-in for it.
    fn record(&self, span: Range<usize>, path: &str, message: String, replaced: Option<&str>) {
        self.problems.borrow_mut().push(Problem {
            span,
            replaced: replaced.map(str::to_owned),
            path: path.to_owned(),
            message,
        });
    }
}

#[derive(Debug)]
pub(crate) enum Error {
    /// A required field is absent (raised by the derived visitor).
    Missing(&'static str),
    Custom(String),
    /// A mistake with its place, on its way up to [`read`].
    At(Problem),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Missing(field) => write!(f, "missing field `{field}`"),
            Error::Custom(m) => f.write_str(m),
            Error::At(p) => f.write_str(&p.message),
        }
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::Custom(msg.to_string())
    }

    fn missing_field(field: &'static str) -> Self {
        Error::Missing(field)
    }
}

fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key_segment(key)
    } else {
        format!("{parent}.{}", key_segment(key))
    }
}

/// A value (or a neutral stand-in, `value: None`) at a path, as a serde `Deserializer`.
#[derive(Clone)]
struct Node<'s, 'i> {
    run: &'s Run<'s>,
    path: String,
    value: Option<&'s Spanned<DeValue<'i>>>,
    /// The value's span, or the nearest enclosing one for a stand-in.
    span: Range<usize>,
    /// A key of the table to leave out (the enum tag, once read).
    without: Option<&'static str>,
}

impl<'s, 'i> Node<'s, 'i> {
    fn new(
        run: &'s Run<'s>,
        path: String,
        value: Option<&'s Spanned<DeValue<'i>>>,
        span: Range<usize>,
    ) -> Self {
        let value = value.filter(|_| !run.neutral.contains(&path));
        let span = value.map_or(span, |v| v.span());
        Node {
            run,
            path,
            value,
            span,
            without: None,
        }
    }

    /// A stand-in for this node's value after recording why it is needed.
    fn mistake(self, message: String) -> Self {
        self.run
            .record(self.span.clone(), &self.path, message, Some(&self.path));
        Node {
            value: None,
            ..self
        }
    }

    /// Gives a visitor's own error this node's place (rule 3).
    fn place(&self, e: Error) -> Error {
        match e {
            Error::At(p) => Error::At(p),
            Error::Missing(field) => {
                let path = child_path(&self.path, field);
                Error::At(Problem {
                    span: self.span.clone(),
                    replaced: Some(path.clone()),
                    path,
                    message: format!("missing field `{field}`"),
                })
            }
            Error::Custom(message) => Error::At(Problem {
                span: self.span.clone(),
                path: self.path.clone(),
                message,
                replaced: Some(self.path.clone()),
            }),
        }
    }

    fn table(&self) -> Option<&'s DeTable<'i>> {
        match self.value.map(Spanned::get_ref) {
            Some(DeValue::Table(t)) => Some(t),
            _ => None,
        }
    }

    /// Children of a table, as entries of a map.
    fn entries(&self, table: &'s DeTable<'i>) -> Vec<Entry<'s, 'i>> {
        table
            .iter()
            .filter(|(k, _)| Some(k.get_ref().as_ref()) != self.without)
            .map(|(k, v)| {
                let key = k.get_ref().to_string();
                let node = Node::new(
                    self.run,
                    child_path(&self.path, &key),
                    Some(v),
                    self.span.clone(),
                );
                Entry {
                    key,
                    key_span: k.span(),
                    node,
                }
            })
            .collect()
    }

    /// `what` the derived code asked for was not there: record it, go on with a stand-in.
    fn expected(self, what: &str) -> Self {
        let found = self
            .value
            .map(|v| describe(v.get_ref()))
            .unwrap_or_default();
        self.mistake(format!("must be {what}, not {found}"))
    }

    /// The value as an integer, when it is one (and fits an `i128`: TOML's are 64-bit).
    fn integer(&self) -> Option<i128> {
        match self.value.map(Spanned::get_ref)? {
            DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix()).ok(),
            _ => None,
        }
    }

    /// A whole number in `min..=max`, or a stand-in after recording the mistake.
    fn whole(self, min: i128, max: i128) -> (Self, i128) {
        let what = format!("a whole number from {min} to {max}");
        match (self.value, self.integer()) {
            (_, Some(n)) if (min..=max).contains(&n) => (self, n),
            (None, _) => (self, 0),
            (Some(_), _) => (self.expected(&what), 0),
        }
    }

    fn float(&self) -> Option<f64> {
        match self.value.map(Spanned::get_ref)? {
            DeValue::Float(f) => f.as_str().replace('_', "").parse().ok(),
            DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|n| n as f64),
            _ => None,
        }
    }

    fn string(&self) -> Option<&'s str> {
        match self.value.map(Spanned::get_ref)? {
            DeValue::String(s) => Some(s.as_ref()),
            _ => None,
        }
    }
}

/// How a mistaken value is shown in a message.
fn describe(v: &DeValue<'_>) -> String {
    match v {
        DeValue::Integer(i) => i.to_string(),
        DeValue::Float(f) => f.to_string(),
        DeValue::Boolean(b) => b.to_string(),
        DeValue::String(s) => {
            let short: String = s.chars().take(40).collect();
            let more = if short.len() < s.len() { "…" } else { "" };
            format!("a string (\"{short}{more}\")")
        }
        DeValue::Datetime(_) => "a date-time".to_owned(),
        DeValue::Array(_) => "an array".to_owned(),
        DeValue::Table(_) => "a table".to_owned(),
    }
}

/// The known name nearest to an unknown one, when it is near enough to be a typo.
fn nearest<'f>(unknown: &str, known: &[&'f str]) -> Option<&'f str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(unknown, k), *k))
        .filter(|(d, _)| *d <= (unknown.chars().count() / 3).max(1))
        .min()
        .map(|(_, k)| k)
}

fn one_of(names: &[&str]) -> String {
    let names: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    names.join(", ")
}

macro_rules! whole_number {
    ($($method:ident $visit:ident $t:ty as $wide:ty;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            let (node, n) = self.whole(i128::from(<$t>::MIN), i128::from(<$t>::MAX));
            let n = <$wide>::try_from(n).unwrap_or_default();
            visitor.$visit(n).map_err(|e| node.place(e))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Node<'_, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let result = match self.value.map(Spanned::get_ref) {
            None => visitor.visit_unit(),
            Some(DeValue::String(s)) => visitor.visit_str(s),
            Some(DeValue::Integer(_)) => match self.integer() {
                Some(n) => match i64::try_from(n) {
                    Ok(n) => visitor.visit_i64(n),
                    Err(_) => visitor.visit_u64(u64::try_from(n).unwrap_or(u64::MAX)),
                },
                _ => visitor.visit_unit(),
            },
            Some(DeValue::Float(_)) => visitor.visit_f64(self.float().unwrap_or_default()),
            Some(DeValue::Boolean(b)) => visitor.visit_bool(*b),
            Some(DeValue::Datetime(d)) => visitor.visit_string(d.to_string()),
            Some(DeValue::Array(_)) => return self.deserialize_seq(visitor),
            Some(DeValue::Table(_)) => return self.deserialize_map(visitor),
        };
        result.map_err(|e| self.place(e))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let (node, b) = match self.value.map(Spanned::get_ref) {
            Some(DeValue::Boolean(b)) => (self, *b),
            Some(_) => (self.expected("true or false"), false),
            None => (self, false),
        };
        visitor.visit_bool(b).map_err(|e| node.place(e))
    }

    whole_number! {
        deserialize_i8 visit_i64 i8 as i64;
        deserialize_i16 visit_i64 i16 as i64;
        deserialize_i32 visit_i64 i32 as i64;
        deserialize_i64 visit_i64 i64 as i64;
        deserialize_u8 visit_u64 u8 as u64;
        deserialize_u16 visit_u64 u16 as u64;
        deserialize_u32 visit_u64 u32 as u64;
        deserialize_u64 visit_u64 u64 as u64;
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let (node, f) = match (self.value, self.float()) {
            (_, Some(f)) => (self, f),
            (Some(_), None) => (self.expected("a number"), 0.0),
            (None, None) => (self, 0.0),
        };
        visitor.visit_f64(f).map_err(|e| node.place(e))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let (node, s) = match (self.value, self.string()) {
            (_, Some(s)) => (self, s),
            (Some(_), None) => (self.expected("a string"), ""),
            (None, None) => (self, ""),
        };
        visitor.visit_str(s).map_err(|e| node.place(e))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    /// TOML has no null: a value that is there is `Some`; an absent field never gets here.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.value.is_none() {
            return visitor.visit_none().map_err(|e| self.place(e));
        }
        visitor.visit_some(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit().map_err(|e| self.place(e))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let items = match self.value.map(Spanned::get_ref) {
            Some(DeValue::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    Node::new(
                        self.run,
                        format!("{}[{i}]", self.path),
                        Some(v),
                        self.span.clone(),
                    )
                })
                .collect(),
            _ => Vec::new(),
        };
        let node = match self.value {
            Some(v) if !matches!(v.get_ref(), DeValue::Array(_)) => self.expected("an array"),
            _ => self,
        };
        visitor
            .visit_seq(Items(items.into_iter()))
            .map_err(|e| node.place(e))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let (node, entries) = match (self.value, self.table()) {
            (_, Some(t)) => {
                let entries = self.entries(t);
                (self, entries)
            }
            (Some(_), None) => (self.expected("a table"), Vec::new()),
            (None, None) => (self, Vec::new()),
        };
        visitor
            .visit_map(Entries::new(entries))
            .map_err(|e| node.place(e))
    }

    /// Rule 2: fields the struct does not have are recorded, not shown to it. A field marked
    /// neutral (rule 3) is given as a stand-in.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let (node, mut entries) = match (self.value, self.table()) {
            (_, Some(t)) => {
                let mut entries = self.entries(t);
                entries.retain(|e| {
                    let known = fields.contains(&e.key.as_str());
                    if !known {
                        let key = &e.key;
                        let message = match nearest(key, fields) {
                            Some(near) => format!("unknown field `{key}`; did you mean `{near}`?"),
                            None => {
                                format!("unknown field `{key}`; expected one of {}", one_of(fields))
                            }
                        };
                        self.run
                            .record(e.key_span.clone(), &e.node.path, message, None);
                    }
                    known
                });
                (self, entries)
            }
            (Some(_), None) => (self.expected("a table"), Vec::new()),
            (None, None) => (self, Vec::new()),
        };
        // A stand-in struct stands in field by field, so that no required field is missing;
        // a real one gets stand-ins for the absent fields marked neutral.
        for field in fields {
            let path = child_path(&node.path, field);
            let absent = !entries.iter().any(|e| e.key == *field);
            if absent && (node.value.is_none() || node.run.neutral.contains(&path)) {
                entries.push(Entry {
                    key: (*field).to_owned(),
                    key_span: node.span.clone(),
                    node: Node::new(node.run, path, None, node.span.clone()),
                });
            }
        }
        visitor
            .visit_map(Entries::new(entries))
            .map_err(|e| node.place(e))
    }

    /// A string names a unit variant; a table names its variant in its `kind` field.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let first = variants.first().copied().unwrap_or_default();
        let is_variant = |s: &str| variants.contains(&s);
        let not_one_of = |s: &str| format!("`{s}` is not one of {}", one_of(variants));
        let (variant, mut body) = match (self.value, self.string(), self.table()) {
            (_, Some(s), _) if is_variant(s) => (s.to_owned(), self),
            (_, Some(s), _) => {
                let message = not_one_of(s);
                (first.to_owned(), self.mistake(message))
            }
            (_, _, Some(t)) => {
                let tag = t.iter().find(|(k, _)| k.get_ref().as_ref() == TAG);
                match tag {
                    None => {
                        let message =
                            format!("missing field `{TAG}` (one of {})", one_of(variants));
                        let path = child_path(&self.path, TAG);
                        self.run
                            .record(self.span.clone(), &path, message, Some(&self.path));
                        (
                            first.to_owned(),
                            Node {
                                value: None,
                                ..self
                            },
                        )
                    }
                    Some((_, v)) => {
                        let path = child_path(&self.path, TAG);
                        match v.get_ref() {
                            DeValue::String(s) if is_variant(s) => (s.to_string(), self),
                            other => {
                                let message = match other {
                                    DeValue::String(s) => not_one_of(s),
                                    _ => format!("must be a string, not {}", describe(other)),
                                };
                                // The variant's fields are unknown: the whole table stands in.
                                self.run.record(v.span(), &path, message, Some(&self.path));
                                (
                                    first.to_owned(),
                                    Node {
                                        value: None,
                                        ..self
                                    },
                                )
                            }
                        }
                    }
                }
            }
            (Some(_), None, None) => {
                let what = format!("one of {}", one_of(variants));
                (first.to_owned(), self.expected(&what))
            }
            (None, _, _) => (first.to_owned(), self),
        };
        body.without = Some(TAG);
        let place = body.clone();
        visitor
            .visit_enum(Variant { variant, body })
            .map_err(|e| place.place(e))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

struct Items<'s, 'i>(std::vec::IntoIter<Node<'s, 'i>>);

impl<'de> de::SeqAccess<'de> for Items<'_, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0.next().map(|node| seed.deserialize(node)).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

/// A table's entry: its key, where the key is written, its value.
struct Entry<'s, 'i> {
    key: String,
    key_span: Range<usize>,
    node: Node<'s, 'i>,
}

struct Entries<'s, 'i> {
    entries: std::vec::IntoIter<Entry<'s, 'i>>,
    next: Option<Node<'s, 'i>>,
}

impl<'s, 'i> Entries<'s, 'i> {
    fn new(entries: Vec<Entry<'s, 'i>>) -> Self {
        Entries {
            entries: entries.into_iter(),
            next: None,
        }
    }
}

impl<'de> de::MapAccess<'de> for Entries<'_, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(Entry { key, node, .. }) = self.entries.next() else {
            return Ok(None);
        };
        let place = node.clone();
        self.next = Some(node);
        let key: de::value::StringDeserializer<Error> = key.into_deserializer();
        seed.deserialize(key).map(Some).map_err(|e| place.place(e))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        match self.next.take() {
            Some(node) => seed.deserialize(node),
            None => Err(Error::Custom(
                "a value was asked for before its key".to_owned(),
            )),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// The variant a string or a table's `kind` named, and the rest of the table.
struct Variant<'s, 'i> {
    variant: String,
    body: Node<'s, 'i>,
}

impl<'de, 's, 'i> de::EnumAccess<'de> for Variant<'s, 'i> {
    type Error = Error;
    type Variant = Node<'s, 'i>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), Error> {
        let name: de::value::StringDeserializer<Error> = self.variant.into_deserializer();
        let value = seed.deserialize(name).map_err(|e| self.body.place(e))?;
        Ok((value, self.body))
    }
}

impl<'de> de::VariantAccess<'de> for Node<'_, '_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_struct(self, "", fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        limits: Limits,
        #[serde(default)]
        things: BTreeMap<String, Thing>,
        #[serde(default)]
        items: Vec<Item>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Limits {
        rpm: Option<u32>,
        share: f64,
        on: bool,
        mode: Mode,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        #[default]
        Fast,
        Slow,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Thing {
        Box(BoxThing),
        Ball(BallThing),
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct BoxThing {
        side: u8,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct BallThing {
        radius: f32,
        #[serde(default)]
        colour: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        name: String,
        size: u16,
    }

    /// (path, message, line) of each problem, in the order of the text.
    fn problems(text: &str) -> (Option<File>, Vec<(String, String, usize)>) {
        let (file, mut found) = read::<File>(text);
        found.sort_by_key(|p| p.span.start);
        let shown = found
            .into_iter()
            .map(|p| {
                let line = crate::locate::line_of_offset(text, p.span.start);
                (p.path, p.message, line)
            })
            .collect();
        (file, shown)
    }

    #[test]
    fn a_good_file_reads_as_serde_would() {
        let text = "[limits]\nrpm = 60\nshare = 1\nmode = \"slow\"\n\n[things.a]\nkind = \"box\"\nside = 3\n[things.b]\nkind = \"ball\"\nradius = 0.5\n\n[[items]]\nname = \"x\"\nsize = 7\n";
        let (file, found) = problems(text);
        assert!(found.is_empty(), "{found:?}");
        let file = file.unwrap();
        assert_eq!(file.limits.rpm, Some(60));
        assert!((file.limits.share - 1.0).abs() < f64::EPSILON);
        assert_eq!(file.limits.mode, Mode::Slow);
        assert_eq!(file.things["a"], Thing::Box(BoxThing { side: 3 }));
        assert_eq!(
            file.things["b"],
            Thing::Ball(BallThing {
                radius: 0.5,
                colour: None
            })
        );
        assert_eq!((file.items[0].name.as_str(), file.items[0].size), ("x", 7));
    }

    #[test]
    fn every_mistake_is_found_in_one_read() {
        let text = "[limits]\nrpm = -1\nshare = \"half\"\non = 1\nmode = \"medium\"\nrmp = 3\n\n[things.a]\nkind = \"box\"\nside = 256\nsdie = 1\n[things.b]\nkind = \"cube\"\nside = 1\n[things.c]\nradius = 1.0\n\n[[items]]\nsize = 70000\n[[items]]\nname = 5\n";
        let (file, found) = problems(text);
        let expect: Vec<(&str, &str, usize)> = vec![
            (
                "limits.rpm",
                "must be a whole number from 0 to 4294967295, not -1",
                2,
            ),
            (
                "limits.share",
                "must be a number, not a string (\"half\")",
                3,
            ),
            ("limits.on", "must be true or false, not 1", 4),
            (
                "limits.mode",
                "`medium` is not one of \"fast\", \"slow\"",
                5,
            ),
            ("limits.rmp", "unknown field `rmp`; did you mean `rpm`?", 6),
            (
                "things.a.side",
                "must be a whole number from 0 to 255, not 256",
                10,
            ),
            (
                "things.a.sdie",
                "unknown field `sdie`; did you mean `side`?",
                11,
            ),
            (
                "things.b.kind",
                "`cube` is not one of \"box\", \"ball\"",
                13,
            ),
            (
                "things.c.kind",
                "missing field `kind` (one of \"box\", \"ball\")",
                15,
            ),
            ("items[0].name", "missing field `name`", 18),
            (
                "items[0].size",
                "must be a whole number from 0 to 65535, not 70000",
                19,
            ),
            ("items[1].name", "must be a string, not 5", 21),
            ("items[1].size", "missing field `size`", 20),
        ];
        let mut expect: Vec<(String, String, usize)> = expect
            .into_iter()
            .map(|(p, m, l)| (p.to_owned(), m.to_owned(), l))
            .collect();
        let mut got = found.clone();
        expect.sort();
        got.sort();
        assert_eq!(got, expect, "{found:#?}");
        // With neutral stand-ins the reading completes: validation still runs.
        assert!(file.is_some());
    }

    #[test]
    fn wrong_kinds_of_container_are_found() {
        let (_, found) = problems("limits = 5\nitems = { name = \"x\" }\nthings = []\n");
        let paths: Vec<&str> = found.iter().map(|(p, _, _)| p.as_str()).collect();
        assert_eq!(paths, ["limits", "items", "things"], "{found:#?}");
        assert_eq!(found[0].1, "must be a table, not 5");
        assert_eq!(found[1].1, "must be an array, not a table");
    }

    #[test]
    fn an_unknown_field_far_from_any_lists_the_known_ones() {
        let (_, found) = problems("[limits]\nzzzzzz = 1\n");
        assert_eq!(
            found[0].1,
            "unknown field `zzzzzz`; expected one of \"rpm\", \"share\", \"on\", \"mode\""
        );
    }

    #[test]
    fn syntax_errors_stop_before_the_shape() {
        let (file, found) = problems("[limits\nrpm = -1\n");
        assert!(file.is_none());
        assert!(!found.is_empty());
        assert!(
            found.iter().all(|(path, _, _)| path.is_empty()),
            "{found:#?}"
        );
    }
}
