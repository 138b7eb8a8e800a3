//! Where a request comes from, as the text that goes into `context.ip`.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;

/// The first `X-Forwarded-For` hop when configured to trust the proxy, else the peer address.
pub fn client_ip<'a>(
    parts: &'a Parts,
    trust_forwarded_for: bool,
    peer: &'a PeerText,
) -> Option<&'a str> {
    if trust_forwarded_for
        && let Some(first) = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    {
        return Some(first);
    }
    peer.as_str()
}

/// The longest text of an address: an IPv4-mapped IPv6 one.
const ADDRESS_TEXT_BYTES: usize = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255".len();

/// The peer's address as text, kept on the stack: every request needs it, and it is copied into
/// the event anyway.
pub struct PeerText {
    bytes: [u8; ADDRESS_TEXT_BYTES],
    len: usize,
}

impl PeerText {
    pub fn of(parts: &Parts) -> Self {
        let mut text = Self::empty();
        if let Some(ConnectInfo(addr)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            text.write(addr.ip());
        }
        text
    }

    fn empty() -> Self {
        Self {
            bytes: [0; ADDRESS_TEXT_BYTES],
            len: 0,
        }
    }

    fn as_str(&self) -> Option<&str> {
        let text = std::str::from_utf8(self.bytes.get(..self.len)?).ok()?;
        (!text.is_empty()).then_some(text)
    }

    fn write(&mut self, ip: IpAddr) {
        let mut rest = &mut self.bytes[..];
        if write!(rest, "{ip}").is_ok() {
            self.len = ADDRESS_TEXT_BYTES - rest.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_read_as_the_standard_formatter_writes_them() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.200.9.255",
            "192.168.100.20",
            "::1",
            "2001:db8::7",
            "::ffff:255.255.255.255",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let Ok(parsed) = ip.parse::<IpAddr>() else {
                panic!("{ip}")
            };
            let mut text = PeerText::empty();
            text.write(parsed);
            assert_eq!(text.as_str(), Some(parsed.to_string().as_str()));
        }
    }
}
