//! What a name in the config may be: of a provider, a model, a route, a guard policy, and of a
//! stored prompt.

pub(crate) const NAME_RULE: &str = "names use letters, digits, '-', '_', '.' and ':' only";

pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.' | ':'))
}
