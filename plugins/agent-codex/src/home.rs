//! The session's own `CODEX_HOME`: Codex reads its config, credentials, hooks and rules from
//! there and keeps its conversations there, so a session never touches the operator's
//! `~/.codex` and a restored session finds its conversation again.
//!
//! What goes in (rewritten at every launch; Codex's own files — `sessions/`, its databases — are
//! left alone):
//! - `auth.json` (never through a link) and `AGENTS.md`, copied from the operator's Codex home
//!   when there (a copy stays when the operator's is gone: a sign-in made inside the session is
//!   kept);
//! - `config.toml`: the operator's own, verbatim, then tables of the session's: the workspace
//!   trusted (`[projects."<path>"]`, with `trust_workspaces`) and the trust of the session's
//!   hooks (`[hooks.state."<home>/hooks.json:<event>:0:0"]`). Top-level settings go on the
//!   command line (`-c`) instead, where they override the operator's without clashing;
//! - `hooks.json`: the hooks that run the host's event command (see `HOOKS`);
//! - `rules/ao-allowed.rules`: prefix rules allowing `allowed_commands` without approval.
//!
//! Hook trust: Codex 0.171 runs a hook only once its identity's hash is recorded as trusted
//! (otherwise it asks "Hooks need review" at start). The hash is SHA-256 of the compact,
//! key-sorted JSON `{"event_name":"<snake_case event>","hooks":[{"async":false,"command":…,
//! "timeout":…,"type":"command"}]}`, checked against what 0.171.0 itself recorded. It is not a
//! documented interface: should a release change it, the review dialog shows and the plugin
//! reports it instead of answering it (answering would trust every hook of the workspace too).

use std::{io::ErrorKind, path::Path};

use ao_plugin_api::{PluginError, PluginResult};
use ao_plugin_kit::{
    confinement::seed_files, files::Files, shell, validate::validate_program_name,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// One hook: the event's name in `hooks.json`, its snake_case label in trust keys, and what it
/// adds to the event command.
struct Hook {
    event: &'static str,
    label: &'static str,
    args: &'static [&'static str],
}

/// Which hook means what (observed on 0.171.0 against the stand-in):
/// - `SessionStart` fires when the first turn starts (not when the TUI opens), just before
///   `UserPromptSubmit`, also for a resumed conversation (`source: "resume"`); its `session_id`
///   is the conversation id `codex resume` takes;
/// - `UserPromptSubmit`: `prompt` is what the model gets;
/// - `PreToolUse` / `PostToolUse`: `tool_name` "Bash", `tool_input.command`;
/// - `PermissionRequest`: the approval prompt is up; `tool_input.command` is the command,
///   `tool_input.description` the model's justification;
/// - `Stop`: the turn is over (not after an interrupted or refused turn);
/// - `SessionEnd`: Codex quits (`reason: "other"`); its timeout is clamped to 1–3 s.
const HOOKS: &[Hook] = &[
    Hook {
        event: "SessionStart",
        label: "session_start",
        args: &["--status", "idle", "--conversation-field", "session_id"],
    },
    Hook {
        event: "UserPromptSubmit",
        label: "user_prompt_submit",
        args: &["--status", "working", "--prompt-field", "prompt"],
    },
    Hook {
        event: "PreToolUse",
        label: "pre_tool_use",
        args: &["--status", "working"],
    },
    Hook {
        event: "PermissionRequest",
        label: "permission_request",
        args: &[
            "--status",
            "waiting_input",
            "--waiting-for-field",
            "tool_name",
            "--waiting-for-field",
            "/tool_input/command",
        ],
    },
    Hook {
        event: "PostToolUse",
        label: "post_tool_use",
        args: &["--status", "working"],
    },
    Hook {
        event: "Stop",
        label: "stop",
        args: &["--status", "idle"],
    },
    Hook {
        event: "SessionEnd",
        label: "session_end",
        args: &["--status", "exited"],
    },
];

/// Seconds a hook may take; Codex waits for each (they are synchronous).
const HOOK_TIMEOUT: u64 = 10;
/// Codex clamps `SessionEnd` hooks to 1–3 s, and hashes the clamped value.
const SESSION_END_TIMEOUT: u64 = 3;

/// What one session's home holds besides what is copied.
pub struct HomeContents<'a> {
    /// The operator's Codex home to seed from (may not exist).
    pub user_home: &'a Path,
    /// The workspace's paths to mark trusted (none unless the operator allowed it).
    pub trusted_workspaces: &'a [String],
    /// The host's event command (empty: no hooks).
    pub event_command: &'a [String],
    /// Programs the agent may run without approval.
    pub allowed_commands: &'a [String],
}

