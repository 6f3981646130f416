//! Runtime plugin `tmux`: each session is a detached tmux session running the agent directly
//! (argv, never a shell string), and messages arrive through named paste buffers.
//!
//! Why buffers and not `send-keys`: `send-keys` types text key by key, so newlines submit early,
//! long text is slow, and the text is parsed for key names. A buffer loaded from stdin and pasted
//! with bracketed paste reaches the agent byte-exact as one paste, which a TUI treats as text.
//!
//! Several ao-host data dirs may share one tmux server: session names carry the data dir's
//! [owner tag](PluginContext::owner_tag), and each session records its data dir in a user option,
//! so one installation neither collides with nor lists (nor `gc`s) another's sessions.
//!
//! A handle is `<session name>@<server socket path>`: which tmux server this runtime reaches
//! depends on the caller's environment (`TMUX_TMPDIR`, `$TMUX`) and on the `socket` setting, so
//! a command run from another shell may reach another server, where the session is not. The
//! handle lets every method tell "not on the server I reach" (an error saying how to reach it)
//! from "gone" (which a kill would count as done).

use std::{
    borrow::Cow,
    ffi::OsString,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use ao_plugin_api::{
    abi_stable::std_types::RString,
    export_plugins,
    sandbox::{PathAccess, PathRule},
    DoctorCheck, PluginContext, PluginError, PluginFailure, PluginResult, Runtime,
    RuntimeCreateRequest,
};
use ao_plugin_kit::prelude::*;
use ao_plugin_kit::{
    files::Files,
    launch::{Environment, Launch},
    program,
    program::Program,
    validate::validate_id,
};
use serde::Deserialize;

export_plugins! {
    runtime "tmux" => TmuxRuntime [remote],
}

/// What tmux itself sets for a pane's process, kept when the agent gets exactly the host's
/// environment: its terminal type, and how a program inside tmux finds its server and pane.
const PANE_VARIABLES: [&str; 7] = [
    "TERM",
    "TERM_PROGRAM",
    "TERM_PROGRAM_VERSION",
    "COLORTERM",
    "TMUX",
    "TMUX_PANE",
    "PWD",
];
/// A tmux user option set on every session this plugin creates, holding the data dir it belongs
/// to.
const OWNER_OPTION: &str = "@ao-host-session";
/// What [`OWNER_OPTION`] held on sessions of releases up to v0.1.2, which did not record their
/// data dir (nor tag their names): "made by some ao-host". Such a session is alive for the
/// record that names it, but never counted among this data dir's own: `gc` never removes one
/// as an orphan.
const LEGACY_OWNER: &str = "1";
/// A tmux user option holding the handle `create` returned, so listings give back exactly the
/// strings the host recorded. Sessions made before handles named their server lack it; their
/// handle was the bare session name.
const HANDLE_OPTION: &str = "@ao-host-handle";
/// Ends a bracketed paste: text containing it could escape the paste and press keys.
const PASTE_END: &str = "\x1b[201~";
/// Sessions captured by one tmux command; keeps the command well inside tmux's 16 KiB message.
const CAPTURE_BATCH: usize = 64;
/// How long an agent gets to exit on SIGTERM at `destroy` before it is killed.
const AGENT_STOP_GRACE: Duration = Duration::from_secs(2);
/// How long a paste may take to appear on screen before Enter is pressed anyway.
const PASTE_SETTLE_LIMIT: Duration = Duration::from_secs(2);
const PASTE_SETTLE_POLL: Duration = Duration::from_millis(25);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// tmux server socket name (`tmux -L`); default: tmux's default server.
    socket: Option<String>,
}

pub struct TmuxRuntime {
    tmux: Program,
    socket: Option<String>,
    /// The socket path of the server `socket` reaches from this process's environment, as tmux
    /// resolves it; the part of every handle after `@`.
    server: String,
    launch_dir: PathBuf,
    /// The host's data dir, recorded on each session as its owner.
    owner: String,
    /// Earlier paths of this data dir ([`PluginContext::owner_aliases`]): sessions made before
    /// it was moved are still its own.
    aliases: Vec<String>,
    /// [`PluginContext::owner_tag`], the suffix of every session name.
    tag: String,
}

/// Makes paste-buffer names unique within this process.
static BUFFER_SEQUENCE: AtomicU64 = AtomicU64::new(0);

