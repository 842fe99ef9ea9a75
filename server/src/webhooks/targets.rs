//! Which addresses a webhook may reach: public ones only, unless the operator allows private
//! networks (`MODELGATE_WEBHOOK_ALLOW_PRIVATE`). Checked on every address a name resolves to when
//! the delivery is sent, so a name that later points inside cannot reach the server's network
//! (server-side request forgery), and on an address written in the URL when the webhook is made.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether webhooks may reach loopback, private, link-local and other non-public addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Targets {
    #[default]
    PublicOnly,
    AnyAddress,
}

/// Why `ip` is not a public address, if it is not.
pub fn not_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => not_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => not_public_v4(v4),
            None => not_public_v6(v6),
        },
    }
}

fn not_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    Some(match () {
        () if ip.is_loopback() => "a loopback address",
        () if ip.is_private() => "a private address",
        () if ip.is_link_local() => "a link-local address (cloud metadata lives there)",
        () if ip.is_unspecified() || a == 0 => "an unspecified address",
        () if ip.is_broadcast() || ip.is_multicast() || a >= 240 => "a broadcast, multicast or reserved address",
        () if a == 100 && (64..128).contains(&b) => "a carrier-grade NAT address",
        () if a == 192 && b == 0 && ip.octets()[2] == 0 => "an IETF protocol address",
        () if a == 198 && (18..20).contains(&b) => "a benchmarking address",
        () => return None,
    })
}

fn not_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    Some(match () {
        () if ip.is_loopback() => "a loopback address",
        () if ip.is_unspecified() => "an unspecified address",
        () if first & 0xfe00 == 0xfc00 => "a unique local (private) address",
        () if first & 0xffc0 == 0xfe80 || first & 0xffc0 == 0xfec0 => "a link-local address",
        () if ip.is_multicast() => "a multicast address",
        () if first == 0x0064 && ip.segments()[1] == 0xff9b => {
            let [.., c, d] = ip.segments();
            return not_public_v4(Ipv4Addr::from((u32::from(c) << 16) | u32::from(d)));
        }
        () => return None,
    })
}

/// Refuses a URL whose host is an address that is not public (a name is checked when sent).
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    let ip = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        _ => return Ok(()),
    };
    match not_public(ip) {
        Some(why) => Err(format!("{ip} is {why}; webhooks reach public addresses only")),
        None => Ok(()),
    }
}

/// A resolver that answers only a name's public addresses, and an error when it has none.
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = all.iter().copied().filter(|a| not_public(a.ip()).is_none()).collect();
            if public.is_empty() {
                let why = all.first().and_then(|a| not_public(a.ip())).unwrap_or("no address");
                return Err(format!("{host} resolves to {why}; webhooks reach public addresses only").into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_pass() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(not_public(private.parse().unwrap()).is_some(), "{private}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "64:ff9b::808:808"] {
            assert_eq!(not_public(public.parse().unwrap()), None, "{public}");
        }
        assert!(check_url("http://127.0.0.1:8080/hook").unwrap_err().contains("loopback"));
        assert!(check_url("http://[::1]/hook").is_err());
        assert!(check_url("https://hooks.example.com/x").is_ok(), "names are checked when sent");
    }
}
