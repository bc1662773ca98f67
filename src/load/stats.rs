//! The figures of a load run: log-linear histograms (HdrHistogram's idea:
//! 1024 sub-buckets per power of two, so any value is kept within 0.1 %,
//! exactly below 1 ms) and the report, as text and as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

const SUB_BITS: u32 = 10;
const SUB: u64 = 1 << SUB_BITS;

/// Microsecond values, fixed memory (about 220 KiB), no allocation per value.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; SUB as usize + (64 - SUB_BITS as usize) * (SUB as usize / 2)],
            total: 0,
            max: 0,
        }
    }
}

impl Histogram {
    pub fn record(&mut self, micros: u64) {
        self.counts[index(micros)] += 1;
        self.total += 1;
        self.max = self.max.max(micros);
    }

    pub fn record_duration(&mut self, d: Duration) {
        self.record(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// The value at quantile `q` (0..=1), as the low edge of its bucket;
    /// `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(low_edge(i).min(self.max));
            }
        }
        Some(self.max)
    }

    /// p50, p99 and max in milliseconds.
    pub fn summary(&self) -> Option<Summary> {
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Summary {
            count: self.total,
            p50_ms: ms(self.quantile(0.50)?),
            p99_ms: ms(self.quantile(0.99)?),
            max_ms: ms(self.max),
        })
    }
}

fn index(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    // v >> shift lies in [SUB/2, SUB): 64 significant sub-buckets per row.
    let shift = (63 - v.leading_zeros()) - (SUB_BITS - 1);
    let sub = (v >> shift) - SUB / 2;
    (SUB + (u64::from(shift) - 1) * (SUB / 2) + sub) as usize
}

fn low_edge(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let j = i - SUB;
    let shift = j / (SUB / 2) + 1;
    (j % (SUB / 2) + SUB / 2) << shift
}

/// Three figures of a distribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailReason {
    /// No final response to the INVITE within the setup timeout (Timer B).
    SetupTimeout,
    /// A final response other than 503.
    Rejected(u16),
    /// 503 Service Unavailable: the server refused for load.
    Unavailable,
    /// The socket reported an error (ICMP port unreachable, a send error).
    Transport,
    /// The answer carried no usable SDP.
    BadAnswer,
    /// A `speech` step heard no prompt in time (a lost key or a dead line).
    NoPrompt,
    /// A `quiet` step's prompt never ended.
    PromptNeverEnded,
    /// The server hung up before the script was done.
    ServerHangUp,
    /// No answer to our BYE (Timer F).
    ByeTimeout,
    /// An error response to our BYE.
    ByeRejected(u16),
    /// `await-bye` waited in vain.
    NoServerBye,
    /// The run ended (duration reached, interrupted) with the call up.
    Unfinished,
}

impl FailReason {
    pub fn name(&self) -> String {
        match self {
            FailReason::SetupTimeout => "setup_timeout".into(),
            FailReason::Rejected(code) => format!("rejected_{code}"),
            FailReason::Unavailable => "503".into(),
            FailReason::Transport => "transport".into(),
            FailReason::BadAnswer => "bad_answer_sdp".into(),
            FailReason::NoPrompt => "no_prompt".into(),
            FailReason::PromptNeverEnded => "prompt_never_ended".into(),
            FailReason::ServerHangUp => "server_hung_up_early".into(),
            FailReason::ByeTimeout => "bye_timeout".into(),
            FailReason::ByeRejected(code) => format!("bye_rejected_{code}"),
            FailReason::NoServerBye => "no_server_bye".into(),
            FailReason::Unfinished => "unfinished".into(),
        }
    }
}

/// Received RTP, all calls together.
#[derive(Debug, Clone, Default)]
pub struct MediaStats {
    /// Arrival gap between consecutive packets of one stream.
    pub spacing: Histogram,
    /// |gap − 20 ms|.
    pub jitter: Histogram,
    /// Arrival − the time the RTP timestamp says, against the stream's
    /// earliest packet (how late the server sent it).
    pub lateness: Histogram,
    pub packets: u64,
    pub expected: u64,
    pub duplicates_or_reordered: u64,
    /// Packets from an address no call knows (late packets after a BYE).
    pub strays: u64,
}

/// What the generator's own process used.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct OwnCpu {
    pub user_s: f64,
    pub system_s: f64,
    /// (user + system) / wall, in percent of one core.
    pub percent_of_one_core: f64,
    pub max_rss_mib: f64,
}

/// The final report (`--json` prints it as is; fields are only added).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: String,
    pub script: String,
    pub keys: String,
    pub audio: bool,
    pub wall_s: f64,
    pub attempted: u64,
    pub answered: u64,
    pub completed: u64,
    pub failed: u64,
    pub failed_by_reason: BTreeMap<String, u64>,
    pub max_simultaneous: u64,
    pub sip_retransmissions_sent: u64,
    pub sip_retransmissions_seen: u64,
    pub setup_latency: Option<Summary>,
    pub rtp_received: u64,
    pub rtp_sent: u64,
    pub rtp_lost: u64,
    pub rtp_loss_percent: f64,
    pub rtp_duplicates_or_reordered: u64,
    pub rtp_strays: u64,
    pub rx_spacing: Option<Summary>,
    pub rx_jitter: Option<Summary>,
    pub rx_lateness: Option<Summary>,
    pub prompt_to_key: Option<Summary>,
    pub key_to_prompt: Option<Summary>,
    pub keys_sent: u64,
    /// Codes typed (`{code}` and `{guess}`), all calls together.
    pub codes_typed: u64,
    /// Calls by how many codes they had typed when they ended: in a
    /// guessing run, calls the server cut short after one code were
    /// refused before any lookup (docs/load.md).
    pub calls_by_codes_typed: BTreeMap<String, u64>,
    pub calls_pressing_1: u64,
    pub send_errors: u64,
    /// Frames our callers did not send because the generator fell behind:
    /// non-zero means the generator, not only the server, was saturated.
    pub generator_frames_skipped: u64,
    /// Datagrams the kernel dropped on the generator's own sockets (full
    /// receive buffers): non-zero means the generator did not read in
    /// time, and part of the loss above is its own. `None` where the
    /// kernel does not say.
    pub generator_socket_drops: Option<u64>,
    pub generator_cpu: OwnCpu,
    pub store_check: Option<StoreCheck>,
}

