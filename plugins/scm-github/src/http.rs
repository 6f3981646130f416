//! The one way this plugin talks to GitHub: a blocking client that adds the token, reads every
//! answer bounded, remembers each API's rate limit from the answers' headers, and turns GitHub's
//! refusals into errors that say what to do. Nothing here logs or returns the token.

use std::{
    collections::BTreeMap,
    io::Read,
    sync::Mutex,
    time::{SystemTime, UNIX_EPOCH},
};

use ao_plugin_api::{scm::RateLimit, ErrorKind, PluginFailure};
use ao_plugin_kit::program::Program;
use serde::de::DeserializeOwned;
use serde_json::Value;
use ureq::http::HeaderMap;

use crate::settings::{find_token, Resolved, TokenSource};

/// The most a JSON answer may hold; a bigger one is an error, not memory.
pub const MAX_ANSWER_BYTES: u64 = 8 << 20;
/// The most of a job log read while looking for its tail.
const MAX_LOG_BYTES: u64 = 256 << 20;
/// How much of a log's end is kept while reading it.
const LOG_WINDOW_BYTES: usize = 1 << 20;

/// Which of GitHub's rate limits a request counts against: they are counted apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Api {
    Rest,
    GraphQl,
}

impl Api {
    pub fn name(self) -> &'static str {
        match self {
            Api::Rest => "rest",
            Api::GraphQl => "graphql",
        }
    }
}

/// A `GET` answer that may be "unchanged".
pub enum Conditional<T> {
    NotModified,
    Fresh { value: T, etag: String },
}

pub struct Client {
    agent: ureq::Agent,
    settings: Resolved,
    /// The token and where it came from, found on first use (and again after a failure).
    token: Mutex<Option<(String, TokenSource)>>,
    /// Per API, what the last answer said.
    limits: Mutex<BTreeMap<Api, RateLimit>>,
    /// Per API, when GitHub last asked to wait until (`Retry-After`, a secondary limit), in
    /// seconds since the epoch.
    not_before: Mutex<BTreeMap<Api, u64>>,
}

/// How long to wait after a secondary rate limit that names no time (GitHub: "at least one
/// minute").
const SECONDARY_WAIT_SECS: u64 = 60;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `HH:MM:SS UTC` of a Unix time, for messages.
fn clock(secs: u64) -> String {
    let day = secs % 86_400;
    format!(
        "{:02}:{:02}:{:02} UTC",
        day / 3600,
        day % 3600 / 60,
        day % 60
    )
}

/// Text from GitHub for a message: printable, one line, short.
fn quoted(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    clean.trim().to_string()
}

