//! Generated valid events (every call type; random Unicode, escapes and whitespace; big and odd
//! numbers; nesting; batch-level defaults) go in over HTTP, and what pyarrow reads back from the
//! Parquet files must equal what was sent, field by field. `properties` and `traits` must come
//! back byte for byte; `context` and `integrations` (which gain the batch's keys and `ip`) are
//! compared key by key in order, with numbers as exact decimals.

use serde_json::{Value, json};

use crate::common::{TestServer, python};

/// Cases (requests) per run; each holds 1-4 events.
pub const CASES: u64 = 64;

const CHECK: &str = r#"
import datetime, decimal, json, sys
import pyarrow.dataset as ds

def tree(text):
    return json.loads(text, object_pairs_hook=lambda pairs: ("object", pairs), parse_float=decimal.Decimal)

def merged(own, defaults, peer):
    if own is None and defaults is None and peer is None:
        return None
    pairs = list(tree(own)[1]) if own is not None else []
    if defaults is not None:
        keys = {k for k, _ in pairs}
        pairs += [(k, v) for k, v in tree(defaults)[1] if k not in keys]
    if peer is not None and not any(k == "ip" for k, _ in pairs):
        pairs = [("ip", peer)] + pairs
    return ("object", pairs)

def instant(text):
    return None if text is None else datetime.datetime.fromisoformat(text)

def text(value):
    return None if value is None else str(value)

table = ds.dataset(sys.argv[1], format="parquet").to_table()
rows = {r["message_id"]: r for r in table.to_pylist()}
sent = json.load(open(sys.argv[2]))
mismatches = []
for request in sent:
    for raw in request["events"]:
        event = json.loads(raw, parse_int=str, parse_float=str)
        row = rows.get(event["messageId"])
        if row is None:
            mismatches.append(["missing", raw])
            continue
        def raw_of(field):
            # The field's own text: re-found in the sent text by the generator, which wrote it.
            return request["texts"][event["messageId"]].get(field)
        context = merged(raw_of("context"), request.get("context"), "127.0.0.1")
        ip = dict(context[1]).get("ip")
        expected = {
            "type": event["type"], "event": event.get("event"), "name": event.get("name"),
            "category": event.get("category"), "user_id": text(event.get("userId")),
            "anonymous_id": text(event.get("anonymousId")), "group_id": text(event.get("groupId")),
            "previous_id": text(event.get("previousId")),
            "properties": raw_of("properties"), "traits": raw_of("traits"),
            "context": context,
            "integrations": merged(raw_of("integrations"), request.get("integrations"), None),
            "context_ip": ip if isinstance(ip, str) else None,
            "original_timestamp": instant(event.get("timestamp")),
            "sent_at": instant(event.get("sentAt") or request.get("sentAt")),
        }
        got = dict((k, row[k]) for k in expected)
        for k in ("context", "integrations"):
            got[k] = None if got[k] is None else tree(str(got[k]))
        for k in ("properties", "traits"):
            got[k] = text(got[k])
        for k in expected:
            if got[k] != expected[k]:
                mismatches.append([k, repr(expected[k]), repr(got[k]), raw])
print(json.dumps({"rows": table.num_rows, "checked": sum(len(r["events"]) for r in sent),
                  "mismatches": mismatches[:5]}))
"#;

/// Writes random but valid JSON text, recording nothing but the text itself.
struct Gen {
    rng: fastrand::Rng,
}

impl Gen {
    fn space(&mut self, out: &mut String) {
        for _ in 0..self.rng.usize(0..3).saturating_sub(1) {
            out.push([' ', '\n', '\t', '\r'][self.rng.usize(0..4)]);
        }
    }

    /// String content (without quotes), mixing plain and escaped characters.
    fn chars(&mut self, out: &mut String) {
        const PIECES: [&str; 16] = [
            "a",
            "Z",
            "plan",
            " ",
            "é",
            "日本",
            "😀",
            "\u{7f}",
            r"\n",
            r"\t",
            r#"\""#,
            r"\\",
            r"\/",
            r"\u00e9",
            r"\ud83d\ude00",
            r"\u0000",
        ];
        for _ in 0..self.rng.usize(0..6) {
            out.push_str(PIECES[self.rng.usize(0..PIECES.len())]);
        }
    }

