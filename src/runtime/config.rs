//! The `mensa serve` config file (TOML) and the flags that override it.
//!
//! ```toml
//! [sip]        # sip::config::SipSettings: listen, advertise, rtp_ports,
//!              # allowed, unauthorized, routes, default_route, limits
//! [media]
//! inactivity_timeout_secs = 30   # no RTP from the caller: hang up
//! inband = "auto"                # in-band DTMF: auto | always | never
//! rtcp_interval_secs = 5
//! tickers = 0                    # media ticker threads; 0 = one per core
//! prompts = "prompts"            # the prompt folder (prompts/<lang>/)
//! overload_lateness_ms = 10      # shed new calls (503) when frames leave
//!                                # this late (p99 of two half-seconds in a
//!                                # row); 0 = never
//! overload_lag_ms = 100          # ... or when SIP and IVR tasks run this
//!                                # late (the same way); 0 = never
//! send = "auto"                  # RTP send path: auto (io_uring where the
//!                                # kernel allows) | uring | sendto
//! realtime_priority = 10         # media tickers under SCHED_FIFO; 0 = off
//! [shutdown]
//! grace_secs = 60                # calls may finish this long after SIGTERM
//! [ivr]
//! dialplans = "dialplans"        # <route's dialplan name>.toml in this folder
//! caller_free_wrong_codes = 5   # a caller number's wrong codes before its back-off
//! caller_backoff_first_secs = 60 # then a wait, doubled with each one more,
//! caller_backoff_max_days = 14   # up to this
//! caller_forgive_days = 14       # one wrong code forgiven per this many days
//! # line_wrong_codes_per_year =  # the line's budget; unset: derived from the codes in use
//! # line_wrong_codes_burst =     # of them at once; unset: a day's share
//! trunk_share_percent = 50       # each trunk's share of the line's budget
//! [privacy]                      # how long personal data is kept
//! call_records_days = 90         # phone call records, then deleted
//! personal_data_days = 730       # who made a change, then redacted
//! [http]                         # the JSON API's server (runtime::http)
//! header_read_timeout_secs = 10  # slowloris; also the keep-alive idle time
//! request_timeout_secs = 30      # then 503
//! max_connections = 1024         # more wait in the listen backlog
//! max_body_bytes = 65536         # then 413
//! trusted_proxies = []           # whose X-Forwarded-For is believed
//! login_hashing_permits = 0      # argon2 at once; 0 = half the cores
//! login_hashing_queue_per_permit = 4   # untrusted logins waiting, then 503
//! login_hashing_nice = 10        # the hashing threads yield to the phone line
//! login_per_address_burst = 20   # login attempts per client address...
//! login_per_address_per_minute = 10    # ... then this rate; 0 = no limit
//! login_attempts_before_lock = 5 # the 5th attempt locks the count...
//! login_first_lock_secs = 60     # ... this long, doubling after each
//! login_max_lock_secs = 900      # ... up to this
//! ```
//!
//! No file: the defaults, i.e. only loopback may call and both numbers of
//! the manual route to the `default` dialplan. Documented with a full
//! example in `docs/deployment.md` and `docs/mensa.example.toml`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::udp_batch::SendMode;
use crate::api::LoginLimits;
use crate::bookings::guessing::{Backoff, DAY_MS, MAX_PER_YEAR};
use crate::media::dtmf::merge::InbandMode;
use crate::media::session::SessionConfig;
use crate::net::IpNet;
use crate::password::HashingLimits;
use crate::sip::config::{ConfigError as SipConfigError, EndpointConfig, SipSettings};
use crate::store::LockPolicy;

use super::calls::CallsConfig;

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeSettings {
    pub sip: SipSettings,
    pub media: MediaSettings,
    pub shutdown: ShutdownSettings,
    pub ivr: IvrSettings,
    pub http: HttpSettings,
    pub privacy: PrivacySettings,
}

/// `[privacy]`: how long personal data is kept (`store::Retention`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacySettings {
    /// Phone call records (caller number, codes redacted, operations).
    pub call_records_days: u32,
    /// Who made each change (caller numbers, fiscal codes) in the audit,
    /// the day marks and the suspensions; then only its redacted form.
    pub personal_data_days: u32,
}

