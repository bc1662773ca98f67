//! What the endpoint is told by the operator (the runtime builds it from
//! the TOML file and flags): who may call, which numbers exist, limits.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

pub use crate::net::IpNet;
use std::time::Duration;

/// Server transactions open at once by default: 16 for each of the default
/// 1,000 calls (an INVITE, a BYE, SIP INFO keys living 32 s each), a
/// kilobyte or two each.
pub const DEFAULT_MAX_TRANSACTIONS: usize = 16_000;

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
    pub allowed: Vec<IpNet>,
    pub unauthorized: Unauthorized,
    /// Called number → dialplan name.
    pub routes: HashMap<String, String>,
    /// Dialplan for numbers not in `routes`; `None`: they get 404.
    pub default_route: Option<String>,
    pub max_concurrent_calls: usize,
    pub max_calls_per_second: u32,
    /// The same two limits for one source address (`sip::limits`): with
    /// several trunks, set them so that none can take the whole node.
    pub max_calls_per_source: usize,
    pub max_calls_per_second_per_source: u32,
    /// Server transactions open at once, in all and per source; a request
    /// past either is dropped unanswered (a non-INVITE transaction lives
    /// 32 s on UDP, RFC 3261 Timer J: a flood must not hold them all).
    pub max_transactions: usize,
    pub max_transactions_per_source: usize,
    /// 403s per second to sources not allowed (`unauthorized = "forbid"`);
    /// past it they are dropped, so a spoofed flood gets no echo.
    pub max_forbidden_per_second: u32,
    /// Our Min-SE (RFC 4028 §5), at least 90 s.
    pub min_session_expires: u32,
    /// Session-Expires we ask for when the caller names none.
    pub session_expires: u32,
    /// How long the call layer may take to answer before we give up (480).
    pub answer_timeout: Duration,
    /// Seeds the CSPRNG of tags, branches and SDP session ids: 256 bits of
    /// OS randomness in `serve`, so that no tag an outsider sees (a 403's,
    /// say) tells the next one (a blind ACK would need it).
    pub seed: [u8; 32],
}

impl EndpointConfig {
    /// Loopback may call; both numbers of the manual route to `default`.
    /// `seed`: see [`EndpointConfig::seed`] (tests pass a small number
    /// for repeatable runs; `serve` overrides it with OS randomness).
    pub fn demo(advertise: SocketAddr, seed: u64) -> EndpointConfig {
        let mut seed_bytes = [0u8; 32];
        seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
        let loopback = ["127.0.0.0/8", "::1/128"]
            .iter()
            .filter_map(|s| IpNet::parse(s))
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
            max_calls_per_source: 1000,
            max_calls_per_second_per_source: 200,
            max_transactions: DEFAULT_MAX_TRANSACTIONS,
            max_transactions_per_source: DEFAULT_MAX_TRANSACTIONS,
            max_forbidden_per_second: 20,
            min_session_expires: 90,
            session_expires: 1800,
            answer_timeout: Duration::from_secs(30),
            seed: seed_bytes,
        }
    }

    pub fn is_allowed(&self, ip: IpAddr) -> bool {
        self.allowed.iter().any(|n| n.contains(ip))
    }

    /// The trunk a request from `ip` comes through: the first allow-list
    /// entry holding it (a carrier's network), else the address itself.
    pub fn trunk_of(&self, ip: IpAddr) -> IpNet {
        self.allowed
            .iter()
            .find(|n| n.contains(ip))
            .copied()
            .unwrap_or_else(|| IpNet::host(ip))
    }

    pub fn route(&self, number: &str) -> Option<&str> {
        self.routes
            .get(number)
            .map(String::as_str)
            .or(self.default_route.as_deref())
    }
}

