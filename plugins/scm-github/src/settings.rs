//! `plugins.config.github`: where GitHub is, how to find a token, the webhook secret.

use std::time::Duration;

use ao_plugin_api::{ErrorKind, PluginFailure};
use serde::Deserialize;

/// GitHub.com's REST API.
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// The longest `refresh_secs`: a pull request's mergeability is never older than the watcher's
/// five minutes of staleness.
const MAX_REFRESH_SECS: u64 = 300;

/// What an operator may set; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The REST API: `https://api.github.com`, or `https://HOST/api/v3` for GitHub Enterprise.
    pub api_url: Option<String>,
    /// The GraphQL endpoint, when it is not where `api_url` implies (`…/graphql` on github.com,
    /// `https://HOST/api/graphql` for `https://HOST/api/v3`).
    pub graphql_url: Option<String>,
    /// A token written in the config (discouraged: the file is easy to share). Otherwise
    /// `GH_TOKEN`, `GITHUB_TOKEN`, then `gh auth token`.
    pub token: Option<String>,
    /// The secret the repository's webhook signs deliveries with.
    pub webhook_secret: Option<String>,
    /// The environment variable holding that secret, instead of writing it here.
    pub webhook_secret_env: Option<String>,
    /// How long one request may take, in seconds (default 30).
    pub timeout_secs: Option<u64>,
    /// How often the mergeability and review decision of an unchanged open pull request are
    /// asked again, in seconds (default 120): the pull request list does not change when its
    /// base moves under it.
    pub refresh_secs: Option<u64>,
    /// How `merge` merges: `merge` (default), `squash` or `rebase`.
    pub merge_method: Option<String>,
}

/// The settings checked and completed.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub api_url: String,
    pub graphql_url: String,
    /// The host `gh auth token --hostname` is asked about.
    pub gh_host: String,
    pub token: Option<String>,
    pub webhook_secret: Option<String>,
    pub webhook_secret_env: Option<String>,
    pub timeout: Duration,
    pub refresh: Duration,
    pub merge_method: String,
}

fn bad(key: &str, problem: &str) -> PluginFailure {
    PluginFailure::new(
        ErrorKind::Config,
        format!("plugins.config.github.{key}: {problem}; fix it in ao-rs.yaml"),
    )
}

impl Settings {
    /// Checks every value and fills in the defaults.
    pub fn resolve(self) -> Result<Resolved, PluginFailure> {
        let api_url = self
            .api_url
            .unwrap_or_else(|| DEFAULT_API_URL.to_string())
            .trim_end_matches('/')
            .to_string();
        check_url("api_url", &api_url)?;
        let graphql_url = match self.graphql_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => match api_url.strip_suffix("/api/v3") {
                Some(host) => format!("{host}/api/graphql"),
                None => format!("{api_url}/graphql"),
            },
        };
        check_url("graphql_url", &graphql_url)?;
        let host = host_of(&api_url);
        let gh_host = if host == "api.github.com" {
            "github.com".to_string()
        } else {
            host.to_string()
        };
        if self.token.as_deref().is_some_and(str::is_empty) {
            return Err(bad("token", "is empty; remove the key or set a token"));
        }
        if let Some(name) = &self.webhook_secret_env {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(bad(
                    "webhook_secret_env",
                    "must name an environment variable (letters, digits, `_`)",
                ));
            }
        }
        if self.webhook_secret.is_some() && self.webhook_secret_env.is_some() {
            return Err(bad(
                "webhook_secret",
                "is set together with webhook_secret_env; keep one",
            ));
        }
        let timeout = match self.timeout_secs {
            Some(0) => return Err(bad("timeout_secs", "must be at least 1")),
            Some(secs) => Duration::from_secs(secs),
            None => Duration::from_secs(30),
        };
        let refresh = match self.refresh_secs {
            Some(secs) if !(1..=MAX_REFRESH_SECS).contains(&secs) => {
                return Err(bad(
                    "refresh_secs",
                    &format!(
                        "{secs} is out of range; give 1 to {MAX_REFRESH_SECS} seconds (default 120)"
                    ),
                ))
            }
            Some(secs) => Duration::from_secs(secs),
            None => Duration::from_secs(120),
        };
        let merge_method = self.merge_method.unwrap_or_else(|| "merge".to_string());
        if !["merge", "squash", "rebase"].contains(&merge_method.as_str()) {
            return Err(bad(
                "merge_method",
                &format!("`{merge_method}` is not one of merge, squash, rebase"),
            ));
        }
        Ok(Resolved {
            api_url,
            graphql_url,
            gh_host,
            token: self.token,
            webhook_secret: self.webhook_secret,
            webhook_secret_env: self.webhook_secret_env,
            timeout,
            refresh,
            merge_method,
        })
    }
}

/// An `https` URL, or plain `http` to this machine only: anything else would send the token in
/// the clear.
fn check_url(key: &str, url: &str) -> Result<(), PluginFailure> {
    let Some((scheme, _)) = url.split_once("://") else {
        return Err(bad(key, &format!("`{url}` is not a URL (https://HOST/…)")));
    };
    let host = host_of(url);
    match scheme {
        "https" if !host.is_empty() => Ok(()),
        "http" if ["127.0.0.1", "localhost", "[::1]"].contains(&host) => Ok(()),
        "http" => Err(bad(
            key,
            &format!("`{url}` would send the token unencrypted; use https"),
        )),
        _ => Err(bad(key, &format!("`{url}` is not an https URL"))),
    }
}

