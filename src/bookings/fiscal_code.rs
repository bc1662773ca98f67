//! Codice fiscale: shape and check character (DM 23/12/1976, as amended),
//! with *omocodia* accepted: when two people would get the same code, the
//! Agenzia delle Entrate replaces digits, from the right, with the letters
//! `LMNPQRSTUV` (0–9), and the check character is computed on the result.

/// Positions (0-based) that hold digits, or their omocodia letters.
const DIGIT_POSITIONS: [usize; 7] = [6, 7, 9, 10, 12, 13, 14];
const OMOCODIA_LETTERS: &[u8; 10] = b"LMNPQRSTUV";
const MONTH_LETTERS: &[u8; 12] = b"ABCDEHLMPRST";

/// Values of characters in odd positions (1st, 3rd, ...): digits map as
/// the letter of the same index (0 → A).
const ODD_VALUES: [u32; 26] = [
    1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23,
];

/// Checks an upper-case code; the error says what is wrong.
pub fn check(code: &str) -> Result<(), &'static str> {
    let bytes = code.as_bytes();
    if bytes.len() != 16 {
        return Err("must be 16 characters");
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return Err("only letters and digits are allowed");
    }
    for (i, &b) in bytes.iter().enumerate() {
        let ok = if DIGIT_POSITIONS.contains(&i) {
            b.is_ascii_digit() || OMOCODIA_LETTERS.contains(&b)
        } else if i == 8 {
            MONTH_LETTERS.contains(&b)
        } else {
            b.is_ascii_uppercase()
        };
        if !ok {
            return Err("malformed (letters and digits out of place)");
        }
    }
    if check_character(&bytes[..15]) != bytes[15] {
        return Err("wrong check character");
    }
    Ok(())
}

/// The 16th character computed from the first 15.
pub fn check_character(first15: &[u8]) -> u8 {
    let sum: u32 = first15
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            let index = if b.is_ascii_digit() {
                b - b'0'
            } else {
                b - b'A'
            } as usize;
            // Positions are counted from 1 in the decree: index 0 is "odd".
            if i % 2 == 0 {
                ODD_VALUES[index % 26]
            } else {
                index as u32
            }
        })
        .sum();
    b'A' + (sum % 26) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_known_valid_codes() {
        for code in [
            "RSSMRA80A01C034P",
            "BNCLRA85M41C034U",
            "RSSLCU18D12C034G",
            "RSSGLI20E52C034R",
            "MRTMTT25D09F205Z",
        ] {
            assert_eq!(check(code), Ok(()), "{code}");
        }
    }

    #[test]
    fn refuses_a_wrong_check_character() {
        assert_eq!(check("RSSMRA80A01C034Q"), Err("wrong check character"));
    }

    #[test]
    fn accepts_omocodia_with_its_own_check_character() {
        // Replace the last digit (4 → Q) and recompute the check character.
        let mut code = b"RSSMRA80A01C03Q".to_vec();
        let check_char = check_character(&code);
        code.push(check_char);
        let code = String::from_utf8(code).unwrap();
        assert_eq!(check(&code), Ok(()));
        // The same code with the original check character is refused.
        assert!(check("RSSMRA80A01C03QP").is_err());
    }

    #[test]
    fn refuses_bad_shapes() {
        assert!(check("RSSMRA80A01C034").is_err());
        assert!(check("RSSMRA80Z01C034P").is_err(), "Z is no month");
        assert!(check("R5SMRA80A01C034P").is_err());
        assert!(
            check("RSSMRA80A01C03AP").is_err(),
            "A is no omocodia letter"
        );
    }
}