impl Default for PrivacySettings {
    fn default() -> PrivacySettings {
        let d = crate::store::Retention::default();
        PrivacySettings {
            call_records_days: u32::try_from(d.call_records.num_days()).unwrap_or(90),
            personal_data_days: u32::try_from(d.personal_data.num_days()).unwrap_or(730),
        }
    }
}

impl PrivacySettings {
    /// What the scheduler applies once a day.
    pub fn retention(&self) -> Result<crate::store::Retention, ConfigError> {
        let days = |n: u32| {
            (1..=36_500)
                .contains(&n)
                .then(|| chrono::Duration::days(i64::from(n)))
                .ok_or(ConfigError::Privacy)
        };
        Ok(crate::store::Retention {
            call_records: days(self.call_records_days)?,
            personal_data: days(self.personal_data_days)?,
        })
    }
}

/// `[http]`: the limits of the JSON API's server, and of its logins
/// (docs/security.md, "Login: guesses are counted before the work").
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    pub header_read_timeout_secs: u64,
    pub request_timeout_secs: u64,
    pub max_connections: usize,
    pub max_body_bytes: usize,
    /// `ADDR[/PREFIX]` of the reverse proxies whose `X-Forwarded-For` is
    /// believed.
    pub trusted_proxies: Vec<String>,
    /// argon2 verifications at once; 0: half the cores, at least one.
    pub login_hashing_permits: usize,
    /// Untrusted logins that may wait for a hashing worker, per worker.
    pub login_hashing_queue_per_permit: usize,
    /// How many steps nicer than the process the hashing workers run, 0 to 19.
    pub login_hashing_nice: u8,
    pub login_per_address_burst: u32,
    /// 0: no per-address limit.
    pub login_per_address_per_minute: u32,
    pub login_attempts_before_lock: u32,
    pub login_first_lock_secs: u64,
    pub login_max_lock_secs: u64,
}

impl Default for HttpSettings {
    fn default() -> HttpSettings {
        let d = super::http::HttpLimits::default();
        let login = LoginLimits::default();
        HttpSettings {
            header_read_timeout_secs: d.header_read_timeout.as_secs(),
            request_timeout_secs: d.request_timeout.as_secs(),
            max_connections: d.max_connections,
            max_body_bytes: d.max_body_bytes,
            trusted_proxies: Vec::new(),
            login_hashing_permits: 0,
            login_hashing_queue_per_permit: 4,
            login_hashing_nice: login.hashing.nice,
            login_per_address_burst: login.per_address_burst,
            login_per_address_per_minute: login.per_address_per_minute,
            login_attempts_before_lock: login.lock.attempts_before_lock,
            login_first_lock_secs: login.lock.first_lock.as_secs(),
            login_max_lock_secs: login.lock.max_lock.as_secs(),
        }
    }
}