/// The host of `url`, without port or credentials.
pub fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    if authority.starts_with('[') {
        return authority.split_inclusive(']').next().unwrap_or_default();
    }
    authority.split(':').next().unwrap_or_default()
}

/// Where the token came from, named in messages (never the token itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Settings,
    GhToken,
    GithubToken,
    GhCli,
}

impl TokenSource {
    pub fn describe(self) -> &'static str {
        match self {
            TokenSource::Settings => "plugins.config.github.token",
            TokenSource::GhToken => "GH_TOKEN",
            TokenSource::GithubToken => "GITHUB_TOKEN",
            TokenSource::GhCli => "`gh auth token`",
        }
    }
}

/// The token: the setting, else `GH_TOKEN`, else `GITHUB_TOKEN`, else what `gh auth token`
/// prints (`gh` is asked only when the others are missing).
pub fn find_token(
    setting: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
    gh: impl FnOnce() -> Result<String, String>,
) -> Result<(String, TokenSource), PluginFailure> {
    if let Some(token) = setting {
        return Ok((token.to_string(), TokenSource::Settings));
    }
    for (name, source) in [
        ("GH_TOKEN", TokenSource::GhToken),
        ("GITHUB_TOKEN", TokenSource::GithubToken),
    ] {
        if let Some(token) = env(name).filter(|t| !t.trim().is_empty()) {
            return Ok((token.trim().to_string(), source));
        }
    }
    match gh() {
        Ok(token) if !token.trim().is_empty() => Ok((token.trim().to_string(), TokenSource::GhCli)),
        outcome => {
            let why = match outcome {
                Err(why) => why,
                Ok(_) => "it printed nothing".to_string(),
            };
            Err(PluginFailure::new(
                ErrorKind::Config,
                format!(
                    "no GitHub token: set GH_TOKEN or GITHUB_TOKEN for ao-host, log in with \
                     `gh auth login` (`gh auth token` failed: {why}), or set \
                     plugins.config.github.token in ao-rs.yaml"
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(yaml: &str) -> Result<Resolved, PluginFailure> {
        serde_yaml_from(yaml).resolve()
    }

    fn serde_yaml_from(yaml: &str) -> Settings {
        serde_json::from_str(yaml).unwrap()
    }

    #[test]
    fn github_com_and_enterprise_get_their_graphql_endpoints() {
        let com = resolve("{}").unwrap();
        assert_eq!(com.graphql_url, "https://api.github.com/graphql");
        assert_eq!(com.gh_host, "github.com");
        let ghe = resolve(r#"{"api_url": "https://ghe.example.com/api/v3/"}"#).unwrap();
        assert_eq!(ghe.api_url, "https://ghe.example.com/api/v3");
        assert_eq!(ghe.graphql_url, "https://ghe.example.com/api/graphql");
        assert_eq!(ghe.gh_host, "ghe.example.com");
    }

    #[test]
    fn plain_http_is_refused_except_to_this_machine() {
        let error = resolve(r#"{"api_url": "http://ghe.example.com/api/v3"}"#).unwrap_err();
        assert!(
            error.message().contains("plugins.config.github.api_url")
                && error.message().contains("unencrypted"),
            "{}",
            error.message()
        );
        assert!(resolve(r#"{"api_url": "http://127.0.0.1:8080"}"#).is_ok());
    }

    #[test]
    fn refresh_secs_out_of_range_names_the_key_the_range_and_the_fix() {
        for secs in [0, 301] {
            let error = resolve(&format!(r#"{{"refresh_secs": {secs}}}"#)).unwrap_err();
            let message = error.message();
            for want in [
                "plugins.config.github.refresh_secs",
                "out of range",
                "1 to 300",
                "ao-rs.yaml",
            ] {
                assert!(message.contains(want), "{want} missing: {message}");
            }
        }
        assert_eq!(
            resolve(r#"{"refresh_secs": 300}"#).unwrap().refresh,
            Duration::from_secs(300)
        );
    }

    #[test]
    fn a_bad_merge_method_names_the_key_and_the_choices() {
        let error = resolve(r#"{"merge_method": "fast"}"#).unwrap_err();
        assert!(
            error.message().contains("merge_method") && error.message().contains("squash"),
            "{}",
            error.message()
        );
    }

    #[test]
    fn the_token_comes_from_the_setting_then_the_environment_then_gh() {
        let env = |name: &str| (name == "GITHUB_TOKEN").then(|| "from-env".to_string());
        let never = || -> Result<String, String> { panic!("gh asked although a token was found") };
        assert_eq!(
            find_token(Some("set"), env, never).unwrap(),
            ("set".to_string(), TokenSource::Settings)
        );
        assert_eq!(
            find_token(None, env, never).unwrap(),
            ("from-env".to_string(), TokenSource::GithubToken)
        );
        assert_eq!(
            find_token(None, |_| None, || Ok("gho_x\n".into())).unwrap(),
            ("gho_x".to_string(), TokenSource::GhCli)
        );
    }

    #[test]
    fn no_token_anywhere_names_all_three_ways() {
        let error = find_token(None, |_| None, || Err("gh is not installed".into())).unwrap_err();
        let message = error.message();
        for want in [
            "GH_TOKEN",
            "GITHUB_TOKEN",
            "gh auth login",
            "plugins.config.github.token",
            "gh is not installed",
        ] {
            assert!(message.contains(want), "{want} missing: {message}");
        }
    }
}