/// `--store-check`: what the server's store says about the run's calls.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StoreCheck {
    pub ok: bool,
    /// Calls of the run that pressed 1 after a code and completed.
    pub calls_pressing_1: u64,
    /// New call records with a cancel operation.
    pub cancel_operations: u64,
    /// Distinct children those calls named.
    pub children_expected: u64,
    /// Of them, those with exactly one successful cancellation.
    pub children_cancelled_once: u64,
    pub children_cancelled_twice_or_more: u64,
    pub children_not_cancelled: u64,
    pub problems: Vec<String>,
}

impl Report {
    /// The human report.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let sum = |s: &Option<Summary>| match s {
            Some(s) => format!(
                "p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  (n={})",
                s.p50_ms, s.p99_ms, s.max_ms, s.count
            ),
            None => "-".into(),
        };
        let _ = writeln!(
            s,
            "mensa load → {}  script {}  keys {}  audio {}",
            self.target,
            self.script,
            self.keys,
            if self.audio { "on" } else { "off" }
        );
        let _ = writeln!(
            s,
            "calls: attempted {}  answered {}  completed {}  failed {}  (max simultaneous {}, {:.1} s)",
            self.attempted,
            self.answered,
            self.completed,
            self.failed,
            self.max_simultaneous,
            self.wall_s
        );
        for (reason, n) in &self.failed_by_reason {
            let _ = writeln!(s, "  failed {reason}: {n}");
        }
        let _ = writeln!(
            s,
            "SIP retransmissions: sent {}  seen {}",
            self.sip_retransmissions_sent, self.sip_retransmissions_seen
        );
        let _ = writeln!(
            s,
            "setup latency (INVITE→200): {}",
            sum(&self.setup_latency)
        );
        let _ = writeln!(
            s,
            "RTP: received {}  lost {} ({:.3} %)  dup/reordered {}  strays {}  sent {}",
            self.rtp_received,
            self.rtp_lost,
            self.rtp_loss_percent,
            self.rtp_duplicates_or_reordered,
            self.rtp_strays,
            self.rtp_sent
        );
        let _ = writeln!(s, "  spacing:  {}", sum(&self.rx_spacing));
        let _ = writeln!(s, "  jitter:   {}", sum(&self.rx_jitter));
        let _ = writeln!(s, "  lateness: {}", sum(&self.rx_lateness));
        let _ = writeln!(
            s,
            "keys: sent {}  calls pressing 1: {}",
            self.keys_sent, self.calls_pressing_1
        );
        if self.codes_typed > 0 {
            let by: Vec<String> = self
                .calls_by_codes_typed
                .iter()
                .map(|(codes, n)| format!("{n} after {codes}"))
                .collect();
            let _ = writeln!(
                s,
                "codes typed: {}  calls ended: {}",
                self.codes_typed,
                by.join(", ")
            );
        }
        let _ = writeln!(s, "  prompt→key:  {}", sum(&self.prompt_to_key));
        let _ = writeln!(s, "  key→prompt:  {}", sum(&self.key_to_prompt));
        if self.send_errors > 0 {
            let _ = writeln!(s, "send errors: {}", self.send_errors);
        }
        if self.generator_frames_skipped > 0 {
            let _ = writeln!(
                s,
                "generator fell behind: {} frames skipped",
                self.generator_frames_skipped
            );
        }
        if let Some(drops) = self.generator_socket_drops.filter(|&n| n > 0) {
            let _ = writeln!(
                s,
                "generator fell behind: its sockets dropped {drops} datagrams (part of the loss above is the generator's own)"
            );
        }
        let c = &self.generator_cpu;
        let _ = writeln!(
            s,
            "generator CPU: user {:.2} s  system {:.2} s  = {:.1} % of one core; max RSS {:.1} MiB",
            c.user_s, c.system_s, c.percent_of_one_core, c.max_rss_mib
        );
        if let Some(check) = &self.store_check {
            let _ = writeln!(
                s,
                "store check: {}  calls pressing 1 {}  cancel operations {}  children {} (once {}, twice+ {}, none {})",
                if check.ok { "OK" } else { "FAILED" },
                check.calls_pressing_1,
                check.cancel_operations,
                check.children_expected,
                check.children_cancelled_once,
                check.children_cancelled_twice_or_more,
                check.children_not_cancelled
            );
            for p in &check.problems {
                let _ = writeln!(s, "  {p}");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_keeps_values_within_one_percent() {
        for v in [0u64, 1, 127, 128, 129, 1000, 20_000, 123_456, 32_000_000] {
            let edge = low_edge(index(v));
            assert!(edge <= v, "{v} → {edge}");
            assert!(v - edge <= v / 64, "{v} → {edge}");
        }
        let mut h = Histogram::default();
        for v in 1..=1000 {
            h.record(v * 100);
        }
        let p50 = h.quantile(0.5).unwrap();
        assert!((49_500..=50_000).contains(&p50), "{p50}");
        assert_eq!(h.summary().unwrap().max_ms, 100.0);
        let mut m = Histogram::default();
        m.merge(&h);
        assert_eq!(m.count(), 1000);
        assert_eq!(Histogram::default().quantile(0.5), None);
    }
}
