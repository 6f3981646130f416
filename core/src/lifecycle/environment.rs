//! The environment a session's agent starts with: that of the `ao-host` process that spawns
//! or restores it (on another host: that host's login environment and what `pass_env` names),
//! with what plugins set on top. Never what the runtime's own long-lived processes (a tmux
//! server) were started with.

use ao_plugin_api::EnvVar;

use super::Lifecycle;
use crate::{config::DASHBOARD_TOKEN_ENV as TOKEN_ENV, remote::HostError};

/// Variables that describe the process that had them, not the agent: its working folder and
/// shell depth, and the program the shell last ran.
const PROCESS_OWN: [&str; 4] = ["PWD", "OLDPWD", "SHLVL", "_"];

impl Lifecycle {
    /// The whole environment of a session's agent on `host` (`None`: this machine): the base
    /// (this process's environment less `clear_env`; on another host, its login environment
    /// plus this process's variables its `pass_env` names), then `set`, the plugins' variables,
    /// over it. The dashboard's token never passes on by itself (a prompt-injected agent could
    /// drive the dashboard with it): not from this machine, and to another host only when
    /// `pass_env` names it in full, not through a prefix.
    pub(super) async fn agent_environment(
        &self,
        host: Option<&str>,
        set: &[EnvVar],
    ) -> Result<Vec<EnvVar>, HostError> {
        let mine: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .collect();
        let base: Vec<(String, String)> = match host {
            None => mine
                .into_iter()
                .filter(|(name, _)| name != TOKEN_ENV && !self.config.clear_env.matches(name))
                .collect(),
            Some(name) => {
                let host = self.host(name)?;
                let mut base = host.login_environment().await?;
                base.extend(mine.into_iter().filter(|(name, _)| {
                    let pass_env = &host.config().pass_env;
                    if name == TOKEN_ENV {
                        pass_env.names(name)
                    } else {
                        pass_env.matches(name)
                    }
                }));
                base
            }
        };
        Ok(merged(base, set))
    }
}

/// `base` with `set` over it, one entry per name (the last given wins), in a stable order. Of
/// the base, only variables a shell can pass on are kept: a name that is not an identifier
/// (`BASH_FUNC_f%%`, `a.b`) could not be set by the launcher, only complained about.
fn merged(base: Vec<(String, String)>, set: &[EnvVar]) -> Vec<EnvVar> {
    let mut whole = std::collections::BTreeMap::new();
    for (name, value) in base {
        if !PROCESS_OWN.contains(&name.as_str()) && is_identifier(&name) && !value.contains('\0') {
            whole.insert(name, value);
        }
    }
    for var in set {
        whole.insert(var.name.to_string(), var.value.to_string());
    }
    whole
        .into_iter()
        .map(|(name, value)| EnvVar::new(name, value))
        .collect()
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
fn is_identifier(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_variables_win_and_the_spawners_own_state_is_left_out() {
        let base = vec![
            ("KEY".to_string(), "spawner".to_string()),
            ("PWD".to_string(), "/somewhere/else".to_string()),
            ("KEPT".to_string(), "yes".to_string()),
            ("BASH_FUNC_f%%".to_string(), "() { :; }".to_string()),
            ("a.b".to_string(), "x".to_string()),
        ];
        let whole = merged(base, &[EnvVar::new("KEY", "plugin")]);
        assert_eq!(
            whole,
            [EnvVar::new("KEPT", "yes"), EnvVar::new("KEY", "plugin")]
        );
    }
}
