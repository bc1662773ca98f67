//! A whole call over real sockets on loopback: the call runtime (SIP
//! endpoint + media tickers + port pool + call control) started in-process
//! with a test call logic that plays a prompt and records what it hears,
//! and a test caller speaking SIP (INVITE with PCMA/PCMU/telephone-event,
//! ACK, INFO, BYE) and RTP. The caller presses "1" with RFC 4733 events,
//! "2" with in-band tones and "3" with SIP INFO while the prompt plays; the
//! logic must get exactly those keys, each once; the caller records what
//! the server sent and checks the prompt arrived intact at steady 20 ms.
#![allow(clippy::unwrap_used)] // test code may unwrap (STYLE.md)

use std::net::{SocketAddr, UdpSocket};

mod uac;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};
use uac::{Uac, header, media_port, offer, rtp, tone};

use mensa::media::dtmf::merge::InbandMode;
use mensa::media::g711::Law;
use mensa::media::playout::Prompt;
use mensa::media::prompts::PromptLibrary;
use mensa::media::session::SessionConfig;
use mensa::runtime::calls::{
    CallCommand, CallEvent, CallHandle, CallInfo, CallLogic, CallsConfig, start,
};
use mensa::sip::config::EndpointConfig;
use mensa::sip::endpoint::EndReason;

const PLAY_ID: u64 = 7;
const RUN: Duration = Duration::from_millis(2600);

/// Plays the prompt at once; records every event.
struct Recorder {
    prompt: Arc<Prompt>,
    events: Mutex<mpsc::Sender<CallEvent>>,
    started: Mutex<mpsc::Sender<CallInfo>>,
}

impl CallLogic for Recorder {
    fn has_dialplan(&self, dialplan: &str) -> bool {
        dialplan == "default"
    }

    fn start(&self, call: CallInfo, mut handle: CallHandle) {
        let events = self.events.lock().unwrap().clone();
        self.started.lock().unwrap().send(call).unwrap();
        handle.send(CallCommand::PlayAudio {
            id: PLAY_ID,
            prompts: vec![self.prompt.clone()],
        });
        tokio::spawn(async move {
            while let Some(e) = handle.recv().await {
                let _ = events.send(e);
            }
        });
    }
}