impl Client {
    pub fn new(settings: Resolved) -> Client {
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(settings.timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("ao-host-scm-github/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls)
            .build();
        Client {
            agent: config.into(),
            settings,
            token: Mutex::new(None),
            limits: Mutex::new(BTreeMap::new()),
            not_before: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn settings(&self) -> &Resolved {
        &self.settings
    }

    /// The token, found now if not yet.
    pub fn token(&self) -> Result<(String, TokenSource), PluginFailure> {
        let mut token = self.token.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = token.as_ref() {
            return Ok(found.clone());
        }
        let found = find_token(
            self.settings.token.as_deref(),
            |name| std::env::var(name).ok(),
            || {
                Program::new("gh", "https://cli.github.com")
                    .run(
                        None,
                        [
                            "auth",
                            "token",
                            "--hostname",
                            self.settings.gh_host.as_str(),
                        ],
                    )
                    .map_err(|e| quoted(e.message.as_str()))
            },
        )?;
        *token = Some(found.clone());
        Ok(found)
    }

    /// The rate limits as last stated, one per API that answered.
    pub fn rate_limits(&self) -> Vec<RateLimit> {
        self.limits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// `GET {api_url}{path}` as JSON, asking "changed since `etag`?" when one is given.
    pub fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        etag: &str,
    ) -> Result<Conditional<T>, PluginFailure> {
        let url = format!("{}{path}", self.settings.api_url);
        let mut response = self.send(
            Api::Rest,
            "GET",
            &url,
            |request| {
                let request = request.header("Accept", "application/vnd.github+json");
                if etag.is_empty() {
                    request
                } else {
                    request.header("If-None-Match", etag)
                }
            },
            None,
        )?;
        if response.status().as_u16() == 304 {
            return Ok(Conditional::NotModified);
        }
        let etag = header(response.headers(), "etag").unwrap_or_default();
        let value = json_body(&mut response, "GET", path)?;
        Ok(Conditional::Fresh { value, etag })
    }

    /// `GET {api_url}{path}` as JSON, unconditionally.
    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, PluginFailure> {
        match self.get(path, "")? {
            Conditional::Fresh { value, .. } => Ok(value),
            Conditional::NotModified => Err(PluginFailure::new(
                ErrorKind::Failed,
                format!("GitHub answered 304 to GET {path} without being asked whether it changed"),
            )),
        }
    }

    /// `PUT {api_url}{path}` with a JSON body; the answer as JSON.
    pub fn put(&self, path: &str, body: &Value) -> Result<Value, PluginFailure> {
        let url = format!("{}{path}", self.settings.api_url);
        let mut response = self.send(Api::Rest, "PUT", &url, |r| r, Some(body))?;
        json_body(&mut response, "PUT", path)
    }

    /// One GraphQL query; its `data`, or an error quoting GitHub's `errors` (those the caller
    /// accepts — a missing pull request — are given back with the data instead).
    pub fn graphql(
        &self,
        query: &str,
        variables: Value,
    ) -> Result<(Value, Vec<Value>), PluginFailure> {
        let body = serde_json::json!({ "query": query, "variables": variables });
        let url = self.settings.graphql_url.clone();
        let mut response = self.send(Api::GraphQl, "POST", &url, |r| r, Some(&body))?;
        let answer: Value = json_body(&mut response, "POST", "graphql")?;
        let errors = answer["errors"].as_array().cloned().unwrap_or_default();
        let data = answer.get("data").cloned().unwrap_or(Value::Null);
        if errors.iter().any(|e| e["type"] == "RATE_LIMITED") {
            let reset = self
                .limits
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&Api::GraphQl)
                .map_or(0, |limit| limit.reset_at);
            return Err(PluginFailure::new(
                ErrorKind::RateLimited,
                format!(
                    "GitHub's graphql rate limit is used up until {} (in {} s)",
                    clock(reset),
                    reset.saturating_sub(now_secs())
                ),
            ));
        }
        if data.is_null() {
            let said = errors
                .iter()
                .filter_map(|e| e["message"].as_str())
                .map(quoted)
                .collect::<Vec<_>>()
                .join("; ");
            return Err(PluginFailure::new(
                ErrorKind::Failed,
                format!("GitHub's GraphQL API answered no data: {said}"),
            ));
        }
        Ok((data, errors))
    }

    /// The last `lines` lines of a GitHub Actions job's log, `None` when the job has none (it
    /// never ran). GitHub answers the logs endpoint with a redirect to a short-lived URL on
    /// its blob store, which is followed without the token.
    pub fn job_log_tail(&self, path: &str, lines: usize) -> Result<Option<String>, PluginFailure> {
        let url = format!("{}{path}", self.settings.api_url);
        let redirect = match self.send(Api::Rest, "GET", &url, |r| r, None) {
            Ok(response) => response,
            Err(error) if is_kind(&error, ErrorKind::NotFound) => return Ok(None),
            Err(error) => return Err(error),
        };
        let status = redirect.status().as_u16();
        let location = header(redirect.headers(), "location")
            .filter(|_| (300..400).contains(&status))
            .ok_or_else(|| {
                PluginFailure::new(
                    ErrorKind::Failed,
                    format!("GitHub answered {status} to GET {path} instead of the log's address"),
                )
            })?;
        let secure = location.starts_with("https://")
            || (location.starts_with("http://") && self.settings.api_url.starts_with("http://"));
        if !secure {
            return Err(PluginFailure::new(
                ErrorKind::Failed,
                format!(
                    "GitHub sent the log of {path} to an address that is not https; not followed"
                ),
            ));
        }
        let mut response = self
            .agent
            .get(&location)
            .call()
            .map_err(|e| transport_failure("GET", path, &e))?;
        match response.status().as_u16() {
            200 => {}
            404 | 410 => return Ok(None),
            status => {
                return Err(PluginFailure::new(
                    ErrorKind::Failed,
                    format!("the log of {path} could not be downloaded: answer {status}"),
                ))
            }
        }
        let reader = response
            .body_mut()
            .with_config()
            .limit(MAX_LOG_BYTES)
            .reader();
        Ok(Some(tail(reader, lines).map_err(|e| {
            PluginFailure::new(ErrorKind::Failed, format!("reading the log of {path}: {e}"))
        })?))
    }

    /// Sends one request to `api` with the token, records the rate limit the answer states,
    /// and turns a refusal into its error. Refuses without asking while the last answer said
    /// the limit is used up.
    fn send(
        &self,
        api: Api,
        method: &str,
        url: &str,
        add_headers: impl FnOnce(
            ureq::RequestBuilder<ureq::typestate::WithoutBody>,
        ) -> ureq::RequestBuilder<ureq::typestate::WithoutBody>,
        body: Option<&Value>,
    ) -> Result<ureq::http::Response<ureq::Body>, PluginFailure> {
        self.refuse_while_limited(api)?;
        let (token, source) = self.token()?;
        let path = url
            .strip_prefix(self.settings.api_url.as_str())
            .unwrap_or(url)
            .to_string();
        let authorization = format!("Bearer {token}");
        let result = match (method, body) {
            ("GET", _) => add_headers(self.agent.get(url))
                .header("Authorization", &authorization)
                .header("X-GitHub-Api-Version", "2022-11-28")
                .call(),
            ("PUT", Some(body)) => self
                .agent
                .put(url)
                .header("Authorization", &authorization)
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28")
                .send_json(body),
            (_, body) => self
                .agent
                .post(url)
                .header("Authorization", &authorization)
                .send_json(body.unwrap_or(&Value::Null)),
        };
        let mut response = result.map_err(|e| transport_failure(method, &path, &e))?;
        self.remember_limit(api, response.headers());
        let status = response.status().as_u16();
        if status < 400 {
            return Ok(response);
        }
        let said = response
            .body_mut()
            .with_config()
            .limit(64 << 10)
            .read_to_vec()
            .ok()
            .and_then(|body| serde_json::from_slice::<Value>(&body).ok())
            .and_then(|body| body["message"].as_str().map(quoted))
            .unwrap_or_default();
        Err(self.refusal(
            api,
            method,
            &path,
            status,
            response.headers(),
            &said,
            source,
        ))
    }

    fn refuse_while_limited(&self, api: Api) -> Result<(), PluginFailure> {
        let now = now_secs();
        let not_before = self
            .not_before
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&api)
            .copied()
            .unwrap_or(0);
        if not_before > now {
            return Err(PluginFailure::new(
                ErrorKind::RateLimited,
                format!(
                    "GitHub asked to wait before the next {} request, until {} (in {} s); not \
                     asking before then",
                    api.name(),
                    clock(not_before),
                    not_before - now
                ),
            ));
        }
        let limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        let Some(limit) = limits.get(&api) else {
            return Ok(());
        };
        if limit.remaining == 0 && limit.reset_at > now {
            return Err(PluginFailure::new(
                ErrorKind::RateLimited,
                format!(
                    "GitHub's {} rate limit is used up until {} (in {} s); not asking before then",
                    api.name(),
                    clock(limit.reset_at),
                    limit.reset_at - now
                ),
            ));
        }
        Ok(())
    }

    fn remember_limit(&self, api: Api, headers: &HeaderMap) {
        let number = |name: &str| header(headers, name).and_then(|v| v.trim().parse::<u64>().ok());
        let retry_after = number("retry-after").unwrap_or(0);
        let (Some(limit), Some(remaining)) =
            (number("x-ratelimit-limit"), number("x-ratelimit-remaining"))
        else {
            if retry_after > 0 {
                let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
                let entry = limits.entry(api).or_insert_with(|| RateLimit {
                    api: api.name().into(),
                    limit: 0,
                    remaining: 0,
                    reset_at: 0,
                    retry_after: 0,
                });
                entry.retry_after = retry_after;
            }
            return;
        };
        // The header says which limit counted (`core`, `graphql`, `search`…); only the two
        // this plugin uses are kept.
        let api = match header(headers, "x-ratelimit-resource").as_deref() {
            Some("graphql") => Api::GraphQl,
            Some("core") | None => Api::Rest,
            Some(_) => return,
        };
        self.limits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                api,
                RateLimit {
                    api: api.name().into(),
                    limit,
                    remaining,
                    reset_at: number("x-ratelimit-reset").unwrap_or(0),
                    retry_after,
                },
            );
    }

    #[allow(clippy::too_many_arguments)]
    fn refusal(
        &self,
        api: Api,
        method: &str,
        path: &str,
        status: u16,
        headers: &HeaderMap,
        said: &str,
        source: TokenSource,
    ) -> PluginFailure {
        let number = |name: &str| header(headers, name).and_then(|v| v.trim().parse::<u64>().ok());
        let what = format!("GitHub answered {status} to {method} {path}");
        let said = if said.is_empty() {
            String::new()
        } else {
            format!(" ({said})")
        };
        let retry_after = number("retry-after");
        let exhausted = number("x-ratelimit-remaining") == Some(0);
        match status {
            401 => {
                // A rejected token may have been replaced meanwhile: find it again next time.
                *self.token.lock().unwrap_or_else(|e| e.into_inner()) = None;
                PluginFailure::new(
                    ErrorKind::Config,
                    format!(
                        "{what}{said}: the token from {} was rejected; make a new one (`gh auth \
                         login`, or a token with repo access in GH_TOKEN)",
                        source.describe()
                    ),
                )
            }
            403 | 429
                if exhausted || retry_after.is_some() || said.contains("secondary rate limit") =>
            {
                let retry_after = match (retry_after, exhausted) {
                    (Some(secs), _) => Some(secs),
                    (None, false) => Some(SECONDARY_WAIT_SECS),
                    (None, true) => None,
                };
                if let Some(secs) = retry_after {
                    self.not_before
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(api, now_secs() + secs);
                }
                let wait = match (retry_after, number("x-ratelimit-reset")) {
                    (Some(secs), _) => {
                        format!("GitHub asks to wait {secs} s before the next request")
                    }
                    (None, Some(reset)) => format!(
                        "the {} rate limit is used up until {} (in {} s)",
                        api.name(),
                        clock(reset),
                        reset.saturating_sub(now_secs())
                    ),
                    (None, None) => format!("the {} rate limit is used up", api.name()),
                };
                PluginFailure::new(ErrorKind::RateLimited, format!("{what}{said}: {wait}"))
            }
            403 => PluginFailure::new(
                ErrorKind::Config,
                format!(
                    "{what}{said}: the token from {} may not do this; give it access to the \
                     repository",
                    source.describe()
                ),
            ),
            404 | 410 => PluginFailure::new(
                ErrorKind::NotFound,
                format!(
                    "{what}{said}: check the repository's owner/name and that the token can see it"
                ),
            ),
            _ => PluginFailure::new(ErrorKind::Failed, format!("{what}{said}")),
        }
    }
}

/// Whether `failure` is of `kind`.
pub fn is_kind(failure: &PluginFailure, kind: ErrorKind) -> bool {
    failure.kind.as_enum().ok() == Some(&kind)
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn transport_failure(method: &str, path: &str, error: &ureq::Error) -> PluginFailure {
    let (kind, what) = match error {
        ureq::Error::Timeout(_) => (
            ErrorKind::Failed,
            "took too long (see plugins.config.github.timeout_secs)".to_string(),
        ),
        ureq::Error::BodyExceedsLimit(limit) => (
            ErrorKind::Failed,
            format!("answered more than {} MiB; not read", limit >> 20),
        ),
        other => (
            ErrorKind::Unavailable,
            format!("could not be reached: {other}"),
        ),
    };
    PluginFailure::new(kind, format!("GitHub {what} ({method} {path})"))
}

/// Reads a JSON answer of at most [`MAX_ANSWER_BYTES`].
fn json_body<T: DeserializeOwned>(
    response: &mut ureq::http::Response<ureq::Body>,
    method: &str,
    path: &str,
) -> Result<T, PluginFailure> {
    let bytes = response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_vec()
        .map_err(|e| transport_failure(method, path, &e))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        PluginFailure::new(
            ErrorKind::Failed,
            format!("GitHub's answer to {method} {path} is not the JSON expected: {e}"),
        )
    })
}

