//! The event loop that drives every [`LoadCall`] of a run from one thread:
//! one UDP socket for SIP and one for all calls' RTP (every SDP offer names
//! the same port; received RTP is told apart by the server's source
//! address, one per call), batched system calls, and one heap of sorted
//! deadlines instead of a timer per call.
//!
//! ```text
//! loop: start calls due (rate, cap) ─► recvmmsg SIP ─► parse ─► call by Call-ID
//!       recvmmsg RTP ─► call by source address ─► expired deadlines ─► handle_timeout
//!       drain poll_transmit/poll_event of the calls touched ─► sendmmsg ─► poll(2)
//! ```

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::call::{CallConfig, CallEvent, Channel, Input, KeyMode, LoadCall};
use super::io::{BatchSocket, Received};
use super::rtp::ToneFrames;
use super::script::{Callers, Guesses, Script};
use super::stats::{FailReason, Histogram, MediaStats, OwnCpu, Report};
use crate::sip::message::{Framing, Message, parse};

/// A run's settings (the `mensa load` flags).
pub struct LoadConfig {
    pub target: SocketAddr,
    pub local_ip: IpAddr,
    /// New calls per second.
    pub rate: f64,
    /// At most this many calls up at once.
    pub concurrent: usize,
    /// Stop starting calls after this many...
    pub calls: Option<u64>,
    /// ...or after this long.
    pub duration: Option<Duration>,
    pub script_spec: String,
    pub script: Script,
    pub codes: Vec<String>,
    pub keys: KeyMode,
    pub audio: bool,
    pub setup_timeout: Duration,
    pub number: String,
    /// The caller number of each call.
    pub callers: Callers,
    /// What `{guess}` types.
    pub guesses: Guesses,
    /// A progress line on stderr every second.
    pub progress: bool,
}

/// How long calls still up may go on once no more are started.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);

struct Slot {
    call: LoadCall,
    armed: Option<Instant>,
    touched: bool,
    remote_rtp: Option<SocketAddr>,
}

#[derive(Default)]
struct Totals {
    attempted: u64,
    answered: u64,
    completed: u64,
    failed: u64,
    by_reason: BTreeMap<String, u64>,
    rtx_sent: u64,
    rtx_seen: u64,
    keys_sent: u64,
    pressed_1: u64,
    rtp_sent: u64,
    rtp_expected: u64,
    rtp_lost: u64,
    send_errors: u64,
    frames_skipped: u64,
    setup: Histogram,
    prompt_to_key: Histogram,
    key_to_prompt: Histogram,
    max_active: u64,
    codes_typed: u64,
    calls_by_codes_typed: BTreeMap<u32, u64>,
    /// Codes of the completed calls that pressed 1.
    cancelling_codes: Vec<String>,
}

