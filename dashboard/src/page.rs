//! The page: hand-written files compiled into the binary (no build step, no CDN): the HTML, a
//! style sheet and the script as ES modules by subject, served with headers that keep a hostile
//! screen or task text from ever running as code.

use axum::{
    http::{header, HeaderName, StatusCode},
    response::IntoResponse,
    routing::get,
    Router,
};

use super::AppState;

const HTML: &str = "text/html; charset=utf-8";
const SCRIPT: &str = "text/javascript; charset=utf-8";
const STYLE: &str = "text/css; charset=utf-8";

/// Every file of the page: its path, content type and body. The scripts import each other by
/// these paths (`app.js` is the entry `index.html` loads).
const ASSETS: [(&str, &str, &str); 14] = [
    ("/", HTML, include_str!("page/index.html")),
    ("/style.css", STYLE, include_str!("page/style.css")),
    ("/app.js", SCRIPT, include_str!("page/app.js")),
    ("/views.js", SCRIPT, include_str!("page/views.js")),
    ("/state.js", SCRIPT, include_str!("page/state.js")),
    ("/dom.js", SCRIPT, include_str!("page/dom.js")),
    ("/api.js", SCRIPT, include_str!("page/api.js")),
    ("/feed.js", SCRIPT, include_str!("page/feed.js")),
    ("/sessions.js", SCRIPT, include_str!("page/sessions.js")),
    ("/spawn.js", SCRIPT, include_str!("page/spawn.js")),
    ("/session.js", SCRIPT, include_str!("page/session.js")),
    ("/ansi.js", SCRIPT, include_str!("page/ansi.js")),
    ("/checks.js", SCRIPT, include_str!("page/checks.js")),
    ("/pr.js", SCRIPT, include_str!("page/pr.js")),
];

/// Only the page's own files may run or style it; it may only talk to this server; no other
/// site may frame it.
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    let headers: [(HeaderName, &'static str); 5] = [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-cache"),
    ];
    (headers, body)
}

pub(super) fn routes() -> Router<AppState> {
    ASSETS
        .into_iter()
        .fold(Router::new(), |router, (path, content_type, body)| {
            router.route(path, get(move || async move { asset(content_type, body) }))
        })
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
}
