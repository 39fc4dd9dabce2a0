//! Valid configs that are probably a mistake: warnings, each with its file, line and field.

#![expect(clippy::unwrap_used, reason = "test code")]

use switchyard_control::parse;

/// A config whose one OpenAI-compatible provider is at `base_url`, with a guard webhook and an
/// alerts webhook at `webhook`.
fn config(base_url: &str, webhook: &str) -> String {
    format!(
        r#"[providers.up]
kind = "openai"
base_url = "{base_url}"

[models.m]
deployments = [{{ provider = "up" }}]

[guards.webhook]
url = "{webhook}"

[alerts]
webhook = "{webhook}"

[[keys]]
id = "k"
secret_sha256 = "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b"
"#
    )
}

fn warnings(base_url: &str, webhook: &str) -> Vec<String> {
    parse(&config(base_url, webhook), "w.toml")
        .unwrap()
        .warnings()
}

#[test]
fn an_upstream_on_a_metadata_or_link_local_address_is_warned_about_with_its_line() {
    let w = warnings(
        "http://169.254.169.254/latest/meta-data",
        "https://hooks.example.com/x",
    );
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("w.toml:3: `providers.up.base_url`: `http://169.254.169.254/latest/meta-data` points at a cloud metadata service"),
        "{}",
        w[0]
    );

    // Every URL field, each at its own line.
    let w = warnings("https://api.example.com/v1", "http://[fe80::1]:8080/hook");
    assert_eq!(w.len(), 2, "{w:?}");
    for at in [
        "w.toml:9: `guards.webhook.url`: ",
        "w.toml:12: `alerts.webhook`: ",
    ] {
        assert!(
            w.iter()
                .any(|w| w.starts_with(at) && w.contains("a link-local address")),
            "{at} in {w:?}"
        );
    }
}

#[test]
fn metadata_services_are_found_in_every_spelling() {
    for url in [
        "http://169.254.170.2/v1",
        "http://169.254.169.254",
        "http://[fd00:ec2::254]/v1",
        "http://metadata.google.internal/computeMetadata/v1",
        "http://METADATA.google.internal./v1",
        "http://[::ffff:169.254.169.254]/v1",
        "http://[fe80::abcd]/v1",
        // 169.254.169.254 written as one number.
        "http://2852039166/v1",
        "http://100.100.100.200/latest",
    ] {
        assert_eq!(
            warnings(url, "https://hooks.example.com/x").len(),
            1,
            "{url}"
        );
    }
    for url in [
        "http://127.0.0.1:8000/v1",
        "http://10.0.0.5/v1",
        "https://api.openai.example/v1",
        "http://[::1]:9000/v1",
        "http://169.255.0.1/v1",
        "http://metadata.example.com/v1",
    ] {
        assert!(
            warnings(url, "https://hooks.example.com/x").is_empty(),
            "{url}"
        );
    }
}
