//! Who may use the dashboard.
//!
//! - Every API request needs the token, as `Authorization: Bearer TOKEN`:
//!   `$AO_DASHBOARD_TOKEN`, else one generated once into `<data_dir>/dashboard.token` (mode
//!   0600). On loopback too: every local user can connect to a loopback port, and the agents
//!   run as the operator. The link printed when the token is made carries it, as notebook
//!   servers do. `--no-token` drops it on loopback, for a machine nobody else uses.
//! - Bound to a loopback address, requests must also name a loopback host (`Host:
//!   localhost:…`), or a web page on a domain that re-resolves to 127.0.0.1 (DNS rebinding)
//!   could read the API as if it were the page's own.
//! - A request that changes anything and comes from a page of another origin (its `Origin`
//!   header is not this server) is refused with 403, token or not; so is any API request a
//!   browser says comes from another page (`Sec-Fetch-Site: cross-site` or `same-site`).
//!
//! The page itself (`/`, its script and style) holds no data and is served to anyone who can
//! connect; it reads the token from the URL's fragment, which browsers never send.

use std::{
    io::{Read, Write},
    net::SocketAddr,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::Arc,
};

use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::api::ApiError;

/// The environment variable that sets the token.
pub use ao_core::config::DASHBOARD_TOKEN_ENV as TOKEN_ENV;

/// The token file's name in the data dir.
pub(crate) const TOKEN_FILE: &str = "dashboard.token";

/// Why the dashboard cannot be guarded as asked.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("{path}: {error}", path = path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path} can be read by other users (mode {mode:o}); run `chmod 600 {path}` or delete it to get a new token", path = path.display())]
    Exposed { path: PathBuf, mode: u32 },
    #[error("{what} is too short to be a token ({len} characters); use at least 16, e.g. `openssl rand -hex 32`")]
    Weak { what: String, len: usize },
    #[error("{what} holds {found}, which a token sent in an HTTP header cannot carry intact; use visible ASCII only, e.g. `openssl rand -hex 32`")]
    Unsendable { what: String, found: String },
    #[error("--no-token is only for a loopback address ({bind} is reachable from other machines); drop it, and use the token")]
    OpenWithoutToken { bind: SocketAddr },
}

/// The rules one dashboard applies.
#[derive(Debug, Clone)]
pub struct Access {
    /// Required on every API request when set.
    token: Option<Arc<str>>,
    /// Whether requests must name a loopback host (the server listens on loopback only).
    loopback_only: bool,
}

/// Where the token came from, for what the dashboard prints at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// None is needed: loopback with `--no-token`, no `$AO_DASHBOARD_TOKEN`.
    NotNeeded,
    Environment,
    /// Made just now into this file: print it, once.
    Generated(PathBuf),
    /// Read from this file, made by an earlier run.
    File(PathBuf),
}

impl Access {
    /// The rules for a server bound to `bind`: the token of `$AO_DASHBOARD_TOKEN` (`from_env`)
    /// when set, else none with `no_token` (loopback only), else the one read from, or
    /// generated into, the token file in `data_dir`.
    pub fn for_bind(
        bind: SocketAddr,
        from_env: Option<String>,
        no_token: bool,
        data_dir: &Path,
    ) -> Result<(Self, TokenSource), AccessError> {
        let loopback_only = bind.ip().is_loopback();
        if no_token && !loopback_only {
            return Err(AccessError::OpenWithoutToken { bind });
        }
        let (token, source) = match from_env.filter(|t| !t.is_empty()) {
            Some(token) => {
                check_strength(&token, TOKEN_ENV)?;
                (Some(token), TokenSource::Environment)
            }
            None if no_token => (None, TokenSource::NotNeeded),
            None => {
                let path = data_dir.join(TOKEN_FILE);
                let (token, generated) = read_or_generate(&path)?;
                let source = if generated {
                    TokenSource::Generated(path)
                } else {
                    TokenSource::File(path)
                };
                (Some(token), source)
            }
        };
        Ok((
            Self {
                token: token.map(Arc::from),
                loopback_only,
            },
            source,
        ))
    }

    /// The token requests must carry, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Why `request` may not go on, if it may not.
    fn refusal(&self, method: &Method, path: &str, headers: &HeaderMap) -> Option<ApiError> {
        if self.loopback_only && !names_loopback_host(headers) {
            return Some(ApiError::new(
                StatusCode::FORBIDDEN,
                "this dashboard listens on loopback only: open it as http://localhost:PORT or http://127.0.0.1:PORT",
            ));
        }
        let changes = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        if (changes && !same_origin(headers))
            || (path.starts_with("/api/") && from_other_page(headers))
        {
            return Some(ApiError::new(
                StatusCode::FORBIDDEN,
                "refused: this request comes from a page of another site or of another port of this machine, not from this dashboard's own page",
            ));
        }
        if let Some(token) = &self.token {
            if path.starts_with("/api/") && !carries_token(headers, token) {
                return Some(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "this dashboard needs its token: send `Authorization: Bearer TOKEN` ($AO_DASHBOARD_TOKEN, or the one in <data_dir>/dashboard.token); in a browser, open /#token=TOKEN",
                ));
            }
        }
        None
    }
}

