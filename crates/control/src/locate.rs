//! Finds the line of a field path such as `models.small.deployments[0].provider` in the
//! original text, so validation errors point where the user has to look.

use toml_edit::{Document, Item};

pub(crate) fn line_of_offset(text: &str, offset: usize) -> usize {
    position_of_offset(text, offset).0
}

/// The 1-based line and column (in characters) of a byte offset.
pub(crate) fn position_of_offset(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = text.get(..end).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// serde reports an unknown field inside a tagged table at the table's span; point at the
/// field's own line when the table holds it.
pub(crate) fn refine_unknown_field(
    text: &str,
    span: std::ops::Range<usize>,
    message: &str,
) -> usize {
    let field = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next());
    // The span may cover only the table header; search on to the next header.
    let (Some(field), Some(region)) = (field, text.get(span.start..)) else {
        return span.start;
    };
    let mut offset = span.start;
    for (i, line) in region.split_inclusive('\n').enumerate() {
        if i > 0 && line.trim_start().starts_with('[') {
            break;
        }
        let key = line
            .trim_start()
            .split(['=', ' ', '\t'])
            .next()
            .unwrap_or("");
        if key.trim_matches('"') == field {
            return offset;
        }
        offset += line.len();
    }
    span.start
}

pub(crate) struct Locator<'a> {
    text: &'a str,
    doc: Option<Document<&'a str>>,
}

impl<'a> Locator<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Locator {
            text,
            doc: Document::parse(text).ok(),
        }
    }

    /// The line of the deepest part of `path` that exists in the file.
    pub(crate) fn line_of_path(&self, path: &str) -> Option<usize> {
        self.position_of_path(path).map(|(line, _)| line)
    }

    /// The line and column of the deepest part of `path` that exists in the file.
    pub(crate) fn position_of_path(&self, path: &str) -> Option<(usize, usize)> {
        let doc = self.doc.as_ref()?;
        let mut item: &Item = doc.as_item();
        let mut best = None;
        for segment in segments(path) {
            let next = match segment {
                Segment::Key(k) => item.get(k),
                Segment::Index(i) => item.get(i),
            };
            match next {
                Some(next) => {
                    item = next;
                    if let Some(span) = span_of(item) {
                        best = Some(span);
                    }
                }
                None => break,
            }
        }
        best.map(|start| position_of_offset(self.text, start))
    }
}

fn span_of(item: &Item) -> Option<usize> {
    match item {
        Item::Table(t) => t.span().map(|s| s.start),
        Item::ArrayOfTables(a) => a.span().map(|s| s.start),
        _ => item.span().map(|s| s.start),
    }
}

enum Segment<'p> {
    Key(&'p str),
    Index(usize),
}

/// Splits `a.b[2].c` into keys and indices. Keys with dots are written quoted: `models."gpt-4.1".price`.
fn segments(path: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            rest = r;
        } else if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').unwrap_or(r.len());
            out.push(Segment::Key(&r[..end]));
            rest = r.get(end + 1..).unwrap_or("");
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').unwrap_or(r.len());
            if let Ok(i) = r[..end].parse() {
                out.push(Segment::Index(i));
            }
            rest = r.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            out.push(Segment::Key(&rest[..end]));
            rest = &rest[end..];
        }
    }
    out
}

/// Writes a path segment for a key, quoting it when it holds characters `segments` splits on.
pub(crate) fn key_segment(key: &str) -> String {
    if key.contains(['.', '[', ']', '"']) {
        format!("\"{key}\"")
    } else {
        key.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_fields_and_array_entries() {
        let text = "[server]\nlisten = \"x\"\n\n[models.small]\nfallbacks = []\ndeployments = [\n  { provider = \"a\" },\n  { provider = \"b\" },\n]\n\n[[keys]]\nid = \"k1\"\n[[keys]]\nid = \"k2\"\n";
        let l = Locator::new(text);
        assert_eq!(l.line_of_path("server.listen"), Some(2));
        assert_eq!(
            l.line_of_path("models.small.deployments[1].provider"),
            Some(8)
        );
        assert_eq!(l.line_of_path("keys[1].id"), Some(14));
        // A missing field points at the deepest table that exists.
        assert_eq!(l.line_of_path("models.small.price"), Some(4));
    }

    #[test]
    fn quoted_keys_with_dots() {
        let text = "[models.\"gpt-4.1\"]\ncontext_tokens = 5\n";
        let l = Locator::new(text);
        assert_eq!(l.line_of_path("models.\"gpt-4.1\".context_tokens"), Some(2));
        assert_eq!(key_segment("gpt-4.1"), "\"gpt-4.1\"");
    }
}
