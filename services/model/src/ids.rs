//! Identifiers that arrive from outside (the checks of docs/api.md), as validated
//! newtypes: a value of these types has passed its check character.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must be {expected} characters, found {found}")]
    Length { expected: &'static str, found: usize },
    #[error("character {ch:?} at position {pos} is not allowed")]
    Char { ch: char, pos: usize },
    #[error("check character is {found:?}, expected {expected:?}")]
    Check { found: char, expected: char },
    #[error("{0}")]
    Shape(&'static str),
}

/// Unified social credit code, GB 32100-2015: 18 characters from a 31-symbol
/// alphabet (no I, O, Z, S, V), the last a MOD 31 check character.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Uscc(String);

const USCC_ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const USCC_WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

/// The check character for the first 17 characters of a credit code, or
/// `None` if one of them is outside the alphabet.
pub fn uscc_check_char(first17: &str) -> Option<char> {
    let mut sum = 0u32;
    for (pos, ch) in first17.chars().take(17).enumerate() {
        let value = USCC_ALPHABET.iter().position(|&a| a as char == ch)?;
        sum += USCC_WEIGHTS[pos] * value as u32;
    }
    Some(USCC_ALPHABET[((31 - sum % 31) % 31) as usize] as char)
}

impl Uscc {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let chars: Vec<char> = s.chars().collect();
        if chars.len() != 18 {
            return Err(IdError::Length { expected: "18", found: chars.len() });
        }
        let mut sum = 0u32;
        for (pos, &ch) in chars.iter().enumerate() {
            let value =
                USCC_ALPHABET.iter().position(|&a| a as char == ch).ok_or(IdError::Char { ch, pos: pos + 1 })?;
            if pos < 17 {
                sum += USCC_WEIGHTS[pos] * value as u32;
            }
        }
        let expected = USCC_ALPHABET[((31 - sum % 31) % 31) as usize] as char;
        if chars[17] != expected {
            return Err(IdError::Check { found: chars[17], expected });
        }
        // Positions 3-8 are the registering authority's GB/T 2260 region.
        if !chars[2..8].iter().all(char::is_ascii_digit) {
            return Err(IdError::Shape("characters 3-8 must be the 6-digit region code"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Resident identity number, GB 11643-1999: 17 digits and an ISO 7064
/// MOD 11-2 check character (0-9 or X). Personal data: see [`mask_id_no`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdNo(String);

const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: &[u8; 11] = b"10X98765432";

impl IdNo {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let chars: Vec<char> = s.chars().collect();
        if chars.len() != 18 {
            return Err(IdError::Length { expected: "18", found: chars.len() });
        }
        let mut sum = 0u32;
        for (pos, &ch) in chars[..17].iter().enumerate() {
            let d = ch.to_digit(10).ok_or(IdError::Char { ch, pos: pos + 1 })?;
            sum += ID_WEIGHTS[pos] * d;
        }
        let expected = ID_CHECK[(sum % 11) as usize] as char;
        if chars[17] != expected {
            return Err(IdError::Check { found: chars[17], expected });
        }
        let (y, m, d) = (&s[6..10], &s[10..12], &s[12..14]);
        if chrono::NaiveDate::parse_from_str(&format!("{y}-{m}-{d}"), "%Y-%m-%d").is_err() {
            return Err(IdError::Shape("characters 7-14 must be a real birth date"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdNo({})", mask_id_no(&self.0))
    }
}

/// Masks a resident ID number for logs and screens: region and the last
/// character stay so an operator can still tell two people apart.
pub fn mask_id_no(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() < 8 {
        return "*".repeat(chars.len());
    }
    let keep_head = 6;
    let keep_tail = 1;
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < keep_head || i >= chars.len() - keep_tail { *c } else { '*' })
        .collect()
}

/// Masks every resident ID number inside free text (logs, traces, console
/// pages): any run of 17 digits and a check character that passes the
/// GB 11643 check and carries a real birth date, standing alone.
pub fn mask_id_numbers(text: &str) -> std::borrow::Cow<'_, str> {
    let b = text.as_bytes();
    if b.len() < 18 {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out: Option<String> = None;
    let mut last = 0;
    let mut i = 0;
    while i + 18 <= b.len() {
        let standalone =
            (i == 0 || !b[i - 1].is_ascii_alphanumeric()) && (i + 18 == b.len() || !b[i + 18].is_ascii_alphanumeric());
        if standalone
            && b[i..i + 17].iter().all(u8::is_ascii_digit)
            && (b[i + 17].is_ascii_digit() || b[i + 17] == b'X' || b[i + 17] == b'x')
            && IdNo::parse(&text[i..i + 18].to_ascii_uppercase()).is_ok()
        {
            let o = out.get_or_insert_with(String::new);
            o.push_str(&text[last..i]);
            o.push_str(&mask_id_no(&text[i..i + 18]));
            last = i + 18;
            i += 18;
        } else {
            i += 1;
        }
    }
    match out {
        Some(mut o) => {
            o.push_str(&text[last..]);
            std::borrow::Cow::Owned(o)
        }
        None => std::borrow::Cow::Borrowed(text),
    }
}

/// [`mask_id_numbers`] over every string of a JSON value, in place.
pub fn mask_id_numbers_in(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => {
            if let std::borrow::Cow::Owned(m) = mask_id_numbers(s) {
                *s = m;
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(mask_id_numbers_in),
        serde_json::Value::Object(m) => m.values_mut().for_each(mask_id_numbers_in),
        _ => {}
    }
}

/// GB/T 2260 region code as this hub uses it: 6 digits for a county, 9 for a
/// town (the county's code plus 3 digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegionCode(String);

impl RegionCode {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if !(s.len() == 6 || s.len() == 9) {
            return Err(IdError::Length { expected: "6 (county) or 9 (town)", found: s.chars().count() });
        }
        if let Some((pos, ch)) = s.chars().enumerate().find(|(_, c)| !c.is_ascii_digit()) {
            return Err(IdError::Char { ch, pos: pos + 1 });
        }
        if &s[0..2] == "00" || &s[2..6] == "0000" && s.len() == 9 {
            return Err(IdError::Shape("not a county or town code"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_town(&self) -> bool {
        self.0.len() == 9
    }

    /// The county a code belongs to (itself for a county).
    pub fn county(&self) -> &str {
        &self.0[..6]
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_numbers_from_the_standard() {
        // GB 11643-1999 §8 examples.
        assert!(IdNo::parse("11010519491231002X").is_ok());
        assert!(IdNo::parse("440524188001010014").is_ok());
        assert_eq!(IdNo::parse("110105194912310021"), Err(IdError::Check { found: '1', expected: 'X' }));
        // Month 13, with the check character that makes the sum right.
        assert!(matches!(IdNo::parse("110105194913310021"), Err(IdError::Shape(_))));
        assert!(matches!(IdNo::parse("1101051949123100"), Err(IdError::Length { .. })));
    }

    #[test]
    fn credit_codes_published_by_their_holders() {
        // Codes printed on public business licences.
        assert!(Uscc::parse("914403001922038216").is_ok()); // Huawei Technologies
        assert!(Uscc::parse("91110108551385082Q").is_ok()); // Xiaomi
        assert!(Uscc::parse("91330100799655058B").is_ok()); // Alibaba (China)
        assert!(matches!(Uscc::parse("914403001922038217"), Err(IdError::Check { .. })));
        assert!(matches!(Uscc::parse("91440300192203821I"), Err(IdError::Char { pos: 18, .. })));
    }

    #[test]
    fn masking_keeps_region_and_check() {
        assert_eq!(mask_id_no("11010519491231002X"), "110105***********X");
    }

    #[test]
    fn id_numbers_are_masked_inside_text_and_json() {
        let text = "party 11010519491231002X paid; case XJ-1 seq 123456789012345678 id 440524188001010014.";
        assert_eq!(
            mask_id_numbers(text),
            "party 110105***********X paid; case XJ-1 seq 123456789012345678 id 440524***********4."
        );
        assert!(matches!(mask_id_numbers("nothing here"), std::borrow::Cow::Borrowed(_)));
        // Part of a longer code is not an ID number.
        assert_eq!(mask_id_numbers("A11010519491231002X"), "A11010519491231002X");
        let mut v = serde_json::json!({ "party": { "id_no": "11010519491231002X" }, "list": ["440524188001010014"] });
        mask_id_numbers_in(&mut v);
        assert_eq!(v["party"]["id_no"], "110105***********X");
        assert_eq!(v["list"][0], "440524***********4");
    }

    #[test]
    fn region_codes() {
        assert!(RegionCode::parse("990101").is_ok());
        let town = RegionCode::parse("990101101").unwrap();
        assert!(town.is_town());
        assert_eq!(town.county(), "990101");
        assert!(RegionCode::parse("9901011").is_err());
        assert!(RegionCode::parse("99010a").is_err());
    }
}