/// The middleware that applies [`Access`] to every request.
pub(super) async fn guard(
    State(access): State<Arc<Access>>,
    request: Request,
    next: Next,
) -> Response {
    match access.refusal(request.method(), request.uri().path(), request.headers()) {
        Some(refusal) => {
            let mut response = refusal.into_response();
            if response.status() == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
            }
            response
        }
        None => {
            // The whole body, within a time limit, before any handler sees it: a client that
            // sends a body slowly (or never finishes it) must not hold a request open forever.
            let (parts, body) = request.into_parts();
            match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY)).await {
                Err(_) => ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request's body did not arrive within {} s",
                        BODY_TIMEOUT.as_secs()
                    ),
                )
                .into_response(),
                Ok(Err(_)) => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the request's body is larger than {MAX_BODY} bytes, or was cut off"),
                )
                .into_response(),
                Ok(Ok(bytes)) => {
                    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                        .await
                }
            }
        }
    }
}

/// How long a client may take to send a request's body.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// The largest body any endpoint takes (a spawn's JSON: a 1 MiB task, escaped); each endpoint
/// has its own, smaller, limit too.
const MAX_BODY: usize = ao_core::session::MAX_TASK_BYTES * 6 + 4096;

/// Whether the `Host` header names this machine's loopback (any port).
fn names_loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        // HTTP/1.0 clients may send none; a browser always does.
        return true;
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let name = name.to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether a browser says the request comes from a page other than this dashboard's: another
/// site's, or another port's or subdomain's of this one (`same-site`). Such a page may not make
/// this server do anything, not even a GET that logs in to hosts (`<img src=…/api/doctor>`).
/// The dashboard's own page sends `same-origin`, a typed address `none`, scripts nothing.
fn from_other_page(headers: &HeaderMap) -> bool {
    headers.get("sec-fetch-site").is_some_and(|site| {
        let site = site.as_bytes();
        !(site.eq_ignore_ascii_case(b"same-origin") || site.eq_ignore_ascii_case(b"none"))
    })
}

/// Whether a request's `Origin`, when it has one, is this very server (as its `Host` names it).
/// Scripts send no `Origin`; browsers send it on every request that changes anything.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(Ok(host))) = (
        origin.to_str(),
        headers.get(header::HOST).map(|h| h.to_str()),
    ) else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|authority| authority.eq_ignore_ascii_case(host))
}

/// Whether the request carries `token` as its bearer token (compared in constant time).
fn carries_token(headers: &HeaderMap, token: &str) -> bool {
    // The scheme name is case-insensitive (RFC 9110).
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token)
    else {
        return false;
    };
    let (given, token) = (given.trim().as_bytes(), token.as_bytes());
    given.len() == token.len()
        && given
            .iter()
            .zip(token)
            .fold(0u8, |differ, (a, b)| differ | (a ^ b))
            == 0
}

fn check_strength(token: &str, what: &str) -> Result<(), AccessError> {
    if let Some(bad) = token.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(AccessError::Unsendable {
            what: what.to_string(),
            found: if bad.is_whitespace() {
                "whitespace".to_string()
            } else {
                format!("{:?}", bad)
            },
        });
    }
    if token.trim().len() < 16 {
        return Err(AccessError::Weak {
            what: what.to_string(),
            len: token.trim().len(),
        });
    }
    Ok(())
}

/// The token in `path`, or a new one written there (mode 0600, never over an existing file);
/// `true` when it was made now.
fn read_or_generate(path: &Path) -> Result<(String, bool), AccessError> {
    let io = |error| AccessError::Io {
        path: path.to_path_buf(),
        error,
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            let token = random_hex(32).map_err(io)?;
            file.write_all(format!("{token}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(io)?;
            Ok((token, true))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Never through a link, never another user's: a token someone else planted is
            // one they know.
            let file = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(path)
                .map_err(io)?;
            let meta = file.metadata().map_err(io)?;
            ao_plugin_kit::private::check_trusted(path, &meta).map_err(io)?;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(AccessError::Exposed {
                    path: path.to_path_buf(),
                    mode,
                });
            }
            let mut token = String::new();
            file.take(4096).read_to_string(&mut token).map_err(io)?;
            let token = token.trim_end_matches(['\n', '\r']).to_string();
            check_strength(&token, &path.display().to_string())?;
            Ok((token, false))
        }
        Err(e) => Err(io(e)),
    }
}