#[test]
fn a_call_with_keys_from_three_paths_and_a_steady_prompt() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // A 2 s sweep, so any reordering or gap would show.
    let samples: Vec<i16> = (0..16_000)
        .map(|i| ((i as f32 * (0.05 + i as f32 * 2e-5)).sin() * 9000.0) as i16)
        .collect();
    let prompt = Arc::new(Prompt::from_samples("sweep", &samples));
    let want = prompt.encoded(Law::ALaw)[..samples.len()].to_vec();
    let (ev_tx, ev_rx) = mpsc::channel();
    let (start_tx, start_rx) = mpsc::channel();
    let logic = Arc::new(Recorder {
        prompt,
        events: Mutex::new(ev_tx),
        started: Mutex::new(start_tx),
    });
    // An RTP range unlikely to be shared with a parallel test run.
    let low = 30_000 + (std::process::id() % 500) as u16 * 20;
    let config = CallsConfig {
        sip_listen: "127.0.0.1:0".parse().unwrap(),
        media_ip: "127.0.0.1".parse().unwrap(),
        bind_ip: "127.0.0.1".parse().unwrap(),
        rtp_ports: (low, low + 19),
        session: SessionConfig {
            inband: InbandMode::Always,
            ..SessionConfig::default()
        },
        tickers: 2,
        media_send: None,
        media_priority: None,
        overload_lateness: None,
        overload_lag: None,
        shutdown_grace: Duration::from_secs(1),
        sip_tcp: Default::default(),
    };
    let endpoint = EndpointConfig::demo("127.0.0.1:5060".parse().unwrap(), 42);
    let server = rt
        .block_on(start(
            config,
            endpoint,
            Arc::new(PromptLibrary::default()),
            logic,
        ))
        .unwrap();

    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut uac = Uac::new(server.sip_addr, "e2e");
    let ok = uac.call(&offer(
        media.local_addr().unwrap().port(),
        1,
        "sendrecv",
        "127.0.0.1",
    ));
    assert!(ok.starts_with("SIP/2.0 200 OK\r\n"), "{ok}");
    let port = media_port(&ok);
    assert!(header(&ok, "m=audio").contains(" 8 101"), "{ok}");
    assert_eq!(port % 2, 0, "RTP on an even port");
    assert!((low..low + 19).contains(&port));
    assert!(ok.contains("c=IN IP4 127.0.0.1"), "{ok}");
    let server_rtp: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
    let info = start_rx.recv_timeout(Duration::from_secs(3)).unwrap();
    assert_eq!(
        (info.called.as_str(), info.dialplan.as_str()),
        ("800082653", "default")
    );
    assert_eq!(info.caller.as_ref().map(|c| c.expose()), Some("3331234567"));

    // The caller: audio every 20 ms (silence, or the tone of "2" from 700
    // to 800 ms), RFC 4733 "1" from 300 to 400 ms, INFO "3" at 1100 ms.
    let start = Instant::now();
    media.set_nonblocking(true).unwrap();
    uac.sip.set_nonblocking(true).unwrap();
    let mut got: Vec<(Instant, Vec<u8>)> = Vec::new();
    let mut buf = [0u8; 1500];
    let (mut seq, mut ts, mut ev_seq) = (100u16, 0u32, 5000u16);
    let mut info_sent = false;
    let mut k = 0u32;
    while start.elapsed() < RUN {
        let due = start + Duration::from_millis(20 * u64::from(k));
        while Instant::now() < due {
            while let Ok((n, from)) = media.recv_from(&mut buf) {
                if from == server_rtp {
                    got.push((Instant::now(), buf[..n].to_vec()));
                }
            }
            std::thread::sleep(Duration::from_micros(300));
        }
        let ms = 20 * k;
        let pcm = if (700..800).contains(&ms) {
            tone(697.0, 1336.0, 160, (ms as usize - 700) * 8)
        } else {
            vec![0; 160]
        };
        let payload: Vec<u8> = pcm.iter().map(|&v| Law::ALaw.encode(v)).collect();
        media
            .send_to(&rtp(8, seq, ts, k == 0, &payload), server_rtp)
            .unwrap();
        if (300..=440).contains(&ms) {
            let end = ms >= 400;
            let d = if end {
                800
            } else {
                ((ms - 300 + 20) * 8) as u16
            };
            let block = [1, if end { 0x8A } else { 0x0A }, (d >> 8) as u8, d as u8];
            media
                .send_to(&rtp(101, ev_seq, 2400, ms == 300, &block), server_rtp)
                .unwrap();
            ev_seq = ev_seq.wrapping_add(1);
        }
        if ms >= 1100 && !info_sent {
            uac.cseq += 1;
            let cseq = uac.cseq;
            uac.request(
                "INFO",
                cseq,
                "Content-Type: application/dtmf-relay\r\n",
                "Signal=3\r\nDuration=100\r\n",
            );
            info_sent = true;
        }
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(160);
        k += 1;
    }
    uac.sip.set_nonblocking(false).unwrap();
    assert!(uac.final_response("INFO").starts_with("SIP/2.0 200 OK"));
    assert!(uac.bye().starts_with("SIP/2.0 200 OK"));

    // The logic's view: "123", each once, each after its KeyDown; the
    // prompt finished; the call ended by the caller.
    let mut events = Vec::new();
    while let Ok(e) = ev_rx.recv_timeout(Duration::from_secs(2)) {
        let ended = matches!(e, CallEvent::Ended(_));
        events.push(e);
        if ended {
            break;
        }
    }
    let pressed: String = events
        .iter()
        .filter_map(|e| match e {
            CallEvent::Key(k, _) => Some(k.as_char()),
            _ => None,
        })
        .collect();
    let downs = events
        .iter()
        .filter(|e| matches!(e, CallEvent::KeyDown(_)))
        .count();
    assert_eq!(pressed, "123", "{events:?}");
    assert_eq!(downs, 3, "{events:?}");
    assert!(
        events.contains(&CallEvent::PlayFinished(PLAY_ID)),
        "{events:?}"
    );
    assert_eq!(
        events.last(),
        Some(&CallEvent::Ended(EndReason::RemoteHangup))
    );

    // What the caller heard: continuous numbering, the prompt intact.
    assert!(got.len() >= 100, "{} packets", got.len());
    let seq_of = |p: &[u8]| u16::from_be_bytes([p[2], p[3]]);
    let ts_of = |p: &[u8]| u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
    for w in got.windows(2) {
        assert_eq!(seq_of(&w[1].1), seq_of(&w[0].1).wrapping_add(1));
        assert_eq!(ts_of(&w[1].1), ts_of(&w[0].1).wrapping_add(160));
    }
    let first = got
        .iter()
        .position(|(_, p)| p[1] & 0x80 != 0)
        .expect("a marker");
    let stream: Vec<u8> = got[first..]
        .iter()
        .flat_map(|(_, p)| p[12..].to_vec())
        .collect();
    assert!(stream.len() >= want.len(), "the whole prompt arrived");
    assert_eq!(&stream[..want.len()], &want[..], "prompt intact");

    // Spacing: gaps between arrivals, and offsets from the 20 ms grid.
    let t0 = got[0].0;
    let mut gaps: Vec<Duration> = got.windows(2).map(|w| w[1].0 - w[0].0).collect();
    gaps.sort();
    let mut worst = Duration::ZERO;
    for (i, (t, _)) in got.iter().enumerate() {
        let ideal = t0 + Duration::from_millis(20 * i as u64);
        let off = if *t > ideal { *t - ideal } else { ideal - *t };
        worst = worst.max(off);
    }
    let span = got.last().unwrap().0 - t0;
    let drift = span.abs_diff(Duration::from_millis(20 * (got.len() as u64 - 1)));
    let mean = span / (got.len() as u32 - 1);
    eprintln!(
        "{} packets: gap min {:?} p50 {:?} p99 {:?} max {:?}, mean {mean:?}; \
         worst offset from the 20 ms grid {worst:?}, drift over {span:?}: {drift:?}",
        got.len(),
        gaps[0],
        gaps[gaps.len() / 2],
        gaps[gaps.len() * 99 / 100],
        gaps[gaps.len() - 1],
    );
    // Loose bounds: the machine is shared; benches measure the real figure.
    assert!(worst < Duration::from_millis(60), "offset {worst:?}");
    assert!(drift < Duration::from_millis(40), "drift {drift:?}");

    // The pair goes back once the media ticker has closed its sockets.
    let mut stats = rt.block_on(server.stats()).unwrap();
    for _ in 0..100 {
        if stats.ports_free == 10 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        stats = rt.block_on(server.stats()).unwrap();
    }
    assert_eq!(stats.calls, 0);
    assert_eq!(stats.ports_free, 10, "the RTP pair went back to the pool");
    rt.block_on(server.shutdown());
}
