//! Resumable uploads behind `MultipartUpload`, so `BufWriter` streams files of any size.
//!
//! GCS takes a resumable upload as a strictly ordered series of chunks, each a multiple of
//! 256 KiB, while `MultipartUpload::put_part` hands out futures that may be polled in any order.
//! `put_part` therefore only queues the part, in call order, for one task per upload that owns the
//! session and sends chunks one after another. The object only becomes visible when the final
//! chunk arrives, so an upload that fails or is dropped half-way leaves nothing behind.

use bytes::{Bytes, BytesMut};
use futures::FutureExt as _;
use object_store::{MultipartUpload, PutPayload, PutResult, UploadPart};
use reqwest::{Method, StatusCode, header};
use tokio::sync::{mpsc, oneshot};

use super::client::{
    Checksums, Client, GcsError, ObjectResource, Retry, STORE, TRANSFER_TIMEOUT, json,
};
use std::sync::Arc;

/// GCS requires every chunk but the last to be a multiple of this.
pub(super) const CHUNK_ALIGN: usize = 256 * 1024;

/// GCS answers an accepted, unfinished chunk with 308 ("Resume Incomplete").
const RESUME_INCOMPLETE: StatusCode = StatusCode::PERMANENT_REDIRECT;

enum Msg {
    Part(PutPayload, oneshot::Sender<object_store::Result<()>>),
    Complete(oneshot::Sender<object_store::Result<PutResult>>),
    Abort(oneshot::Sender<object_store::Result<()>>),
}

/// The handle `put_multipart_opts` returns. The unbounded queue holds at most as many parts as
/// the caller has `UploadPart` futures outstanding (`BufWriter` caps those at its concurrency),
/// because each future only resolves once its part has been sent.
#[derive(Debug)]
pub(super) struct ResumableUpload {
    name: String,
    queue: mpsc::UnboundedSender<Msg>,
}

impl ResumableUpload {
    /// Opens a session and starts the task that feeds it.
    pub async fn start(
        client: Arc<Client>,
        name: String,
        content_type: String,
        chunk_size: usize,
    ) -> object_store::Result<Self> {
        let session = open_session(&client, &name, &content_type)
            .await
            .map_err(|e| e.into_store(&name))?;
        let (queue, rx) = mpsc::unbounded_channel();
        let worker = Worker {
            client,
            name: name.clone(),
            content_type,
            session,
            chunk_size,
            pending: BytesMut::new(),
            sent: 0,
            sums: Checksums::default(),
            failed: None,
        };
        tokio::spawn(worker.run(rx));
        Ok(Self { name, queue })
    }

    fn worker_gone(&self) -> object_store::Error {
        GcsError::Protocol(format!("upload task for {:?} has stopped", self.name))
            .into_store(&self.name)
    }
}

#[async_trait::async_trait]
impl MultipartUpload for ResumableUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let (tx, rx) = oneshot::channel();
        let queued = self.queue.send(Msg::Part(data, tx)).is_ok();
        let gone = self.worker_gone();
        async move {
            if !queued {
                return Err(gone);
            }
            rx.await.unwrap_or(Err(gone))
        }
        .boxed()
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .send(Msg::Complete(tx))
            .map_err(|_| self.worker_gone())?;
        rx.await.unwrap_or_else(|_| Err(self.worker_gone()))
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .send(Msg::Abort(tx))
            .map_err(|_| self.worker_gone())?;
        rx.await.unwrap_or_else(|_| Err(self.worker_gone()))
    }
}

async fn open_session(client: &Client, name: &str, content_type: &str) -> Result<String, GcsError> {
    let url = client.upload_url();
    let metadata = serde_json::json!({ "name": name, "contentType": content_type });
    // Opening a session twice only leaves an unused one to expire, so this may retry freely.
    let resp = client
        .send(Retry::Idempotent, &[], || {
            client
                .request(Method::POST, &url)
                .query(&[("uploadType", "resumable"), ("name", name)])
                .header("X-Upload-Content-Type", content_type)
                .json(&metadata)
        })
        .await?;
    resp.headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| GcsError::Protocol("resumable session without a Location header".into()))
}

