//! Each session's own Gemini home: `GEMINI_CLI_HOME=<session folder>/home`, so the CLI reads
//! its settings from, and keeps its chats, history and state in `<session folder>/home/.gemini/`
//! instead of the operator's `~/.gemini/`, which is only ever read.
//!
//! What goes in it at launch, from the operator's `.gemini/`:
//! - `settings.json`, their settings (JSON with comments, as Gemini CLI reads it) with the
//!   session's hooks added, its policy file (the commands an orchestrator may run unasked)
//!   added to `policyPaths`, `security.auth.selectedType` set when the
//!   plugin's `auth_type` says so, automatic updates off (an update is an `npm install` the
//!   CLI starts detached, which would outlive the session) and the banner shown (the screen
//!   reader tells by it that the CLI finished starting);
//! - copies of the credentials (`oauth_creds.json`, `google_accounts.json`,
//!   `mcp-oauth-tokens.json`, `.env`) and of the custom commands, skills, agents and policies;
//!   a resumed session keeps its own copies (the CLI may have refreshed a token in them);
//! - the global memory file (`GEMINI.md`, or the first name of `context.fileName`): the
//!   operator's, followed by ao-host's instructions for the session (its system prompt), which
//!   Gemini CLI puts into the model's system instruction.
//!
//! Extensions are not copied (they may hold whole `node_modules` trees).

use std::{
    fs,
    path::{Path, PathBuf},
};

use ao_plugin_api::{PluginError, PluginResult};
use ao_plugin_kit::session_files::SessionFiles;
use serde_json::{json, Map, Value};

/// The variable that moves Gemini CLI's home (its `.gemini/` folder) elsewhere.
pub const HOME_VARIABLE: &str = "GEMINI_CLI_HOME";

/// Credentials and similar files copied from the operator's `.gemini/`.
const COPIED_FILES: [&str; 4] = [
    "oauth_creds.json",
    "google_accounts.json",
    "mcp-oauth-tokens.json",
    ".env",
];
/// Folders of small text files copied whole.
const COPIED_FOLDERS: [&str; 4] = ["commands", "skills", "agents", "policies"];
/// The session's policy file, in its folder (outside the home: it is the plugin's, not the CLI's).
const POLICY_FILE: &str = "policy.toml";
/// Gemini CLI's name for its memory files unless `context.fileName` says otherwise.
const DEFAULT_MEMORY_FILE: &str = "GEMINI.md";

/// What the session's settings get on top of the operator's.
pub struct Additions {
    /// Hooks per event, appended to the operator's for the same events.
    pub hooks: Option<Value>,
    /// A policy file of the session's own (TOML), added to `policyPaths`.
    pub policy: Option<String>,
    pub auth_type: Option<String>,
    /// ao-host's instructions for the session, appended to the global memory.
    pub system_prompt: Option<String>,
}

/// One session's folder (`<data_dir>/gemini/sessions/<id>/`) and the home in it.
pub struct SessionHome {
    dir: PathBuf,
}

impl SessionHome {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// What `GEMINI_CLI_HOME` is set to.
    pub fn path(&self) -> PathBuf {
        self.dir.join("home")
    }

    /// Where the hooks' event command writes its complaints.
    pub fn hook_log(&self) -> PathBuf {
        self.dir.join("hooks.log")
    }

    /// Writes the session's settings and memory, and copies the operator's credentials and
    /// folders from `user_home/.gemini` (all of them at spawn; only missing ones on resume).
    pub fn prepare(
        &self,
        files: &SessionFiles,
        session_id: &str,
        user_home: Option<&Path>,
        resuming: bool,
        additions: &Additions,
    ) -> PluginResult<()> {
        let ours = self.path().join(".gemini");
        let theirs = user_home
            .map(|home| home.join(".gemini"))
            .filter(|theirs| *theirs != ours);
        let user_settings = match &theirs {
            Some(theirs) => read_settings(&theirs.join("settings.json"))?,
            None => Map::new(),
        };
        let memory_file = memory_file_name(&user_settings);
        let policy_file = match &additions.policy {
            Some(policy) => Some(files.write(session_id, POLICY_FILE, policy.as_bytes())?),
            None => None,
        };
        let settings = session_settings(user_settings, additions, policy_file.as_deref());
        let text = serde_json::to_string_pretty(&Value::Object(settings))
            .map_err(|e| PluginError::failed(format!("writing the session's settings: {e}")))?;
        files.write(session_id, "home/.gemini/settings.json", text.as_bytes())?;
        if let Some(theirs) = &theirs {
            for name in COPIED_FILES {
                copy_file(&theirs.join(name), &ours.join(name), resuming)?;
            }
            for name in COPIED_FOLDERS {
                if !resuming || !ours.join(name).exists() {
                    copy_folder(&theirs.join(name), &ours.join(name))?;
                }
            }
        }
        // On resume the memory written at spawn stays: the host gives no system prompt then.
        if !resuming || additions.system_prompt.is_some() {
            let own = match &theirs {
                Some(theirs) => read_optional(&theirs.join(&memory_file))?,
                None => None,
            };
            let memory = [own, additions.system_prompt.clone()]
                .into_iter()
                .flatten()
                .filter(|part| !part.trim().is_empty())
                .collect::<Vec<_>>()
                .join("\n\n");
            if !memory.is_empty() {
                files.write(
                    session_id,
                    &format!("home/.gemini/{memory_file}"),
                    memory.as_bytes(),
                )?;
            }
        }
        Ok(())
    }
}