impl HttpSettings {
    /// What `runtime::http::serve_with` takes.
    pub fn limits(&self) -> Result<super::http::HttpLimits, ConfigError> {
        if !(1..=3600).contains(&self.header_read_timeout_secs)
            || !(1..=3600).contains(&self.request_timeout_secs)
            || self.max_connections == 0
            || self.max_body_bytes == 0
        {
            return Err(ConfigError::Http);
        }
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .map(|p| IpNet::parse(p).ok_or_else(|| ConfigError::TrustedProxy(p.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(super::http::HttpLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            max_connections: self.max_connections,
            max_body_bytes: self.max_body_bytes,
            trusted_proxies,
            login: self.login()?,
        })
    }

    fn login(&self) -> Result<LoginLimits, ConfigError> {
        // A lock never lasts longer than a day: a parent always gets back in.
        if self.login_hashing_permits > 256
            || !(1..=1000).contains(&self.login_hashing_queue_per_permit)
            || self.login_hashing_nice > 19
            || !(1..=1_000_000).contains(&self.login_per_address_burst)
            || self.login_per_address_per_minute > 1_000_000
            || !(1..=100).contains(&self.login_attempts_before_lock)
            || !(1..=86_400).contains(&self.login_first_lock_secs)
            || !(self.login_first_lock_secs..=86_400).contains(&self.login_max_lock_secs)
        {
            return Err(ConfigError::HttpLogin);
        }
        let permits = match self.login_hashing_permits {
            0 => HashingLimits::default().permits,
            n => n,
        };
        Ok(LoginLimits {
            hashing: HashingLimits {
                permits,
                queue: permits * self.login_hashing_queue_per_permit,
                nice: self.login_hashing_nice,
            },
            per_address_burst: self.login_per_address_burst,
            per_address_per_minute: self.login_per_address_per_minute,
            lock: LockPolicy {
                attempts_before_lock: self.login_attempts_before_lock,
                first_lock: Duration::from_secs(self.login_first_lock_secs),
                max_lock: Duration::from_secs(self.login_max_lock_secs),
            },
        })
    }
}

/// `[ivr]`: where the dialplans are, and the limits on cancel codes typed
/// (docs/security.md, "Cancel codes cannot be guessed in practice").
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IvrSettings {
    /// Folder of the dialplans; a route naming `default` runs
    /// `<dialplans>/default.toml`.
    pub dialplans: PathBuf,
    /// Wrong codes a caller number may type before its back-off starts.
    pub caller_free_wrong_codes: u32,
    /// The back-off's first wait, doubled with each wrong code after.
    pub caller_backoff_first_secs: u64,
    /// The longest wait.
    pub caller_backoff_max_days: u64,
    /// One wrong code of a number is forgiven every this many days.
    pub caller_forgive_days: u64,
    /// The line's budget of wrong codes a year, across every caller and
    /// trunk; unset: derived from the codes in use (half of the wrong
    /// codes that find some child on average).
    pub line_wrong_codes_per_year: Option<u64>,
    /// How many of them may come at once; unset: a day's share.
    pub line_wrong_codes_burst: Option<u32>,
    /// Each trunk's share of the line's budget, percent.
    pub trunk_share_percent: u8,
    /// Gone: the in-memory hourly count per node. Read only to name the
    /// keys that replace it.
    #[serde(rename = "max_wrong_codes_per_hour")]
    pub removed_max_wrong_codes_per_hour: Option<u32>,
}

impl Default for IvrSettings {
    fn default() -> IvrSettings {
        let guards = super::ivr_actions::GuardConfig::default();
        IvrSettings {
            dialplans: PathBuf::from("dialplans"),
            caller_free_wrong_codes: guards.caller.free,
            caller_backoff_first_secs: u64::try_from(guards.caller.first_ms / 1000).unwrap_or(60),
            caller_backoff_max_days: u64::try_from(guards.caller.max_ms / DAY_MS).unwrap_or(14),
            caller_forgive_days: u64::try_from(guards.caller.forgive_ms / DAY_MS).unwrap_or(14),
            line_wrong_codes_per_year: None,
            line_wrong_codes_burst: None,
            trunk_share_percent: guards.trunk_percent,
            removed_max_wrong_codes_per_hour: None,
        }
    }
}

impl IvrSettings {
    /// The limits on codes typed, checked.
    pub fn guards(&self) -> Result<super::ivr_actions::GuardConfig, ConfigError> {
        if self.removed_max_wrong_codes_per_hour.is_some() {
            return Err(ConfigError::RemovedThrottle);
        }
        let days = |n: u64| i64::try_from(n).unwrap_or(i64::MAX).saturating_mul(DAY_MS);
        let caller = Backoff {
            free: self.caller_free_wrong_codes,
            first_ms: i64::try_from(self.caller_backoff_first_secs)
                .unwrap_or(i64::MAX)
                .saturating_mul(1000),
            max_ms: days(self.caller_backoff_max_days),
            forgive_ms: days(self.caller_forgive_days),
        };
        // Bounded so that the store's sums of instants stay far from
        // i64's ends (guessing's SQL does not saturate).
        if !(1..=100).contains(&caller.free)
            || !(1..=86_400).contains(&self.caller_backoff_first_secs)
            || !(1..=365).contains(&self.caller_backoff_max_days)
            || !(1..=365).contains(&self.caller_forgive_days)
            || caller.max_ms < caller.first_ms
        {
            return Err(ConfigError::CallerBackoff);
        }
        if self
            .line_wrong_codes_per_year
            .is_some_and(|n| !(1..=MAX_PER_YEAR).contains(&n))
            || self
                .line_wrong_codes_burst
                .is_some_and(|n| !(1..=1_000_000).contains(&n))
        {
            return Err(ConfigError::LineBudget);
        }
        if !(1..=100).contains(&self.trunk_share_percent) {
            return Err(ConfigError::TrunkShare);
        }
        Ok(super::ivr_actions::GuardConfig {
            caller,
            line_per_year: self.line_wrong_codes_per_year,
            line_burst: self.line_wrong_codes_burst,
            trunk_percent: self.trunk_share_percent,
        })
    }
}

/// `[media]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaSettings {
    pub inactivity_timeout_secs: u64,
    pub inband: InbandMode,
    pub rtcp_interval_secs: u64,
    pub tickers: usize,
    pub prompts: PathBuf,
    pub overload_lateness_ms: u64,
    pub overload_lag_ms: u64,
    pub send: MediaSend,
    pub realtime_priority: u8,
}

/// `[media] send`: how the tickers hand datagrams to the kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaSend {
    /// io_uring where the kernel allows it, else `sendto`.
    #[default]
    Auto,
    /// io_uring (still falls back, logged, where it cannot be set up).
    Uring,
    /// One `sendto` per packet.
    Sendto,
}