impl TmuxRuntime {
    /// `-u`: tmux decides from the locale whether its client speaks UTF-8, and in a non-UTF-8
    /// one (an ssh command gets no `LANG`) it prints every tab and non-ASCII character of an
    /// answer as `_`, which would garble the fields this plugin reads.
    fn args<'a>(&'a self, rest: &[&'a str]) -> Vec<&'a str> {
        let mut args = Vec::with_capacity(rest.len() + 3);
        args.push("-u");
        if let Some(socket) = &self.socket {
            args.extend(["-L", socket.as_str()]);
        }
        args.extend_from_slice(rest);
        args
    }

    /// Runs a tmux command aimed at session `name`; a missing session is `NotFound`.
    fn run_on(&self, name: &str, rest: &[&str], input: Option<&[u8]>) -> PluginResult<String> {
        let output = self.tmux.output(None, self.args(rest), input)?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else if Self::is_missing_target(&output) {
            Err(self.missing(name))
        } else {
            Err(self.tmux.failure(&output))
        }
    }

    /// The session name in `handle`, once the handle is known to be for the server this
    /// runtime reaches: asked on the wrong server, a live session would look gone.
    fn session_name<'h>(&self, handle: &'h str) -> PluginResult<&'h str> {
        let (name, server) = split_handle(handle);
        validate_id("tmux session", name)?;
        match server {
            Some(server) if server != self.server => Err(PluginError::invalid_input(format!(
                "tmux session `{name}` runs on tmux server {server}, while this ao-host reaches \
                 tmux server {}; run the command with the same TMUX_TMPDIR and \
                 plugins.config.tmux.socket as the spawn that started it (inside tmux, with no \
                 socket set, $TMUX decides too)",
                self.server
            ))),
            _ => Ok(name),
        }
    }

    /// `=name` matches the session exactly; plain `-t name` would also match `name0` by prefix.
    fn session_target(name: &str) -> String {
        format!("={name}")
    }

    /// The session's first window (its only one). `=name:` alone is not enough: with no such
    /// session tmux 3.3 falls back to the current window of another session.
    fn pane_target(name: &str) -> String {
        format!("={name}:^")
    }

    /// Whether session `name` exists; tmux failing for another reason than its absence (a lost
    /// connection to the session's host, tmux missing there) is an error, never "gone".
    fn session_exists(&self, name: &str) -> PluginResult<bool> {
        let target = Self::session_target(name);
        let output = self
            .tmux
            .output(None, self.args(&["has-session", "-t", &target]), None)?;
        if output.status.success() {
            Ok(true)
        } else if Self::is_missing_target(&output) {
            Ok(false)
        } else {
            Err(self.tmux.failure(&output))
        }
    }

    /// Whether tmux failed because the session (or the whole server) does not exist. A server
    /// that is shutting down (its last session just ended) answers "no current target", "server
    /// exited unexpectedly" or "lost server": that too means no such session, not a failure.
    fn is_missing_target(output: &std::process::Output) -> bool {
        let stderr = String::from_utf8_lossy(&output.stderr);
        [
            "can't find",
            "no server running",
            "error connecting",
            "no such",
            "no current target",
            "server exited unexpectedly",
            "lost server",
        ]
        .iter()
        .any(|m| stderr.contains(m))
    }

    /// The names of every session on this server (none when no server runs).
    fn session_names(&self) -> PluginResult<std::collections::HashSet<String>> {
        let output = self.tmux.output(
            None,
            self.args(&["list-sessions", "-F", "#{session_name}"]),
            None,
        )?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout)
                .lines()
                .map(str::to_string)
                .collect())
        } else if Self::is_missing_target(&output) {
            Ok(Default::default())
        } else {
            Err(self.tmux.failure(&output))
        }
    }

    /// Whether a session's recorded owner is this data dir, at its present path or an earlier one.
    fn owns(&self, owner: &str) -> bool {
        owner == self.owner || self.aliases.iter().any(|alias| alias == owner)
    }

    fn missing(&self, name: &str) -> PluginError {
        PluginError::not_found(format!(
            "no tmux session `{name}` on tmux server {} (it exited or was killed)",
            self.server
        ))
    }

    /// Sessions of this data dir on this server, by the handle `create` returned for each;
    /// `live_only` leaves out those whose agent exited (the pane kept by `remain-on-exit`), and
    /// adds the live ones of releases that did not record their data dir ([`LEGACY_OWNER`]):
    /// alive for whichever record names them, never this data dir's to remove as orphans.
    fn listed(&self, live_only: bool) -> PluginResult<Vec<String>> {
        // Tab-separated, owner last: names and paths with spaces (or tabs, in the owner) stay
        // whole. `create` refuses a handle holding a tab.
        let format =
            format!("#{{session_name}}\t#{{pane_dead}}\t#{{{HANDLE_OPTION}}}\t#{{{OWNER_OPTION}}}");
        let output =
            self.tmux
                .output(None, self.args(&["list-panes", "-a", "-F", &format]), None)?;
        if !output.status.success() {
            // No server running means no sessions, not a failure.
            if Self::is_missing_target(&output) {
                return Ok(Vec::new());
            }
            return Err(self.tmux.failure(&output));
        }
        let mut handles: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| {
                let mut fields = line.splitn(4, '\t');
                let (name, dead) = (fields.next()?, fields.next()?);
                let (handle, owner) = (fields.next()?, fields.next()?);
                let listed = if live_only {
                    dead == "0" && (self.owns(owner) || owner == LEGACY_OWNER)
                } else {
                    self.owns(owner)
                };
                let handle = if handle.is_empty() { name } else { handle };
                listed.then(|| handle.to_string())
            })
            .collect();
        handles.sort();
        handles.dedup();
        Ok(handles)
    }

    /// Starts the agent in a new session. Its environment and argv reach it through a launch
    /// file (see [`Launch`]): tmux's own `-e NAME=VALUE` would put every value on a command
    /// line, and tmux gives a pane the server's environment, not its client's.
    fn launch(
        &self,
        request: &RuntimeCreateRequest,
        environment: Environment,
    ) -> PluginResult<String> {
        let id = request.session_id.as_str();
        validate_id("session id", id)?;
        request.existing_cwd()?;
        if self.server.chars().any(char::is_control) {
            return Err(PluginError::invalid_input(format!(
                "the tmux socket path {:?} holds a control character, which a session handle \
                 cannot carry; set TMUX_TMPDIR to a plain folder",
                self.server
            )));
        }
        let name = format!("{id}_{}", self.tag);
        let handle = format!("{name}@{}", self.server);
        let launch = Launch::prepare(&self.launch_dir, request, environment, &PANE_VARIABLES)?;
        let argv: Vec<String> = launch
            .argv
            .iter()
            .map(|arg| literal(arg).into_owned())
            .collect();
        let cwd = literal(request.cwd.as_str());
        let owner = literal(&self.owner);
        let recorded = literal(&handle);
        let pane = Self::pane_target(&name);
        // One tmux command, three steps: a placeholder pane, `remain-on-exit` so that an agent
        // that dies at once leaves its last screen to read (set on the placeholder, because a
        // fast-failing agent could be gone before a later command runs), then the agent itself
        // in place of the placeholder.
        let mut args = vec!["new-session", "-d", "-s", &name, "-x", "200", "-y", "50"];
        args.extend(["--", "env", "cat", ";"]);
        args.extend(["set-option", "-w", "-t", &pane, "remain-on-exit", "on", ";"]);
        // Marks the session as this data dir's, so `alive_handles` (and `gc`) never touch an
        // operator's own tmux sessions, nor another data dir's, on the same server; and records
        // its handle, which listings return.
        args.extend(["set-option", "-t", &pane, OWNER_OPTION, &owner, ";"]);
        args.extend(["set-option", "-t", &pane, HANDLE_OPTION, &recorded, ";"]);
        args.extend(["respawn-pane", "-k", "-t", &pane, "-c", &cwd, "--"]);
        args.extend(argv.iter().map(String::as_str));
        // No separate existence check (one tmux process less per spawn): `new-session` refuses
        // a taken name, and tmux runs none of the chained commands after a failed one, so the
        // existing session is left as it was.
        let output = self
            .tmux
            .output(None, self.args(&args), None)
            .inspect_err(|_| launch.discard())?;
        if !output.status.success() {
            launch.discard();
            if String::from_utf8_lossy(&output.stderr).contains("duplicate session") {
                return Err(PluginError::invalid_input(format!(
                    "tmux session `{name}` already exists; kill it or choose another id"
                )));
            }
            return Err(self.tmux.failure(&output));
        }
        Ok(handle)
    }

    /// The size in bytes of paste buffer `buffer`, `None` when there is no such buffer.
    fn buffer_size(&self, buffer: &str) -> PluginResult<Option<usize>> {
        let output = self.tmux.output(
            None,
            self.args(&["list-buffers", "-F", "#{buffer_name}\t#{buffer_size}"]),
            None,
        )?;
        if !output.status.success() {
            // No server, or no buffers at all.
            return if Self::is_missing_target(&output) {
                Ok(None)
            } else {
                Err(self.tmux.failure(&output))
            };
        }
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .find(|(name, _)| *name == buffer)
            .and_then(|(_, size)| size.parse().ok()))
    }

    /// Deletes paste buffer `buffer`, if it is there.
    fn drop_buffer(&self, buffer: &str) {
        let _ = self
            .tmux
            .output(None, self.args(&["delete-buffer", "-b", buffer]), None);
    }

    /// Waits until the pane stops changing after a paste, so Enter is not swallowed by a TUI
    /// still taking the paste in.
    fn wait_for_paste(&self, name: &str, before: &str) -> PluginResult<()> {
        let deadline = Instant::now() + PASTE_SETTLE_LIMIT;
        let mut last = before.to_string();
        let mut changed = false;
        while Instant::now() < deadline {
            std::thread::sleep(PASTE_SETTLE_POLL);
            let now = self.capture(name, 50, false)?;
            if now == last && changed {
                return Ok(());
            }
            changed |= now != last;
            last = now;
        }
        Ok(())
    }

    /// The pane's screen plus `lines` lines of history, raw; a missing session is `NotFound`.
    /// The pane's last `lines` lines; with `styled`, with its colours as SGR sequences
    /// (`capture-pane -e`).
    fn capture(&self, name: &str, lines: u32, styled: bool) -> PluginResult<String> {
        let target = Self::pane_target(name);
        let start = format!("-{lines}");
        let mut args = vec!["capture-pane", "-p", "-J"];
        if styled {
            args.push("-e");
        }
        args.extend(["-t", &target, "-S", &start]);
        self.run_on(name, &args, None)
    }
}

