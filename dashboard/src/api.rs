//! The JSON API: the same objects and rules as the CLI's `--json` output, over HTTP.
//!
//! Every error is `{"error": "…"}` with a status that says whose fault it is: 400/413/415/422
//! for a bad request, 404 for an unknown session, 409 for a session that cannot take this now
//! (busy, waiting for an answer, not running), 502/504 when a plugin failed or timed out.

use std::{
    convert::Infallible,
    sync::{atomic::AtomicBool, Arc},
    time::Duration,
};

use ao_plugin_api::{PluginErrorKind, PluginKind};
use axum::{
    body::Bytes,
    extract::{
        rejection::{BytesRejection, JsonRejection},
        DefaultBodyLimit, Path, Query, State,
    },
    handler::Handler,
    http::{header, StatusCode},
    response::{
        sse::{Event, KeepAlive},
        IntoResponse, Response, Sse,
    },
    routing::{get, post},
    Json, Router,
};
use futures_util::StreamExt;
use serde::{Deserialize, Deserializer};
use serde_json::json;
use tokio::sync::OwnedSemaphorePermit;

use super::{work::Interrupted, AppState};
use ao_core::{
    config::ConfigError,
    feed,
    lifecycle::{
        DeliverError, HostChoice, KillOutcome, LifecycleError, SpawnError, SpawnRequest,
        SpawnStepError,
    },
    plugins::{PluginCallError, PluginStatus},
    remote::HostError,
    session::{LockError, SessionRole, StoreError, MAX_TASK_BYTES},
};

/// Screen lines sent when the request does not say.
const DEFAULT_SCREEN_LINES: u32 = 200;
/// The most screen lines one request may ask for.
const MAX_SCREEN_LINES: u32 = 5000;

/// A JSON error response.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<LifecycleError> for ApiError {
    fn from(error: LifecycleError) -> Self {
        let status = match &error {
            LifecycleError::Store(store) => store_status(store),
            LifecycleError::Lock(LockError::Store(store)) => store_status(store),
            LifecycleError::Lock(LockError::Busy { .. }) | LifecycleError::Refused(_) => {
                StatusCode::CONFLICT
            }
            LifecycleError::Config(config) => config_status(config),
            LifecycleError::Plugin(call) | LifecycleError::Deliver(DeliverError::Plugin(call)) => {
                plugin_status(call)
            }
            LifecycleError::Deliver(DeliverError::Blocked { .. } | DeliverError::Cancelled) => {
                StatusCode::CONFLICT
            }
            LifecycleError::Deliver(_) => StatusCode::BAD_GATEWAY,
            LifecycleError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            LifecycleError::Host(HostError::Unknown { .. }) => StatusCode::NOT_FOUND,
            LifecycleError::Host(HostError::Local { .. }) => StatusCode::INTERNAL_SERVER_ERROR,
            LifecycleError::Host(_) => StatusCode::BAD_GATEWAY,
            LifecycleError::KillUnfinished { error, .. } => plugin_status(error),
        };
        Self::new(status, error.to_string())
    }
}

impl From<SpawnError> for ApiError {
    fn from(error: SpawnError) -> Self {
        let status = match &error {
            SpawnError::InvalidTask(_) => StatusCode::BAD_REQUEST,
            SpawnError::Store(store) => store_status(store),
            SpawnError::Setup(_) => {
                let SpawnError::Setup(setup) = error else {
                    unreachable!("matched just above")
                };
                return setup.into();
            }
            SpawnError::Failed { step, .. } => match step.as_ref() {
                SpawnStepError::Cancelled | SpawnStepError::Deliver(DeliverError::Cancelled) => {
                    StatusCode::CONFLICT
                }
                SpawnStepError::Plugin(call)
                | SpawnStepError::Deliver(DeliverError::Plugin(call)) => plugin_status(call),
                _ => StatusCode::BAD_GATEWAY,
            },
        };
        Self::new(status, error.to_string())
    }
}

impl From<Interrupted> for ApiError {
    fn from(interrupted: Interrupted) -> Self {
        match interrupted {
            Interrupted::Closing => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the dashboard is stopping and takes no new work",
            ),
            Interrupted::Panicked => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the operation failed unexpectedly; `ao-host session ls` and `ao-host gc` show and reconcile what is left",
            ),
        }
    }
}