    fn string(&mut self, out: &mut String) {
        out.push('"');
        self.chars(out);
        out.push('"');
    }

    fn number(&mut self, out: &mut String) {
        const NUMBERS: [&str; 14] = [
            "0",
            "-0",
            "1e2",
            "1E+2",
            "-1.5e-7",
            "0.1",
            "19.99",
            "123456789012345678901234567890",
            "-98765432109876543210",
            "18446744073709551616",
            "1.7976931348623157e308",
            "5e-324",
            "3.14159265358979323846264338327950288",
            "42",
        ];
        out.push_str(NUMBERS[self.rng.usize(0..NUMBERS.len())]);
    }

    fn value(&mut self, out: &mut String, depth: usize) {
        let kinds = if depth >= 12 { 5 } else { 7 };
        match self.rng.usize(0..kinds) {
            0 => self.string(out),
            1 => self.number(out),
            2 => out.push_str("true"),
            3 => out.push_str("false"),
            4 => out.push_str("null"),
            5 => self.object(out, depth + 1, &[]),
            _ => {
                out.push('[');
                for i in 0..self.rng.usize(0..4) {
                    if i > 0 {
                        out.push(',');
                    }
                    self.space(out);
                    self.value(out, depth + 1);
                    self.space(out);
                }
                out.push(']');
            }
        }
    }

    /// An object whose keys are distinct once decoded (each ends in its own index), with
    /// `extra` members (already written `"key": value` texts) among them.
    fn object(&mut self, out: &mut String, depth: usize, extra: &[&str]) {
        out.push('{');
        let count = self.rng.usize(0..5);
        let mut members: Vec<String> = (0..count)
            .map(|i| {
                let mut member = String::from("\"");
                self.chars(&mut member);
                member.push_str(&format!("#{depth}.{i}\""));
                self.space(&mut member);
                member.push(':');
                self.space(&mut member);
                self.value(&mut member, depth);
                member
            })
            .collect();
        for member in extra {
            members.insert(self.rng.usize(0..=members.len()), (*member).to_owned());
        }
        for (i, member) in members.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            self.space(out);
            out.push_str(member);
            self.space(out);
        }
        out.push('}');
    }

    fn maybe_object(&mut self, shared: &[&str]) -> Option<String> {
        self.rng.bool().then(|| {
            let mut text = String::new();
            // Some keys are shared with the batch's defaults, so "the event's key wins" is tested.
            let extra: Vec<&str> = shared.iter().copied().filter(|_| self.rng.bool()).collect();
            self.object(&mut text, 1, &extra);
            text
        })
    }

    fn timestamp(&mut self) -> String {
        let offset = ["Z", "+05:30", "-08:00", "+00:00"][self.rng.usize(0..4)];
        format!(
            "2026-0{}-1{}T0{}:1{}:2{}.{:06}{offset}",
            self.rng.u8(1..10),
            self.rng.u8(0..10),
            self.rng.u8(0..10),
            self.rng.u8(0..10),
            self.rng.u8(0..10),
            self.rng.u32(0..1_000_000)
        )
    }

    fn id(&mut self) -> String {
        match self.rng.usize(0..3) {
            0 => "123456789012345678901234567890".to_owned(),
            1 => self.rng.u64(..).to_string(),
            _ => {
                let mut id = String::from("\"u");
                self.chars(&mut id);
                id.push('"');
                id
            }
        }
    }
}