/// A handle's session name and, unless it predates handles naming their server, the server's
/// socket path. Session names never hold `@` (see `validate_id`), so the first `@` splits.
fn split_handle(handle: &str) -> (&str, Option<&str>) {
    match handle.split_once('@') {
        Some((name, server)) => (name, Some(server)),
        None => (handle, None),
    }
}

/// The socket a tmux client started with `-L socket` (no `-L` for `None`) connects to, worked
/// out as tmux does: without `-L`, `$TMUX`'s socket when set (a client inside tmux talks to its
/// own server); else `<dir>/tmux-<uid>/<socket or "default">`, `dir` being the real path of
/// `$TMUX_TMPDIR` when that exists, else of `/tmp`, and the `tmux-<uid>` folder resolved too.
fn socket_path(socket: Option<&str>, env: impl Fn(&str) -> Option<OsString>, uid: u32) -> PathBuf {
    if socket.is_none() {
        let inside = env("TMUX").map(|v| v.to_string_lossy().into_owned());
        if let Some(path) = inside.as_deref().and_then(|v| v.split(',').next()) {
            if !path.is_empty() {
                return PathBuf::from(path);
            }
        }
    }
    let dir = env("TMUX_TMPDIR")
        .filter(|dir| !dir.is_empty())
        .and_then(|dir| std::fs::canonicalize(dir).ok())
        .or_else(|| std::fs::canonicalize("/tmp").ok())
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let base = dir.join(format!("tmux-{uid}"));
    let base = std::fs::canonicalize(&base).unwrap_or(base);
    base.join(socket.unwrap_or("default"))
}