/// The `[sip]` table of the TOML config file, as written by an operator;
/// every field has the demo default. Flags override it in the runtime.
///
/// ```toml
/// [sip]
/// listen = "0.0.0.0:5060"            # UDP and TCP
/// advertise = "203.0.113.10:5060"    # Contact and SDP address
/// rtp_ports = "20000-29999"
/// allowed = ["192.0.2.0/24", "127.0.0.1"]
/// unauthorized = "forbid"            # or "drop"
/// media_sources = ["198.51.100.0/24"] # media relays not in `allowed`
/// max_concurrent_calls = 1000
/// max_calls_per_second = 200
/// max_calls_per_source = 1000        # default: max_concurrent_calls
/// max_calls_per_second_per_source = 200  # default: max_calls_per_second
/// max_transactions = 16000
/// max_transactions_per_source = 16000    # default: max_transactions
/// max_forbidden_per_second = 20
/// tcp_max_connections = 1024
/// tcp_max_connections_per_source = 64
/// tcp_idle_timeout_secs = 120
/// min_session_expires = 90
/// session_expires = 1800
/// [sip.routes]
/// "800082653" = "default"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipSettings {
    pub listen: SocketAddr,
    pub advertise: Option<SocketAddr>,
    pub rtp_ports: String,
    pub allowed: Vec<String>,
    pub unauthorized: String,
    /// Networks a call's media may come from besides `allowed`, the SDP's
    /// address and the signalling's (a carrier's media relays).
    pub media_sources: Vec<String>,
    pub routes: HashMap<String, String>,
    pub default_route: Option<String>,
    pub max_concurrent_calls: usize,
    pub max_calls_per_second: u32,
    /// `None`: as `max_concurrent_calls`.
    pub max_calls_per_source: Option<usize>,
    /// `None`: as `max_calls_per_second`.
    pub max_calls_per_second_per_source: Option<u32>,
    pub max_transactions: usize,
    /// `None`: as `max_transactions`.
    pub max_transactions_per_source: Option<usize>,
    pub max_forbidden_per_second: u32,
    /// SIP over TCP (`runtime::sip`): connections at once, in all and per
    /// source, and how long one may stay silent without a call on it.
    pub tcp_max_connections: usize,
    pub tcp_max_connections_per_source: usize,
    pub tcp_idle_timeout_secs: u64,
    pub min_session_expires: u32,
    pub session_expires: u32,
    pub answer_timeout_secs: u64,
}

impl Default for SipSettings {
    fn default() -> SipSettings {
        let demo = EndpointConfig::demo(SocketAddr::from(([127, 0, 0, 1], 5060)), 0);
        SipSettings {
            listen: SocketAddr::from(([0, 0, 0, 0], 5060)),
            advertise: None,
            rtp_ports: "20000-29999".to_owned(),
            allowed: vec!["127.0.0.0/8".to_owned(), "::1/128".to_owned()],
            unauthorized: "forbid".to_owned(),
            media_sources: Vec::new(),
            routes: demo.routes,
            default_route: None,
            max_concurrent_calls: demo.max_concurrent_calls,
            max_calls_per_second: demo.max_calls_per_second,
            max_calls_per_source: None,
            max_calls_per_second_per_source: None,
            max_transactions: demo.max_transactions,
            max_transactions_per_source: None,
            max_forbidden_per_second: demo.max_forbidden_per_second,
            tcp_max_connections: 1024,
            tcp_max_connections_per_source: 64,
            tcp_idle_timeout_secs: 120,
            min_session_expires: demo.min_session_expires,
            session_expires: demo.session_expires,
            answer_timeout_secs: demo.answer_timeout.as_secs(),
        }
    }
}

/// A config value an operator got wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("sip.allowed: {0:?} is not ADDR[/PREFIX]")]
    Allowed(String),
    #[error("sip.media_sources: {0:?} is not ADDR[/PREFIX]")]
    MediaSource(String),
    #[error("sip.unauthorized must be \"forbid\" or \"drop\", not {0:?}")]
    Unauthorized(String),
    #[error("sip.rtp_ports must be LOW-HIGH with even LOW < HIGH, not {0:?}")]
    RtpPorts(String),
    #[error(
        "sip.min_session_expires must be at least 90 (RFC 4028) and at most session_expires (at most 86400)"
    )]
    SessionExpires,
    #[error("sip.answer_timeout_secs must be from 1 to 600")]
    AnswerTimeout,
    #[error(
        "sip: the call, transaction and TCP connection limits must be above 0, and tcp_idle_timeout_secs from 1 to 86400"
    )]
    Limits,
}

impl SipSettings {
    /// The RTP port range, `LOW-HIGH` (RTP on even ports, RFC 3550 §11).
    pub fn rtp_port_range(&self) -> Result<(u16, u16), ConfigError> {
        let bad = || ConfigError::RtpPorts(self.rtp_ports.clone());
        let (low, high) = self.rtp_ports.split_once('-').ok_or_else(bad)?;
        let low: u16 = low.trim().parse().map_err(|_| bad())?;
        let high: u16 = high.trim().parse().map_err(|_| bad())?;
        if low >= high || !low.is_multiple_of(2) {
            return Err(bad());
        }
        Ok((low, high))
    }

    /// The networks a call's media may come from (besides the SDP's and the
    /// signalling's address): `allowed` and `media_sources`.
    pub fn media_networks(&self) -> Result<Vec<IpNet>, ConfigError> {
        let allowed = self
            .allowed
            .iter()
            .map(|s| IpNet::parse(s).ok_or_else(|| ConfigError::Allowed(s.clone())));
        let media = self
            .media_sources
            .iter()
            .map(|s| IpNet::parse(s).ok_or_else(|| ConfigError::MediaSource(s.clone())));
        allowed.chain(media).collect()
    }