/// One request: its body, and per event the free-form fields' texts as written. The sinks'
/// conformance suite sends the same requests.
pub fn request(case: u64) -> (String, Value) {
    let mut g = Gen {
        rng: fastrand::Rng::with_seed(case),
    };
    const SHARED: [&str; 3] = [
        r#""ip":null"#,
        r#""ip":"198.51.100.9""#,
        r#""locale":"fr-CA""#,
    ];
    let shared_context = [SHARED[g.rng.usize(0..2)], SHARED[2]];
    let mut events = Vec::new();
    let mut texts = serde_json::Map::new();
    for i in 0..g.rng.usize(1..5) {
        let kind = ["track", "identify", "page", "screen", "group", "alias"][g.rng.usize(0..6)];
        let message_id = format!("case-{case}-{i}");
        let mut event = format!(
            r#"{{"type":"{kind}","messageId":"{message_id}","userId":{}"#,
            g.id()
        );
        match kind {
            "track" => {
                event.push_str(",\"event\":");
                let mut name = String::from("\"E");
                g.chars(&mut name);
                name.push('"');
                event.push_str(&name);
            }
            "page" | "screen" => event.push_str(r#","name":"Home \u00e9","category":"Docs""#),
            "group" => event.push_str(&format!(",\"groupId\":{}", g.id())),
            "alias" => event.push_str(&format!(",\"previousId\":{}", g.id())),
            _ => {}
        }
        if g.rng.bool() {
            event.push_str(&format!(r#","anonymousId":"a-{i}""#));
        }
        if g.rng.bool() {
            event.push_str(&format!(r#","timestamp":"{}""#, g.timestamp()));
        }
        if g.rng.bool() {
            event.push_str(&format!(r#","sentAt":"{}""#, g.timestamp()));
        }
        let mut fields = serde_json::Map::new();
        for (field, shared) in [
            ("properties", &[][..]),
            ("traits", &[][..]),
            ("context", &shared_context[..]),
            ("integrations", &[r#""All":false"#][..]),
        ] {
            if let Some(text) = g.maybe_object(shared) {
                event.push_str(&format!(",\"{field}\":"));
                g.space(&mut event);
                event.push_str(&text);
                fields.insert(field.to_owned(), Value::String(text));
            }
        }
        event.push('}');
        events.push(event);
        texts.insert(message_id, Value::Object(fields));
    }
    let mut body = format!("{{\"batch\":[{}]", events.join(","));
    let mut sent = json!({"events": events, "texts": texts});
    if g.rng.bool() {
        let mut context = String::new();
        g.object(&mut context, 1, &shared_context);
        body.push_str(&format!(",\"context\":{context}"));
        sent["context"] = Value::String(context);
    }
    if g.rng.bool() {
        let mut integrations = String::new();
        g.object(&mut integrations, 1, &[r#""All":true"#]);
        body.push_str(&format!(",\"integrations\":{integrations}"));
        sent["integrations"] = Value::String(integrations);
    }
    if g.rng.bool() {
        let at = g.timestamp();
        body.push_str(&format!(",\"sentAt\":\"{at}\""));
        sent["sentAt"] = Value::String(at);
    }
    body.push('}');
    (body, sent)
}

#[tokio::test]
async fn generated_events_come_back_as_sent() {
    let mut server = TestServer::start(|_| {}).await;
    let mut sent = Vec::new();
    let mut events = 0;
    for case in 0..CASES {
        let (body, expected) = request(case);
        let count = expected["events"].as_array().map_or(0, Vec::len);
        let (status, answer) = server.post("/collect/rt", body.clone()).await;
        assert_eq!(status, 202, "case {case}: {answer}\n{body}");
        assert_eq!(answer["accepted"], count, "case {case}: {answer}\n{body}");
        events += count;
        sent.push(expected);
    }
    server.stop().await;
    let sent_file = server.dir().join("sent.json");
    std::fs::write(&sent_file, Value::Array(sent).to_string()).unwrap();
    let stream = server.dir().join("stream=rt");
    let result = python::run_json(
        CHECK,
        &[stream.to_str().unwrap(), sent_file.to_str().unwrap()],
    );
    assert_eq!(
        result,
        json!({"rows": events, "checked": events, "mismatches": []})
    );
}
