//! The session's own OpenCode config (`opencode.json` in its folder, named by `OPENCODE_CONFIG`)
//! and the status plugin it loads.
//!
//! OpenCode merges several configs: the operator's global one (`~/.config/opencode/`: providers,
//! models, their own plugins), then `OPENCODE_CONFIG`, then the project's. So the session's file
//! holds only what ao-host adds — the status plugin, the system prompt, permission rules — and
//! everything else still comes from the operator's own files, which are never written.
//! `plugin` and `instructions` lists add up across those files; any other key set here wins over
//! the operator's global value for this session only.

use std::path::Path;

use ao_plugin_api::{PluginError, PluginResult};
use ao_plugin_kit::validate::validate_program_name;
use serde_yaml::{Mapping, Value};

/// The status plugin's source, before the event command is filled in.
const STATUS_PLUGIN: &str = include_str!("ao-status.js");

/// The status plugin for one session: `event_command` (ao-host's argv; empty for a session
/// whose state ao-host does not record) as a JavaScript array literal, and whether ao-host set
/// `npm_config_offline` for OpenCode's own start-up install (the plugin then removes it, so the
/// agent's shell commands do not inherit it).
pub fn status_plugin(event_command: &[String], npm_offline_set: bool) -> PluginResult<String> {
    // JSON is a JavaScript expression: the argv goes in escaped, whatever it holds.
    let argv = serde_json::to_string(event_command)
        .map_err(|e| PluginError::failed(format!("encoding the event command: {e}")))?;
    Ok(STATUS_PLUGIN
        .replacen("__EVENT_COMMAND__", &argv, 1)
        .replacen("__NPM_OFFLINE_SET_BY_AO__", &npm_offline_set.to_string(), 1))
}

/// What goes into the session's config.
pub struct SessionConfig<'a> {
    /// The status plugin file.
    pub status_plugin: &'a Path,
    /// A file of instructions added to OpenCode's system prompt (ao-host's own prompt).
    pub instructions: Option<&'a Path>,
    /// The project's `agent_config.permission`, in OpenCode's own format.
    pub permission: Option<&'a Value>,
    /// Programs the agent may run through its shell tool without asking.
    pub allowed_commands: &'a [String],
}

impl SessionConfig<'_> {
    /// The config as JSON text. Built as an ordered mapping: OpenCode reads a tool's permission
    /// rules in order (the last matching one wins), so the project's rules keep theirs.
    pub fn to_json(&self, project_id: &str) -> PluginResult<String> {
        let mut document = Mapping::new();
        document.insert("$schema".into(), "https://opencode.ai/config.json".into());
        document.insert(
            "plugin".into(),
            Value::Sequence(vec![path_value(self.status_plugin)?]),
        );
        if let Some(file) = self.instructions {
            document.insert(
                "instructions".into(),
                Value::Sequence(vec![path_value(file)?]),
            );
        }
        let field = format!("projects.{project_id}.agent_config.permission");
        let mut permission = match self.permission {
            None => Mapping::new(),
            Some(Value::Mapping(rules)) => rules.clone(),
            Some(_) => {
                return Err(PluginError::config(format!(
                    "{field} must be a mapping of OpenCode permissions (e.g. `{{ bash: ask }}`)"
                )))
            }
        };
        if !self.allowed_commands.is_empty() {
            let bash = allowing(permission.get("bash"), self.allowed_commands, &field)?;
            permission.insert("bash".into(), bash);
        }
        if !permission.is_empty() {
            document.insert("permission".into(), Value::Mapping(permission));
        }
        serde_json::to_string_pretty(&Value::Mapping(document)).map_err(|e| {
            PluginError::config(format!(
                "{field} cannot be written as OpenCode's JSON config: {e}"
            ))
        })
    }
}

fn path_value(path: &Path) -> PluginResult<Value> {
    path.to_str()
        .map(Value::from)
        .ok_or_else(|| PluginError::invalid_input(format!("{} is not valid UTF-8", path.display())))
}

