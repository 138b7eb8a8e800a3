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

/// A frame on the nesting stack that is an array (objects hold where their keys start).
const ARRAY: usize = usize::MAX;

/// Checks `text` (a valid JSON object) as [`super::check`] documents, leaving its top-level
/// keys, decoded, in `keys`.
pub fn check<'a>(text: &'a str, keys: &mut Vec<Cow<'a, str>>) -> Result<(), Unkeepable> {
    keys.clear();
    let end = object_end(text, skip_whitespace(text.as_bytes(), 0), keys)?;
    if skip_whitespace(text.as_bytes(), end) != text.len() {
        return Err(invalid());
    }
    Ok(())
}

/// With `at` on the `{` of an object in valid JSON text: where the object ends, once checked as
/// [`super::check`] documents. Its top-level keys, decoded, are appended to `keys`. One loop
/// over the bytes: structure is all a valid text's bytes need to be read for, bar the rare
/// string with `\u` and number that could exceed a double.
pub fn object_end<'a>(
    text: &'a str,
    mut at: usize,
    keys: &mut Vec<Cow<'a, str>>,
) -> Result<usize, Unkeepable> {
    let bytes = text.as_bytes();
    if bytes.get(at) != Some(&b'{') {
        return Err(invalid());
    }
    // Where each open object's keys start in `keys`, or ARRAY.
    let mut frames = [0usize; MAX_DEPTH];
    let mut depth = 0;
    let mut in_object = false;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'{' | b'[' => {
                let frame = frames.get_mut(depth).ok_or_else(deep)?;
                *frame = if byte == b'{' { keys.len() } else { ARRAY };
                in_object = byte == b'{';
                depth += 1;
                at += 1;
                // An object's first string is a key.
                if in_object {
                    at = key(text, skip_whitespace(bytes, at), keys, frames[depth - 1])?;
                }
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1).ok_or_else(invalid)?;
                let start = frames[depth];
                if byte == b'}' {
                    no_twice_sorted(keys.get(start..).unwrap_or_default())?;
                    if depth > 0 {
                        keys.truncate(start);
                    }
                }
                at += 1;
                if depth == 0 {
                    return Ok(at);
                }
                in_object = frames[depth - 1] != ARRAY;
            }
            b',' => {
                at += 1;
                if in_object {
                    at = key(text, skip_whitespace(bytes, at), keys, frames[depth - 1])?;
                }
            }
            b'"' => {
                let (end, _, unicode_escaped) = string_end(bytes, at)?;
                if unicode_escaped {
                    unescape(text.get(at + 1..end).ok_or_else(invalid)?)?;
                }
                at = end + 1;
            }
            b'-' | b'0'..=b'9' => at = number(text, at)?,
            // Whitespace, `:`, the letters of true, false and null.
            _ => at += 1,
        }
    }
    Err(invalid())
}

/// With `at` on the first byte of a value in valid JSON text: where the value ends, read for
/// its structure only.
pub fn value_end(bytes: &[u8], mut at: usize) -> Result<usize, Unkeepable> {
    let mut depth = 0usize;
    loop {
        match bytes.get(at).ok_or_else(invalid)? {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.checked_sub(1).ok_or_else(invalid)?,
            b'"' => at = string_end(bytes, at)?.0,
            b',' | b':' | b' ' | b'\t' | b'\n' | b'\r' => {}
            // A number or literal: up to the next delimiter.
            _ => {
                while !matches!(
                    bytes.get(at + 1),
                    None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                ) {
                    at += 1;
                }
            }
        }
        at += 1;
        if depth == 0 {
            return Ok(at);
        }
    }
}

/// With `at` on a string's opening quote in valid JSON text: the string, decoded, and where
/// the text goes on after it.
pub fn string(text: &str, at: usize) -> Result<(Cow<'_, str>, usize), Unkeepable> {
    let (end, escaped, _) = string_end(text.as_bytes(), at)?;
    let raw = text.get(at + 1..end).ok_or_else(invalid)?;
    let decoded = if escaped {
        Cow::Owned(unescape(raw)?)
    } else {
        Cow::Borrowed(raw)
    };
    Ok((decoded, end + 1))
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

pub fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while matches!(bytes.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// With `at` on a key's opening quote (or the `}` of an empty object): records the key, refusing
/// one the object already has, and returns where the text goes on.
fn key<'a>(
    text: &'a str,
    at: usize,
    keys: &mut Vec<Cow<'a, str>>,
    start: usize,
) -> Result<usize, Unkeepable> {
    if text.as_bytes().get(at) != Some(&b'"') {
        return Ok(at);
    }
    let (key, after) = string(text, at)?;
    let own = keys.get(start..).unwrap_or_default();
    if own.len() < PAIRWISE_KEYS && own.contains(&key) {
        return Err(twice(&key));
    }
    keys.push(key);
    Ok(after)
}

/// An object's keys past the pairwise limit, checked once it is closed.
fn no_twice_sorted(own: &[Cow<str>]) -> Result<(), Unkeepable> {
    if own.len() > PAIRWISE_KEYS {
        // Sorted aside: the top level's keys stay in order for `Defaults`.
        let mut sorted: Vec<&Cow<str>> = own.iter().collect();
        sorted.sort_unstable();
        if let Some(pair) = sorted.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(twice(pair[0]));
        }
    }
    Ok(())
}

/// With `at` on an opening quote: the closing quote's index, and whether the string holds
/// escapes, and `\u` escapes.
fn string_end(bytes: &[u8], at: usize) -> Result<(usize, bool, bool), Unkeepable> {
    let mut end = at + 1;
    let (mut escaped, mut unicode_escaped) = (false, false);
    loop {
        match bytes.get(end) {
            Some(b'"') => return Ok((end, escaped, unicode_escaped)),
            Some(b'\\') => {
                escaped = true;
                unicode_escaped |= bytes.get(end + 1) == Some(&b'u');
                end += 2;
            }
            Some(_) => end += 1,
            None => return Err(invalid()),
        }
    }
}

/// With `at` on a number's first byte: where it ends, refusing one beyond a double.
fn number(text: &str, at: usize) -> Result<usize, Unkeepable> {
    let bytes = text.as_bytes();
    let mut end = at;
    let mut integer_digits = 0;
    let mut in_integer = true;
    let mut exponent = false;
    while let Some(&b) = bytes.get(end) {
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
        end += 1;
    }
    if exponent || integer_digits > SAFE_INTEGER_DIGITS {
        // Rare: read the way every reader of the stored text will, as a double.
        let number = text.get(at..end).ok_or_else(invalid)?;
        if serde_json::from_str::<f64>(number).is_err() {
            return Err(Unkeepable(RANGE.to_owned()));
        }
    }
    Ok(end)
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
