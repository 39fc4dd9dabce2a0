use sha2::{Digest, Sha256};
use std::fmt;

/// A secret value (an upstream API key). Its `Debug` and `Display` print `*****`, so it never
/// reaches a log or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The only way to the value: call it where the value goes on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

/// A connection URL that may carry a password (`postgres://USER:PASSWORD@HOST/DB`,
/// `redis://:PASSWORD@HOST`). `Debug` and `Display` print it with the password as `*****`,
/// so it can name the server in a log line or an error without giving the password away.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl {
    url: String,
    shown: String,
}

impl SecretUrl {
    /// A PostgreSQL URL (`[storage] url`, `SWITCHYARD_STORAGE_URL`). Plain TCP only: this
    /// build has no TLS to PostgreSQL, so an `sslmode` that requires it is refused here
    /// rather than failing at the first connection.
    pub fn postgres(value: &str) -> Result<SecretUrl, String> {
        let url = SecretUrl::parse(value, &["postgres", "postgresql"])?;
        let parsed = url::Url::parse(&url.url).map_err(|e| e.to_string())?;
        if let Some((_, mode)) = parsed.query_pairs().find(|(k, _)| k == "sslmode") {
            if matches!(mode.as_ref(), "require" | "verify-ca" | "verify-full") {
                return Err(format!(
                    "asks for sslmode={mode}, but TLS to PostgreSQL is not supported yet; \
                     reach it over a private network (or a TLS tunnel) with sslmode=disable"
                ));
            }
        }
        Ok(url)
    }

    /// A Redis URL (`[redis] url`, `SWITCHYARD_REDIS_URL`). Plain TCP only: this build has
    /// no TLS to Redis, so `rediss://` is refused here rather than failing at the first
    /// connection.
    pub fn redis(value: &str) -> Result<SecretUrl, String> {
        SecretUrl::parse(value, &["redis"])
    }

    fn parse(value: &str, schemes: &[&str]) -> Result<SecretUrl, String> {
        let expected = || {
            schemes
                .iter()
                .map(|s| format!("{s}://"))
                .collect::<Vec<_>>()
                .join(" or ")
        };
        // The error never quotes the value: it may hold the password.
        let mut url = url::Url::parse(value.trim())
            .map_err(|e| format!("is not a URL ({e}); expected {}…", expected()))?;
        if !schemes.contains(&url.scheme()) {
            return Err(format!(
                "has the scheme `{}`; expected {}…",
                url.scheme(),
                expected()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("names no host".to_owned());
        }
        let original = url.to_string();
        if url.password().is_some() {
            // Only fails for URLs that cannot have a password, which these have.
            let _ = url.set_password(Some("*****"));
        }
        // A password can ride in the query too (`?password=`, `?pass=`).
        if url.query_pairs().any(|(k, _)| is_password_key(&k)) {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if is_password_key(&k) {
                        "*****".to_owned()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        Ok(SecretUrl {
            url: original,
            shown: url.to_string(),
        })
    }

    /// The only way to the password: call it where the connection is made.
    pub fn expose(&self) -> &str {
        &self.url
    }

    /// `text` (a client library's error, which may quote the URL or the password) with every
    /// password this URL carries replaced by `*****`.
    pub fn scrub(&self, text: &str) -> String {
        let Ok(parsed) = url::Url::parse(&self.url) else {
            return text.to_owned();
        };
        let decode = |p: &str| {
            url::form_urlencoded::parse(format!("p={p}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        };
        let mut secrets: Vec<String> = parsed.password().and_then(decode).into_iter().collect();
        secrets.extend(
            parsed
                .query_pairs()
                .filter(|(k, _)| is_password_key(k))
                .map(|(_, v)| v.into_owned()),
        );
        let mut out = text.replace(&self.url, &self.shown);
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            out = out.replace(secret.as_str(), "*****");
        }
        out
    }
}

/// A query key that names a password.
fn is_password_key(key: &str) -> bool {
    key.eq_ignore_ascii_case("password") || key.eq_ignore_ascii_case("pass")
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// The SHA-256 of a virtual key, the form keys are stored and looked up in.
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("sk-live-123");
        assert_eq!(format!("{s:?} {s}"), "***** *****");
        assert_eq!(s.expose(), "sk-live-123");
    }

    #[test]
    fn a_url_prints_without_its_password() {
        let u = SecretUrl::postgres("postgres://app:hunter2@db.internal:5432/switchyard").unwrap();
        assert_eq!(
            format!("{u} {u:?}"),
            "postgres://app:*****@db.internal:5432/switchyard \
             postgres://app:*****@db.internal:5432/switchyard"
        );
        assert_eq!(
            u.expose(),
            "postgres://app:hunter2@db.internal:5432/switchyard"
        );
        let r = SecretUrl::redis("redis://:s3cr%40t@cache:6379/0").unwrap();
        assert_eq!(r.to_string(), "redis://:*****@cache:6379/0");
        assert_eq!(r.scrub("auth s3cr@t failed"), "auth ***** failed");
        let q =
            SecretUrl::postgres("postgres://app@db/x?password=hunter2&sslmode=disable").unwrap();
        assert_eq!(
            q.to_string(),
            "postgres://app@db/x?password=*****&sslmode=disable"
        );
        assert_eq!(q.scrub("bad password hunter2"), "bad password *****");
        assert_eq!(
            SecretUrl::redis("redis://cache:6379").unwrap().to_string(),
            "redis://cache:6379"
        );
    }

    #[test]
    fn a_wrong_url_is_refused_without_quoting_it() {
        for (value, want) in [
            ("mysql://u:hunter2@db/x", "has the scheme `mysql`; expected postgres:// or postgresql://…"),
            ("hunter2", "is not a URL (relative URL without a base); expected postgres:// or postgresql://…"),
        ] {
            let e = SecretUrl::postgres(value).unwrap_err();
            assert_eq!(e, want);
            assert!(!e.contains("hunter2"));
        }
        assert!(SecretUrl::postgres("postgres://u:p@db/x?sslmode=require")
            .unwrap_err()
            .starts_with("asks for sslmode=require, but TLS to PostgreSQL is not supported yet"));
        assert!(SecretUrl::postgres("postgres://u:p@db/x?sslmode=disable").is_ok());
        assert_eq!(
            SecretUrl::redis("postgres://db/x").unwrap_err(),
            "has the scheme `postgres`; expected redis://…"
        );
    }
}