fn store_status(error: &StoreError) -> StatusCode {
    match error {
        StoreError::NotFound { .. } => StatusCode::NOT_FOUND,
        StoreError::InvalidId(_) => StatusCode::BAD_REQUEST,
        StoreError::Exhausted(_) => StatusCode::SERVICE_UNAVAILABLE,
        StoreError::NotAFolder { .. }
        | StoreError::Io { .. }
        | StoreError::Corrupt { .. }
        | StoreError::Untrusted { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A plugin's refusal is the request's fault when the plugin says so; anything else is the
/// plugin's (502), or its slowness (504).
fn plugin_status(error: &PluginCallError) -> StatusCode {
    match error {
        PluginCallError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        PluginCallError::Plugin { error, .. } => match error.kind {
            PluginErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
            PluginErrorKind::NotFound => StatusCode::NOT_FOUND,
            PluginErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_GATEWAY,
        },
    }
}

fn config_status(error: &ConfigError) -> StatusCode {
    match error {
        ConfigError::UnknownProject { .. } => StatusCode::NOT_FOUND,
        ConfigError::NoProject { .. }
        | ConfigError::InvalidProjectArg { .. }
        | ConfigError::Discovery { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A JSON body, with axum's own rejections (bad syntax 400, wrong fields 422, no JSON content
/// type 415, too large 413) turned into JSON errors.
fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(value)| value)
        .map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))
}

/// `?flag=1`, `true`, `yes` (or absent: false).
fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    let value = String::deserialize(deserializer)?;
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" | "" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        other => Err(serde::de::Error::custom(format!(
            "`{other}` is not a yes/no value; use 1 or 0"
        ))),
    }
}

fn query<T>(
    query: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, ApiError> {
    query
        .map(|Query(value)| value)
        .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
}

pub(super) fn routes() -> Router<AppState> {
    // A spawn's JSON body carries a task of up to MAX_TASK_BYTES, each byte escaped at worst
    // as `\u00XX`.
    let spawn_body = DefaultBodyLimit::max(MAX_TASK_BYTES * 6 + 4096);
    Router::new()
        .route(
            "/sessions",
            get(list_sessions).post(spawn_session.layer(spawn_body)),
        )
        .route("/sessions/{id}", axum::routing::delete(kill_session))
        .route("/sessions/{id}/screen", get(screen))
        .route(
            "/sessions/{id}/messages",
            post(send_message.layer(DefaultBodyLimit::max(MAX_TASK_BYTES))),
        )
        .route("/sessions/{id}/attach", get(attach))
        .route("/events", get(events))
        .route("/plugins", get(plugins))
        .route("/doctor", get(doctor))
        .route("/projects", get(projects))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such API endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "this endpoint does not take that method",
            )
        })
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default, deserialize_with = "flag")]
    archived: bool,
}

async fn list_sessions(
    State(state): State<AppState>,
    params: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let ListQuery { archived } = query(params)?;
    let listing = state.lifecycle.list(None, archived).await?;
    for problem in &listing.problems {
        tracing::warn!("{problem}");
    }
    // A script must never take a partial list for the whole: say how many records are missing.
    let mut response = Json(listing.sessions).into_response();
    if !listing.problems.is_empty() {
        response
            .headers_mut()
            .insert("x-ao-unreadable-records", listing.problems.len().into());
    }
    Ok(response)
}

/// `POST /api/sessions`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpawnBody {
    /// Default: the project of the folder the dashboard runs in.
    project: Option<String>,
    task: Option<String>,
    agent: Option<String>,
    runtime: Option<String>,
    workspace: Option<String>,
    /// The machine to run on: a name of `hosts:`, `any` (the one with the fewest live
    /// sessions), or null / `local` for this one.
    host: Option<String>,
    #[serde(default)]
    role: Option<SessionRole>,
    #[serde(default)]
    no_prompt: bool,
}

