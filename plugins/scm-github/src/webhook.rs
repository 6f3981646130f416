//! Webhook deliveries: verified against the secret (`X-Hub-Signature-256`, HMAC-SHA256 of the
//! body, compared in constant time), then read for the branches they concern. A delivery is
//! only a hint to poll now; the facts still come from the API.
//!
//! Branches named, by `X-GitHub-Event`:
//! - `pull_request`, `pull_request_review`, `pull_request_review_comment`,
//!   `pull_request_review_thread`: `pull_request.head.ref`;
//! - `check_run`: `check_run.check_suite.head_branch` and the head of each of
//!   `check_run.pull_requests`; `check_suite`: `check_suite.head_branch` and its pull requests';
//! - `push`: `ref` under `refs/heads/`; `status`: `branches[].name`;
//! - any other event (`ping` included): none, which tells the host to poll everything.

use ao_plugin_api::{
    abi_stable::std_types::{RString, RVec},
    scm::{WebhookDelivery, WebhookHint},
    ErrorKind, PluginFailure,
};
use serde_json::Value;

fn refused(why: &str) -> PluginFailure {
    PluginFailure::new(
        ErrorKind::InvalidInput,
        format!("webhook delivery refused: {why}"),
    )
}

fn header<'d>(delivery: &'d WebhookDelivery, name: &str) -> Option<&'d str> {
    delivery
        .headers
        .iter()
        .find(|h| h.name.as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Checks `delivery` against `secret` and says what it concerns.
pub fn read(delivery: &WebhookDelivery, secret: &str) -> Result<WebhookHint, PluginFailure> {
    let signature = header(delivery, "x-hub-signature-256").ok_or_else(|| {
        refused(
            "it has no X-Hub-Signature-256 header; give the webhook on GitHub the same secret \
             as plugins.config.github.webhook_secret",
        )
    })?;
    let tag = signature
        .strip_prefix("sha256=")
        .and_then(unhex)
        .ok_or_else(|| refused("its X-Hub-Signature-256 is not `sha256=<hex>`"))?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::verify(&key, &delivery.body, &tag).map_err(|_| {
        refused(
            "its signature does not match the body signed with the configured secret (a \
             forged delivery, or the webhook's secret on GitHub differs)",
        )
    })?;
    let delivery_id = header(delivery, "x-github-delivery")
        .filter(|id| !id.is_empty() && id.len() <= 100)
        .ok_or_else(|| refused("it has no X-GitHub-Delivery id"))?;
    let event = header(delivery, "x-github-event").unwrap_or_default();
    let payload: Value = serde_json::from_slice(&delivery.body)
        .map_err(|e| refused(&format!("its body is not JSON: {e}")))?;
    let mut branches: Vec<String> = Vec::new();
    let mut add = |value: &Value| {
        if let Some(branch) = value.as_str().filter(|b| !b.is_empty()) {
            if !branches.iter().any(|known| known == branch) {
                branches.push(branch.to_string());
            }
        }
    };
    let heads_of = |pulls: &Value| -> Vec<Value> {
        pulls
            .as_array()
            .into_iter()
            .flatten()
            .map(|pull| pull["head"]["ref"].clone())
            .collect()
    };
    match event {
        "pull_request"
        | "pull_request_review"
        | "pull_request_review_comment"
        | "pull_request_review_thread" => add(&payload["pull_request"]["head"]["ref"]),
        "check_run" => {
            add(&payload["check_run"]["check_suite"]["head_branch"]);
            heads_of(&payload["check_run"]["pull_requests"])
                .iter()
                .for_each(&mut add);
        }
        "check_suite" => {
            add(&payload["check_suite"]["head_branch"]);
            heads_of(&payload["check_suite"]["pull_requests"])
                .iter()
                .for_each(&mut add);
        }
        "push" => {
            if let Some(branch) = payload["ref"]
                .as_str()
                .and_then(|r| r.strip_prefix("refs/heads/"))
            {
                add(&Value::String(branch.to_string()));
            }
        }
        "status" => payload["branches"]
            .as_array()
            .into_iter()
            .flatten()
            .for_each(|branch| add(&branch["name"])),
        _ => {}
    }
    Ok(WebhookHint {
        delivery_id: RString::from(delivery_id),
        branches: branches.into_iter().map(RString::from).collect::<RVec<_>>(),
    })
}