impl MediaSend {
    fn mode(self) -> Option<SendMode> {
        match self {
            MediaSend::Auto => None,
            MediaSend::Uring => Some(SendMode::Uring),
            MediaSend::Sendto => Some(SendMode::SendTo),
        }
    }
}

impl Default for MediaSettings {
    fn default() -> MediaSettings {
        MediaSettings {
            inactivity_timeout_secs: 30,
            inband: InbandMode::Auto,
            rtcp_interval_secs: 5,
            tickers: 0,
            prompts: PathBuf::from("prompts"),
            overload_lateness_ms: 10,
            overload_lag_ms: 100,
            send: MediaSend::Auto,
            realtime_priority: 10,
        }
    }
}

/// `[shutdown]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownSettings {
    pub grace_secs: u64,
}

impl Default for ShutdownSettings {
    fn default() -> ShutdownSettings {
        ShutdownSettings { grace_secs: 60 }
    }
}

/// Flags of `mensa serve` that override the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub sip_listen: Option<SocketAddr>,
    pub sip_advertise: Option<SocketAddr>,
    pub rtp_ports: Option<String>,
}

/// A config the operator got wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The source is printed by the error chain (`{:#}`), not repeated here.
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid config file")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error(transparent)]
    Sip(#[from] SipConfigError),
    #[error("sip.advertise {0} is not an address peers can reach")]
    Advertise(SocketAddr),
    #[error("media.inactivity_timeout_secs must be from 1 to 3600")]
    Inactivity,
    #[error("media.rtcp_interval_secs must be from 1 to 60")]
    RtcpInterval,
    #[error("media.tickers must be at most 64")]
    Tickers,
    #[error("media.overload_lateness_ms must be at most 1000 (0 turns shedding off)")]
    OverloadLateness,
    #[error("media.overload_lag_ms must be at most 100 (0 turns this shedding off)")]
    OverloadLag,
    #[error("media.realtime_priority must be from 0 (off) to 99")]
    RealtimePriority,
    #[error("shutdown.grace_secs must be at most 86400")]
    Grace,
    #[error(
        "http: the timeouts must be from 1 to 3600 s, max_connections and max_body_bytes above 0"
    )]
    Http,
    #[error("privacy: call_records_days and personal_data_days must be from 1 to 36500")]
    Privacy,
    #[error("http.trusted_proxies: {0:?} is not ADDR[/PREFIX]")]
    TrustedProxy(String),
    #[error(
        "http: login_hashing_permits at most 256, login_hashing_queue_per_permit from 1 to \
         1000, login_hashing_nice at most 19, login_per_address_burst from 1 and login_per_address_per_minute up to \
         1000000, login_attempts_before_lock from 1 to 100, login_first_lock_secs from 1 \
         and login_max_lock_secs from it, both up to 86400"
    )]
    HttpLogin,
    #[error(
        "ivr.max_wrong_codes_per_hour is gone: wrong codes are now counted in the database, per \
         caller number (caller_free_wrong_codes, caller_backoff_first_secs, \
         caller_backoff_max_days, caller_forgive_days), per trunk (trunk_share_percent) and for \
         the whole line (line_wrong_codes_per_year, line_wrong_codes_burst); see \
         docs/deployment.md"
    )]
    RemovedThrottle,
    #[error(
        "ivr: caller_free_wrong_codes must be 1 to 100, caller_backoff_first_secs 1 to 86400, \
         caller_backoff_max_days and caller_forgive_days 1 to 365, the longest wait at least the \
         first"
    )]
    CallerBackoff,
    #[error(
        "ivr: line_wrong_codes_per_year must be 1 to 1000000, line_wrong_codes_burst 1 to 1000000"
    )]
    LineBudget,
    #[error("ivr.trunk_share_percent must be 1 to 100")]
    TrunkShare,
}