/// The authentication the operator chose in Gemini CLI (`security.auth.selectedType` of their
/// settings), if any.
pub fn chosen_auth(user_home: Option<&Path>) -> Option<String> {
    let settings = read_settings(&user_home?.join(".gemini").join("settings.json")).ok()?;
    settings
        .get("security")?
        .get("auth")?
        .get("selectedType")?
        .as_str()
        .map(str::to_string)
}

/// The operator's settings as an object; none at all is an empty one.
fn read_settings(path: &Path) -> PluginResult<Map<String, Value>> {
    let Some(text) = read_optional(path)? else {
        return Ok(Map::new());
    };
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(&without_comments(&text)) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(PluginError::config(format!(
            "{} is not a JSON object; fix it (Gemini CLI would not start with it either)",
            path.display()
        ))),
        Err(e) => Err(PluginError::config(format!(
            "{}: {e}; fix it (Gemini CLI would not start with it either)",
            path.display()
        ))),
    }
}

fn read_optional(path: &Path) -> PluginResult<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PluginError::failed(format!(
            "reading {}: {e}",
            path.display()
        ))),
    }
}

/// The memory file's name: `context.fileName` (a name or a list, the first counts), else
/// `GEMINI.md`. Only a plain file name is taken.
fn memory_file_name(settings: &Map<String, Value>) -> String {
    let configured = match settings.get("context").and_then(|c| c.get("fileName")) {
        Some(Value::String(name)) => Some(name.as_str()),
        Some(Value::Array(names)) => names.first().and_then(Value::as_str),
        _ => None,
    };
    configured
        .filter(|name| !name.is_empty() && !name.contains('/') && *name != "." && *name != "..")
        .unwrap_or(DEFAULT_MEMORY_FILE)
        .to_string()
}

/// The object at `key` in `map`, made one if it is missing or something else.
fn object<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = map.entry(key).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    slot.as_object_mut().expect("made an object above")
}

/// The operator's `settings` with `additions`; `policy_file` is where the session's policy is.
fn session_settings(
    mut settings: Map<String, Value>,
    additions: &Additions,
    policy_file: Option<&Path>,
) -> Map<String, Value> {
    if let Some(Value::Object(hooks)) = &additions.hooks {
        let theirs = object(&mut settings, "hooks");
        for (event, groups) in hooks {
            let list = theirs.entry(event.clone()).or_insert_with(|| json!([]));
            if !list.is_array() {
                *list = json!([]);
            }
            let list = list.as_array_mut().expect("made an array above");
            list.extend(groups.as_array().into_iter().flatten().cloned());
        }
        // Hooks switched off in the operator's settings would leave the host without events.
        object(&mut settings, "hooksConfig").insert("enabled".into(), json!(true));
    }
    if let Some(file) = policy_file {
        let paths = settings.entry("policyPaths").or_insert_with(|| json!([]));
        if !paths.is_array() {
            *paths = json!([]);
        }
        let paths = paths.as_array_mut().expect("made an array above");
        paths.push(json!(file.display().to_string()));
    }
    if let Some(auth) = &additions.auth_type {
        let security = object(&mut settings, "security");
        object(security, "auth").insert("selectedType".into(), json!(auth));
    }
    // The banner tells the screen reader the CLI is initialised (see `screen::is_settled`).
    object(&mut settings, "ui").insert("hideBanner".into(), json!(false));
    let general = object(&mut settings, "general");
    general.insert("enableAutoUpdate".into(), json!(false));
    general.insert("enableAutoUpdateNotification".into(), json!(false));
    settings
}

