//! `gs://` sinks, read through the storage emulator's JSON API.

use std::time::SystemTime;

use serde::Deserialize;

use super::{message_ids, to_landed};
use crate::error::{BenchError, Result};
use crate::ids::Ids;
use crate::ledger::Landed;

#[derive(Clone, Debug)]
pub struct GcsSink {
    endpoint: String,
    bucket: String,
    prefix: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listing {
    #[serde(default)]
    items: Vec<Object>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct Object {
    name: String,
    updated: Option<String>,
}

impl GcsSink {
    /// `bucket_and_prefix` is the part of a `gs://` url after the scheme.
    pub fn new(emulator_host: &str, bucket_and_prefix: &str) -> Self {
        let endpoint = if emulator_host.contains("://") {
            emulator_host.trim_end_matches('/').to_owned()
        } else {
            format!("http://{}", emulator_host.trim_end_matches('/'))
        };
        let (bucket, prefix) = bucket_and_prefix
            .split_once('/')
            .unwrap_or((bucket_and_prefix, ""));
        let prefix = prefix.trim_matches('/');
        Self {
            endpoint,
            bucket: bucket.to_owned(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
        }
    }

    pub fn describe(&self) -> String {
        format!("gs://{}/{} via {}", self.bucket, self.prefix, self.endpoint)
    }

    fn objects_url(&self) -> Result<reqwest::Url> {
        let mut url = reqwest::Url::parse(&self.endpoint).map_err(|e| {
            BenchError::Invalid(format!("STORAGE_EMULATOR_HOST {}: {e}", self.endpoint))
        })?;
        url.path_segments_mut()
            .map_err(|()| {
                BenchError::Invalid(format!(
                    "STORAGE_EMULATOR_HOST {} cannot be a base",
                    self.endpoint
                ))
            })?
            .extend(["storage", "v1", "b", &self.bucket, "o"]);
        Ok(url)
    }

    pub async fn read(
        &self,
        client: &reqwest::Client,
        stream: &str,
        ids: &Ids,
    ) -> Result<Vec<Landed>> {
        let prefix = format!("{}stream={stream}/", self.prefix);
        let mut objects = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut url = self.objects_url()?;
            url.query_pairs_mut().append_pair("prefix", &prefix);
            if let Some(token) = &page {
                url.query_pairs_mut().append_pair("pageToken", token);
            }
            let resp = client.get(url).send().await?;
            if !resp.status().is_success() {
                return Err(BenchError::Listing(format!(
                    "listing {prefix}: HTTP {}",
                    resp.status()
                )));
            }
            let listing: Listing = serde_json::from_slice(&resp.bytes().await?)?;
            objects.extend(
                listing
                    .items
                    .into_iter()
                    .filter(|o| o.name.ends_with(".parquet")),
            );
            match listing.next_page_token {
                Some(t) if !t.is_empty() => page = Some(t),
                _ => break,
            }
        }
        let mut out = Vec::with_capacity(objects.len());
        for obj in objects {
            let mut url = self.objects_url()?;
            url.path_segments_mut()
                .map_err(|()| BenchError::Invalid("object url".into()))?
                .push(&obj.name);
            url.query_pairs_mut().append_pair("alt", "media");
            let resp = client.get(url).send().await?;
            if !resp.status().is_success() {
                return Err(BenchError::Listing(format!(
                    "reading {}: HTTP {}",
                    obj.name,
                    resp.status()
                )));
            }
            let data = resp.bytes().await?;
            // The object's `updated` time is when the upload completed: its landing time.
            let landed_at = obj
                .updated
                .as_deref()
                .and_then(|u| chrono::DateTime::parse_from_rfc3339(u).ok())
                .map_or_else(SystemTime::now, SystemTime::from);
            out.push(to_landed(ids, landed_at, message_ids(data, &obj.name)?));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_json_api_urls_from_emulator_host() {
        let g = GcsSink::new("localhost:4443", "bucket/events/");
        assert_eq!(
            g.objects_url().map(|u| u.to_string()).ok().as_deref(),
            Some("http://localhost:4443/storage/v1/b/bucket/o")
        );
        assert_eq!(g.prefix, "events/");
        let g = GcsSink::new("http://127.0.0.1:9000/", "b");
        assert_eq!(g.prefix, "");
        assert!(g.describe().contains("127.0.0.1:9000"));
    }
}