struct Worker {
    client: Arc<Client>,
    name: String,
    content_type: String,
    session: String,
    chunk_size: usize,
    /// Bytes received but not yet sent: under one chunk plus one part.
    pending: BytesMut,
    /// Bytes GCS has acknowledged.
    sent: u64,
    sums: Checksums,
    /// After the first failure every later message fails too: the session can't skip a chunk.
    failed: Option<String>,
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Part(data, reply) => {
                    let result = self.part(data).await;
                    let _ = reply.send(result);
                }
                Msg::Complete(reply) => {
                    let result = self.finish().await;
                    let _ = reply.send(result);
                    return;
                }
                Msg::Abort(reply) => {
                    self.cancel().await;
                    let _ = reply.send(Ok(()));
                    return;
                }
            }
        }
        // The handle was dropped without complete(): the session is cancelled, nothing is visible.
        self.cancel().await;
    }

    fn fail(&mut self, err: GcsError) -> object_store::Error {
        self.failed = Some(err.to_string());
        err.into_store(&self.name)
    }

    fn check_failed(&self) -> object_store::Result<()> {
        match &self.failed {
            Some(reason) => Err(object_store::Error::Generic {
                store: STORE,
                source: format!("upload of {:?} already failed: {reason}", self.name).into(),
            }),
            None => Ok(()),
        }
    }

    async fn part(&mut self, data: PutPayload) -> object_store::Result<()> {
        self.check_failed()?;
        for bytes in data.iter() {
            self.sums.update(bytes);
            self.pending.extend_from_slice(bytes);
        }
        // Strictly more than a chunk: at least one byte always stays for the final request, so
        // the upload never has to be finalised with an empty body.
        while self.pending.len() > self.chunk_size {
            let chunk = self.pending.split_to(self.chunk_size).freeze();
            if let Err(err) = self.send_chunk(chunk).await {
                return Err(self.fail(err));
            }
        }
        Ok(())
    }

    async fn send_chunk(&mut self, chunk: Bytes) -> Result<(), GcsError> {
        let start = self.sent;
        let end = start + chunk.len() as u64 - 1;
        let range = format!("bytes {start}-{end}/*");
        let resp = self.put(chunk, range, None, &[RESUME_INCOMPLETE]).await?;
        if resp.status() != RESUME_INCOMPLETE {
            return Err(GcsError::Protocol(format!(
                "chunk {start}-{end} answered {}",
                resp.status()
            )));
        }
        // The server must hold exactly what was sent; anything else means the session and this
        // writer disagree, and continuing would corrupt the object.
        let expected = format!("bytes=0-{end}");
        let persisted = resp
            .headers()
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok());
        if persisted != Some(expected.as_str()) {
            return Err(GcsError::Protocol(format!(
                "after chunk {start}-{end} GCS holds {persisted:?}, expected {expected:?}"
            )));
        }
        self.sent = end + 1;
        Ok(())
    }

    async fn finish(&mut self) -> object_store::Result<PutResult> {
        self.check_failed()?;
        let total = self.sums.len();
        let last = self.pending.split().freeze();
        let range = match last.len() as u64 {
            0 => format!("bytes */{total}"),
            n => format!("bytes {}-{}/{total}", self.sent, self.sent + n - 1),
        };
        let hash = self.sums.goog_hash();
        let result: Result<ObjectResource, GcsError> = async {
            let resp = self.put(last, range, Some(&hash), &[]).await?;
            json(resp).await
        }
        .await;
        let stored = result.map_err(|e| self.fail(e))?;
        if let Err(err) = stored.verify(&self.sums) {
            let err = self.client.reject(&stored, err).await;
            return Err(self.fail(err));
        }
        Ok(PutResult {
            e_tag: stored.etag,
            version: Some(stored.generation),
            extensions: Default::default(),
        })
    }

    async fn put(
        &self,
        body: Bytes,
        content_range: String,
        goog_hash: Option<&str>,
        accept: &[StatusCode],
    ) -> Result<reqwest::Response, GcsError> {
        self.client
            .send(Retry::ConnectOnly, accept, || {
                let req = self
                    .client
                    .request(Method::PUT, &self.session)
                    .timeout(TRANSFER_TIMEOUT)
                    .header(header::CONTENT_RANGE, &content_range)
                    .header(header::CONTENT_TYPE, &self.content_type)
                    .body(body.clone());
                match goog_hash {
                    Some(hash) => req.header("X-Goog-Hash", hash),
                    None => req,
                }
            })
            .await
    }

    /// GCS answers a cancelled session with 499, which lands in the log at debug level: the
    /// point is only that the session never finalises, and an unused one expires anyway.
    async fn cancel(&self) {
        let sent = self
            .client
            .send(Retry::ConnectOnly, &[], || {
                self.client.request(Method::DELETE, &self.session)
            })
            .await;
        if let Err(err) = sent {
            tracing::debug!(object = %self.name, error = %err, "cancelling resumable session failed");
        }
    }
}