/// Copies a file of the operator's unless it is missing; on resume only where the session has
/// none. Credentials stay owner-only. Neither end is followed through a link: a confined agent
/// can plant one in its home (a dangling one would otherwise have this unconfined process write
/// the operator's credentials wherever it points), and a link in the operator's folder may lead
/// to a key the agent must not read; the copy replaces whatever is at `to`.
fn copy_file(from: &Path, to: &Path, keep_existing: bool) -> PluginResult<()> {
    if keep_existing && fs::symlink_metadata(to).is_ok() {
        return Ok(());
    }
    let contents = match read_no_follow(from) {
        Ok(contents) => contents,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(PluginError::failed(format!(
                "copying {}: {e}; replace it with a plain file of yours, or remove it",
                from.display()
            )))
        }
    };
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| PluginError::failed(format!("creating {}: {e}", parent.display())))?;
    }
    ao_plugin_kit::private::write(to, &contents, false).map_err(|e| {
        PluginError::failed(format!(
            "copying {} to {}: {e}",
            from.display(),
            to.display()
        ))
    })
}

/// The bytes of the regular file `path`, never through a link (nor blocking on a FIFO).
fn read_no_follow(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::{io::Read, os::unix::fs::OpenOptionsExt};
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let mut contents = Vec::new();
    file.read_to_end(&mut contents)?;
    Ok(contents)
}

/// Copies a folder's files and subfolders (symbolic links are left out: they may lead anywhere).
fn copy_folder(from: &Path, to: &Path) -> PluginResult<()> {
    let Ok(entries) = fs::read_dir(from) else {
        return Ok(());
    };
    fs::create_dir_all(to)
        .map_err(|e| PluginError::failed(format!("creating {}: {e}", to.display())))?;
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_folder(&entry.path(), &target)?;
        } else if kind.is_file() {
            copy_file(&entry.path(), &target, false)?;
        }
    }
    Ok(())
}

