use std::fmt;
use std::ops::{Index, IndexMut};
use std::str::FromStr;

/// A request's priority class, from the `x-switchyard-priority` header or its key's default.
/// Ordered from lowest to highest: `Batch < Standard < Interactive < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Class {
    Batch,
    Standard,
    #[default]
    Interactive,
    Critical,
}

/// A header value that names no class.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown priority class {value:?}: expected critical, interactive, standard or batch")]
pub struct ParseClassError {
    /// The value sent, cut to [`ParseClassError::MAX_ECHO`] characters so a caller cannot make
    /// the error (and the log line it ends in) large.
    pub value: String,
}

impl ParseClassError {
    pub const MAX_ECHO: usize = 32;
}

impl Class {
    /// Every class, lowest first.
    pub const ASCENDING: [Class; 4] = [
        Class::Batch,
        Class::Standard,
        Class::Interactive,
        Class::Critical,
    ];
    /// Every class, highest first: the order in which queues are served.
    pub const DESCENDING: [Class; 4] = [
        Class::Critical,
        Class::Interactive,
        Class::Standard,
        Class::Batch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Batch => "batch",
            Class::Standard => "standard",
            Class::Interactive => "interactive",
            Class::Critical => "critical",
        }
    }

    /// This class, lowered to `max` if it is above it: a key may not raise itself above its
    /// maximum.
    pub fn clamp_to(self, max: Class) -> Class {
        self.min(max)
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Class {
    type Err = ParseClassError;

    /// Parses a header value, case-insensitively and ignoring surrounding blanks.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let trimmed = value.trim();
        Class::ASCENDING
            .into_iter()
            .find(|class| class.as_str().eq_ignore_ascii_case(trimmed))
            .ok_or_else(|| ParseClassError {
                value: trimmed.chars().take(ParseClassError::MAX_ECHO).collect(),
            })
    }
}

/// One value per class, indexed by [`Class`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PerClass<T>(pub [T; 4]);

impl<T> PerClass<T> {
    /// The value of each class, from a function of the class.
    pub fn from_fn(mut f: impl FnMut(Class) -> T) -> Self {
        PerClass(Class::ASCENDING.map(&mut f))
    }
}

impl<T> Index<Class> for PerClass<T> {
    type Output = T;
    fn index(&self, class: Class) -> &T {
        &self.0[class.index()]
    }
}

impl<T> IndexMut<Class> for PerClass<T> {
    fn index_mut(&mut self, class: Class) -> &mut T {
        &mut self.0[class.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_ordered_lowest_first() {
        assert!(Class::Batch < Class::Standard);
        assert!(Class::Standard < Class::Interactive);
        assert!(Class::Interactive < Class::Critical);
        let mut sorted = Class::DESCENDING;
        sorted.sort();
        assert_eq!(sorted, Class::ASCENDING);
        assert_eq!(Class::default(), Class::Interactive);
    }

    #[test]
    fn parses_header_values_case_insensitively() {
        for (value, class) in [
            ("critical", Class::Critical),
            ("Interactive", Class::Interactive),
            (" STANDARD ", Class::Standard),
            ("batch", Class::Batch),
        ] {
            assert_eq!(value.parse::<Class>(), Ok(class), "{value}");
        }
        for class in Class::ASCENDING {
            assert_eq!(class.to_string().parse::<Class>(), Ok(class));
        }
    }

    #[test]
    fn unknown_values_are_errors_that_echo_a_bounded_value() {
        let err = "urgent".parse::<Class>().unwrap_err();
        assert_eq!(err.value, "urgent");
        assert!(err.to_string().contains("\"urgent\""), "{err}");
        assert!("".parse::<Class>().is_err());
        let long = "x".repeat(10_000);
        let err = long.parse::<Class>().unwrap_err();
        assert_eq!(err.value.len(), ParseClassError::MAX_ECHO);
    }

    #[test]
    fn a_class_is_clamped_to_its_maximum_but_never_raised() {
        assert_eq!(Class::Critical.clamp_to(Class::Standard), Class::Standard);
        assert_eq!(Class::Batch.clamp_to(Class::Standard), Class::Batch);
        assert_eq!(
            Class::Interactive.clamp_to(Class::Critical),
            Class::Interactive
        );
    }

    #[test]
    fn per_class_values_are_indexed_by_class() {
        let mut per = PerClass::from_fn(|class| class.as_str().len());
        assert_eq!(per[Class::Batch], 5);
        per[Class::Critical] = 1;
        assert_eq!(per[Class::Critical], 1);
    }
}