/// What to hide of the server at `socket` from a confined agent: tmux's own socket folder
/// (`tmux-<uid>`) when the socket is in one, else the socket alone (a `$TMUX` socket elsewhere
/// may sit in a folder that holds anything).
fn server_hiding(socket: &Path) -> &Path {
    match socket.parent() {
        Some(folder)
            if folder
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| {
                    name.strip_prefix("tmux-").is_some_and(|uid| {
                        !uid.is_empty() && uid.bytes().all(|b| b.is_ascii_digit())
                    })
                }) =>
        {
            folder
        }
        _ => socket,
    }
}

/// [`socket_path`] on the machine of the current transport, worked out there by its shell in
/// one round trip (`$TMUX` does not count: an ssh command is never inside tmux).
fn remote_socket_path(socket: Option<&str>) -> PluginResult<PathBuf> {
    const SCRIPT: &str = r#"u=$(id -u) || exit 1
d=$(cd -P -- "${TMUX_TMPDIR:-/tmp}" 2>/dev/null && pwd -P) || d=$(cd -P /tmp && pwd -P)
b="$d/tmux-$u"
if [ -d "$b" ]; then b=$(cd -P -- "$b" && pwd -P); fi
printf '%s/%s' "$b" "$1""#;
    let shell = Program::new("sh", "a POSIX shell");
    let path = shell.run(None, ["-c", SCRIPT, "sh", socket.unwrap_or("default")])?;
    Ok(PathBuf::from(path))
}