/// Runs the load; blocks until every call ended. `stop` (Ctrl-C) ends
/// the run early, calls still up are counted `unfinished`.
pub fn run(config: LoadConfig, stop: Arc<AtomicBool>) -> io::Result<(Report, Vec<String>)> {
    let bind = SocketAddr::new(config.local_ip, 0);
    let mut sip = BatchSocket::bind(bind, 64, 4096)?;
    sip.report_icmp();
    let mut rtp = BatchSocket::bind(bind, 256, 512)?;
    if let Err(e) = rtp.stamp_arrivals() {
        eprintln!("mensa load: no kernel receive timestamps ({e}); spacing is measured when read");
    }
    let call_config = Arc::new(CallConfig {
        target: config.target,
        local_sip: sip.local_addr()?,
        local_rtp: rtp.local_addr()?,
        number: config.number.clone(),
        keys: config.keys,
        audio: config.audio,
        setup_timeout: config.setup_timeout,
        script: config.script.clone(),
        tones: ToneFrames::new(),
        run_id: std::process::id() ^ (Instant::now().elapsed().subsec_nanos() << 8),
        callers: config.callers.clone(),
        guesses: config.guesses,
    });
    let uses_code = config.script.uses_code();
    let mut slots: Vec<Option<Slot>> = Vec::new();
    let mut free: Vec<u32> = Vec::new();
    let mut by_call_id: HashMap<String, u32> = HashMap::new();
    let mut by_rtp: HashMap<SocketAddr, u32> = HashMap::new();
    let mut heap: BinaryHeap<Reverse<(Instant, u32)>> = BinaryHeap::new();
    let mut touched: Vec<u32> = Vec::new();
    let mut sip_out: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
    let mut rtp_out: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
    let mut got: Received = Vec::new();
    let mut media = MediaStats::default();
    let mut t = Totals::default();
    let mut active: usize = 0;
    let start = Instant::now();
    let usage0 = own_cpu();
    let interval = Duration::from_secs_f64(1.0 / config.rate.max(0.001));
    let mut next_start = start;
    let mut next_progress = start + Duration::from_secs(1);
    let mut last_rx = 0u64;
    let mut starting = true;
    // What the last poll(2) said; both are read when it was skipped.
    let (mut sip_readable, mut rtp_readable) = (true, true);

    let touch = |slots: &mut Vec<Option<Slot>>, touched: &mut Vec<u32>, i: u32| {
        if let Some(Some(s)) = slots.get_mut(i as usize)
            && !s.touched
        {
            s.touched = true;
            touched.push(i);
        }
    };

    loop {
        // Refreshed after each receive batch, so arrival times are those of
        // the batch; never goes backwards for a call.
        let mut now = Instant::now();
        let stopping = stop.load(Ordering::Relaxed);
        if starting {
            let out_of_calls = config.calls.is_some_and(|n| t.attempted >= n);
            let out_of_time = config.duration.is_some_and(|d| now >= start + d);
            if out_of_calls || out_of_time || stopping {
                starting = false;
            }
        }
        let drained = !starting && active == 0;
        let too_long = !starting
            && now >= start + config.duration.unwrap_or_default() + DRAIN_LIMIT
            && config.calls.is_none();
        if drained || stopping || too_long {
            for slot in slots.iter_mut().flatten() {
                slot.call.abandon();
                while let Some(ev) = slot.call.poll_event() {
                    record(&mut t, ev);
                }
            }
            break;
        }
        // New calls: at the rate, under the cap, without a burst to catch
        // up after the cap held them back.
        while starting
            && next_start <= now
            && active < config.concurrent
            && config.calls.is_none_or(|n| t.attempted < n)
        {
            let n = t.attempted;
            let code = (uses_code && !config.codes.is_empty())
                .then(|| config.codes[(n % config.codes.len() as u64) as usize].clone());
            let call = LoadCall::new(call_config.clone(), n, code, now);
            let i = match free.pop() {
                Some(i) => i,
                None => {
                    slots.push(None);
                    (slots.len() - 1) as u32
                }
            };
            by_call_id.insert(call.call_id().to_owned(), i);
            slots[i as usize] = Some(Slot {
                call,
                armed: None,
                touched: false,
                remote_rtp: None,
            });
            touch(&mut slots, &mut touched, i);
            t.attempted += 1;
            active += 1;
            t.max_active = t.max_active.max(active as u64);
            next_start += interval;
        }
        if active >= config.concurrent && next_start < now {
            next_start = now;
        }
        // SIP in. A batch that is not full means the queue is empty: no
        // extra call just to hear EAGAIN.
        let mut more = sip_readable;
        for _ in 0..16 {
            if !more {
                break;
            }
            match sip.recv_batch(&mut got) {
                Ok(0) => break,
                Ok(n) => {
                    now = Instant::now();
                    more = n == sip.batch();
                }
                Err(e) if e.raw_os_error() == Some(nix::libc::ECONNREFUSED) => {
                    // The target port is closed: every call still waiting
                    // for its first answer fails as a transport error.
                    for i in 0..slots.len() as u32 {
                        if let Some(Some(s)) = slots.get_mut(i as usize) {
                            s.call.handle_input(now, Input::TransportError, &mut media);
                            touch(&mut slots, &mut touched, i);
                        }
                    }
                    continue;
                }
                Err(_) => break,
            }
            for (k, &(len, _from, _)) in got.iter().enumerate() {
                let Ok(parsed) = parse(sip.datagram(k, len), Framing::Datagram) else {
                    continue;
                };
                let call_id = match &parsed.message {
                    Message::Request(r) => &r.call_id,
                    Message::Response(r) => &r.call_id,
                };
                match by_call_id.get(call_id) {
                    Some(&i) => {
                        if let Some(Some(s)) = slots.get_mut(i as usize) {
                            s.call
                                .handle_input(now, Input::Sip(&parsed.message), &mut media);
                        }
                        touch(&mut slots, &mut touched, i);
                    }
                    // A retransmission for a call already over.
                    None => t.rtx_seen += 1,
                }
            }
        }
        // RTP in.
        let mut more = rtp_readable;
        for _ in 0..64 {
            if !more {
                break;
            }
            match rtp.recv_batch(&mut got) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    now = Instant::now();
                    more = n == rtp.batch();
                }
            }
            // The kernel's receive time, on the monotonic clock: how long
            // before `now` the datagram arrived.
            let wall = SystemTime::now();
            for (k, &(len, from, stamped)) in got.iter().enumerate() {
                let arrived = stamped
                    .and_then(|t| wall.duration_since(t).ok())
                    .and_then(|ago| now.checked_sub(ago))
                    .unwrap_or(now);
                match by_rtp.get(&from) {
                    Some(&i) => {
                        if let Some(Some(s)) = slots.get_mut(i as usize) {
                            let input = Input::Rtp {
                                data: rtp.datagram(k, len),
                                arrived,
                            };
                            s.call.handle_input(now, input, &mut media);
                        }
                        touch(&mut slots, &mut touched, i);
                    }
                    None => media.strays += 1,
                }
            }
        }
        // Deadlines.
        while let Some(Reverse((at, i))) = heap.peek().copied() {
            if at > now {
                break;
            }
            heap.pop();
            if let Some(Some(s)) = slots.get_mut(i as usize)
                && s.armed == Some(at)
            {
                s.armed = None;
                s.call.handle_timeout(now);
                touch(&mut slots, &mut touched, i);
            }
        }
        // Drain the calls touched.
        for i in touched.drain(..) {
            let Some(Some(s)) = slots.get_mut(i as usize) else {
                continue;
            };
            s.touched = false;
            while let Some(tx) = s.call.poll_transmit() {
                match tx.channel {
                    Channel::Sip => sip_out.push((tx.to, tx.payload)),
                    Channel::Rtp => rtp_out.push((tx.to, tx.payload)),
                }
            }
            while let Some(ev) = s.call.poll_event() {
                if let CallEvent::Answered { remote_rtp, .. } = &ev {
                    by_rtp.insert(*remote_rtp, i);
                    s.remote_rtp = Some(*remote_rtp);
                }
                record(&mut t, ev);
            }
            if s.call.is_done() {
                by_call_id.remove(s.call.call_id());
                if let Some(addr) = s.remote_rtp {
                    by_rtp.remove(&addr);
                }
                slots[i as usize] = None;
                free.push(i);
                active -= 1;
                continue;
            }
            let next = s.call.poll_timeout();
            if next != s.armed {
                s.armed = next;
                if let Some(at) = next {
                    heap.push(Reverse((at, i)));
                }
            }
        }
        t.send_errors += sip.send_all(&sip_out) + rtp.send_all(&rtp_out);
        sip_out.clear();
        rtp_out.clear();
        // Progress.
        if now >= next_progress {
            next_progress += Duration::from_secs(1);
            if config.progress {
                let rx = media.packets;
                eprintln!(
                    "load {:>4.0}s  up {active:>5}  attempted {}  answered {}  completed {}  failed {}  \
                     503 {}  rtx {}/{}  rtp rx {}/s",
                    (now - start).as_secs_f64(),
                    t.attempted,
                    t.answered,
                    t.completed,
                    t.failed,
                    t.by_reason.get("503").copied().unwrap_or(0),
                    t.rtx_sent,
                    t.rtx_seen,
                    rx - last_rx,
                );
                last_rx = rx;
            }
        }
        // Sleep until something is due or a datagram arrives.
        let mut wake = next_progress;
        if let Some(Reverse((at, _))) = heap.peek() {
            wake = wake.min(*at);
        }
        if starting && active < config.concurrent {
            wake = wake.min(next_start);
        }
        let wait = wake.saturating_duration_since(Instant::now());
        (sip_readable, rtp_readable) = (true, true);
        if !wait.is_zero() {
            let ms = wait.as_micros().div_ceil(1000).min(1000) as u16;
            let mut fds = [
                PollFd::new(sip.socket.as_fd(), PollFlags::POLLIN),
                PollFd::new(rtp.socket.as_fd(), PollFlags::POLLIN),
            ];
            if poll(&mut fds, PollTimeout::from(ms)).is_ok() {
                let readable = |fd: &PollFd| {
                    fd.revents()
                        .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLERR))
                };
                (sip_readable, rtp_readable) = (readable(&fds[0]), readable(&fds[1]));
            }
        }
    }

    let wall = start.elapsed();
    let cpu = own_cpu() - usage0;
    let ms = |h: &Histogram| h.summary();
    let report = Report {
        target: config.target.to_string(),
        script: config.script_spec.clone(),
        keys: match config.keys {
            KeyMode::Rfc4733 => "rfc4733".into(),
            KeyMode::InBand => "inband".into(),
        },
        audio: config.audio,
        wall_s: wall.as_secs_f64(),
        attempted: t.attempted,
        answered: t.answered,
        completed: t.completed,
        failed: t.failed,
        failed_by_reason: t.by_reason.clone(),
        max_simultaneous: t.max_active,
        sip_retransmissions_sent: t.rtx_sent,
        sip_retransmissions_seen: t.rtx_seen,
        setup_latency: ms(&t.setup),
        rtp_received: media.packets,
        rtp_sent: t.rtp_sent,
        rtp_lost: t.rtp_lost,
        rtp_loss_percent: if t.rtp_expected == 0 {
            0.0
        } else {
            100.0 * t.rtp_lost as f64 / t.rtp_expected as f64
        },
        rtp_duplicates_or_reordered: media.duplicates_or_reordered,
        rtp_strays: media.strays,
        rx_spacing: ms(&media.spacing),
        rx_jitter: ms(&media.jitter),
        rx_lateness: ms(&media.lateness),
        prompt_to_key: ms(&t.prompt_to_key),
        key_to_prompt: ms(&t.key_to_prompt),
        keys_sent: t.keys_sent,
        codes_typed: t.codes_typed,
        calls_by_codes_typed: t
            .calls_by_codes_typed
            .iter()
            .map(|(k, n)| (k.to_string(), *n))
            .collect(),
        calls_pressing_1: t.pressed_1,
        send_errors: t.send_errors,
        generator_frames_skipped: t.frames_skipped,
        generator_socket_drops: rtp.drops().zip(sip.drops()).map(|(r, s)| r + s),
        generator_cpu: OwnCpu {
            user_s: cpu.0,
            system_s: cpu.1,
            percent_of_one_core: 100.0 * (cpu.0 + cpu.1) / wall.as_secs_f64().max(1e-9),
            max_rss_mib: own_max_rss_mib(),
        },
        store_check: None,
    };
    Ok((report, t.cancelling_codes))
}

