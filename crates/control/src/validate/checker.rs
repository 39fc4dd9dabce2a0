//! Where validation collects its problems: each with its field path.

pub(crate) type Issues = Vec<(String, String)>;

#[derive(Default)]
pub(super) struct Checker {
    pub(super) issues: Issues,
    /// Valid, but probably not what the author meant.
    pub(super) warnings: Issues,
}

impl Checker {
    pub(super) fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.issues.push((path.into(), message.into()));
    }

    pub(super) fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push((path.into(), message.into()));
    }

    /// Checks a condition and records `message` at `path` when it fails.
    pub(super) fn ensure(
        &mut self,
        ok: bool,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> bool {
        if !ok {
            self.err(path, message);
        }
        ok
    }

    /// Checks that `value` lies in `range`, recording "must be between A and B" at `path`
    /// when it does not.
    pub(super) fn within<T: PartialOrd + std::fmt::Display>(
        &mut self,
        value: T,
        range: std::ops::RangeInclusive<T>,
        path: impl Into<String>,
    ) -> bool {
        let ok = range.contains(&value);
        if !ok {
            let message = format!("must be between {} and {}", range.start(), range.end());
            self.err(path, message);
        }
        ok
    }

    /// The option `value` names, or `fallback` after recording which names are allowed.
    pub(super) fn one_of<T: Copy>(
        &mut self,
        path: String,
        value: &str,
        options: &[(&str, T)],
        fallback: T,
    ) -> T {
        if let Some((_, v)) = options.iter().find(|(name, _)| *name == value) {
            return *v;
        }
        let names: Vec<String> = options.iter().map(|(n, _)| format!("\"{n}\"")).collect();
        self.err(
            path,
            format!("`{value}` is not one of {}", names.join(", ")),
        );
        fallback
    }

    /// `on_error`: whether a guard that fails lets the request through.
    pub(super) fn fail_open(&mut self, path: String, value: &str) -> bool {
        self.one_of(path, value, &[("closed", false), ("open", true)], false)
    }
}