/// Everything `serve` starts the call runtime with.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub endpoint: EndpointConfig,
    pub calls: CallsConfig,
    pub prompts: PathBuf,
}

impl ServeSettings {
    /// Reads the file (`None`: the defaults).
    pub fn load(path: Option<&Path>) -> Result<ServeSettings, ConfigError> {
        let Some(path) = path else {
            return Ok(ServeSettings::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
    }

    /// Flags win over the file.
    pub fn apply(&mut self, overrides: &Overrides) {
        if let Some(listen) = overrides.sip_listen {
            self.sip.listen = listen;
        }
        if let Some(advertise) = overrides.sip_advertise {
            self.sip.advertise = Some(advertise);
        }
        if let Some(ports) = &overrides.rtp_ports {
            self.sip.rtp_ports = ports.clone();
        }
    }

    /// Validates and resolves the advertised address. `seed`: OS randomness.
    pub fn resolve(&self, seed: [u8; 32]) -> Result<Resolved, ConfigError> {
        let advertise = advertised(self.sip.listen, self.sip.advertise)?;
        let mut endpoint = self.sip.endpoint_config(seed)?;
        endpoint.advertise = advertise;
        let rtp_ports = self.sip.rtp_port_range()?;
        let m = &self.media;
        if !(1..=3600).contains(&m.inactivity_timeout_secs) {
            return Err(ConfigError::Inactivity);
        }
        if !(1..=60).contains(&m.rtcp_interval_secs) {
            return Err(ConfigError::RtcpInterval);
        }
        if m.tickers > 64 {
            return Err(ConfigError::Tickers);
        }
        if m.overload_lateness_ms > 1000 {
            return Err(ConfigError::OverloadLateness);
        }
        // The lag histogram (`media::pacing::Lateness`) ends at 100 ms.
        if m.overload_lag_ms > 100 {
            return Err(ConfigError::OverloadLag);
        }
        if m.realtime_priority > 99 {
            return Err(ConfigError::RealtimePriority);
        }
        if self.shutdown.grace_secs > 86_400 {
            return Err(ConfigError::Grace);
        }
        self.http.limits()?;
        self.privacy.retention()?;
        self.ivr.guards()?;
        let session = SessionConfig {
            inactivity_timeout: Duration::from_secs(m.inactivity_timeout_secs),
            rtcp_interval: Duration::from_secs(m.rtcp_interval_secs),
            inband: m.inband,
            cname: format!("mensa@{}", advertise.ip()),
            media_sources: self.sip.media_networks()?.into(),
        };
        Ok(Resolved {
            endpoint,
            calls: CallsConfig {
                sip_listen: self.sip.listen,
                media_ip: advertise.ip(),
                bind_ip: self.sip.listen.ip(),
                rtp_ports,
                session,
                tickers: m.tickers,
                media_send: m.send.mode(),
                media_priority: (m.realtime_priority > 0).then_some(m.realtime_priority),
                overload_lateness: (m.overload_lateness_ms > 0)
                    .then(|| Duration::from_millis(m.overload_lateness_ms)),
                overload_lag: (m.overload_lag_ms > 0)
                    .then(|| Duration::from_millis(m.overload_lag_ms)),
                shutdown_grace: Duration::from_secs(self.shutdown.grace_secs),
                sip_tcp: super::sip_tcp::TcpLimits {
                    max_connections: self.sip.tcp_max_connections,
                    max_per_source: self.sip.tcp_max_connections_per_source,
                    idle_timeout: Duration::from_secs(self.sip.tcp_idle_timeout_secs),
                },
            },
            prompts: m.prompts.clone(),
        })
    }
}

/// The address in Contact and SDP: `advertise` if given (it must be a
/// concrete address); else `listen` if concrete; else (listening on
/// 0.0.0.0 or ::) the local address of the interface with the default
/// route, found by connecting a UDP socket (no packet is sent); else
/// 127.0.0.1. Never 0.0.0.0: that means "hold" in SDP (RFC 3264 §8.4).
pub fn advertised(
    listen: SocketAddr,
    advertise: Option<SocketAddr>,
) -> Result<SocketAddr, ConfigError> {
    if let Some(a) = advertise {
        if a.ip().is_unspecified() || a.ip().is_multicast() {
            return Err(ConfigError::Advertise(a));
        }
        return Ok(a);
    }
    if !listen.ip().is_unspecified() {
        return Ok(listen);
    }
    Ok(SocketAddr::new(
        default_route_ip(listen.ip()),
        listen.port(),
    ))
}

fn default_route_ip(family: IpAddr) -> IpAddr {
    // TEST-NET-1 / documentation prefix: never really reached, but the
    // kernel picks the source address it would use for the default route.
    let (bind, probe): (SocketAddr, SocketAddr) = match family {
        IpAddr::V4(_) => (
            (Ipv4Addr::UNSPECIFIED, 0).into(),
            (Ipv4Addr::new(192, 0, 2, 1), 9).into(),
        ),
        IpAddr::V6(_) => (
            "[::]:0"
                .parse()
                .unwrap_or_else(|_| (Ipv4Addr::UNSPECIFIED, 0).into()),
            "[2001:db8::1]:9"
                .parse()
                .unwrap_or_else(|_| (Ipv4Addr::new(192, 0, 2, 1), 9).into()),
        ),
    };
    UdpSocket::bind(bind)
        .and_then(|s| {
            s.connect(probe)?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_flags_and_defaults() {
        let text = r#"
            [sip]
            listen = "127.0.0.1:5070"
            allowed = ["192.0.2.0/24"]
            [sip.routes]
            "0240709125" = "scuole"
            [media]
            inband = "always"
            inactivity_timeout_secs = 10
            [shutdown]
            grace_secs = 5
        "#;
        let mut s: ServeSettings = toml::from_str(text).unwrap();
        s.apply(&Overrides {
            sip_listen: None,
            sip_advertise: Some("203.0.113.10:5060".parse().unwrap()),
            rtp_ports: Some("30000-30099".into()),
        });
        let r = s.resolve([1; 32]).unwrap();
        assert_eq!(r.endpoint.advertise, "203.0.113.10:5060".parse().unwrap());
        assert_eq!(r.calls.media_ip, "203.0.113.10".parse::<IpAddr>().unwrap());
        assert_eq!(r.calls.bind_ip, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(r.calls.rtp_ports, (30000, 30099));
        assert_eq!(r.calls.session.inband, InbandMode::Always);
        assert_eq!(r.calls.session.inactivity_timeout, Duration::from_secs(10));
        assert_eq!(r.calls.shutdown_grace, Duration::from_secs(5));
        assert_eq!(r.endpoint.route("0240709125"), Some("scuole"));

        // No file: loopback only, both numbers to "default".
        let d = ServeSettings::load(None).unwrap().resolve([1; 32]).unwrap();
        assert_eq!(d.endpoint.route("800082653"), Some("default"));
        assert_eq!(d.endpoint.route("0240709125"), Some("default"));
        assert!(d.endpoint.is_allowed("127.0.0.1".parse().unwrap()));
        assert!(!d.endpoint.is_allowed("192.0.2.1".parse().unwrap()));
        assert_eq!(d.calls.rtp_ports, (20000, 29999));
        assert!(!d.calls.media_ip.is_unspecified(), "never 0.0.0.0 in SDP");
        assert_eq!(d.endpoint.advertise.port(), 5060);

        assert!(toml::from_str::<ServeSettings>("[media]\ninband = \"sometimes\"").is_err());
        assert!(toml::from_str::<ServeSettings>("[media]\ntypo = 1").is_err());
        let http: ServeSettings =
            toml::from_str("[http]\nheader_read_timeout_secs = 2\nmax_connections = 8").unwrap();
        let limits = http.http.limits().unwrap();
        assert_eq!(limits.header_read_timeout, Duration::from_secs(2));
        assert_eq!(limits.max_connections, 8);
        assert_eq!(limits.max_body_bytes, 64 * 1024);
        let bad: ServeSettings = toml::from_str("[http]\nmax_connections = 0").unwrap();
        assert!(matches!(bad.resolve([1; 32]), Err(ConfigError::Http)));
        let login: ServeSettings = toml::from_str(
            "[http]\ntrusted_proxies = [\"10.0.0.0/8\"]\nlogin_hashing_permits = 3\n\
             login_hashing_queue_per_permit = 2\nlogin_first_lock_secs = 30",
        )
        .unwrap();
        let limits = login.http.limits().unwrap();
        assert!(limits.trusted_proxies[0].contains("10.1.2.3".parse().unwrap()));
        assert_eq!(
            limits.login.hashing,
            HashingLimits {
                permits: 3,
                queue: 6,
                nice: 10
            }
        );
        assert_eq!(limits.login.lock.first_lock, Duration::from_secs(30));
        assert_eq!(limits.login.lock.max_lock, Duration::from_secs(900));
        assert_eq!(
            ServeSettings::default().http.limits().unwrap().login,
            LoginLimits::default()
        );
        for bad in [
            "trusted_proxies = [\"proxy.example\"]",
            "login_max_lock_secs = 30\nlogin_first_lock_secs = 60",
            "login_max_lock_secs = 86401",
            "login_attempts_before_lock = 0",
            "login_hashing_nice = 20",
        ] {
            let bad: ServeSettings = toml::from_str(&format!("[http]\n{bad}")).unwrap();
            assert!(bad.resolve([1; 32]).is_err(), "{bad:?}");
        }
        let bad: ServeSettings = toml::from_str("[media]\nrtcp_interval_secs = 0").unwrap();
        assert!(matches!(
            bad.resolve([1; 32]),
            Err(ConfigError::RtcpInterval)
        ));
        let mut bad = ServeSettings::default();
        bad.apply(&Overrides {
            rtp_ports: Some("20001-20000".into()),
            ..Overrides::default()
        });
        assert!(matches!(bad.resolve([1; 32]), Err(ConfigError::Sip(_))));
        let example: ServeSettings =
            toml::from_str(include_str!("../../docs/mensa.example.toml")).unwrap();
        let r = example.resolve([1; 32]).unwrap();
        assert_eq!(r.endpoint.route("0240709125"), Some("default"));
        assert!(r.endpoint.is_allowed("192.0.2.9".parse().unwrap()));
        assert_eq!(r.calls.shutdown_grace, Duration::from_secs(60));
        assert_eq!(example.ivr, IvrSettings::default());
        assert_eq!(
            example.ivr.guards().unwrap(),
            super::super::ivr_actions::GuardConfig::default()
        );
        assert!(matches!(
            advertised(
                "0.0.0.0:5060".parse().unwrap(),
                Some("0.0.0.0:5060".parse().unwrap())
            ),
            Err(ConfigError::Advertise(_))
        ));
    }

    #[test]
    fn ivr_limits_and_the_key_they_replace() {
        let s: ServeSettings = toml::from_str(
            "[ivr]\ncaller_free_wrong_codes = 3\nline_wrong_codes_per_year = 20\n\
             line_wrong_codes_burst = 6\ntrunk_share_percent = 100",
        )
        .unwrap();
        let g = s.ivr.guards().unwrap();
        assert_eq!(g.caller.free, 3);
        assert_eq!(g.caller.first_ms, 60_000);
        assert_eq!(g.caller.max_ms, 14 * DAY_MS);
        assert_eq!((g.line_per_year, g.line_burst), (Some(20), Some(6)));
        assert_eq!(g.trunk_percent, 100);
        // An old config names the new keys instead of being misread.
        let old: ServeSettings = toml::from_str("[ivr]\nmax_wrong_codes_per_hour = 10").unwrap();
        let e = old.resolve([1; 32]).unwrap_err().to_string();
        assert!(
            e.contains("max_wrong_codes_per_hour is gone")
                && e.contains("caller_free_wrong_codes")
                && e.contains("line_wrong_codes_per_year"),
            "{e}"
        );
        for bad in [
            "caller_free_wrong_codes = 0",
            "caller_backoff_max_days = 400",
            "line_wrong_codes_per_year = 0",
            "trunk_share_percent = 0",
        ] {
            let s: ServeSettings = toml::from_str(&format!("[ivr]\n{bad}")).unwrap();
            assert!(s.resolve([1; 32]).is_err(), "{bad}");
        }
    }
}