fn record(t: &mut Totals, ev: CallEvent) {
    match ev {
        CallEvent::Answered { setup, .. } => {
            t.answered += 1;
            t.setup.record_duration(setup);
        }
        CallEvent::PromptToKey(d) => t.prompt_to_key.record_duration(d),
        CallEvent::KeyToPrompt(d) => t.key_to_prompt.record_duration(d),
        CallEvent::Ended(e) => {
            t.rtx_sent += e.retransmissions_sent;
            t.rtx_seen += e.retransmissions_seen;
            t.keys_sent += e.keys_sent;
            t.codes_typed += u64::from(e.codes_typed);
            *t.calls_by_codes_typed.entry(e.codes_typed).or_default() += 1;
            t.rtp_sent += e.rtp_sent;
            t.rtp_expected += e.rtp_expected;
            t.rtp_lost += e.rtp_lost;
            t.frames_skipped += e.frames_skipped;
            match e.result {
                Ok(()) => {
                    t.completed += 1;
                    if e.pressed_1 {
                        t.pressed_1 += 1;
                        t.cancelling_codes.extend(e.code);
                    }
                }
                Err(reason) => {
                    t.failed += 1;
                    *t.by_reason.entry(reason_name(&reason)).or_default() += 1;
                }
            }
        }
    }
}

fn reason_name(r: &FailReason) -> String {
    r.name()
}

/// (user, system) CPU seconds of this process so far.
fn own_cpu() -> CpuSeconds {
    use nix::sys::resource::{UsageWho, getrusage};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let s = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            CpuSeconds(s(u.user_time()), s(u.system_time()))
        }
        Err(_) => CpuSeconds(0.0, 0.0),
    }
}

fn own_max_rss_mib() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_SELF).map_or(0.0, |u| u.max_rss() as f64 / 1024.0)
}

#[derive(Clone, Copy)]
struct CpuSeconds(f64, f64);

impl std::ops::Sub for CpuSeconds {
    type Output = (f64, f64);
    fn sub(self, o: CpuSeconds) -> (f64, f64) {
        (self.0 - o.0, self.1 - o.1)
    }
}