async fn spawn_session(
    State(state): State<AppState>,
    body: Result<Json<SpawnBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = json_body(body)?;
    let host = body
        .host
        .as_deref()
        .filter(|h| !h.is_empty() && *h != "local")
        .map(HostChoice::parse);
    let role = body.role.unwrap_or(SessionRole::Worker);
    if body.no_prompt && body.task.is_some() {
        return Err(ApiError::bad_request(
            "`no_prompt` starts the agent without its first message, so `task` would never reach it; send one or the other",
        ));
    }
    if body.task.as_ref().is_some_and(|t| t.len() > MAX_TASK_BYTES) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("`task` is larger than the {MAX_TASK_BYTES} bytes a task may have; put the details in a file in the repository and point the task at it"),
        ));
    }
    let task = match (role, body.task) {
        (SessionRole::Orchestrator, Some(_)) => {
            return Err(ApiError::bad_request(
                "an orchestrator takes no task (it is given its own prompt); leave `task` out",
            ))
        }
        (SessionRole::Worker, None) if !body.no_prompt => {
            return Err(ApiError::bad_request(
                "say what the agent should do: `task` (or `\"no_prompt\": true`)",
            ))
        }
        (_, task) => task,
    };
    if let Some(task) = &task {
        if task.trim().is_empty() {
            return Err(ApiError::bad_request(
                "`task` is empty; say what the agent should do",
            ));
        }
        ao_core::lifecycle::validate_task(task)?;
    }
    let cwd = std::env::current_dir()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut project = state
        .lifecycle
        .resolve_project(body.project.as_deref().filter(|p| !p.is_empty()), &cwd)
        .await?;
    let choice = &mut project.plugins;
    for (kind, field, chosen) in [
        (PluginKind::Agent, &mut choice.agent, body.agent),
        (PluginKind::Runtime, &mut choice.runtime, body.runtime),
        (PluginKind::Workspace, &mut choice.workspace, body.workspace),
    ] {
        if let Some(name) = chosen.filter(|n| !n.is_empty()) {
            if state.lifecycle.registry().library_of(kind, &name).is_none() {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!(
                        "no {kind} plugin `{name}` is loaded; loaded: {}",
                        state.lifecycle.registry().names(kind).join(", ")
                    ),
                ));
            }
            *field = name;
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    state.work.stop_on_close(&stop);
    let request = SpawnRequest {
        project,
        role,
        task,
        no_prompt: body.no_prompt,
        host,
        stop,
    };
    let lifecycle = Arc::clone(&state.lifecycle);
    let feed = Arc::clone(&state.feed);
    let spawned = state
        .work
        .run(async move {
            // The record appears as `spawning` first: show it while the agent starts.
            let poke = |_: &str| feed.poke();
            let spawned = lifecycle.spawn(request, &poke).await;
            feed.poke();
            spawned
        })
        .await??;
    Ok((StatusCode::CREATED, Json(spawned)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KillQuery {
    #[serde(default, deserialize_with = "flag")]
    keep_workspace: bool,
    #[serde(default, deserialize_with = "flag")]
    force: bool,
}

async fn kill_session(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Result<Query<KillQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let KillQuery {
        keep_workspace,
        force,
    } = query(params)?;
    if keep_workspace && force {
        return Err(ApiError::bad_request(
            "keep_workspace and force contradict each other; choose one",
        ));
    }
    let lifecycle = Arc::clone(&state.lifecycle);
    let killed_id = id.clone();
    let outcome = state
        .work
        .run(async move {
            lifecycle
                .kill(&killed_id, keep_workspace, force, &|_| {})
                .await
        })
        .await??;
    state.feed.poke();
    let body = match outcome {
        KillOutcome::Killed(session) => json!({"id": id, "outcome": "killed", "session": session}),
        KillOutcome::SpawnUndone => json!({"id": id, "outcome": "spawn_undone"}),
    };
    Ok(Json(body).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScreenQuery {
    #[serde(default, deserialize_with = "flag")]
    ansi: bool,
    lines: Option<u32>,
}

async fn screen(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Result<Query<ScreenQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let ScreenQuery { ansi, lines } = query(params)?;
    let lines = lines.unwrap_or(DEFAULT_SCREEN_LINES);
    if !(1..=MAX_SCREEN_LINES).contains(&lines) {
        return Err(ApiError::bad_request(format!(
            "`lines` must be between 1 and {MAX_SCREEN_LINES}"
        )));
    }
    let text = state.lifecycle.screen(&id, lines, ansi).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response())
}

async fn send_message(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!("the message is larger than the {MAX_TASK_BYTES} bytes a message may have; put the details in a file in the repository and point the message at it")
        } else {
            rejection.body_text()
        };
        ApiError::new(status, message)
    })?;
    let text = String::from_utf8(body.to_vec()).map_err(|e| {
        ApiError::bad_request(format!(
            "the message is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    ao_core::lifecycle::validate_message(&text)?;
    let lifecycle = Arc::clone(&state.lifecycle);
    state
        .work
        .run(async move { lifecycle.send(&id, &text, &|_| {}).await })
        .await??;
    state.feed.poke();
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn attach(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let argv = state.lifecycle.attach_command(&id).await?;
    let command = ao_plugin_kit::shell::join(&argv);
    Ok(Json(json!({ "argv": argv, "command": command })).into_response())
}

/// `503` with `Retry-After`, closing the connection: a client over a cap is told at once to come
/// back, and its connection is not kept for it.
fn busy() -> Response {
    let mut response = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, super::BUSY).into_response();
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, super::RETRY_AFTER_SECS.into());
    headers.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}

async fn events(State(state): State<AppState>) -> Response {
    let Ok(slot) = Arc::clone(&state.streams).try_acquire_owned() else {
        return busy();
    };
    // The slot goes with the stream: freed when the client goes or the dashboard closes.
    let stream = feed::stream(Arc::clone(&state.feed), state.closing.clone()).map(move |change| {
        let _held = &slot;
        Ok::<_, Infallible>(Event::default().event(change.kind()).data(change.data()))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// Waits for the turn of a slow read (one at a time), or answers [`busy`] at once when the
/// queue for it is full.
async fn slow_turn(
    state: &AppState,
) -> Result<(OwnedSemaphorePermit, OwnedSemaphorePermit), Response> {
    let queued = Arc::clone(&state.slow_queue)
        .try_acquire_owned()
        .map_err(|_| busy())?;
    let turn = Arc::clone(&state.slow_reads)
        .acquire_owned()
        .await
        .expect("the semaphore is never closed");
    Ok((queued, turn))
}

async fn plugins(State(state): State<AppState>) -> Result<Response, Response> {
    let _turn = slow_turn(&state).await?;
    let lifecycle = Arc::clone(&state.lifecycle);
    // Digests read whole libraries: not on the server's threads.
    let listing = tokio::task::spawn_blocking(move || lifecycle.plugin_listing())
        .await
        .map_err(|_| ApiError::from(Interrupted::Panicked).into_response())?;
    Ok(Json(listing).into_response())
}

async fn doctor(State(state): State<AppState>) -> Result<Response, Response> {
    let _turn = slow_turn(&state).await?;
    Ok(Json(json!(state.lifecycle.doctor().await)).into_response())
}

/// What the spawn form offers: projects (configured, and any with sessions), agent plugins,
/// and the defaults.
async fn projects(State(state): State<AppState>) -> Json<serde_json::Value> {
    let lifecycle = &state.lifecycle;
    let mut projects: Vec<String> = lifecycle.config().projects.keys().cloned().collect();
    if let Ok(seen) = std::fs::read_dir(lifecycle.store().data_dir().join("sessions")) {
        projects.extend(
            seen.flatten()
                .filter(|entry| entry.path().is_dir())
                .filter_map(|entry| entry.file_name().into_string().ok()),
        );
    }
    projects.sort();
    projects.dedup();
    let default_project = match std::env::current_dir() {
        Ok(cwd) => lifecycle.resolve_project(None, &cwd).await.ok(),
        Err(_) => None,
    };
    let mut agents: Vec<String> = lifecycle
        .registry()
        .rows()
        .into_iter()
        .filter(|row| row.kind.as_deref() == Some("agent") && row.status == PluginStatus::Ok)
        .filter_map(|row| row.name)
        .collect();
    agents.sort();
    agents.dedup();
    Json(json!({
        "projects": projects,
        "default_project": default_project.as_ref().map(|p| &p.id),
        "agents": agents,
        "default_agent": default_project
            .as_ref()
            .map_or(&lifecycle.config().defaults.agent, |p| &p.plugins.agent),
    }))
}