/// `bytes` random bytes from the kernel, as hex.
fn random_hex(bytes: usize) -> std::io::Result<String> {
    let mut buffer = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buffer)?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), value.parse().unwrap());
        }
        map
    }

    #[test]
    fn only_loopback_host_names_pass_on_loopback() {
        for host in [
            "localhost:3000",
            "127.0.0.1:3000",
            "[::1]:3000",
            "LOCALHOST",
            "app.localhost:1",
        ] {
            assert!(
                names_loopback_host(&headers(&[(header::HOST, host)])),
                "{host}"
            );
        }
        for host in [
            "evil.example:3000",
            "127.0.0.1.evil.example",
            "localhost.evil.example:3000",
            "[::2]:3000",
        ] {
            assert!(
                !names_loopback_host(&headers(&[(header::HOST, host)])),
                "{host}"
            );
        }
    }

    #[test]
    fn a_foreign_origin_is_told_apart_from_this_server() {
        let host = (header::HOST, "127.0.0.1:3000");
        assert!(same_origin(&headers(std::slice::from_ref(&host))));
        assert!(same_origin(&headers(&[
            host.clone(),
            (header::ORIGIN, "http://127.0.0.1:3000")
        ])));
        for origin in [
            "http://evil.example",
            "null",
            "http://127.0.0.1:3001",
            "http://127.0.0.1:3000.evil.example",
        ] {
            assert!(
                !same_origin(&headers(&[host.clone(), (header::ORIGIN, origin)])),
                "{origin}"
            );
        }
    }

    #[test]
    fn only_the_dashboards_own_page_a_typed_address_or_a_script_may_use_the_api() {
        let site =
            |value: &str| headers(&[(header::HeaderName::from_static("sec-fetch-site"), value)]);
        assert!(!from_other_page(&HeaderMap::new()));
        for own in ["same-origin", "none", "Same-Origin"] {
            assert!(!from_other_page(&site(own)), "{own}");
        }
        for other in ["same-site", "cross-site", "SAME-SITE", "something-new"] {
            assert!(from_other_page(&site(other)), "{other}");
        }
    }

    #[test]
    fn the_token_must_match_exactly() {
        let with = |value: &str| headers(&[(header::AUTHORIZATION, value)]);
        let token = "0123456789abcdef0123";
        assert!(carries_token(&with("Bearer 0123456789abcdef0123"), token));
        assert!(carries_token(&with("bearer 0123456789abcdef0123"), token));
        assert!(!carries_token(&with("Bearer 0123456789abcdef012"), token));
        assert!(!carries_token(&with("Bearer 0123456789abcdef0124"), token));
        assert!(!carries_token(&with("Basic 0123456789abcdef0123"), token));
        assert!(!carries_token(&HeaderMap::new(), token));
    }

    #[test]
    fn a_generated_token_is_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let bind: SocketAddr = "0.0.0.0:0".parse().unwrap();
        let (first, source) = Access::for_bind(bind, None, false, dir.path()).unwrap();
        let path = dir.path().join(TOKEN_FILE);
        assert_eq!(source, TokenSource::Generated(path.clone()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (again, source) = Access::for_bind(bind, None, false, dir.path()).unwrap();
        assert_eq!(source, TokenSource::File(path.clone()));
        assert_eq!(first.token(), again.token());
        assert_eq!(first.token().unwrap().len(), 64);

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Access::for_bind(bind, None, false, dir.path()).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
        let err = Access::for_bind(bind, None, true, dir.path()).unwrap_err();
        assert!(err.to_string().contains("only for a loopback"), "{err}");
    }

    #[test]
    fn loopback_needs_the_token_too_unless_told_not_to() {
        let dir = tempfile::tempdir().unwrap();
        let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let (access, source) = Access::for_bind(loopback, None, false, dir.path()).unwrap();
        let path = dir.path().join(TOKEN_FILE);
        assert_eq!(source, TokenSource::Generated(path));
        assert_eq!(access.token().map(str::len), Some(64));
        let (access, source) = Access::for_bind(loopback, None, true, dir.path()).unwrap();
        assert_eq!((access.token(), source), (None, TokenSource::NotNeeded));
        let set = Some("a-long-enough-token-1234".to_string());
        let (access, source) = Access::for_bind(loopback, set, true, dir.path()).unwrap();
        assert_eq!(access.token(), Some("a-long-enough-token-1234"));
        assert_eq!(source, TokenSource::Environment);
        let weak = Access::for_bind(loopback, Some("short".into()), false, dir.path()).unwrap_err();
        assert!(weak.to_string().contains("too short"), "{weak}");
        for unsendable in [
            "  padded-token-1234567890  ",
            "é-unicode-ééééééééééé",
            "line\nbreak-0123456789",
        ] {
            let err =
                Access::for_bind(loopback, Some(unsendable.into()), false, dir.path()).unwrap_err();
            assert!(
                err.to_string().contains("visible ASCII"),
                "{unsendable:?}: {err}"
            );
        }
    }
}