/// The last `lines` lines of what `reader` gives, keeping only the end of it in memory; the
/// timestamps GitHub Actions puts before each line are dropped.
fn tail(mut reader: impl Read, lines: usize) -> std::io::Result<String> {
    let mut window: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let read = reader.read(&mut chunk)?;
        if read == 0 {
            break;
        }
        window.extend_from_slice(&chunk[..read]);
        if window.len() > 2 * LOG_WINDOW_BYTES {
            window.drain(..window.len() - LOG_WINDOW_BYTES);
        }
    }
    let text = String::from_utf8_lossy(&window);
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    Ok(all[start..]
        .iter()
        .map(|line| without_timestamp(line))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// `line` without a leading `2024-01-02T03:04:05.1234567Z ` (GitHub Actions' log prefix).
fn without_timestamp(line: &str) -> &str {
    let bytes = line.as_bytes();
    let stamped = bytes.len() > 20
        && bytes[4] == b'-'
        && bytes[10] == b'T'
        && bytes[..4].iter().all(u8::is_ascii_digit);
    match line.split_once("Z ") {
        Some((stamp, rest)) if stamped && stamp.len() <= 30 => rest,
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_lines_without_timestamps() {
        let log = "2024-01-02T03:04:05.1234567Z one\n2024-01-02T03:04:05.1234567Z two\nthree Z x\n";
        assert_eq!(tail(log.as_bytes(), 2).unwrap(), "two\nthree Z x");
        assert_eq!(tail(log.as_bytes(), 10).unwrap(), "one\ntwo\nthree Z x");
    }

    #[test]
    fn the_tail_of_a_huge_log_is_read_in_bounded_memory() {
        let mut log = "filler line\n".repeat(400_000).into_bytes();
        log.extend_from_slice(b"error: the last words\n");
        assert_eq!(tail(log.as_slice(), 1).unwrap(), "error: the last words");
    }
}
