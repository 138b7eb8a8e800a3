//! messageIds the generator can recognise again when it reads the Parquet output.
//!
//! Every event gets `<run>-<tag><seq>` with `seq` in base 36: short enough for the 50-byte
//! payload case, unique per run and scenario, and parsable back to a dense integer so the
//! loss ledger is a plain vector instead of a set of strings.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug)]
pub struct Ids {
    prefix: String,
    next: AtomicU64,
}

impl Ids {
    pub fn new(run: &str, tag: char) -> Self {
        Self {
            prefix: format!("{run}-{tag}"),
            next: AtomicU64::new(0),
        }
    }

    /// Reserves `n` consecutive sequence numbers and returns the first.
    pub fn reserve(&self, n: u64) -> u64 {
        self.next.fetch_add(n, Ordering::Relaxed)
    }

    /// What every id of this run and scenario starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn issued(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }

    pub fn message_id(&self, seq: u64) -> String {
        let mut s = self.prefix.clone();
        push_base36(&mut s, seq);
        s
    }

    /// `None` for ids of other runs or scenarios, which share the sink root.
    pub fn parse(&self, id: &str) -> Option<u64> {
        let digits = id.strip_prefix(self.prefix.as_str())?;
        if digits.is_empty() || digits.len() > 13 {
            return None;
        }
        u64::from_str_radix(digits, 36).ok()
    }
}

fn push_base36(s: &mut String, mut v: u64) {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut buf = [0u8; 13];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = DIGITS[(v % 36) as usize];
        v /= 36;
        if v == 0 {
            break;
        }
    }
    s.extend(buf[i..].iter().map(|&b| b as char));
}

/// A run id from the wall clock: distinct across runs that share a sink directory, and it sorts
/// by time when someone lists the output by hand.
pub fn new_run_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let mut s = String::new();
    push_base36(&mut s, secs % 36u64.pow(6));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_ignore_foreign_prefixes() {
        let ids = Ids::new("r1", 'b');
        for seq in [0, 1, 35, 36, 1_000_000, u64::MAX] {
            let id = ids.message_id(seq);
            assert_eq!(ids.parse(&id), Some(seq), "{id}");
        }
        assert_eq!(ids.message_id(36), "r1-b10");
        assert_eq!(ids.parse("r1-c10"), None);
        assert_eq!(ids.parse("r2-b10"), None);
        assert_eq!(ids.parse("r1-b"), None);
        assert_eq!(ids.parse("r1-b!"), None);
    }

    #[test]
    fn reservations_are_consecutive() {
        let ids = Ids::new("r", 'x');
        assert_eq!(ids.reserve(10), 0);
        assert_eq!(ids.reserve(1), 10);
        assert_eq!(ids.issued(), 11);
    }
}
