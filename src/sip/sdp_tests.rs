//! SDP offer/answer tests.

use super::*;
use crate::sip::corpus;
use crate::sip::message::{Framing, Message, parse};

const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
m=audio 40000 RTP/AVP 0 8 96 101\r\na=rtpmap:96 telephone-event/16000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:30\r\nm=video 5000 RTP/AVP 31\r\nx=unknown\r\n";

fn sd(s: &str) -> SessionDescription {
    SessionDescription::parse(s.as_bytes()).unwrap()
}

fn our() -> SocketAddr {
    "198.51.100.7:20000".parse().unwrap()
}

#[test]
fn callers_order_telephone_event_8000_and_ptime() {
    let (index, n) = negotiate(&sd(OFFER)).unwrap();
    assert_eq!(index, 0);
    assert_eq!(
        (n.codec, n.codec_payload_type),
        (Codec::Pcmu, 0),
        "PCMU offered first"
    );
    assert_eq!(
        n.telephone_event,
        Some((101, 8000)),
        "16000 Hz variant skipped"
    );
    assert_eq!((n.ptime_ms, n.direction), (30, Direction::SendRecv));
    assert_eq!(n.remote_rtp, "192.0.2.10:40000".parse().unwrap());
    let pcma_first = OFFER.replace("RTP/AVP 0 8 96", "RTP/AVP 8 0 96");
    assert_eq!(negotiate(&sd(&pcma_first)).unwrap().1.codec, Codec::Pcma);
    let dynamic_pcma = OFFER
        .replace("RTP/AVP 0 8 96", "RTP/AVP 97 96")
        .replace("a=ptime:30", "a=rtpmap:97 pcma/8000\r\na=ptime:25");
    let (_, n) = negotiate(&sd(&dynamic_pcma)).unwrap();
    assert_eq!(
        (n.codec, n.codec_payload_type, n.ptime_ms),
        (Codec::Pcma, 97, 20)
    );
}

#[test]
fn no_common_codec_or_no_audio() {
    assert_eq!(
        negotiate(&sd(&OFFER.replace("RTP/AVP 0 8 96 101", "RTP/AVP 18 101"))),
        Err(SdpError::NoCommonCodec)
    );
    assert_eq!(
        negotiate(&sd(&OFFER.replace("m=audio 40000", "m=audio 0"))),
        Err(SdpError::NoAudio)
    );
    assert_eq!(
        SessionDescription::parse(b"\xff\xfe"),
        Err(SdpError::Malformed)
    );
    assert_eq!(
        SessionDescription::parse(b"v=0\r\n"),
        Err(SdpError::Malformed)
    );
}

#[test]
fn answer_keeps_stream_count_and_session_version() {
    let offer = sd(OFFER);
    let (index, n) = negotiate(&offer).unwrap();
    let mut local = LocalSession::new(4242, our());
    let a1 = String::from_utf8(local.answer(&offer, index, &n)).unwrap();
    assert!(
        a1.contains("o=mensa 4242 4242 IN IP4 198.51.100.7\r\n"),
        "{a1}"
    );
    assert!(a1.contains("m=audio 20000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"));
    assert!(a1.contains("a=ptime:30\r\na=sendrecv\r\nm=video 0 RTP/AVP 31\r\n"));
    let a2 = String::from_utf8(local.answer(&offer, index, &n)).unwrap();
    assert_eq!(a1, a2, "session refresh: same version");
    // Hold: the peer goes sendonly, we answer recvonly with version + 1.
    let hold = sd(&OFFER.replace("a=ptime:30", "a=ptime:30\r\na=sendonly"));
    let (_, held) = negotiate(&hold).unwrap();
    assert_eq!(held.direction, Direction::RecvOnly);
    let a3 = String::from_utf8(local.answer(&hold, 0, &held)).unwrap();
    assert!(a3.contains("o=mensa 4242 4243 ") && a3.contains("a=recvonly"));
    // Old-style hold with c=0.0.0.0.
    let (_, old) = negotiate(&sd(
        &OFFER.replace("c=IN IP4 192.0.2.10", "c=IN IP4 0.0.0.0")
    ))
    .unwrap();
    assert_eq!(
        (old.direction, old.remote_rtp.ip().is_unspecified()),
        (Direction::RecvOnly, true)
    );
}

#[test]
fn our_offer_and_their_answer() {
    let mut local = LocalSession::new(7, our());
    let offer = local.offer();
    let (_, n) = negotiate(&SessionDescription::parse(&offer).unwrap()).unwrap();
    assert_eq!(
        (n.codec, n.telephone_event),
        (Codec::Pcma, Some((101, 8000)))
    );
    let answer = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 40002 RTP/AVP 0\r\n";
    let n = negotiate_answer(&sd(answer)).unwrap();
    assert_eq!(
        (n.codec, n.telephone_event, n.remote_rtp.port()),
        (Codec::Pcmu, None, 40002)
    );
}

#[test]
fn corpus_sdp_bodies() {
    // wsinv offers PCMU (0) and 12 with a video stream: answer PCMU.
    let Message::Request(r) = parse(&corpus::read("wsinv"), Framing::Datagram)
        .unwrap()
        .message
    else {
        panic!()
    };
    let (_, n) = negotiate(&SessionDescription::parse(&r.body).unwrap()).unwrap();
    assert_eq!(n.codec, Codec::Pcmu);
}

proptest::proptest! {
    #[test]
    fn random_sdp_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
        if let Ok(sd) = SessionDescription::parse(&bytes)
            && let Ok((i, n)) = negotiate(&sd)
        {
            let _ = LocalSession::new(1, our()).answer(&sd, i, &n);
        }
    }
}
