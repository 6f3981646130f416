//! The environment of a confined agent: an allow-list, not `clear_env`'s deny-list. A confined
//! agent gets what the host and its plugins set (`AO_*`, the agent's own variables, its
//! per-session config home), the basics a shell and a terminal need, the operator's variables
//! the agent plugin names (its API key and endpoint), and what `sandbox.env` names; nothing else.
//! `AWS_*`, `GITHUB_TOKEN` and the like stay outside unless the config names them.

use ao_plugin_api::EnvVar;

use crate::config::VariableNames;

/// What a shell, a terminal and a locale need; none of it is a secret.
const BASICS: [&str; 9] = [
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "TZ", "LC_*",
];

/// `whole` (a session's environment as an unconfined agent would get it) narrowed to what a
/// confined one may have: every variable of `set` (what the host and plugins set), and of the
/// rest only the basics, `pass_env` (the agent plugin's names) and `configured` (`sandbox.env`).
pub fn confined_environment(
    whole: Vec<EnvVar>,
    set: &[EnvVar],
    pass_env: &[String],
    configured: &VariableNames,
) -> Vec<EnvVar> {
    let basic = |name: &str| {
        BASICS.iter().any(|entry| match entry.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == *entry,
        })
    };
    whole
        .into_iter()
        .filter(|var| {
            let name = var.name.as_str();
            set.iter().any(|own| own.name.as_str() == name)
                || basic(name)
                || pass_env.iter().any(|passed| passed == name)
                || configured.matches(name)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(vars: &[EnvVar]) -> Vec<&str> {
        vars.iter().map(|v| v.name.as_str()).collect()
    }

    #[test]
    fn only_what_is_set_basic_or_named_passes() {
        let whole = [
            ("ANTHROPIC_API_KEY", "k"),
            ("AO_SESSION", "app-1"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("CLAUDE_CONFIG_DIR", "/d"),
            ("GITHUB_TOKEN", "t"),
            ("HOME", "/home/dev"),
            ("HTTPS_PROXY", "http://proxy"),
            ("LC_ALL", "C.UTF-8"),
            ("PATH", "/usr/bin"),
            ("PIP_INDEX_URL", "x"),
            ("SSH_AUTH_SOCK", "/run/agent"),
        ]
        .map(|(name, value)| EnvVar::new(name, value))
        .to_vec();
        let set = [
            EnvVar::new("AO_SESSION", "app-1"),
            EnvVar::new("CLAUDE_CONFIG_DIR", "/d"),
        ];
        let configured =
            VariableNames::from_list("sandbox.env", vec!["HTTPS_PROXY".into(), "PIP_*".into()])
                .unwrap();
        let confined =
            confined_environment(whole, &set, &["ANTHROPIC_API_KEY".into()], &configured);
        assert_eq!(
            names(&confined),
            [
                "ANTHROPIC_API_KEY",
                "AO_SESSION",
                "CLAUDE_CONFIG_DIR",
                "HOME",
                "HTTPS_PROXY",
                "LC_ALL",
                "PATH",
                "PIP_INDEX_URL"
            ]
        );
    }
}
