//! What the endpoint is told by the operator (the runtime builds it from
//! the TOML file and flags): who may call, which numbers exist, limits.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// An allowed source network, e.g. `192.0.2.0/24` or `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowedNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl AllowedNet {
    /// Parses `ADDR[/PREFIX]`; `None` when malformed or the prefix is too long.
    pub fn parse(s: &str) -> Option<AllowedNet> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(AllowedNet { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            IpAddr::V4(_) => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            (IpAddr::V4(_), IpAddr::V6(_)) | (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }
}

/// What to do with a request from a source not in the allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unauthorized {
    /// Answer 403 Forbidden.
    Forbid,
    /// Say nothing (scanners learn nothing).
    Drop,
}

/// The endpoint's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointConfig {
    /// Our address as peers must reach it (Contact).
    pub advertise: SocketAddr,
    pub allowed: Vec<AllowedNet>,
    pub unauthorized: Unauthorized,
    /// Called number → dialplan name.
    pub routes: HashMap<String, String>,
    /// Dialplan for numbers not in `routes`; `None`: they get 404.
    pub default_route: Option<String>,
    pub max_concurrent_calls: usize,
    pub max_calls_per_second: u32,
    /// Our Min-SE (RFC 4028 §5), at least 90 s.
    pub min_session_expires: u32,
    /// Session-Expires we ask for when the caller names none.
    pub session_expires: u32,
    /// How long the call layer may take to answer before we give up (480).
    pub answer_timeout: Duration,
    /// Seeds tags, branches and SDP session ids (the runtime passes OS randomness).
    pub seed: u64,
}

impl EndpointConfig {
    /// Loopback may call; both numbers of the manual route to `default`.
    pub fn demo(advertise: SocketAddr, seed: u64) -> EndpointConfig {
        let loopback = ["127.0.0.0/8", "::1/128"]
            .iter()
            .filter_map(|s| AllowedNet::parse(s))
            .collect();
        let routes = ["800082653", "0240709125"]
            .iter()
            .map(|n| ((*n).to_owned(), "default".to_owned()))
            .collect();
        EndpointConfig {
            advertise,
            allowed: loopback,
            unauthorized: Unauthorized::Forbid,
            routes,
            default_route: None,
            max_concurrent_calls: 1000,
            max_calls_per_second: 200,
            min_session_expires: 90,
            session_expires: 1800,
            answer_timeout: Duration::from_secs(30),
            seed,
        }
    }

    pub fn is_allowed(&self, ip: IpAddr) -> bool {
        self.allowed.iter().any(|n| n.contains(ip))
    }

    pub fn route(&self, number: &str) -> Option<&str> {
        self.routes
            .get(number)
            .map(String::as_str)
            .or(self.default_route.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let net = AllowedNet::parse("192.0.2.0/24").unwrap();
        assert!(net.contains("192.0.2.77".parse().unwrap()));
        assert!(net.contains("::ffff:192.0.2.1".parse().unwrap()));
        assert!(!net.contains("192.0.3.1".parse().unwrap()));
        assert!(
            AllowedNet::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(
            AllowedNet::parse("::1")
                .unwrap()
                .contains("::1".parse().unwrap())
        );
        assert_eq!(AllowedNet::parse("10.0.0.0/33"), None);
        let demo = EndpointConfig::demo("127.0.0.1:5060".parse().unwrap(), 1);
        assert!(
            demo.is_allowed("127.0.0.1".parse().unwrap())
                && !demo.is_allowed("10.0.0.1".parse().unwrap())
        );
        assert_eq!(demo.route("0240709125"), Some("default"));
        assert_eq!(demo.route("123"), None);
    }
}