/// `text` with its `//` and `/* */` comments blanked out (strings left alone), as Gemini CLI's
/// own reader (strip-json-comments) takes settings files.
fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => out.extend(chars.next()),
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                let mut previous = ' ';
                for c in chars.by_ref() {
                    if previous == '*' && c == '/' {
                        break;
                    }
                    if c == '\n' {
                        out.push('\n');
                    }
                    previous = c;
                }
                out.push(' ');
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use ao_plugin_api::{abi_stable::std_types::RString, PluginContext};

    use super::*;

    #[test]
    fn comments_are_blanked_but_strings_kept() {
        let text =
            "{\n  // a comment\n  \"a\": \"http://x/*y*/\", /* block\n */ \"b\": \"q\\\"//\"\n}";
        let value: Value = serde_json::from_str(&without_comments(text)).unwrap();
        assert_eq!(value, json!({"a": "http://x/*y*/", "b": "q\"//"}));
    }

    #[test]
    fn the_operators_settings_get_the_sessions_hooks_after_their_own() {
        let theirs = json!({
            "hooks": { "AfterAgent": [{ "hooks": [{ "type": "command", "command": "mine" }] }] },
            "hooksConfig": { "enabled": false, "disabled": ["x"] },
            "policyPaths": ["/mine.toml"],
            "general": { "vimMode": true },
        });
        let additions = Additions {
            hooks: Some(json!({
                "AfterAgent": [{ "hooks": [{ "command": "ours" }] }],
                "BeforeAgent": [{ "hooks": [{ "command": "ours" }] }],
            })),
            policy: Some("rules".into()),
            auth_type: Some("gemini-api-key".into()),
            system_prompt: None,
        };
        let merged = Value::Object(session_settings(
            theirs.as_object().unwrap().clone(),
            &additions,
            Some(Path::new("/s/policy.toml")),
        ));
        assert_eq!(
            merged["hooks"]["AfterAgent"][0]["hooks"][0]["command"],
            "mine"
        );
        assert_eq!(
            merged["hooks"]["AfterAgent"][1]["hooks"][0]["command"],
            "ours"
        );
        assert_eq!(
            merged["hooks"]["BeforeAgent"][0]["hooks"][0]["command"],
            "ours"
        );
        assert_eq!(
            merged["hooksConfig"],
            json!({ "enabled": true, "disabled": ["x"] })
        );
        assert_eq!(
            merged["policyPaths"],
            json!(["/mine.toml", "/s/policy.toml"])
        );
        assert_eq!(merged["security"]["auth"]["selectedType"], "gemini-api-key");
        assert_eq!(merged["general"]["vimMode"], true);
        assert_eq!(merged["general"]["enableAutoUpdate"], false);
    }

    #[test]
    fn a_session_home_is_seeded_from_the_operators_and_never_writes_there() {
        let temp = std::env::temp_dir().join(format!("ao-gemini-home-{}", std::process::id()));
        let user = temp.join("user");
        let theirs = user.join(".gemini");
        fs::create_dir_all(theirs.join("commands/sub")).unwrap();
        let settings = "{ // mine\n \"context\": { \"fileName\": [\"AGENTS.md\"] } }";
        fs::write(theirs.join("settings.json"), settings).unwrap();
        fs::write(theirs.join("oauth_creds.json"), "{\"token\": 1}").unwrap();
        fs::write(theirs.join("AGENTS.md"), "my memory").unwrap();
        fs::write(theirs.join("commands/sub/c.toml"), "prompt = 'x'").unwrap();
        let before = fs::read_dir(&theirs).unwrap().count();
        let files = SessionFiles::new(&PluginContext {
            plugin_name: RString::from("gemini"),
            data_dir: RString::from(temp.join("data").to_str().unwrap()),
            config_yaml: RString::new(),
        });
        let home = SessionHome::new(files.path("app-1").unwrap());
        let additions = Additions {
            hooks: None,
            policy: None,
            auth_type: None,
            system_prompt: Some("You are app-1.".into()),
        };
        home.prepare(&files, "app-1", Some(&user), false, &additions)
            .unwrap();
        let ours = home.path().join(".gemini");
        assert_eq!(
            fs::read_to_string(ours.join("AGENTS.md")).unwrap(),
            "my memory\n\nYou are app-1."
        );
        assert_eq!(
            fs::read_to_string(ours.join("oauth_creds.json")).unwrap(),
            "{\"token\": 1}"
        );
        assert!(ours.join("commands/sub/c.toml").is_file());
        let written: Value =
            serde_json::from_str(&fs::read_to_string(ours.join("settings.json")).unwrap()).unwrap();
        assert_eq!(written["context"]["fileName"], json!(["AGENTS.md"]));
        // A resumed session keeps its refreshed token and the memory written at spawn.
        fs::write(ours.join("oauth_creds.json"), "{\"token\": 2}").unwrap();
        let resumed = Additions {
            system_prompt: None,
            ..additions
        };
        home.prepare(&files, "app-1", Some(&user), true, &resumed)
            .unwrap();
        assert_eq!(
            fs::read_to_string(ours.join("oauth_creds.json")).unwrap(),
            "{\"token\": 2}"
        );
        assert!(fs::read_to_string(ours.join("AGENTS.md"))
            .unwrap()
            .ends_with("You are app-1."));
        assert_eq!(
            fs::read_to_string(theirs.join("settings.json")).unwrap(),
            settings
        );
        assert_eq!(fs::read_dir(&theirs).unwrap().count(), before);
        fs::remove_dir_all(&temp).unwrap();
    }

    #[test]
    fn broken_operator_settings_are_named() {
        let temp = std::env::temp_dir().join(format!("ao-gemini-bad-{}", std::process::id()));
        fs::create_dir_all(&temp).unwrap();
        fs::write(temp.join("settings.json"), "{ nope").unwrap();
        let error = read_settings(&temp.join("settings.json")).unwrap_err();
        assert!(error.to_string().contains("settings.json"), "{error}");
        fs::remove_dir_all(&temp).unwrap();
    }

    #[test]
    fn copies_never_go_through_a_link_at_either_end() {
        let dir = tempfile::tempdir().unwrap();
        let (theirs, ours) = (dir.path().join("theirs"), dir.path().join("ours"));
        fs::create_dir_all(&theirs).unwrap();
        fs::create_dir_all(&ours).unwrap();
        fs::write(theirs.join("oauth_creds.json"), "{}").unwrap();
        // Planted by a confined agent in its home: dangling, pointing where it wants a write.
        let target = dir.path().join("operator-file");
        std::os::unix::fs::symlink(&target, ours.join("oauth_creds.json")).unwrap();
        copy_file(
            &theirs.join("oauth_creds.json"),
            &ours.join("oauth_creds.json"),
            false,
        )
        .unwrap();
        assert!(!target.exists(), "written through the planted link");
        assert!(!ours.join("oauth_creds.json").is_symlink());
        // On resume an existing entry, a link included, is left alone and never followed.
        std::fs::remove_file(ours.join("oauth_creds.json")).unwrap();
        std::os::unix::fs::symlink(&target, ours.join("oauth_creds.json")).unwrap();
        copy_file(
            &theirs.join("oauth_creds.json"),
            &ours.join("oauth_creds.json"),
            true,
        )
        .unwrap();
        assert!(!target.exists());

        // A link in the operator's folder (to a key) is refused, not copied.
        fs::write(dir.path().join("id_ed25519"), "PRIVATE KEY").unwrap();
        std::os::unix::fs::symlink(
            dir.path().join("id_ed25519"),
            theirs.join("google_accounts.json"),
        )
        .unwrap();
        let err = copy_file(
            &theirs.join("google_accounts.json"),
            &ours.join("google_accounts.json"),
            false,
        )
        .unwrap_err();
        assert!(err.message().contains("google_accounts.json"), "{err}");
        assert!(!ours.join("google_accounts.json").exists());
    }
}
