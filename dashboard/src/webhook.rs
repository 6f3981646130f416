//! The webhook receiver of `ao-host watch --webhook ADDR`: each request is handed, headers and
//! bytes unchanged, to the watcher, whose scm plugins verify it (the signature is theirs to
//! check); a verified delivery not seen before wakes a poll. A delivery is only a hint: the poll
//! asks the forge for the facts, so a forged or replayed one can at most cost a poll.
//!
//! Answers, at once: `202` taken (a poll follows), `401` it does not verify, `400` a replay or
//! no plugin takes webhooks, `413` larger than any delivery.

use std::{future::Future, sync::Arc};

use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, State},
    http::{HeaderMap, StatusCode},
    Router,
};
use tokio::{net::TcpListener, sync::Notify};

use ao_core::watch::{Watcher, WebhookVerdict};
use ao_plugin_api::scm::{WebhookDelivery, WebhookHeader};

/// GitHub caps a delivery at 25 MB; what ao-host reads of one is its hint, far smaller.
const MAX_DELIVERY_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
struct Receiver {
    watcher: Arc<Watcher>,
    wake: Arc<Notify>,
}

/// Serves webhook deliveries on `listener` until `shutdown` completes.
pub async fn serve(
    watcher: Arc<Watcher>,
    wake: Arc<Notify>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .fallback(receive)
        .layer(DefaultBodyLimit::max(MAX_DELIVERY_BYTES))
        .with_state(Receiver { watcher, wake });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn receive(
    State(receiver): State<Receiver>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let delivery = WebhookDelivery {
        headers: headers
            .iter()
            .map(|(name, value)| WebhookHeader {
                name: name.as_str().to_ascii_lowercase().into(),
                value: String::from_utf8_lossy(value.as_bytes())
                    .into_owned()
                    .into(),
            })
            .collect(),
        body: body.to_vec().into(),
    };
    match receiver.watcher.webhook(delivery).await {
        WebhookVerdict::Accepted { branches } => {
            tracing::info!(?branches, "webhook delivery taken; polling now");
            receiver.wake.notify_one();
            (StatusCode::ACCEPTED, "taken; polling now\n".into())
        }
        WebhookVerdict::Replayed { delivery_id } => {
            tracing::warn!("webhook delivery {delivery_id} was taken before: a replay, ignored");
            (
                StatusCode::BAD_REQUEST,
                format!("delivery {delivery_id} was taken before\n"),
            )
        }
        WebhookVerdict::Refused { reason } => {
            tracing::warn!("webhook delivery refused: {reason}");
            (StatusCode::UNAUTHORIZED, format!("{reason}\n"))
        }
        WebhookVerdict::Unsupported => (
            StatusCode::BAD_REQUEST,
            "no project's scm plugin takes webhooks\n".into(),
        ),
    }
}