/// `value` as one literal tmux argument. tmux splits commands on arguments that end in `;`
/// (`a;` is `a` then a new command), even when given as argv; `\;` at the end stands for `;`.
fn literal(value: &str) -> Cow<'_, str> {
    match value.strip_suffix(';') {
        Some(rest) => Cow::Owned(format!("{rest}\\;")),
        None => Cow::Borrowed(value),
    }
}

/// The last `lines` lines of a captured screen. Blank rows are screen geometry, not output: a
/// run of them counts as one line, so the last lines hold text even when a dead pane's status
/// sits at the bottom row.
fn last_lines(text: &str, lines: u32) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for line in text.lines() {
        let blank = line.trim().is_empty();
        if !(blank && kept.last().is_none_or(|last| last.trim().is_empty())) {
            kept.push(line);
        }
    }
    while kept.last().is_some_and(|line| line.trim().is_empty()) {
        kept.pop();
    }
    let start = kept.len().saturating_sub(lines as usize);
    kept[start..].join("\n")
}

impl Runtime for TmuxRuntime {
    fn new(context: &PluginContext) -> PluginResult<Self> {
        let settings: Settings = context.parse_config()?;
        if let Some(socket) = &settings.socket {
            validate_id("plugins.config.tmux.socket", socket)?;
        }
        let server = if Files::here().is_remote() {
            remote_socket_path(settings.socket.as_deref())?
        } else {
            // SAFETY: getuid cannot fail and touches no memory.
            let uid = unsafe { libc::getuid() };
            socket_path(
                settings.socket.as_deref(),
                |name| std::env::var_os(name),
                uid,
            )
        };
        Ok(Self {
            tmux: Program::new("tmux", "e.g. `apt-get install tmux` or `brew install tmux`"),
            server: server.to_string_lossy().into_owned(),
            socket: settings.socket,
            launch_dir: Path::new(context.data_dir.as_str()).join("tmux-launch"),
            owner: context.data_dir.to_string(),
            aliases: context.owner_aliases(),
            tag: context.owner_tag(),
        })
    }

    /// The handle is `<session name>@<server socket path>`, the session name being
    /// `<session id>_<owner tag>`. `request.env` is added to the tmux server's environment.
    fn create(&self, request: &RuntimeCreateRequest) -> PluginResult<String> {
        self.launch(request, Environment::Added)
    }

    /// As `create`, the agent getting exactly `request.env` (and tmux's own pane variables).
    fn start(&self, request: &RuntimeCreateRequest) -> PluginResult<String> {
        self.launch(request, Environment::Exact)
    }

    /// The server's socket folder (`tmux-<uid>`, which holds every server of this user, other
    /// data dirs' included), else the socket itself: through it a confined agent could type into
    /// every other session.
    ///
    /// The folder is made first (owner-only, as tmux makes it) when no server has made it yet:
    /// a rule on a path that does not exist hides nothing, and the session's own start would
    /// then make the server there, in the agent's reach.
    fn confinement(&self) -> Result<Vec<PathRule>, PluginFailure> {
        let server = Path::new(&self.server);
        let hidden = server_hiding(server);
        if hidden != server {
            Files::here().create_dir_all(hidden, true).map_err(|e| {
                PluginError::failed(format!(
                    "making tmux's socket folder {} to hide it from a confined agent: {e}",
                    hidden.display()
                ))
            })?;
        }
        Ok(vec![PathRule::new(
            hidden.display().to_string(),
            PathAccess::Hidden,
        )])
    }

