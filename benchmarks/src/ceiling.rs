//! The ceiling: an axum server that reads each body and answers 202 without doing anything.
//! Whatever it reaches on this machine, with this generator, bounds what the collector could.

use std::future::Future;

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use tokio::net::TcpListener;

/// Same size and shape as the collector's answer, so both send the same bytes back.
const ANSWER: &str = r#"{"accepted":1,"rejected":[]}"#;

pub fn router() -> Router {
    Router::new()
        .route("/collect/{stream}", post(accept))
        .route("/v1/batch", post(accept))
}

async fn accept(body: Bytes) -> impl IntoResponse {
    // Reading the body is the point: the ceiling includes receiving every byte.
    let _ = body.len();
    (
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, "application/json")],
        ANSWER,
    )
}

pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router())
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_202_to_any_stream_and_404_elsewhere() {
        let Ok(listener) = TcpListener::bind("127.0.0.1:0").await else {
            panic!("bind")
        };
        let Ok(addr) = listener.local_addr() else {
            panic!("addr")
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, async {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder().no_proxy().build();
        let Ok(client) = client else { panic!("client") };
        let posted = client
            .post(format!("http://{addr}/collect/x"))
            .body("{}")
            .send()
            .await;
        assert_eq!(posted.map(|r| r.status().as_u16()).ok(), Some(202));
        let metrics = client.get(format!("http://{addr}/metrics")).send().await;
        assert_eq!(metrics.map(|r| r.status().as_u16()).ok(), Some(404));
        let _ = tx.send(());
        assert!(matches!(server.await, Ok(Ok(()))));
    }
}
