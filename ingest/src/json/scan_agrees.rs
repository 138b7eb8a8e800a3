//! The byte scanner against serde_json's walk, on generated objects that hit each rule's edges.

use std::borrow::Cow;

use super::{scan, serde_check};

/// Few distinct keys, some spelled with escapes, so objects often repeat one.
pub(crate) const KEYS: &[&str] = &[
    "a",
    "b",
    "\\u0062",
    "ip",
    "c\\n",
    "\\ud83d\\ude00",
    "😀",
    "\\ud800",
    "k\\/",
    "\\u00e9",
    "é",
];
pub(crate) const STRINGS: &[&str] = &[
    "",
    "x",
    "\\\"",
    "\\\\",
    "\\u0041",
    "\\ud800",
    "\\udc00",
    "\\ud800\\u0041",
    "\\ud800\\ud800",
    "\\ud83d\\ude00",
    "\\ud83d\\ude00\\udc00",
    "ü\\t",
    "\\ud800x",
    "\\ud800\\n",
];
const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1.5",
    "1e308",
    "1.7976931348623157e308",
    "1.7976931348623159e308",
    "1e309",
    "-1e400",
    "1E+2",
    "5e-324",
    "1e-400",
    "123456789012345678901234567890",
    "0.1e1",
    "18446744073709551616",
    "-9223372036854775809",
];

pub(crate) fn pick<'a>(rng: &mut fastrand::Rng, from: &[&'a str]) -> &'a str {
    from[rng.usize(..from.len())]
}

pub(crate) fn whitespace(rng: &mut fastrand::Rng, out: &mut String) {
    if rng.u8(..4) == 0 {
        out.push_str(pick(rng, &[" ", "\n", "\t ", "\r\n  "]));
    }
}

pub(crate) fn value(rng: &mut fastrand::Rng, depth: usize, out: &mut String) {
    whitespace(rng, out);
    // Past a few levels, mostly straight chains, to reach the depth limit now and then.
    let leaf = depth > 4 && rng.u8(..8) != 0;
    match if leaf { rng.u8(..3) } else { rng.u8(..6) } {
        0 => {
            out.push('"');
            out.push_str(pick(rng, STRINGS));
            out.push('"');
        }
        // Integers around 1e308, a double's limit, in digits alone.
        1 if rng.u8(..8) == 0 => {
            out.push('1');
            out.push_str(&"0".repeat(rng.usize(305..312)));
        }
        1 => out.push_str(pick(rng, NUMBERS)),
        2 => out.push_str(pick(rng, &["true", "false", "null"])),
        3 => {
            let chain = rng.usize(..140);
            if rng.u8(..4) == 0 {
                out.push_str(&"[".repeat(chain));
                out.push('1');
                out.push_str(&"]".repeat(chain));
            } else {
                out.push_str("[]");
            }
        }
        4 => {
            out.push('[');
            for i in 0..rng.usize(..4) {
                if i > 0 {
                    out.push(',');
                }
                value(rng, depth + 1, out);
            }
            out.push(']');
        }
        _ => object(rng, depth + 1, out),
    }
    whitespace(rng, out);
}

fn object(rng: &mut fastrand::Rng, depth: usize, out: &mut String) {
    out.push('{');
    // Now and then more keys than are compared pairwise.
    let len = if rng.u8(..10) == 0 {
        rng.usize(15..30)
    } else {
        rng.usize(..5)
    };
    for i in 0..len {
        if i > 0 {
            out.push(',');
        }
        whitespace(rng, out);
        out.push('"');
        if len > 8 && rng.u8(..6) != 0 {
            out.push_str(&format!("k{i}"));
        } else {
            out.push_str(pick(rng, KEYS));
        }
        out.push('"');
        whitespace(rng, out);
        out.push(':');
        value(rng, depth, out);
    }
    whitespace(rng, out);
    out.push('}');
}

fn outcome(
    check: for<'a> fn(&'a str, &mut Vec<Cow<'a, str>>) -> Result<(), super::Unkeepable>,
    text: &str,
) -> Result<Vec<String>, String> {
    let mut keys = Vec::new();
    check(text, &mut keys).map_err(|e| e.to_string())?;
    Ok(keys.into_iter().map(Cow::into_owned).collect())
}

#[test]
fn scanner_agrees_with_serde_json_on_generated_objects() {
    let (mut kept, mut refused) = (0, 0);
    for seed in 0..20_000 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut text = String::new();
        object(&mut rng, 1, &mut text);
        // Only valid JSON reaches the check: serde_json captured it as a RawValue.
        assert!(
            serde_json::from_str::<&serde_json::value::RawValue>(&text).is_ok(),
            "{text}"
        );
        let expected = outcome(serde_check::check, &text);
        assert_eq!(outcome(scan::check, &text), expected, "seed {seed}: {text}");
        if expected.is_ok() {
            kept += 1
        } else {
            refused += 1
        }
    }
    // Both outcomes are well represented, or the agreement says little.
    assert!(
        kept > 2_000 && refused > 2_000,
        "kept {kept}, refused {refused}"
    );
}