    fn send_message(&self, handle: &str, text: &str) -> PluginResult<()> {
        if text.contains(PASTE_END) {
            return Err(PluginError::invalid_input(
                "message contains the bracketed-paste end sequence ESC [201~, which would let \
                 the rest of it act as key presses; remove it",
            ));
        }
        let name = self.session_name(handle)?;
        let target = Self::pane_target(name);
        if !self.is_alive(handle)? {
            return Err(self.missing(name));
        }
        let before = self.capture(name, 50, false)?;
        let buffer = format!(
            "ao-{name}-{}-{}",
            std::process::id(),
            BUFFER_SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        // Clear the input line and load the text from stdin into a named buffer; then check the
        // buffer holds all of it before pasting: a writer cut off half-way (this process
        // killed, an ssh connection dropped) leaves tmux a short stdin, and half a message must
        // never reach the agent.
        self.run_on(
            name,
            &[
                "send-keys",
                "-t",
                &target,
                "C-u",
                ";",
                "load-buffer",
                "-b",
                &buffer,
                "-",
            ],
            Some(text.as_bytes()),
        )
        .inspect_err(|_| self.drop_buffer(&buffer))?;
        match self.buffer_size(&buffer) {
            Ok(Some(size)) if size == text.len() => {}
            other => {
                self.drop_buffer(&buffer);
                return Err(PluginError::failed(match other {
                    Ok(Some(size)) => format!(
                        "the message was not delivered: only {size} of its {} bytes reached tmux",
                        text.len()
                    ),
                    Ok(None) => "the message was not delivered: tmux lost it".to_string(),
                    Err(e) => format!("the message was not delivered: {e}"),
                }));
            }
        }
        // paste-buffer -p: bracketed paste when the app asked for it; -r: keep LF bytes as they
        // are; -d: delete the buffer once pasted, which also tells, after a failure, whether the
        // paste happened.
        let pasted = self.run_on(
            name,
            &[
                "paste-buffer",
                "-p",
                "-r",
                "-d",
                "-b",
                &buffer,
                "-t",
                &target,
            ],
            None,
        );
        if let Err(error) = pasted {
            return match self.buffer_size(&buffer) {
                Ok(Some(_)) => {
                    self.drop_buffer(&buffer);
                    Err(PluginError::new(
                        error.kind,
                        format!("the message was not delivered: {}", error.message()),
                    ))
                }
                Ok(None) => Err(PluginError::failed(format!(
                    "the message was pasted but not submitted ({}); it waits in the agent's input box",
                    error.message()
                ))),
                Err(_) => Err(PluginError::new(
                    error.kind,
                    format!(
                        "the message was not submitted ({}); it may wait in the agent's input box \
                         once the connection is back (`ao-host attach` shows it)",
                        error.message()
                    ),
                )),
            };
        }
        self.wait_for_paste(name, &before)?;
        self.run_on(name, &["send-keys", "-t", &target, "Enter"], None)?;
        Ok(())
    }

    fn send_keys(&self, handle: &str, keys: &[RString]) -> PluginResult<()> {
        let name = self.session_name(handle)?;
        let target = Self::pane_target(name);
        let keys: Vec<Cow<str>> = keys.iter().map(|key| literal(key)).collect();
        let mut args = vec!["send-keys", "-t", &target, "--"];
        args.extend(keys.iter().map(|key| key.as_ref()));
        self.run_on(name, &args, None)?;
        Ok(())
    }

    fn capture_output(&self, handle: &str, lines: u32) -> PluginResult<String> {
        let name = self.session_name(handle)?;
        Ok(last_lines(&self.capture(name, lines, false)?, lines))
    }

    fn capture_styled(&self, handle: &str, lines: u32) -> PluginResult<String> {
        let name = self.session_name(handle)?;
        Ok(last_lines(&self.capture(name, lines, true)?, lines))
    }

    /// All the screens in one tmux command per batch (a `capture-pane` for each, each followed
    /// by a marker line), instead of one tmux process per session: listing 100 sessions costs
    /// one round trip, not 100. tmux stops a command list at the first failing command, so
    /// after a session that vanished meanwhile the rest are asked again.
    fn capture_outputs(
        &self,
        handles: &[RString],
        lines: u32,
    ) -> PluginResult<Vec<PluginResult<String>>> {
        let start = format!("-{lines}");
        let names: Vec<PluginResult<&str>> = handles.iter().map(|h| self.session_name(h)).collect();
        let targets: Vec<PluginResult<String>> = names
            .iter()
            .map(|name| name.clone().map(Self::pane_target))
            .collect();
        // Invalid handles are answered at once, and so are sessions the server does not have
        // (one `list-sessions` for all of them: tmux stops a command list at its first failing
        // command, so asking for many missing sessions in batches would take one run each);
        // the others once tmux has answered for them.
        let existing = self.session_names()?;
        let mut screens: Vec<Option<PluginResult<String>>> = names
            .iter()
            .map(|name| match name {
                Err(e) => Some(Err(e.clone())),
                Ok(name) if !existing.contains(*name) => Some(Err(self.missing(name))),
                Ok(_) => None,
            })
            .collect();
        loop {
            let batch: Vec<usize> = (0..handles.len())
                .filter(|&i| screens[i].is_none())
                .take(CAPTURE_BATCH)
                .collect();
            if batch.is_empty() {
                break;
            }
            // Unguessable per call, so no screen can end a capture early by printing it.
            let marker = format!(
                "ao-capture-end-{}-{}-{}",
                std::process::id(),
                BUFFER_SEQUENCE.fetch_add(1, Ordering::Relaxed),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or_default()
            );
            let mut args: Vec<&str> = Vec::new();
            for &i in &batch {
                let target = targets[i].as_deref().expect("only valid targets are asked");
                if !args.is_empty() {
                    args.push(";");
                }
                args.extend(["capture-pane", "-p", "-J", "-t", target, "-S", &start, ";"]);
                args.extend(["display-message", "-p", "-t", target, &marker]);
            }
            let output = self.tmux.output(None, self.args(&args), None)?;
            let stdout = String::from_utf8_lossy(&output.stdout);
            let terminator = format!("{marker}\n");
            let mut captured = stdout.split_terminator(terminator.as_str());
            for &i in &batch {
                match captured.next() {
                    Some(text) => screens[i] = Some(Ok(last_lines(text, lines))),
                    None => {
                        // tmux stopped at this session; the rest of the batch is asked again.
                        screens[i] = Some(Err(if Self::is_missing_target(&output) {
                            self.missing(names[i].as_deref().expect("only valid names are asked"))
                        } else {
                            self.tmux.failure(&output)
                        }));
                        break;
                    }
                }
            }
        }
        Ok(screens
            .into_iter()
            .map(|s| s.expect("every handle answered"))
            .collect())
    }

    fn is_alive(&self, handle: &str) -> PluginResult<bool> {
        let name = self.session_name(handle)?;
        let target = Self::pane_target(name);
        // display-message prints an empty line, successfully, for a target that does not
        // exist; the session name in the answer tells a real answer from that. A session of
        // another data dir that happens to bear this name (their tags collided) is not this
        // one: it does not count as alive, so nothing is typed into it. A session of a release
        // that did not record its data dir counts for the record that names it.
        let format = format!("#{{session_name}}\t#{{pane_dead}}\t#{{{OWNER_OPTION}}}");
        let args = ["display-message", "-p", "-t", &target, &format];
        let output = self.tmux.output(None, self.args(&args), None)?;
        if output.status.success() {
            let answer = String::from_utf8_lossy(&output.stdout);
            let mut fields = answer.trim_end_matches('\n').splitn(3, '\t');
            let (session, dead, owner) = (fields.next(), fields.next(), fields.next());
            Ok(session == Some(name)
                && dead == Some("0")
                && owner.is_none_or(|owner| {
                    owner.is_empty() || owner == LEGACY_OWNER || self.owns(owner)
                }))
        } else if Self::is_missing_target(&output) {
            Ok(false)
        } else {
            Err(self.tmux.failure(&output))
        }
    }

    /// A session on this server that is gone — or whose whole server is (after a reboot) — is
    /// destroyed already; one on another server is refused (see `session_name`).
    fn destroy(&self, handle: &str) -> PluginResult<()> {
        let name = self.session_name(handle)?;
        let target = Self::session_target(name);
        if !self.session_exists(name)? {
            return Ok(());
        }
        // A session another data dir made is never this one's to destroy, whatever a record
        // says (records can be copied or edited). Untagged (older) sessions are allowed.
        let pane = Self::pane_target(name);
        let format = format!("#{{pane_dead}}:#{{pane_pid}}:#{{{OWNER_OPTION}}}");
        let described =
            self.run_on(name, &["display-message", "-p", "-t", &pane, &format], None)?;
        let mut fields = described.trim_end_matches('\n').splitn(3, ':');
        let (dead, pid, owner) = (
            fields.next().unwrap_or_default(),
            fields.next().unwrap_or_default(),
            fields.next().unwrap_or_default(),
        );
        if !owner.is_empty() && owner != LEGACY_OWNER && !self.owns(owner) {
            return Err(PluginError::invalid_input(format!(
                "tmux session `{name}` belongs to the ao-host data dir {owner}, not to this one ({}); it is not this ao-host's to destroy",
                self.owner
            )));
        }
        // The agent first, with everything it started in its process group: closing the
        // terminal only sends SIGHUP, which some agents (Gemini CLI) ignore and live on. tmux
        // makes the pane's process a session and group leader. A dead pane's pid may already
        // be someone else's: only a live one is signalled.
        if dead == "0" {
            if let Ok(pid) = pid.parse::<u32>() {
                program::stop_process_group(pid, AGENT_STOP_GRACE);
            }
        }
        let output = self
            .tmux
            .output(None, self.args(&["kill-session", "-t", &target]), None)?;
        if output.status.success() || !self.session_exists(name)? {
            Ok(())
        } else {
            Err(self.tmux.failure(&output))
        }
    }

    /// Live sessions (pane not dead) whose owner is this data dir, at its present path or an
    /// earlier one.
    fn alive_handles(&self) -> PluginResult<Vec<String>> {
        self.listed(true)
    }

    /// Every session whose owner is this data dir (at its present path or an earlier one),
    /// including those whose agent exited.
    fn owned_handles(&self) -> PluginResult<Vec<String>> {
        self.listed(false)
    }

    /// Names the session's server by its socket (`-S`), from the handle: unlike the other
    /// methods this works for a session on another server too, since the command says where.
    fn attach_command(&self, handle: &str) -> PluginResult<Vec<String>> {
        let (name, server) = split_handle(handle);
        validate_id("tmux session", name)?;
        let server = server.unwrap_or(&self.server);
        Ok([
            "tmux",
            "-S",
            server,
            "attach-session",
            "-t",
            &Self::session_target(name),
        ]
        .map(str::to_string)
        .to_vec())
    }

    fn doctor(&self) -> PluginResult<Vec<DoctorCheck>> {
        Ok(vec![self.tmux.version_check(&["-V"])])
    }
}

#[cfg(test)]
mod tests {
    use super::{literal, server_hiding, socket_path, split_handle};
    use std::{
        ffi::OsString,
        path::{Path, PathBuf},
    };

