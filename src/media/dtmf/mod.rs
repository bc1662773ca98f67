//! DTMF from all three paths, merged into one stream of key presses.
//!
//! ```text
//!  RTP audio ──G.711──► inband::InbandDetector ──┐
//!  RTP telephone-event ► rfc4733::EventReceiver ─┼─► merge::KeyMerger ──► KeyEvent
//!  SIP INFO body ─────► sip::info       ────────┘     (one press, once)
//! ```
//!
//! Each source reports a press as a [`DigitEvent::Begin`] (for barge-in) and
//! a [`DigitEvent::End`] carrying its duration; the merger turns the three
//! streams into one, never counting a press twice (conformance part D).

pub mod inband;
pub mod merge;
pub mod rfc4733;

#[cfg(test)]
pub(crate) mod testsig;

use std::fmt;
use std::time::{Duration, Instant};

/// A DTMF key: the 16 keys of the 4×4 keypad.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(u8);

impl Key {
    /// The keys in RFC 4733 §3.2 event-code order: `0`–`9`, `*`, `#`, `A`–`D`.
    const CHARS: [char; 16] = [
        '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D',
    ];

    /// RFC 4733 §3.2 event code (0–15) to a key; other codes are not keys.
    pub fn from_event_code(code: u8) -> Option<Key> {
        (code < 16).then_some(Key(code))
    }

    /// The RFC 4733 event code of this key.
    pub fn event_code(self) -> u8 {
        self.0
    }

    /// Parse a keypad character (`a`–`d` accepted in lower case).
    pub fn from_char(c: char) -> Option<Key> {
        let up = c.to_ascii_uppercase();
        Self::CHARS
            .iter()
            .position(|&k| k == up)
            .and_then(|i| u8::try_from(i).ok())
            .map(Key)
    }

    /// The keypad character.
    pub fn as_char(self) -> char {
        Self::CHARS[usize::from(self.0 & 0x0F)]
    }

    /// Row (low group, 0–3) and column (high group, 0–3) on the keypad
    /// (ITU-T Q.23 Figure 1), by event code.
    pub(crate) fn row_col(self) -> (usize, usize) {
        const ROW_COL: [(usize, usize); 16] = [
            (3, 1), // 0
            (0, 0), // 1
            (0, 1), // 2
            (0, 2), // 3
            (1, 0), // 4
            (1, 1), // 5
            (1, 2), // 6
            (2, 0), // 7
            (2, 1), // 8
            (2, 2), // 9
            (3, 0), // *
            (3, 2), // #
            (0, 3), // A
            (1, 3), // B
            (2, 3), // C
            (3, 3), // D
        ];
        ROW_COL[usize::from(self.0 & 0x0F)]
    }

    /// The key at a keypad row and column (both 0–3).
    pub(crate) fn at(row: usize, col: usize) -> Key {
        const GRID: [[u8; 4]; 4] = [[1, 2, 3, 12], [4, 5, 6, 13], [7, 8, 9, 14], [10, 0, 11, 15]];
        Key(GRID[row & 3][col & 3])
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_char())
    }
}

/// What one DTMF source reports about a press.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigitEvent {
    /// The key went down (reported as soon as it is certain: barge-in).
    Begin { key: Key, at: Instant },
    /// The key was released; `begin` is when it went down.
    End {
        key: Key,
        begin: Instant,
        duration: Duration,
    },
}

impl DigitEvent {
    /// The key this event is about.
    pub fn key(&self) -> Key {
        match *self {
            DigitEvent::Begin { key, .. } | DigitEvent::End { key, .. } => key,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_codes_chars_and_grid() {
        for code in 0..16u8 {
            let k = Key::from_event_code(code).unwrap();
            assert_eq!(Key::from_char(k.as_char()), Some(k));
            let (r, c) = k.row_col();
            assert_eq!(Key::at(r, c), k);
        }
        assert_eq!(Key::from_event_code(16), None);
        assert_eq!(Key::from_char('b'), Key::from_event_code(13));
        assert_eq!(Key::from_char('x'), None);
    }
}
