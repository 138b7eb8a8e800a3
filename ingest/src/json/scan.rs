//! The storability check as one pass over the bytes of text serde_json has already validated.
//! Only what could be unstorable is decoded: strings holding `\u` (for lone surrogates), keys
//! holding escapes (to compare them decoded) and numbers that could exceed a double.

use std::borrow::Cow;

use super::{MAX_DEPTH, PAIRWISE_KEYS, Unkeepable};

pub(super) const SURROGATE: &str =
    "a string holds a lone surrogate escape (\\ud800-\\udfff without its pair)";
pub(super) const RANGE: &str = "a number is beyond the range of a double (about 1.8e308)";

/// Integer digits a number without an exponent may have and still be below 1e308, so within
/// a double's range whatever its digits.
const SAFE_INTEGER_DIGITS: usize = 308;

/// Checks `text` (valid JSON) as [`super::check`] documents, leaving its top-level keys, decoded,
/// in `keys`.
pub fn check<'a>(text: &'a str, keys: &mut Vec<Cow<'a, str>>) -> Result<(), Unkeepable> {
    keys.clear();
    let mut scanner = Scanner { text, at: 0, keys };
    scanner.value(0, true)
}

pub(super) fn deep() -> Unkeepable {
    Unkeepable(format!("it is nested deeper than {MAX_DEPTH} levels"))
}

pub(super) fn twice(key: &str) -> Unkeepable {
    Unkeepable(format!("the key {key:?} appears twice in one object"))
}

fn invalid() -> Unkeepable {
    Unkeepable("is not valid JSON".to_owned())
}

struct Scanner<'a, 'k> {
    text: &'a str,
    at: usize,
    keys: &'k mut Vec<Cow<'a, str>>,
}

/// A string's text between its quotes, and which kinds of escape it holds.
struct Quoted<'a> {
    raw: &'a str,
    escaped: bool,
    unicode_escaped: bool,
}

