//! What the process was started with: the config text, its overrides, and how it reads its
//! environment (secrets). Every config version it builds gets the same.

use std::sync::Arc;

use switchyard_control::{Config, ConfigError};

/// Environment lookups (secrets), kept for every version the process builds.
pub type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// What the gateway was started with: the config text (its first version) and the launch's
/// own overrides, applied to every version it builds.
#[derive(Clone)]
pub struct Launch {
    pub text: String,
    /// Names the text in diagnostics (a file path).
    pub origin: String,
    pub adjust: Arc<dyn Fn(&mut Config) + Send + Sync>,
}

impl Launch {
    /// A launch with no overrides.
    pub fn new(text: impl Into<String>, origin: impl Into<String>) -> Self {
        Launch {
            text: text.into(),
            origin: origin.into(),
            adjust: Arc::new(|_| {}),
        }
    }

    pub fn with_adjust(mut self, adjust: impl Fn(&mut Config) + Send + Sync + 'static) -> Self {
        self.adjust = Arc::new(adjust);
        self
    }

    /// Parses, validates and adjusts a version's text.
    pub fn config_of(&self, text: &str, origin: &str) -> Result<Config, ConfigError> {
        let mut config = switchyard_control::parse(text, origin)?;
        (self.adjust)(&mut config);
        Ok(config)
    }
}
