//! Checks of one value that several sections share: URLs, environment variable names,
//! dollar amounts.

use super::checker::Checker;

pub(super) fn http_url(c: &mut Checker, path: &str, url: &str) -> String {
    let web = c.ensure(
        url.starts_with("http://") || url.starts_with("https://"),
        path,
        format!("`{url}` is not an http:// or https:// URL"),
    );
    if web {
        if let Some(why) = url::Url::parse(url).ok().and_then(|u| internal_host(&u)) {
            c.warn(
                path,
                format!(
                    "`{url}` points at {why}: requests (with their API key and prompts) would go \
                     to this machine's cloud metadata service or its own network link, not a model \
                     provider; check the address"
                ),
            );
        }
    }
    url.trim_end_matches('/').to_owned()
}

/// Cloud metadata services by name and by address (AWS, GCP, Azure and OpenStack use
/// 169.254.169.254, which the link-local rule covers; AWS's IPv6 one is not link-local).
const METADATA_HOSTS: &[&str] = &["metadata.google.internal", "metadata.goog"];
const METADATA_ADDRS: &[std::net::IpAddr] = &[
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(169, 254, 169, 254)),
    std::net::IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
    // Alibaba Cloud's.
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(100, 100, 100, 200)),
];

/// What is wrong with a URL's host for an upstream: a cloud metadata service, or a
/// link-local address (169.254.0.0/16, fe80::/10; an IPv4-mapped IPv6 address counts as its
/// IPv4 address). `None` for any other host.
fn internal_host(url: &url::Url) -> Option<&'static str> {
    let ip = match url.host()? {
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            return METADATA_HOSTS
                .contains(&name.as_str())
                .then_some("a cloud metadata service");
        }
        url::Host::Ipv4(v4) => std::net::IpAddr::V4(v4),
        url::Host::Ipv6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => std::net::IpAddr::V4(v4),
            None => std::net::IpAddr::V6(v6),
        },
    };
    if METADATA_ADDRS.contains(&ip) {
        return Some("a cloud metadata service");
    }
    let link_local = match ip {
        std::net::IpAddr::V4(v4) => v4.is_link_local(),
        std::net::IpAddr::V6(v6) => v6.is_unicast_link_local(),
    };
    link_local.then_some("a link-local address")
}

pub(super) fn env_name(c: &mut Checker, path: &str, name: &Option<String>) {
    if let Some(n) = name {
        c.ensure(
            !n.is_empty() && n.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_'),
            path,
            format!("`{n}` is not an environment variable name"),
        );
    }
}

pub(super) fn usd_to_nanos(c: &mut Checker, path: &str, usd: Option<f64>) -> Option<u64> {
    let usd = usd?;
    if !c.ensure(
        (0.0..1e9).contains(&usd),
        path,
        "must be a dollar amount >= 0",
    ) {
        return None;
    }
    Some((usd * 1e9).round() as u64)
}