impl<'a> Scanner<'a, '_> {
    /// The byte at the cursor; 0 past the end (never a byte of JSON text).
    fn byte(&self) -> u8 {
        self.text.as_bytes().get(self.at).copied().unwrap_or(0)
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.byte(), b' ' | b'\t' | b'\n' | b'\r') {
            self.at += 1;
        }
    }

    /// Consumes `expected` after optional whitespace.
    fn expect(&mut self, expected: u8) -> Result<(), Unkeepable> {
        self.skip_whitespace();
        if self.byte() != expected {
            return Err(invalid());
        }
        self.at += 1;
        Ok(())
    }

    fn value(&mut self, depth: usize, top: bool) -> Result<(), Unkeepable> {
        self.skip_whitespace();
        match self.byte() {
            b'{' => self.object(depth + 1, top),
            b'[' => self.array(depth + 1),
            b'"' => {
                let quoted = self.string()?;
                if quoted.unicode_escaped {
                    unescape(quoted.raw)?;
                }
                Ok(())
            }
            b't' | b'n' => self.literal(4),
            b'f' => self.literal(5),
            _ => self.number(),
        }
    }

    fn literal(&mut self, len: usize) -> Result<(), Unkeepable> {
        self.at += len;
        if self.at > self.text.len() {
            return Err(invalid());
        }
        Ok(())
    }

    fn object(&mut self, depth: usize, top: bool) -> Result<(), Unkeepable> {
        if depth > MAX_DEPTH {
            return Err(deep());
        }
        self.at += 1;
        let start = self.keys.len();
        self.skip_whitespace();
        if self.byte() == b'}' {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.skip_whitespace();
            if self.byte() != b'"' {
                return Err(invalid());
            }
            let quoted = self.string()?;
            let key = if quoted.escaped {
                Cow::Owned(unescape(quoted.raw)?)
            } else {
                Cow::Borrowed(quoted.raw)
            };
            let own = &self.keys[start..];
            if own.len() < PAIRWISE_KEYS && own.contains(&key) {
                return Err(twice(&key));
            }
            self.keys.push(key);
            self.expect(b':')?;
            self.value(depth, false)?;
            self.skip_whitespace();
            match self.byte() {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    break;
                }
                _ => return Err(invalid()),
            }
        }
        let own = &self.keys[start..];
        if own.len() > PAIRWISE_KEYS {
            // Sorted aside: the top level's keys stay in order for `Defaults`.
            let mut sorted: Vec<&Cow<str>> = own.iter().collect();
            sorted.sort_unstable();
            if let Some(pair) = sorted.windows(2).find(|pair| pair[0] == pair[1]) {
                return Err(twice(pair[0]));
            }
        }
        if !top {
            self.keys.truncate(start);
        }
        Ok(())
    }

    fn array(&mut self, depth: usize) -> Result<(), Unkeepable> {
        if depth > MAX_DEPTH {
            return Err(deep());
        }
        self.at += 1;
        self.skip_whitespace();
        if self.byte() == b']' {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.value(depth, false)?;
            self.skip_whitespace();
            match self.byte() {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(invalid()),
            }
        }
    }

    /// With the cursor on an opening quote: moves past the closing one.
    fn string(&mut self) -> Result<Quoted<'a>, Unkeepable> {
        let bytes = self.text.as_bytes();
        let start = self.at + 1;
        let mut at = start;
        let mut escaped = false;
        let mut unicode_escaped = false;
        loop {
            let rest = bytes.get(at..).ok_or_else(invalid)?;
            let found = rest
                .iter()
                .position(|&b| b == b'"' || b == b'\\')
                .ok_or_else(invalid)?;
            at += found;
            if bytes[at] == b'"' {
                break;
            }
            escaped = true;
            unicode_escaped |= bytes.get(at + 1) == Some(&b'u');
            at += 2;
        }
        self.at = at + 1;
        let raw = self.text.get(start..at).ok_or_else(invalid)?;
        Ok(Quoted {
            raw,
            escaped,
            unicode_escaped,
        })
    }

    fn number(&mut self) -> Result<(), Unkeepable> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        let mut integer_digits = 0;
        let mut in_integer = true;
        let mut exponent = false;
        while let Some(&b) = bytes.get(self.at) {
            match b {
                b'0'..=b'9' => integer_digits += usize::from(in_integer),
                b'-' | b'+' => {}
                b'.' => in_integer = false,
                b'e' | b'E' => {
                    in_integer = false;
                    exponent = true;
                }
                _ => break,
            }
            self.at += 1;
        }
        if self.at == start {
            return Err(invalid());
        }
        if exponent || integer_digits > SAFE_INTEGER_DIGITS {
            // Rare: read the way every reader of the stored text will, as a double.
            let number = self.text.get(start..self.at).ok_or_else(invalid)?;
            if serde_json::from_str::<f64>(number).is_err() {
                return Err(Unkeepable(RANGE.to_owned()));
            }
        }
        Ok(())
    }
}

/// Decodes a string's escapes, refusing a surrogate escape without its pair.
fn unescape(raw: &str) -> Result<String, Unkeepable> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.char_indices();
    let lone = || Unkeepable(SURROGATE.to_owned());
    while let Some((_, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let escape = chars.next().map(|(_, c)| c).ok_or_else(invalid)?;
        let decoded = match escape {
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let first = hex4(raw, &mut chars)?;
                match first {
                    0xDC00..=0xDFFF => return Err(lone()),
                    0xD800..=0xDBFF => {
                        let backslash = chars.next().map(|(_, c)| c);
                        let u = chars.next().map(|(_, c)| c);
                        if backslash != Some('\\') || u != Some('u') {
                            return Err(lone());
                        }
                        let second = hex4(raw, &mut chars)?;
                        if !(0xDC00..=0xDFFF).contains(&second) {
                            return Err(lone());
                        }
                        let code = 0x1_0000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                        char::from_u32(code).ok_or_else(lone)?
                    }
                    _ => char::from_u32(first).ok_or_else(lone)?,
                }
            }
            other => other,
        };
        out.push(decoded);
    }
    Ok(out)
}

/// The four hex digits of a `\u` escape, as a code unit.
fn hex4(raw: &str, chars: &mut std::str::CharIndices) -> Result<u32, Unkeepable> {
    let (from, _) = chars.next().ok_or_else(invalid)?;
    for _ in 0..3 {
        chars.next().ok_or_else(invalid)?;
    }
    let digits = raw.get(from..from + 4).ok_or_else(invalid)?;
    u32::from_str_radix(digits, 16).map_err(|_| invalid())
}
