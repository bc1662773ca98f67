//! Parser tests: the RFC 4475 corpus, framing, and random bytes.

use super::*;
use crate::sip::corpus;
use proptest::prelude::*;

/// What parsing each corpus file must give (the UAS answer on top of it is
/// tested in the endpoint).
#[derive(Debug, PartialEq)]
enum Want {
    Request,
    Response,
    Reply(u16),
    Drop,
}

fn outcome(bytes: &[u8]) -> Want {
    match parse(bytes, Framing::Datagram) {
        Ok(Parsed {
            message: Message::Request(_),
            ..
        }) => Want::Request,
        Ok(Parsed {
            message: Message::Response(_),
            ..
        }) => Want::Response,
        Err(ParseError::Reply { status, .. }) => Want::Reply(status),
        Err(ParseError::Drop(_)) => Want::Drop,
        Err(ParseError::Incomplete) => panic!("datagrams are never incomplete"),
    }
}

const EXPECTED: &[(&str, Want)] = &[
    ("archive-only/test", Want::Drop),
    ("badaspec", Want::Reply(400)),
    ("badbranch", Want::Request),
    ("baddate", Want::Request),
    ("baddn", Want::Reply(400)),
    ("badinv01", Want::Reply(400)),
    ("badvers", Want::Reply(505)),
    ("bcast", Want::Response),
    ("bext01", Want::Request),
    ("bigcode", Want::Drop),
    ("clerr", Want::Reply(400)),
    ("cparam01", Want::Request),
    ("cparam02", Want::Request),
    ("dblreq", Want::Request),
    ("esc01", Want::Request),
    ("esc02", Want::Request),
    ("escnull", Want::Request),
    ("escruri", Want::Request),
    ("insuf", Want::Drop),
    ("intmeth", Want::Request),
    ("inv2543", Want::Request),
    ("invut", Want::Request),
    ("longreq", Want::Request),
    ("ltgtruri", Want::Reply(400)),
    ("lwsdisp", Want::Request),
    ("lwsruri", Want::Reply(400)),
    ("lwsstart", Want::Reply(400)),
    ("mcl01", Want::Reply(400)),
    ("mismatch01", Want::Request),
    ("mismatch02", Want::Request),
    ("mpart01", Want::Request),
    ("multi01", Want::Reply(400)),
    ("ncl", Want::Reply(400)),
    ("noreason", Want::Response),
    ("novelsc", Want::Request),
    ("quotbal", Want::Reply(400)),
    ("regaut01", Want::Request),
    ("regbadct", Want::Request),
    ("regescrt", Want::Request),
    ("scalar02", Want::Reply(400)),
    ("scalarlg", Want::Drop),
    ("sdp01", Want::Request),
    ("semiuri", Want::Request),
    ("transports", Want::Request),
    ("trws", Want::Reply(400)),
    ("unkscm", Want::Request),
    ("unksm2", Want::Request),
    ("unreason", Want::Response),
    ("variants/baddn-terminated", Want::Reply(400)),
    ("wsinv", Want::Request),
    ("zeromf", Want::Request),
];

#[test]
fn every_corpus_file_has_its_expected_outcome() {
    let names = corpus::all();
    assert_eq!(names.len(), 51, "corpus: {names:?}");
    for name in &names {
        let want = EXPECTED.iter().find(|(n, _)| n == name).map(|(_, w)| w);
        let want = want.unwrap_or_else(|| panic!("{name}: no expectation"));
        assert_eq!(&outcome(&corpus::read(name)), want, "{name}");
    }
}

