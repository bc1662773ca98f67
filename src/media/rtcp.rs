//! The little RTCP we need (RFC 3550 §6): recognise incoming packets, and
//! build a sender report with an SDES CNAME as one compound packet.

use std::time::Duration;

/// RFC 3550 §6.4.1 SR, §6.5 SDES, §6.1 compound packets.
const PT_SR: u8 = 200;
const PT_SDES: u8 = 202;
const PT_BYE: u8 = 203;
const SDES_CNAME: u8 = 1;

/// Version 2 and a payload type in the RTCP range 200–204 (RFC 5761 §4).
pub fn looks_like_rtcp(data: &[u8]) -> bool {
    data.len() >= 8 && data[0] >> 6 == 2 && (200..=204).contains(&data[1])
}

/// A duration in NTP 32.32 fixed point.
pub fn duration_to_ntp(d: Duration) -> u64 {
    (d.as_secs() << 32) + ((u64::from(d.subsec_nanos()) << 32) / 1_000_000_000)
}

/// SR (no report blocks: we receive no media worth reporting on) + SDES.
pub fn sender_report(
    ssrc: u32,
    ntp: u64,
    rtp_ts: u32,
    packets: u32,
    octets: u32,
    cname: &str,
) -> Vec<u8> {
    let mut p = Vec::with_capacity(64);
    // SR: V=2, P=0, RC=0; length 6 (7 words − 1).
    p.extend_from_slice(&[0x80, PT_SR, 0, 6]);
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&ntp.to_be_bytes());
    p.extend_from_slice(&rtp_ts.to_be_bytes());
    p.extend_from_slice(&packets.to_be_bytes());
    p.extend_from_slice(&octets.to_be_bytes());
    // SDES: one chunk, CNAME item, end item, padded to 32 bits.
    let name = &cname.as_bytes()[..cname.len().min(255)];
    let sdes_start = p.len();
    p.extend_from_slice(&[0x81, PT_SDES, 0, 0]);
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.push(SDES_CNAME);
    p.push(name.len() as u8);
    p.extend_from_slice(name);
    p.push(0);
    while p.len() % 4 != 0 {
        p.push(0);
    }
    let words = ((p.len() - sdes_start) / 4 - 1) as u16;
    p[sdes_start + 2..sdes_start + 4].copy_from_slice(&words.to_be_bytes());
    p
}

/// BYE for our SSRC (§6.6), to append to a report as the last packet of a
/// compound packet.
pub fn bye(ssrc: u32) -> [u8; 8] {
    let s = ssrc.to_be_bytes();
    [0x81, PT_BYE, 0, 1, s[0], s[1], s[2], s[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_report_layout() {
        let p = sender_report(
            0x1234_5678,
            0xAABB_CCDD_0000_0001,
            160,
            3,
            480,
            "mensa@test",
        );
        assert!(looks_like_rtcp(&p));
        assert_eq!(p.len() % 4, 0);
        assert_eq!(&p[0..4], &[0x80, 200, 0, 6]);
        assert_eq!(&p[4..8], &0x1234_5678u32.to_be_bytes());
        assert_eq!(&p[8..16], &0xAABB_CCDD_0000_0001u64.to_be_bytes());
        assert_eq!(&p[16..20], &160u32.to_be_bytes());
        assert_eq!(&p[20..24], &3u32.to_be_bytes());
        assert_eq!(&p[24..28], &480u32.to_be_bytes());
        // SDES header, its length field matches.
        assert_eq!(&p[28..30], &[0x81, 202]);
        let words = u16::from_be_bytes([p[30], p[31]]) as usize;
        assert_eq!(28 + (words + 1) * 4, p.len());
        assert_eq!(p[36], 1);
        assert_eq!(&p[38..48], b"mensa@test");
    }

    #[test]
    fn bye_layout() {
        assert_eq!(bye(0x0102_0304), [0x81, 203, 0, 1, 1, 2, 3, 4]);
    }

    #[test]
    fn ntp_fraction() {
        assert_eq!(
            duration_to_ntp(Duration::from_millis(1500)),
            (1 << 32) | (1 << 31)
        );
        assert!(!looks_like_rtcp(&[0x80, 0, 0, 0, 0, 0, 0, 0]));
        assert!(!looks_like_rtcp(&[0x80, 200]));
    }
}