/// Writes the session's home at `home` (an existing, canonical, owner-only folder), through
/// `files` (the machine the session runs on).
pub fn write(files: &Files, home: &Path, contents: &HomeContents) -> PluginResult<()> {
    // The sign-in never through a link: one planted in the operator's home could copy a key
    // where a confined agent reads it.
    seed_files(files, contents.user_home, home, &["auth.json"])?;
    copy_optional(
        files,
        &contents.user_home.join("AGENTS.md"),
        &home.join("AGENTS.md"),
    )?;
    let mut config = read_optional(files, &contents.user_home.join("config.toml"))?;
    if !config.is_empty() && !config.ends_with('\n') {
        config.push('\n');
    }
    config.push_str("\n# Added by ao-host for this session.\n");
    for workspace in contents.trusted_workspaces {
        config.push_str(&format!(
            "[projects.{}]\ntrust_level = \"trusted\"\n\n",
            toml_string(workspace)
        ));
    }
    let hooks_file = home.join("hooks.json");
    if contents.event_command.is_empty() {
        remove(files, &hooks_file)?;
    } else {
        let (hooks, trust) = hooks(contents.event_command, &hooks_file);
        write_file(
            files,
            &hooks_file,
            &serde_json::to_string_pretty(&hooks).unwrap(),
        )?;
        config.push_str(&trust);
    }
    write_file(files, &home.join("config.toml"), &config)?;
    let rules_file = home.join("rules").join("ao-allowed.rules");
    if contents.allowed_commands.is_empty() {
        remove(files, &rules_file)
    } else {
        let rules_dir = home.join("rules");
        files
            .create_dir_all(&rules_dir, true)
            .map_err(|e| PluginError::failed(format!("creating {}: {e}", rules_dir.display())))?;
        write_file(files, &rules_file, &allow_rules(contents.allowed_commands)?)
    }
}

/// `hooks.json` for the event command, and the `config.toml` tables that trust each hook.
fn hooks(event_command: &[String], hooks_file: &Path) -> (Value, String) {
    let mut events = serde_json::Map::new();
    let mut trust = String::new();
    for hook in HOOKS {
        let mut argv: Vec<&str> = event_command.iter().map(String::as_str).collect();
        argv.extend_from_slice(hook.args);
        let command = shell::join(&argv);
        let timeout = if hook.event == "SessionEnd" {
            SESSION_END_TIMEOUT
        } else {
            HOOK_TIMEOUT
        };
        events.insert(
            hook.event.into(),
            json!([{ "hooks": [{ "type": "command", "command": command, "timeout": timeout }] }]),
        );
        let key = format!("{}:{}:0:0", hooks_file.display(), hook.label);
        trust.push_str(&format!(
            "[hooks.state.{}]\ntrusted_hash = \"{}\"\n\n",
            toml_string(&key),
            trust_hash(hook.label, &command, timeout)
        ));
    }
    (json!({ "hooks": events }), trust)
}

