//! The JSON API: the same objects and rules as the CLI's `--json` output, over HTTP.
//!
//! Every error is `{"error": "…"}` with a status that says whose fault it is: 400/413/415/422
//! for a bad request, 404 for an unknown project, session, host or plugin, 409 for a session
//! that cannot take this now (busy, waiting for an answer, not running), 502/504 when a plugin
//! or host failed or timed out, 503 when a plugin it needs is not loaded. Lifecycle errors get
//! theirs from their one classification ([`ErrorClass`]).

use std::{convert::Infallible, sync::Arc, time::Duration};

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
    feed,
    lifecycle::{
        ErrorClass, HostChoice, KillOutcome, LifecycleError, RequestError, SpawnError, SpawnParams,
        TextError,
    },
    plugins::PluginStatus,
    session::{SessionRole, MAX_TASK_BYTES},
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
        Self::new(status_of(error.class()), error.to_string())
    }
}

impl From<SpawnError> for ApiError {
    fn from(error: SpawnError) -> Self {
        Self::new(status_of(error.class()), error.to_string())
    }
}

/// The status that says whose fault a failure of this class is.
fn status_of(class: ErrorClass) -> StatusCode {
    match class {
        ErrorClass::NotFound => StatusCode::NOT_FOUND,
        ErrorClass::Conflict => StatusCode::CONFLICT,
        ErrorClass::BadRequest => StatusCode::BAD_REQUEST,
        ErrorClass::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorClass::UpstreamFailed => StatusCode::BAD_GATEWAY,
        ErrorClass::TimedOut => StatusCode::GATEWAY_TIMEOUT,
        ErrorClass::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorClass::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A refused spawn request, naming the body's fields where the refusal is about them.
fn with_fields(error: LifecycleError) -> ApiError {
    let fields = match &error {
        LifecycleError::Request(RequestError::NoTask) => "send `task`, or `\"no_prompt\": true`",
        LifecycleError::Request(RequestError::TaskWithoutPrompt) => {
            "send `task` or `\"no_prompt\": true`, not both"
        }
        LifecycleError::Request(RequestError::OrchestratorTask) => "leave `task` out",
        LifecycleError::Request(RequestError::Text(TextError::Empty { .. })) => "`task`",
        _ => return error.into(),
    };
    let mut api_error = ApiError::from(error);
    api_error.message = format!("{} ({fields})", api_error.message);
    api_error
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
        .route("/sessions/{id}/pr", get(pull_request))
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
    let mut response = Json(state.lifecycle.with_pull_requests(listing.sessions)).into_response();
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
    /// A sandbox plugin to confine the agent with, or `off`; null: the project's.
    sandbox: Option<String>,
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
    let cwd = std::env::current_dir()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    // The page sends an empty string for a field left unset.
    let given = |value: Option<String>| value.filter(|v| !v.is_empty());
    let params = SpawnParams {
        project: given(body.project),
        task: body.task,
        no_prompt: body.no_prompt,
        agent: given(body.agent),
        runtime: given(body.runtime),
        workspace: given(body.workspace),
        host: given(body.host)
            .filter(|h| h != "local")
            .map(|h| HostChoice::parse(&h)),
        sandbox: given(body.sandbox),
        ..SpawnParams::new(body.role.unwrap_or(SessionRole::Worker), cwd)
    };
    let stop = Arc::clone(&params.stop);
    let request = state
        .lifecycle
        .spawn_request(params)
        .await
        .map_err(with_fields)?;
    state.work.stop_on_close(&stop);
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

/// `POST /api/sessions/{id}/messages?force=1`: sends to a session over budget too.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendQuery {
    #[serde(default, deserialize_with = "flag")]
    force: bool,
}

async fn send_message(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Result<Query<SendQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let SendQuery { force } = query(params)?;
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
    let lifecycle = Arc::clone(&state.lifecycle);
    state
        .work
        .run(async move { lifecycle.send(&id, &text, force, &|_| {}).await })
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

/// `GET /api/sessions/{id}/pr`: as `session pr ID --json`, from what the watcher stored.
async fn pull_request(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(state.lifecycle.pull_request(&id)?).into_response())
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
    projects.extend(lifecycle.store().projects().0);
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
