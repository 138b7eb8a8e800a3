//! Realistic traffic: 60/30/10 track/identify/page with the properties and context a browser
//! SDK sends, half single calls and half `/v1/batch` sends of 2..=100 events. Built before the
//! timed phase ([`Prepared`]), so sending costs the generator a copy, not the building.

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use super::{Prepared, Route, Shape};
use crate::ids::Ids;

const TRACK_NAMES: &[&str] = &[
    "Product Viewed",
    "Product Added",
    "Checkout Started",
    "Order Completed",
    "Signed Up",
    "Video Played",
    "Search Performed",
];
const PAGES: &[(&str, &str)] = &[
    ("/", "Home"),
    ("/pricing", "Pricing"),
    ("/docs/getting-started", "Getting started"),
    ("/blog/2024/release-notes", "Release notes"),
    ("/cart", "Cart"),
];
const CATEGORIES: &[&str] = &["books", "games", "garden", "tools"];
const LOCALES: &[&str] = &["en-US", "de-DE", "fr-FR", "nl-NL"];
const PLANS: &[&str] = &["free", "team", "business", "enterprise"];
const MAX_BATCH: usize = 100;

pub struct Realistic {
    /// Size of the user pool; with the default 50 000 nearly every batch has distinct users.
    pub users: u64,
}

impl Realistic {
    /// One event without its `messageId`, which [`Prepared`] stamps at send time.
    pub fn event(&self, rng: &mut fastrand::Rng) -> Value {
        let user = rng.u64(0..self.users);
        let roll = rng.u8(0..10);
        let mut e = match roll {
            0..=5 => track(rng),
            6..=8 => identify(rng, user),
            _ => page(rng),
        };
        // A fifth of the traffic is from visitors who have not logged in yet.
        if roll > 5 || rng.u8(0..5) != 0 {
            e["userId"] = json!(format!("user_{user:06}"));
        }
        e["anonymousId"] = json!(format!(
            "anon-{:016x}",
            user.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ));
        e["timestamp"] = json!(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true));
        e["context"] = context(rng, user);
        e
    }
}

impl Realistic {
    pub fn shape(&self, rng: &mut fastrand::Rng) -> Shape {
        if rng.bool() {
            return Shape {
                route: Route::Collect,
                events: vec![self.event(rng)],
                batch: false,
            };
        }
        let n = rng.usize(2..=MAX_BATCH);
        Shape {
            route: Route::Segment,
            events: (0..n).map(|_| self.event(rng)).collect(),
            batch: true,
        }
    }

    /// `requests` request bodies of this mix, ready to be stamped with `ids`' messageIds.
    pub fn prepare(&self, seed: u64, requests: usize, ids: &Ids) -> Prepared {
        let mut rng = fastrand::Rng::with_seed(seed);
        Prepared::new((0..requests).map(|_| self.shape(&mut rng)), ids)
    }
}

fn track(rng: &mut fastrand::Rng) -> Value {
    let name = TRACK_NAMES[rng.usize(..TRACK_NAMES.len())];
    let cents = rng.u32(199..49_999);
    json!({
        "type": "track",
        "event": name,
        "properties": {
            "product_id": format!("sku-{:05}", rng.u32(0..20_000)),
            "category": CATEGORIES[rng.usize(..CATEGORIES.len())],
            "price": f64::from(cents) / 100.0,
            "quantity": rng.u8(1..4),
            "currency": "EUR",
            "coupon": if rng.u8(0..4) == 0 { Value::from("SPRING24") } else { Value::Null },
        }
    })
}

fn identify(rng: &mut fastrand::Rng, user: u64) -> Value {
    json!({
        "type": "identify",
        "traits": {
            "email": format!("user{user}@example.com"),
            "name": format!("User {user}"),
            "plan": PLANS[rng.usize(..PLANS.len())],
            "logins": rng.u16(1..500),
            "createdAt": "2023-11-05T08:15:30.000Z",
        }
    })
}

fn page(rng: &mut fastrand::Rng) -> Value {
    let (path, title) = PAGES[rng.usize(..PAGES.len())];
    json!({
        "type": "page",
        "name": title,
        "properties": {
            "path": path,
            "url": format!("https://shop.example.com{path}"),
            "title": title,
            "referrer": "https://www.example.org/search?q=eventkit",
        }
    })
}

fn context(rng: &mut fastrand::Rng, user: u64) -> Value {
    json!({
        "library": {"name": "analytics.js", "version": "4.1.0"},
        "ip": format!("10.{}.{}.{}", user % 256, (user / 256) % 256, rng.u8(1..255)),
        "locale": LOCALES[rng.usize(..LOCALES.len())],
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
        "page": {"path": "/", "url": "https://shop.example.com/"},
        "campaign": if rng.u8(0..3) == 0 {
            json!({"name": "spring", "source": "newsletter", "medium": "email"})
        } else {
            Value::Null
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::workload::Workload as _;

    #[test]
    fn mix_is_roughly_sixty_thirty_ten_and_every_event_is_identified() {
        let w = Realistic { users: 1_000 };
        let mut rng = fastrand::Rng::with_seed(7);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..10_000 {
            let e = w.event(&mut rng);
            *counts
                .entry(e["type"].as_str().unwrap_or("?").to_owned())
                .or_insert(0) += 1;
            assert!(e["anonymousId"].is_string());
        }
        let share = |t: &str| f64::from(counts.get(t).copied().unwrap_or(0)) / 10_000.0;
        assert!((share("track") - 0.6).abs() < 0.03, "{counts:?}");
        assert!((share("identify") - 0.3).abs() < 0.03, "{counts:?}");
        assert!((share("page") - 0.1).abs() < 0.03, "{counts:?}");
    }

    #[test]
    fn half_the_prepared_requests_are_segment_batches_with_fresh_ids() {
        let ids = Ids::new("r", 'r');
        let prepared = Realistic { users: 10 }.prepare(3, 400, &ids);
        assert_eq!(prepared.len(), 400);
        let mut rng = fastrand::Rng::with_seed(3);
        let reqs: Vec<_> = (0..400).map(|_| prepared.next(&mut rng, &ids)).collect();
        let batches = reqs.iter().filter(|r| r.route == Route::Segment).count();
        assert!((150..250).contains(&batches), "{batches}");
        assert!(reqs.iter().all(|r| r.events as usize <= MAX_BATCH));
        let total: u64 = reqs.iter().map(|r| u64::from(r.events)).sum();
        assert_eq!(total, ids.issued());
        let body: Value = serde_json::from_slice(&reqs[0].body).unwrap();
        let first = body.get("batch").map_or(&body, |b| &b[0]);
        assert_eq!(ids.parse(first["messageId"].as_str().unwrap()), Some(0));
        assert!(first["messageId"].as_str().is_some_and(|m| m.len() <= 100));
    }
}
