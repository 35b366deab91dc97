//! Text from outside made safe to show or to put in a header: one way of
//! writing a control character, shared by every place that does it (NATS
//! headers, API answers, masked reasons, receivers' error pages).

use std::fmt::Write;

/// Appends `c` to `out`, a control character (CR, LF, NUL, ESC…) as the
/// visible escape `\u{XX}` so that nothing is silently dropped.
pub fn push_visible(out: &mut String, c: char) {
    if c.is_control() {
        let _ = write!(out, "\\u{{{:02X}}}", c as u32);
    } else {
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::push_visible;

    #[test]
    fn control_characters_become_escapes() {
        let mut out = String::new();
        for c in "a\r\n\0\u{1b}断".chars() {
            push_visible(&mut out, c);
        }
        assert_eq!(out, "a\\u{0D}\\u{0A}\\u{00}\\u{1B}断");
    }
}
