//! A PostgreSQL connection string as it may be shown: in errors, logs and `Debug` output the
//! password is `*****`, whether it is in the URL's user part (`postgres://u:PASSWORD@h/db`), in
//! a `password=` query parameter, or in the `key=value` form (`password=PASSWORD`). Text that
//! comes from elsewhere (a driver's error message) is scrubbed of the password too.

/// What stands in for a password.
const HIDDEN: &str = "*****";

/// `conninfo` (a URL or `key=value` pairs) with every password replaced by `*****`. When in
/// doubt it hides more than the password, never less.
pub(crate) fn redact(conninfo: &str) -> String {
    let trimmed = conninfo.trim_start();
    let url = ["postgres://", "postgresql://"]
        .iter()
        .find_map(|scheme| trimmed.strip_prefix(scheme).map(|rest| (*scheme, rest)));
    match url {
        Some((scheme, rest)) => {
            // The user part ends at the last `@` (an unescaped `@` in a password included).
            let rest = match rest.rfind('@') {
                Some(at) => {
                    let (user_part, host_part) = rest.split_at(at);
                    match user_part.split_once(':') {
                        Some((user, _)) => format!("{user}:{HIDDEN}{host_part}"),
                        None => rest.to_owned(),
                    }
                }
                None => rest.to_owned(),
            };
            format!("{scheme}{}", redact_pairs(&rest, '&'))
        }
        None => redact_pairs(conninfo, ' '),
    }
}

/// `text` with the value of every `password=` (any case) hidden, up to the next `sep` (or a
/// closing quote, for a quoted value of the `key=value` form).
fn redact_pairs(text: &str, sep: char) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(found) = lower[at..].find("password") {
        let key_start = at + found;
        let after_key = key_start + "password".len();
        // `password` must start a key (after a separator, `?` or the start) and be followed,
        // past blanks, by `=`.
        let starts_key = key_start == 0
            || matches!(
                text[..key_start].chars().next_back(),
                Some(c) if c == sep || c == '?' || c.is_whitespace()
            );
        let eq = text[after_key..]
            .char_indices()
            .find(|(_, c)| !c.is_whitespace())
            .filter(|(_, c)| *c == '=')
            .map(|(i, _)| after_key + i + 1);
        let (true, Some(value_start)) = (starts_key, eq) else {
            out.push_str(&text[at..after_key]);
            at = after_key;
            continue;
        };
        let value = &text[value_start..];
        let blanks = value.len() - value.trim_start().len();
        out.push_str(&text[at..value_start + blanks]);
        let value_end = match value.trim_start().strip_prefix('\'') {
            // A quoted value ends at its closing quote (`\'` escapes one).
            Some(quoted) => {
                let mut end = None;
                let mut escaped = false;
                for (i, c) in quoted.char_indices() {
                    match (escaped, c) {
                        (true, _) => escaped = false,
                        (false, '\\') => escaped = true,
                        (false, '\'') => {
                            end = Some(i + 1);
                            break;
                        }
                        _ => {}
                    }
                }
                value_start + blanks + 1 + end.unwrap_or(quoted.len())
            }
            None => {
                value_start
                    + blanks
                    + value
                        .trim_start()
                        .find(|c: char| c == sep || c.is_whitespace())
                        .unwrap_or(value.trim_start().len())
            }
        };
        out.push_str(HIDDEN);
        at = value_end;
    }
    out.push_str(&text[at..]);
    out
}

/// `text` (a driver's message) with `password` (as the driver decoded it from the URL)
/// hidden wherever it appears.
pub(crate) fn scrub(text: &str, password: Option<&str>) -> String {
    match password.filter(|p| !p.is_empty()) {
        Some(p) => text.replace(p, HIDDEN),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_in_every_form() {
        let cases = [
            (
                "postgres://ana:s3cret@db.example:5432/switchyard",
                "postgres://ana:*****@db.example:5432/switchyard",
            ),
            (
                "postgresql://ana:p%40ss@host/db?sslmode=disable",
                "postgresql://ana:*****@host/db?sslmode=disable",
            ),
            // An unescaped `@` in the password: hidden with it.
            (
                "postgres://ana:p@ss@host/db",
                "postgres://ana:*****@host/db",
            ),
            (
                "postgres://ana@host/db?password=s3cret&application_name=x",
                "postgres://ana@host/db?password=*****&application_name=x",
            ),
            (
                "host=db user=ana password=s3cret dbname=x",
                "host=db user=ana password=***** dbname=x",
            ),
            (
                "host=db password = 'se cr\\'et' dbname=x",
                "host=db password = ***** dbname=x",
            ),
            ("PASSWORD=s3cret", "PASSWORD=*****"),
            // No password: unchanged.
            (
                "postgres://postgres@127.0.0.1:5432/switchyard",
                "postgres://postgres@127.0.0.1:5432/switchyard",
            ),
            ("host=db user=password_admin", "host=db user=password_admin"),
        ];
        for (given, shown) in cases {
            assert_eq!(redact(given), shown, "{given}");
        }
    }

    #[test]
    fn a_message_is_scrubbed_of_the_password() {
        assert_eq!(
            scrub("authentication failed for s3cret", Some("s3cret")),
            "authentication failed for *****"
        );
        assert_eq!(scrub("no password here", None), "no password here");
        assert_eq!(scrub("kept", Some("")), "kept");
    }
}