/// The `bash` permission with `allowed` programs allowed and nothing broader: each as
/// `<program> *` and `<program>` alone, after the project's own rules. Any other command keeps
/// the project's rule, or asks when the project set none (a bare string the operator set in
/// their global config would otherwise be replaced by these rules, and OpenCode's default
/// allows every command).
fn allowing(bash: Option<&Value>, allowed: &[String], field: &str) -> PluginResult<Value> {
    let mut rules = match bash {
        None => Mapping::from_iter([("*".into(), "ask".into())]),
        Some(Value::String(action)) => Mapping::from_iter([("*".into(), action.as_str().into())]),
        Some(Value::Mapping(rules)) => rules.clone(),
        Some(_) => {
            return Err(PluginError::config(format!(
                "{field}.bash must be ask, allow, deny or a mapping of command patterns"
            )))
        }
    };
    for program in allowed {
        // A rule is a pattern over the command line.
        validate_program_name(program)?;
        rules.insert(format!("{program} *").into(), "allow".into());
        rules.insert(program.as_str().into(), "allow".into());
    }
    Ok(Value::Mapping(rules))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(config: &SessionConfig) -> serde_json::Value {
        serde_json::from_str(&config.to_json("app").unwrap()).unwrap()
    }

    #[test]
    fn the_config_loads_the_status_plugin_and_the_prompt_and_nothing_else() {
        let config = SessionConfig {
            status_plugin: Path::new("/data/opencode/sessions/app-1/ao-status.js"),
            instructions: Some(Path::new("/data/opencode/sessions/app-1/system-prompt.md")),
            permission: None,
            allowed_commands: &[],
        };
        assert_eq!(
            json(&config),
            serde_json::json!({
                "$schema": "https://opencode.ai/config.json",
                "plugin": ["/data/opencode/sessions/app-1/ao-status.js"],
                "instructions": ["/data/opencode/sessions/app-1/system-prompt.md"],
            })
        );
    }

    #[test]
    fn allowed_commands_are_added_after_the_projects_rules_in_order() {
        let permission: Value =
            serde_yaml::from_str("{ edit: deny, bash: { 'git *': allow, 'git push *': ask } }")
                .unwrap();
        let config = SessionConfig {
            status_plugin: Path::new("/s/ao-status.js"),
            instructions: None,
            permission: Some(&permission),
            allowed_commands: &["ao-host".to_string()],
        };
        let text = config.to_json("app").unwrap();
        let order: Vec<usize> = ["git *", "git push *", "ao-host *"]
            .iter()
            .map(|rule| text.find(&format!("\"{rule}\"")).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
        let value = json(&config);
        assert_eq!(value["permission"]["edit"], "deny");
        assert_eq!(value["permission"]["bash"]["ao-host"], "allow");

        // With no rule of the project's, any other command asks.
        let config = SessionConfig {
            permission: None,
            ..config
        };
        let bash = &json(&config)["permission"]["bash"];
        assert_eq!(
            bash,
            &serde_json::json!({ "*": "ask", "ao-host *": "allow", "ao-host": "allow" })
        );
        let text = config.to_json("app").unwrap();
        assert!(text.find("\"*\"").unwrap() < text.find("\"ao-host *\"").unwrap());
    }

    #[test]
    fn hostile_commands_and_malformed_permissions_are_refused() {
        for hostile in ["", "ao host", "*", "ao-host;rm", "a(b)"] {
            let config = SessionConfig {
                status_plugin: Path::new("/s/ao-status.js"),
                instructions: None,
                permission: None,
                allowed_commands: &[hostile.to_string()],
            };
            assert!(config.to_json("app").is_err(), "{hostile:?}");
        }
        let permission = Value::from("allow");
        let config = SessionConfig {
            status_plugin: Path::new("/s/ao-status.js"),
            instructions: None,
            permission: Some(&permission),
            allowed_commands: &[],
        };
        let error = config.to_json("app").unwrap_err();
        assert!(
            error
                .message()
                .contains("projects.app.agent_config.permission"),
            "{error:?}"
        );
    }

    #[test]
    fn the_event_command_reaches_the_status_plugin_as_an_escaped_array() {
        let argv = vec![
            "/opt/ao host/ao-host".to_string(),
            "hook".into(),
            "it's \"quoted\" </script> \u{2028} ${x}".into(),
        ];
        let source = status_plugin(&argv, true).unwrap();
        let line = source
            .lines()
            .find(|l| l.starts_with("const EVENT_COMMAND = "))
            .unwrap();
        let literal = line
            .trim_start_matches("const EVENT_COMMAND = ")
            .trim_end_matches(';');
        assert_eq!(serde_json::from_str::<Vec<String>>(literal).unwrap(), argv);
        assert!(source.contains("const NPM_OFFLINE_SET_BY_AO = true;"));
        assert!(!source.contains("__"), "a placeholder was left");
    }
}
