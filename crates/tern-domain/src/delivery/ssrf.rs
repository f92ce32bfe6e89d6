//! The guard in front of every outbound webhook: a template author chooses the URL, so without it a
//! webhook could reach the cloud's metadata service or anything else on the private network. Only public
//! unicast addresses pass, unless the workspace allows the host explicitly.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Why a webhook URL or address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the URL is not valid: {0}")]
    InvalidUrl(String),
    #[error("the scheme {0:?} is not allowed; use http or https")]
    Scheme(String),
    #[error("the URL carries credentials; put them in a header instead")]
    Credentials,
    #[error("the URL has no host")]
    NoHost,
    #[error("{address} is a {range} address, which webhooks may not reach")]
    Address {
        address: IpAddr,
        range: &'static str,
    },
    #[error("the host {0:?} did not resolve to any address")]
    Unresolved(String),
}

/// A webhook URL that passed [`check_url`], with what the sender needs to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedUrl {
    pub url: Url,
    /// The host as it appears in the URL (a name, or an address without brackets).
    pub host: String,
    pub port: u16,
    /// Whether the addresses the host resolves to must still pass [`check_address`]: false for an allowed
    /// host and for an address literal (already checked).
    pub check_resolved: bool,
}

/// An IPv4 range Tern refuses: network, prefix length, name.
const REFUSED_V4: &[(Ipv4Addr, u8, &str)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, "\"this network\""),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private"),
    (Ipv4Addr::new(100, 64, 0, 0), 10, "carrier-grade NAT"),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private"),
    (Ipv4Addr::new(192, 0, 0, 0), 24, "IETF protocol assignment"),
    (Ipv4Addr::new(192, 0, 2, 0), 24, "documentation"),
    (Ipv4Addr::new(192, 88, 99, 0), 24, "6to4 relay"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking"),
    (Ipv4Addr::new(198, 51, 100, 0), 24, "documentation"),
    (Ipv4Addr::new(203, 0, 113, 0), 24, "documentation"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved"),
    (Ipv4Addr::new(255, 255, 255, 255), 32, "broadcast"),
];

/// An IPv6 range Tern refuses. Ranges that embed an IPv4 address (mapped, NAT64, 6to4) are handled apart:
/// the embedded address decides.
const REFUSED_V6: &[(Ipv6Addr, u8, &str)] = &[
    (Ipv6Addr::UNSPECIFIED, 128, "unspecified"),
    (Ipv6Addr::LOCALHOST, 128, "loopback"),
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 96, "IPv4-compatible"),
    (
        Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),
        64,
        "discard-only",
    ),
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32, "Teredo"),
    (Ipv6Addr::new(0x2001, 0x10, 0, 0, 0, 0, 0, 0), 28, "ORCHID"),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "documentation",
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        "documentation",
    ),
    (
        Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
        7,
        "unique-local",
    ),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, "link-local"),
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, "site-local"),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, "multicast"),
];

fn in_v4(address: Ipv4Addr, network: Ipv4Addr, prefix: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    u32::from(address) & mask == u32::from(network) & mask
}

fn in_v6(address: Ipv6Addr, network: Ipv6Addr, prefix: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    u128::from(address) & mask == u128::from(network) & mask
}

/// The IPv4 address inside an IPv6 one that only carries it: IPv4-mapped (`::ffff:a.b.c.d`), NAT64
/// (`64:ff9b::/96`) and 6to4 (`2002:AABB:CCDD::/48`).
fn embedded_v4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(mapped) = address.to_ipv4_mapped() {
        return Some(mapped);
    }
    let bits = u128::from(address);
    if in_v6(address, Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96) {
        return Some(Ipv4Addr::from(bits as u32));
    }
    if in_v6(address, Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16) {
        return Some(Ipv4Addr::from((bits >> 80) as u32));
    }
    None
}

/// Refuses every address that is not public unicast: loopback, private, link-local (with the cloud metadata
/// address 169.254.169.254), carrier-grade NAT, unique-local, unspecified, multicast, broadcast,
/// documentation and reserved ranges, and IPv6 forms that embed one of those IPv4 addresses.
pub fn check_address(address: IpAddr) -> Result<(), Refusal> {
    let refuse = |range| Err(Refusal::Address { address, range });
    match address {
        IpAddr::V4(v4) => match REFUSED_V4
            .iter()
            .find(|(net, len, _)| in_v4(v4, *net, *len))
        {
            Some((_, _, range)) => refuse(range),
            None => Ok(()),
        },
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return match check_address(IpAddr::V4(v4)) {
                    Err(Refusal::Address { range, .. }) => refuse(range),
                    other => other,
                };
            }
            match REFUSED_V6
                .iter()
                .find(|(net, len, _)| in_v6(v6, *net, *len))
            {
                Some((_, _, range)) => refuse(range),
                None => Ok(()),
            }
        }
    }
}