    #[test]
    fn a_confined_agent_is_hidden_the_whole_socket_folder_or_only_a_socket_elsewhere() {
        assert_eq!(
            server_hiding(Path::new("/tmp/tmux-1000/default")),
            Path::new("/tmp/tmux-1000")
        );
        assert_eq!(
            server_hiding(Path::new("/run/ao/tmux-0/work")),
            Path::new("/run/ao/tmux-0")
        );
        // A socket named on the command line (`$TMUX` of `tmux -S ~/sock`): its folder may be
        // the operator's home, which must not be hidden whole.
        assert_eq!(
            server_hiding(Path::new("/home/me/sock")),
            Path::new("/home/me/sock")
        );
        assert_eq!(
            server_hiding(Path::new("/home/me/tmux-x/sock")),
            Path::new("/home/me/tmux-x/sock")
        );
    }

    #[test]
    fn the_socket_path_is_worked_out_as_tmux_does() {
        let temp = tempfile::tempdir().unwrap();
        let real = temp.path().canonicalize().unwrap();
        let link = real.join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let env = |tmux: Option<&str>, tmpdir: Option<&str>| {
            let (tmux, tmpdir) = (tmux.map(OsString::from), tmpdir.map(OsString::from));
            move |name: &str| match name {
                "TMUX" => tmux.clone(),
                "TMUX_TMPDIR" => tmpdir.clone(),
                _ => None,
            }
        };
        let tmp = PathBuf::from("/tmp").canonicalize().unwrap();
        assert_eq!(
            socket_path(None, env(None, None), 7),
            tmp.join("tmux-7/default")
        );
        assert_eq!(
            socket_path(Some("work"), env(None, Some("")), 7),
            tmp.join("tmux-7/work")
        );
        // TMUX_TMPDIR is resolved; one that does not exist is skipped, as tmux skips it.
        let link_text = link.to_str().unwrap();
        assert_eq!(
            socket_path(Some("work"), env(None, Some(link_text)), 7),
            real.join("tmux-7/work")
        );
        assert_eq!(
            socket_path(Some("work"), env(None, Some("/no/such/dir")), 7),
            tmp.join("tmux-7/work")
        );
        // Inside tmux, a client without -L talks to its own server; -L overrides that.
        let inside = Some("/run/t/srv,123,0");
        assert_eq!(
            socket_path(None, env(inside, Some(link_text)), 7),
            PathBuf::from("/run/t/srv")
        );
        assert_eq!(
            socket_path(Some("x"), env(inside, Some(link_text)), 7),
            real.join("tmux-7/x")
        );
    }

    #[test]
    fn a_handle_splits_at_its_first_at_sign() {
        assert_eq!(split_handle("app-1_ab"), ("app-1_ab", None));
        assert_eq!(
            split_handle("app-1_ab@/tmp/a@b/default"),
            ("app-1_ab", Some("/tmp/a@b/default"))
        );
    }

    #[test]
    fn a_trailing_semicolon_is_escaped_for_tmux() {
        assert_eq!(literal("plain"), "plain");
        assert_eq!(literal("a;b"), "a;b");
        assert_eq!(literal("a;"), "a\\;");
        assert_eq!(literal(";"), "\\;");
        assert_eq!(literal("a\\;"), "a\\\\;");
    }
}