/// Codex's `trusted_hash` of one command hook (see the module's doc).
fn trust_hash(label: &str, command: &str, timeout: u64) -> String {
    // serde_json's maps are sorted (no `preserve_order`), and its compact form is Codex's.
    let identity = json!({
        "event_name": label,
        "hooks": [{ "async": false, "command": command, "timeout": timeout, "type": "command" }],
    });
    let digest = Sha256::digest(identity.to_string().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Prefix rules (Codex's Starlark rule files) allowing each program with any arguments.
fn allow_rules(allowed: &[String]) -> PluginResult<String> {
    allowed
        .iter()
        .map(|program| {
            // A rule matches the command's first words.
            validate_program_name(program)?;
            Ok(format!(
                "prefix_rule(pattern = [\"{program}\"], decision = \"allow\")\n"
            ))
        })
        .collect()
}

/// `text` as a TOML basic string (also a valid key): quotes, backslashes and every control
/// character escaped, the rest as is.
pub fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn read_optional(files: &Files, path: &Path) -> PluginResult<String> {
    match files.read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(PluginError::failed(format!(
            "reading {}: {e}",
            path.display()
        ))),
    }
}

fn remove(files: &Files, path: &Path) -> PluginResult<()> {
    files
        .remove_file(path)
        .map_err(|e| PluginError::failed(format!("removing {}: {e}", path.display())))
}

/// Copies `from` to `to` when `from` exists (credentials among them: the home is owner-only).
/// When it does not, a copy from an earlier launch stays: a sign-in made inside the session is
/// kept.
fn copy_optional(files: &Files, from: &Path, to: &Path) -> PluginResult<()> {
    match files.read_to_string(from) {
        Ok(text) => write_file(files, to, &text),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(PluginError::failed(format!(
            "reading {}: {e}",
            from.display()
        ))),
    }
}

/// Writes `path` whole (a temporary file beside it, renamed over).
fn write_file(files: &Files, path: &Path, text: &str) -> PluginResult<()> {
    files
        .write(path, text.as_bytes())
        .map_err(|e| PluginError::failed(format!("writing {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use std::{fs, os::unix::fs::PermissionsExt};

    use super::*;

    #[test]
    fn the_trust_hash_is_the_one_codex_0_171_recorded() {
        // Recorded by Codex 0.171.0 itself ("Trust all and continue") for these hooks.
        assert_eq!(
            trust_hash("pre_tool_use", "/tmp/cx/hook.sh PreToolUse", 10),
            "sha256:8ae2d6d002d0c7a317a340d49500a3ef7dd85258658e3d15a9b2df327fc4b952"
        );
        assert_eq!(
            trust_hash("session_end", "/tmp/cx/hook.sh SessionEnd", 3),
            "sha256:e1137b110add50756728e710d039819dd94530d1c3254cda2641dc9bee8961db"
        );
    }

    #[test]
    fn toml_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(toml_string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(toml_string("t\tn\nr\r"), r#""t\tn\nr\r""#);
        assert_eq!(toml_string("\u{7f}\u{1b}é🎉"), "\"\\u007F\\u001Bé🎉\"");
    }

    #[test]
    fn the_home_holds_the_operators_config_then_the_sessions_tables() {
        let temp = std::env::temp_dir().join(format!("ao-codex-home-{}", std::process::id()));
        let user = temp.join("user");
        let home = temp.join("home");
        fs::create_dir_all(&user).unwrap();
        fs::create_dir_all(&home).unwrap();
        fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(user.join("config.toml"), "model = \"mine\"").unwrap();
        fs::write(user.join("auth.json"), "{}").unwrap();
        let event_command = vec!["/opt/ao host".to_string(), "hook".to_string()];
        write(
            &Files::here(),
            &home,
            &HomeContents {
                user_home: &user,
                trusted_workspaces: &["/w/it's \"here\"".to_string()],
                event_command: &event_command,
                allowed_commands: &["ao-host".to_string()],
            },
        )
        .unwrap();
        let config = fs::read_to_string(home.join("config.toml")).unwrap();
        assert!(config.starts_with("model = \"mine\"\n"), "{config}");
        assert!(config.contains("[projects.\"/w/it's \\\"here\\\"\"]\ntrust_level = \"trusted\"\n"));
        let hooks: Value =
            serde_json::from_str(&fs::read_to_string(home.join("hooks.json")).unwrap()).unwrap();
        let start = hooks["hooks"]["SessionStart"][0]["hooks"][0]["command"]
            .as_str()
            .unwrap();
        assert!(
            start.starts_with("'/opt/ao host' hook --status idle"),
            "{start}"
        );
        let key = format!("{}:session_start:0:0", home.join("hooks.json").display());
        assert!(config.contains(&format!(
            "[hooks.state.\"{key}\"]\ntrusted_hash = \"{}\"",
            trust_hash("session_start", start, 10)
        )));
        assert_eq!(hooks["hooks"]["SessionEnd"][0]["hooks"][0]["timeout"], 3);
        assert_eq!(fs::read_to_string(home.join("auth.json")).unwrap(), "{}");
        assert_eq!(
            fs::read_to_string(home.join("rules/ao-allowed.rules")).unwrap(),
            "prefix_rule(pattern = [\"ao-host\"], decision = \"allow\")\n"
        );
        // Nothing to report and nothing allowed: no hooks, no rules; credentials stay.
        fs::remove_file(user.join("auth.json")).unwrap();
        write(
            &Files::here(),
            &home,
            &HomeContents {
                user_home: &user,
                trusted_workspaces: &[],
                event_command: &[],
                allowed_commands: &[],
            },
        )
        .unwrap();
        assert!(!home.join("hooks.json").exists());
        assert!(!home.join("rules/ao-allowed.rules").exists());
        assert!(home.join("auth.json").exists());
        assert!(!fs::read_to_string(home.join("config.toml"))
            .unwrap()
            .contains("[projects."));
        for hostile in ["", "ao host", "*", "a;b"] {
            assert!(allow_rules(&[hostile.to_string()]).is_err(), "{hostile:?}");
        }
        fs::remove_dir_all(&temp).unwrap();
    }

    #[test]
    fn a_planted_link_to_a_key_is_never_copied_as_the_sign_in() {
        let temp = tempfile::tempdir().unwrap();
        let (user, home) = (temp.path().join("user"), temp.path().join("home"));
        fs::create_dir_all(&user).unwrap();
        fs::create_dir_all(&home).unwrap();
        fs::write(temp.path().join("id_ed25519"), "PRIVATE KEY").unwrap();
        std::os::unix::fs::symlink(temp.path().join("id_ed25519"), user.join("auth.json")).unwrap();
        let err = write(
            &Files::here(),
            &home,
            &HomeContents {
                user_home: &user,
                trusted_workspaces: &[],
                event_command: &[],
                allowed_commands: &[],
            },
        )
        .unwrap_err();
        assert!(err.message().contains("auth.json"), "{err}");
        assert!(!home.join("auth.json").exists());
    }
}