/// Checks a webhook URL before any connection: http or https, no credentials, a host; an address literal
/// must pass [`check_address`] unless allowed. Hosts in `allowed_hosts` (compared without case, IPv6
/// without brackets) bypass the address check: a workspace may allow its own internal endpoint.
pub fn check_url(url: &str, allowed_hosts: &[String]) -> Result<CheckedUrl, Refusal> {
    let url = Url::parse(url).map_err(|error| Refusal::InvalidUrl(error.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refusal::Scheme(url.scheme().to_string()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refusal::Credentials);
    }
    let (host, literal) = match url.host() {
        None => return Err(Refusal::NoHost),
        Some(Host::Domain(name)) => (name.to_ascii_lowercase(), None),
        Some(Host::Ipv4(v4)) => (v4.to_string(), Some(IpAddr::V4(v4))),
        Some(Host::Ipv6(v6)) => (v6.to_string(), Some(IpAddr::V6(v6))),
    };
    let allowed = is_allowed(&host, allowed_hosts);
    if let Some(address) = literal
        && !allowed
    {
        check_address(address)?;
    }
    let port = url.port_or_known_default().ok_or(Refusal::NoHost)?;
    Ok(CheckedUrl {
        check_resolved: !allowed && literal.is_none(),
        host,
        port,
        url,
    })
}

fn is_allowed(host: &str, allowed_hosts: &[String]) -> bool {
    allowed_hosts.iter().any(|allowed| {
        let allowed = allowed.trim().trim_start_matches('[').trim_end_matches(']');
        allowed.eq_ignore_ascii_case(host)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(address: &str) -> bool {
        check_address(address.parse().unwrap()).is_err()
    }

    #[test]
    fn non_public_addresses_are_refused() {
        for address in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.10",
            "198.51.100.7",
            "203.0.113.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:c0a8:101::1",
        ] {
            assert!(refused(address), "{address} should be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for address in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "169.255.0.1",
            "93.184.216.34",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(!refused(address), "{address} should pass");
        }
    }

    #[test]
    fn the_refusal_names_the_range() {
        let error = check_address("169.254.169.254".parse().unwrap()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "169.254.169.254 is a link-local address, which webhooks may not reach"
        );
    }

    #[test]
    fn urls_must_be_http_without_credentials() {
        let none: &[String] = &[];
        assert!(matches!(
            check_url("ftp://example.com/", none),
            Err(Refusal::Scheme(_))
        ));
        assert!(matches!(
            check_url("file:///etc/passwd", none),
            Err(Refusal::Scheme(_))
        ));
        assert!(matches!(
            check_url("https://user:pw@example.com/", none),
            Err(Refusal::Credentials)
        ));
        assert!(matches!(
            check_url("not a url", none),
            Err(Refusal::InvalidUrl(_))
        ));
        let checked = check_url("https://Hooks.Example.com/in?x=1", none).unwrap();
        assert_eq!(checked.host, "hooks.example.com");
        assert_eq!(checked.port, 443);
        assert!(checked.check_resolved);
    }

    #[test]
    fn address_literals_are_checked_in_every_spelling() {
        let none: &[String] = &[];
        for url in [
            "http://127.0.0.1:8080/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://[::1]/",
            "http://[::ffff:169.254.169.254]/",
            "https://169.254.169.254/latest/meta-data/",
        ] {
            assert!(
                matches!(check_url(url, none), Err(Refusal::Address { .. })),
                "{url}"
            );
        }
        let public = check_url("http://8.8.8.8/", none).unwrap();
        assert!(!public.check_resolved, "a literal is checked already");
    }

    #[test]
    fn allowed_hosts_bypass_the_address_check() {
        let allowed = vec![
            "127.0.0.1".to_string(),
            "[::1]".to_string(),
            "Internal.Corp".to_string(),
        ];
        let checked = check_url("http://127.0.0.1:9000/hook", &allowed).unwrap();
        assert_eq!((checked.host.as_str(), checked.port), ("127.0.0.1", 9000));
        assert!(check_url("http://[::1]/", &allowed).is_ok());
        let internal = check_url("http://internal.corp/", &allowed).unwrap();
        assert!(!internal.check_resolved);
        assert!(check_url("http://127.0.0.2/", &allowed).is_err());
    }
}