    /// The endpoint's config; `advertise` defaults to `listen` when that
    /// is a concrete address (the runtime must set it when listening on
    /// 0.0.0.0). `seed`: OS randomness ([`EndpointConfig::seed`]).
    pub fn endpoint_config(&self, seed: [u8; 32]) -> Result<EndpointConfig, ConfigError> {
        let allowed = self
            .allowed
            .iter()
            .map(|s| IpNet::parse(s).ok_or_else(|| ConfigError::Allowed(s.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        let unauthorized = match self.unauthorized.as_str() {
            "forbid" => Unauthorized::Forbid,
            "drop" => Unauthorized::Drop,
            other => return Err(ConfigError::Unauthorized(other.to_owned())),
        };
        if self.min_session_expires < 90
            || self.min_session_expires > self.session_expires
            || self.session_expires > 86_400
        {
            return Err(ConfigError::SessionExpires);
        }
        if !(1..=600).contains(&self.answer_timeout_secs) {
            return Err(ConfigError::AnswerTimeout);
        }
        self.rtp_port_range()?;
        let per_source_calls = self
            .max_calls_per_source
            .unwrap_or(self.max_concurrent_calls);
        let per_source_rate = self
            .max_calls_per_second_per_source
            .unwrap_or(self.max_calls_per_second);
        let per_source_transactions = self
            .max_transactions_per_source
            .unwrap_or(self.max_transactions);
        if [
            per_source_calls,
            self.max_transactions,
            per_source_transactions,
            self.tcp_max_connections,
            self.tcp_max_connections_per_source,
        ]
        .contains(&0)
            || per_source_rate == 0
            || !(1..=86_400).contains(&self.tcp_idle_timeout_secs)
        {
            return Err(ConfigError::Limits);
        }
        Ok(EndpointConfig {
            advertise: self.advertise.unwrap_or(self.listen),
            allowed,
            unauthorized,
            routes: self.routes.clone(),
            default_route: self.default_route.clone(),
            max_concurrent_calls: self.max_concurrent_calls,
            max_calls_per_second: self.max_calls_per_second,
            max_calls_per_source: per_source_calls,
            max_calls_per_second_per_source: per_source_rate,
            max_transactions: self.max_transactions,
            max_transactions_per_source: per_source_transactions,
            max_forbidden_per_second: self.max_forbidden_per_second,
            min_session_expires: self.min_session_expires,
            session_expires: self.session_expires,
            answer_timeout: Duration::from_secs(self.answer_timeout_secs),
            seed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_toml() {
        #[derive(serde::Deserialize)]
        struct File {
            sip: SipSettings,
        }
        let text = r#"
            [sip]
            advertise = "203.0.113.10:5060"
            allowed = ["192.0.2.0/24"]
            unauthorized = "drop"
            [sip.routes]
            "0240709125" = "scuole"
        "#;
        let file: File = toml::from_str(text).unwrap();
        let c = file.sip.endpoint_config([1; 32]).unwrap();
        assert_eq!(c.advertise, "203.0.113.10:5060".parse().unwrap());
        assert_eq!(
            (c.unauthorized, c.route("0240709125"), c.route("800082653")),
            (Unauthorized::Drop, Some("scuole"), None)
        );
        assert_eq!(file.sip.rtp_port_range(), Ok((20000, 29999)));
        let defaults = SipSettings::default().endpoint_config([1; 32]).unwrap();
        assert_eq!(defaults.route("800082653"), Some("default"));
        assert!(defaults.is_allowed("127.0.0.1".parse().unwrap()));
        let bad: Result<File, _> = toml::from_str("[sip]\nallowed = [\"10.0.0.0/99\"]");
        assert_eq!(
            bad.unwrap().sip.endpoint_config([1; 32]),
            Err(ConfigError::Allowed("10.0.0.0/99".into()))
        );
        assert!(toml::from_str::<File>("[sip]\nlisten_typo = 1").is_err());
        let huge: File =
            toml::from_str("[sip]\nanswer_timeout_secs = 9223372036854775807").unwrap();
        assert_eq!(
            huge.sip.endpoint_config([1; 32]),
            Err(ConfigError::AnswerTimeout)
        );
    }

    #[test]
    fn the_demo_allows_loopback_only() {
        let demo = EndpointConfig::demo("127.0.0.1:5060".parse().unwrap(), 1);
        assert!(
            demo.is_allowed("127.0.0.1".parse().unwrap())
                && !demo.is_allowed("10.0.0.1".parse().unwrap())
        );
        assert_eq!(demo.route("0240709125"), Some("default"));
        assert_eq!(demo.route("123"), None);
    }
}