fn request(name: &str) -> (Request, usize) {
    match parse(&corpus::read(name), Framing::Datagram) {
        Ok(Parsed {
            message: Message::Request(r),
            consumed,
        }) => (*r, consumed),
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn wsinv_tortuous_invite() {
    let (r, _) = request("wsinv");
    assert_eq!(r.method, Method::Invite);
    assert_eq!(
        r.cseq,
        CSeq {
            seq: 9,
            method: "INVITE".into()
        }
    );
    assert_eq!(r.max_forwards, Some(68));
    assert_eq!(r.vias.len(), 3);
    assert_eq!(r.top_via().branch(), Some("390skdjuw"));
    assert_eq!(r.top_via().rfc3261_branch(), None);
    assert_eq!(r.vias[1].transport, "TCP");
    assert_eq!(r.from.tag(), Some("98asjd8"));
    assert_eq!(r.to.tag(), Some("1918181833n"));
    assert_eq!(
        r.headers
            .first(&HeaderName::Other("UnknownHeaderWithUnusualValue".into())),
        Some(";;,,;;,;")
    );
    assert_eq!(
        r.headers
            .first(&HeaderName::Other("NewFangledHeader".into())),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(r.body.len(), 150);
    assert_eq!(r.content_type().as_deref(), Some("application/sdp"));
}

#[test]
fn unusual_uris_and_methods() {
    let (r, _) = request("intmeth");
    assert_eq!(
        r.method,
        Method::Extension("!interesting-Method0123456789_*+`.%indeed'~".into())
    );
    let u = r.uri.as_sip().unwrap();
    assert_eq!(
        u.user.as_deref(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        u.password.as_deref(),
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    let (r, _) = request("semiuri");
    assert_eq!(
        r.uri.as_sip().unwrap().user.as_deref(),
        Some("user;par=u%40example.net")
    );
    let (r, _) = request("esc02");
    assert_eq!(r.method, Method::Extension("RE%47IST%45R".into()));
    let (r, _) = request("unkscm");
    assert!(matches!(r.uri, Uri::Other { .. }));
    let (r, _) = request("esc01");
    assert_eq!(
        r.uri.number(),
        None,
        "user decodes to sips:user@example.com, not a number"
    );
    let (r, _) = request("invut");
    assert_eq!(r.to.uri.as_sip().unwrap().user.as_deref(), Some("j.user"));
}

#[test]
fn content_length_framing() {
    let bytes = corpus::read("dblreq");
    let (r, consumed) = request("dblreq");
    assert_eq!((r.method, r.body.len()), (Method::Register, 0));
    assert_eq!(
        bytes.len() - consumed,
        450,
        "the trailing INVITE is left unread"
    );
    let (r, _) = request("mpart01");
    assert_eq!(r.body.len(), 553);
    assert!(r.top_via().rport().is_some());
    let (r, _) = request("inv2543");
    assert_eq!(
        (r.body.len(), r.from.tag(), r.max_forwards),
        (105, None, None)
    );
}

#[test]
fn sdp_in_the_body() {
    assert_eq!(
        request("mpart01").0.sdp_body(),
        Err(NoSdp),
        "multipart without SDP"
    );
    assert_eq!(request("invut").0.sdp_body(), Err(NoSdp));
    assert_eq!(
        request("esc01").0.sdp_body().unwrap().map(<[u8]>::len),
        Some(150)
    );
    assert_eq!(request("zeromf").0.sdp_body(), Ok(None));
}

#[test]
fn stream_framing_waits_and_splits() {
    let msg = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nf: <sip:x@y>;tag=1\r\nt: <sip:a@b>\r\ni: c\r\nCSeq: 1 OPTIONS\r\nl: 4\r\n\r\nbody";
    for cut in 0..msg.len() {
        assert_eq!(
            parse(&msg[..cut], Framing::Stream),
            Err(ParseError::Incomplete),
            "cut {cut}"
        );
    }
    let mut two = b"\r\n\r\n".to_vec();
    two.extend_from_slice(msg);
    two.extend_from_slice(msg);
    let first = parse(&two, Framing::Stream).unwrap();
    assert_eq!(first.consumed, 4 + msg.len());
    assert_eq!(
        parse(&two[first.consumed..], Framing::Stream)
            .unwrap()
            .consumed,
        msg.len()
    );
}

#[test]
fn keep_alives() {
    assert_eq!(stream_keep_alive(b"\r\n\r\nOPTIONS"), (4, true));
    assert_eq!(stream_keep_alive(b"\r\n"), (2, false));
    assert_eq!(stream_keep_alive(b"INVITE"), (0, false));
}

#[test]
fn reply_head_of_malformed_requests() {
    let Err(ParseError::Reply { head, .. }) = parse(&corpus::read("badinv01"), Framing::Datagram)
    else {
        panic!()
    };
    assert_eq!(head.top_via.sent_by(), "192.0.2.15");
    assert_eq!(head.to_tag, Some(None));
    let Err(ParseError::Reply { head, .. }) = parse(&corpus::read("quotbal"), Framing::Datagram)
    else {
        panic!()
    };
    assert_eq!((head.top_via.port, head.to_tag), (Some(5050), None));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse(&bytes, Framing::Datagram);
        let _ = parse(&bytes, Framing::Stream);
    }

    #[test]
    fn mutated_corpus_never_panics(file in 0usize..51, edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
        let names = corpus::all();
        let mut bytes = corpus::read(&names[file % names.len()]);
        for (at, b) in edits {
            let i = at % bytes.len();
            bytes[i] = b;
        }
        bytes.truncate(cut % (bytes.len() + 1));
        let _ = parse(&bytes, Framing::Datagram);
        let _ = parse(&bytes, Framing::Stream);
    }
}
