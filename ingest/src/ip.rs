//! Whether the request's address becomes an event's `context.ip`, and in what form. A client's
//! own `context.ip` is always kept as sent: these rules are only about the peer address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// When to stamp the peer address on an event that has no `context.ip`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureIp {
    /// As Segment does: for every event except those of server-side libraries
    /// (`context.library.name` such as `analytics-node` or `analytics-python`), whose peer is
    /// the backend host, not the user.
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IpPolicy {
    pub capture: CaptureIp,
    /// Store the peer address with its last IPv4 octet, or last 80 bits of IPv6, zeroed.
    pub anonymize: bool,
}

/// Segment's server-side libraries, by the `context.library.name` they send. Segment documents
/// that only its client libraries (analytics.js, iOS, Android) have the IP collected.
const SERVER_LIBRARIES: [&str; 9] = [
    "analytics-node",
    "@segment/analytics-node",
    "analytics-python",
    "analytics-ruby",
    "analytics-go",
    "analytics-java",
    "analytics-php",
    "analytics-dotnet",
    "analytics.NET",
];

impl IpPolicy {
    pub fn captures(&self, library_name: Option<&str>) -> bool {
        match self.capture {
            CaptureIp::Always => true,
            CaptureIp::Never => false,
            CaptureIp::Auto => !library_name.is_some_and(|name| SERVER_LIBRARIES.contains(&name)),
        }
    }
}

/// The address with its host part zeroed; `None` when the text is not an address (a forwarded
/// header may hold anything), which is then not stored at all.
pub fn anonymized(ip: &str) -> Option<String> {
    Some(match ip.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            Ipv4Addr::new(a, b, c, 0).to_string()
        }
        IpAddr::V6(v6) => Ipv6Addr::from(u128::from(v6) & !((1u128 << 80) - 1)).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymizing_zeroes_the_host_part() {
        assert_eq!(anonymized("203.0.113.77").as_deref(), Some("203.0.113.0"));
        assert_eq!(
            anonymized("2001:db8:85a3:1234:5678:8a2e:370:7334").as_deref(),
            Some("2001:db8:85a3::")
        );
        assert_eq!(anonymized("not an address"), None);
    }

    #[test]
    fn auto_skips_server_side_libraries_only() {
        let auto = IpPolicy::default();
        assert!(auto.captures(None));
        assert!(auto.captures(Some("analytics.js")));
        assert!(!auto.captures(Some("analytics-python")));
        let never = IpPolicy {
            capture: CaptureIp::Never,
            anonymize: false,
        };
        assert!(!never.captures(Some("analytics.js")));
        let always = IpPolicy {
            capture: CaptureIp::Always,
            anonymize: false,
        };
        assert!(always.captures(Some("analytics-node")));
    }
}
