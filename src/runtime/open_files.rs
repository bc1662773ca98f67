//! The process's open-file limit against the calls it is configured for.
//!
//! Every call holds two sockets (RTP and RTCP), so a node set up for 5,000
//! calls needs over 10,000 descriptors. Services often start with a soft
//! limit of 1,024 (systemd's default, whatever `LimitNOFILE=` allows as the
//! hard limit): past about 500 calls every new socket would fail with
//! `EMFILE`, and the node would refuse calls it has the CPU for. So at
//! start the soft limit is raised as far as needed, up to the hard limit
//! (as nginx's `worker_rlimit_nofile` and Go's runtime do), and a limit
//! that still falls short is said once, with the count it allows.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Descriptors beyond the calls' sockets and SIP's TCP connections: HTTP
/// connections, the database, the tickers' rings and epoll, logs.
pub const HEADROOM: u64 = 1_024;

/// Descriptors for `calls` simultaneous calls and `tcp` SIP connections
/// (`[sip] tcp_max_connections`, each accepted before it is judged).
pub fn needed_for(calls: usize, tcp: usize) -> u64 {
    (calls as u64)
        .saturating_mul(2)
        .saturating_add(tcp as u64)
        .saturating_add(HEADROOM)
}

/// The soft limit to ask for, from the current soft and hard limits and
/// what is needed: never lowered, never above the hard limit.
pub fn target(soft: u64, hard: u64, needed: u64) -> u64 {
    soft.max(needed.min(hard))
}

/// The calls a soft limit of `soft` descriptors leaves room for, about:
/// the headroom, at most half of a small limit, then two a call.
pub fn calls_allowed(soft: u64) -> u64 {
    soft.saturating_sub(HEADROOM.min(soft / 2)) / 2
}

/// Raises the soft open-file limit towards what `calls` calls and `tcp`
/// SIP connections need; returns the limit in force afterwards (`None` if
/// it cannot be read).
pub fn raise_for(calls: usize, tcp: usize) -> Option<u64> {
    let needed = needed_for(calls, tcp);
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit");
            return None;
        }
    };
    let want = target(soft, hard, needed);
    let now = if want > soft {
        match setrlimit(Resource::RLIMIT_NOFILE, want, hard) {
            Ok(()) => {
                tracing::info!(
                    from = soft,
                    to = want,
                    "open-file limit raised for the calls' sockets"
                );
                want
            }
            Err(e) => {
                tracing::warn!(error = %e, soft, want, "cannot raise the open-file limit");
                soft
            }
        }
    } else {
        soft
    };
    if now < needed {
        tracing::warn!(
            limit = now,
            needed,
            calls_allowed = calls_allowed(now),
            "the open-file limit is below what max_concurrent_calls needs (two sockets a call): \
             calls beyond it get 503; raise the hard limit (systemd: LimitNOFILE=)"
        );
    }
    Some(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_rises_to_what_is_needed_within_the_hard_one() {
        // systemd's default: soft 1,024, hard 524,288; 5,000 calls.
        assert_eq!(needed_for(5_000, 0), 11_024);
        assert_eq!(target(1_024, 524_288, needed_for(5_000, 0)), 11_024);
        // A hard limit below the need: as far as it goes.
        assert_eq!(target(1_024, 4_096, 11_024), 4_096);
        assert_eq!(calls_allowed(4_096), 1_536);
        assert_eq!(calls_allowed(600), 150);
        // Already enough: never lowered.
        assert_eq!(target(1_048_576, 1_048_576, 11_024), 1_048_576);
    }

    #[test]
    fn raising_reads_and_keeps_a_sufficient_limit() {
        // This process's own limit: enough for a handful of calls after
        // the call (raised if it was not), and never lowered.
        let (before, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        let now = raise_for(8, 16).unwrap();
        assert!(now >= before);
        if hard >= needed_for(8, 16) {
            assert!(now >= needed_for(8, 16));
        }
        assert_eq!(getrlimit(Resource::RLIMIT_NOFILE).unwrap().0, now);
    }
}
