//! Isolated plugins (`plugins.isolate`): the library runs in a child process, so a crash there
//! fails one call instead of taking the host down.
//!
//! The host never loads an isolated library itself (its manifest, pins and API version are judged
//! from the file; see `library`). It starts `ao-host plugins serve`, which loads the library the
//! usual way, builds the plugin, and answers calls over the child's stdin and stdout: one
//! length-prefixed JSON frame per request and per reply ([`serve`] is the child's side). On the
//! host's side, [`IsolatedRuntime`] and its siblings implement the plugins' FFI traits by
//! forwarding each call, so everything above (`instance`) calls an isolated plugin exactly as a
//! loaded one, with the same results and errors.
//!
//! - A call past its timeout kills the child: nothing stays stuck.
//! - A child that dies during a call (SIGSEGV, abort, `panic = "abort"`, `exit`) fails that call
//!   with "crashed (SIGSEGV) in METHOD"; the next call starts a fresh child, and after
//!   [`MAX_CRASHES`] crashes within [`CRASH_WINDOW`] the plugin is disabled (for this process).
//! - Calls to one isolated plugin are answered one at a time.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    os::fd::AsRawFd,
    os::unix::process::ExitStatusExt,
    path::PathBuf,
    process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use ao_plugin_api::{
    abi_stable::{
        sabi_trait::TD_Opaque,
        std_types::{RResult, RSlice, RStr, RString, RVec},
    },
    ffi::{
        AgentFfi, AgentFfi_TO, AgentObject, RuntimeFfi, RuntimeFfi_TO, RuntimeObject, WorkspaceFfi,
        WorkspaceFfi_TO, WorkspaceObject,
    },
    Activity, AgentSession, DoctorCheck, EnvVar, LaunchPlan, LaunchRequest, PluginContext,
    PluginError, PluginErrorKind, PluginKind, Readiness, RepositoryInfo, RuntimeCreateRequest,
    Transport, WorkspaceCreateConfig,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

pub mod serve;

/// Crashes within [`CRASH_WINDOW`] after which an isolated plugin is disabled.
pub const MAX_CRASHES: usize = 3;
pub const CRASH_WINDOW: Duration = Duration::from_secs(60);
/// The largest frame either side accepts (a screen or a message is far smaller).
const MAX_FRAME: usize = 256 << 20;
/// How much longer than the host's own timeout the child gets before it is killed: the host
/// gives up first (and says so, naming the setting), then the child goes.
const KILL_GRACE: Duration = Duration::from_millis(500);

/// The first frame the host sends: what to load and build.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Hello {
    pub library: PathBuf,
    pub kind: PluginKind,
    pub name: String,
    pub context: PluginContext,
    /// The host the plugin works on, when not this one.
    pub transport: Option<Transport>,
    pub pins: BTreeMap<String, String>,
    /// How long a call may take (`defaults.call_timeout_ms`)…
    pub timeout_ms: u64,
    /// …and a workspace's `create`, which runs the project's `post_create`
    /// (`defaults.workspace_timeout_ms`).
    pub create_timeout_ms: u64,
}

/// One call, as the host sends it. Each variant is one method of one plugin interface.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Call {
    Create(RuntimeCreateRequest),
    Start(RuntimeCreateRequest),
    SendMessage(RString, RString),
    SendKeys(RString, Vec<RString>),
    CaptureOutput(RString, u32),
    CaptureOutputs(Vec<RString>, u32),
    CaptureStyled(RString, u32),
    IsAlive(RString),
    Destroy(RString),
    AttachCommand(RString),
    AliveHandles,
    OwnedHandles,
    Doctor,
    LaunchCommand(AgentSession),
    Environment(AgentSession),
    IsReady(RString),
    Activity(RString),
    InputPending(RString),
    Launch(LaunchRequest),
    Forget(RString),
    SilentEventsHint,
    CreateWorkspace(WorkspaceCreateConfig),
    DestroyWorkspace(RString, bool),
    Exists(RString),
    ListOwned,
    HasUnsavedWork(RString),
    DiscoverRepository(RString),
    RemoveMergedBranches(RString, Vec<RString>, bool),
    BaseOf(RString, RString),
}

impl Call {
    /// The plugin method, as errors name it.
    pub(crate) fn method(&self) -> &'static str {
        match self {
            Self::Create(_) | Self::CreateWorkspace(_) => "create",
            Self::Start(_) => "start",
            Self::SendMessage(..) => "send_message",
            Self::SendKeys(..) => "send_keys",
            Self::CaptureOutput(..) => "capture_output",
            Self::CaptureOutputs(..) => "capture_outputs",
            Self::CaptureStyled(..) => "capture_styled",
            Self::IsAlive(_) => "is_alive",
            Self::Destroy(_) | Self::DestroyWorkspace(..) => "destroy",
            Self::AttachCommand(_) => "attach_command",
            Self::AliveHandles => "alive_handles",
            Self::OwnedHandles => "owned_handles",
            Self::Doctor => "doctor",
            Self::LaunchCommand(_) => "launch_command",
            Self::Environment(_) => "environment",
            Self::IsReady(_) => "is_ready",
            Self::Activity(_) => "activity",
            Self::InputPending(_) => "input_pending",
            Self::Launch(_) => "launch",
            Self::Forget(_) => "forget",
            Self::SilentEventsHint => "silent_events_hint",
            Self::Exists(_) => "exists",
            Self::ListOwned => "list_owned",
            Self::HasUnsavedWork(_) => "has_unsaved_work",
            Self::DiscoverRepository(_) => "discover_repository",
            Self::RemoveMergedBranches(..) => "remove_merged_branches",
            Self::BaseOf(..) => "base_of",
        }
    }
}

/// Writes one frame: its length (4 bytes, little-endian), then its JSON.
pub(crate) fn write_frame(out: &mut impl Write, value: &impl Serialize) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    out.write_all(&(bytes.len() as u32).to_le_bytes())?;
    out.write_all(&bytes)?;
    out.flush()
}

/// Reads one frame, waiting at most until `deadline` (none: as long as it takes).
pub(crate) fn read_frame(
    input: &mut (impl Read + AsRawFd),
    deadline: Option<Instant>,
) -> Result<Vec<u8>, FrameError> {
    let mut length = [0u8; 4];
    read_exact_by(input, &mut length, deadline)?;
    let length = u32::from_le_bytes(length) as usize;
    if length > MAX_FRAME {
        return Err(FrameError::Io(std::io::Error::other(format!(
            "a frame of {length} bytes"
        ))));
    }
    let mut bytes = vec![0u8; length];
    read_exact_by(input, &mut bytes, deadline)?;
    Ok(bytes)
}

#[derive(Debug)]
pub(crate) enum FrameError {
    /// The other side closed the pipe (it exited).
    Closed,
    TimedOut,
    Io(std::io::Error),
}

fn read_exact_by(
    input: &mut (impl Read + AsRawFd),
    mut buffer: &mut [u8],
    deadline: Option<Instant>,
) -> Result<(), FrameError> {
    while !buffer.is_empty() {
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut poll = libc::pollfd {
                fd: input.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let millis = left.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd for the duration of the call.
            let ready = unsafe { libc::poll(&mut poll, 1, millis) };
            if ready == 0 {
                return Err(FrameError::TimedOut);
            }
            if ready < 0 {
                let error = std::io::Error::last_os_error();
                if error.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(FrameError::Io(error));
            }
        }
        match input.read(buffer) {
            Ok(0) => return Err(FrameError::Closed),
            Ok(n) => buffer = &mut buffer[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    Ok(())
}

/// A running child.
struct Connection {
    child: Child,
    input: ChildStdin,
    output: ChildStdout,
}

/// Every isolated plugin's child process this process started and has not ended, so that they
/// can be killed when it exits ([`stop_children`]): a call the host stopped waiting for (its
/// timeout) leaves its child to this.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Kills every isolated plugin's child process still running. Front ends call it before the
/// process exits; children also exit by themselves once their parent is gone, but a plugin that
/// `exec`s another program in its child takes that watch with it.
pub fn stop_children() {
    let children = std::mem::take(&mut *CHILDREN.lock().unwrap_or_else(|e| e.into_inner()));
    for pid in children {
        // SAFETY: SIGKILL to a child of ours, not yet reaped (so the pid is still ours).
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
}

impl Connection {
    /// Kills the child (if it still runs) and reaps it.
    fn end(mut self) -> Option<ExitStatus> {
        let _ = self.child.kill();
        let status = self.child.wait().ok();
        let pid = self.child.id();
        CHILDREN
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|child| *child != pid);
        status
    }
}

/// What an exit status says, in the words of the error: "SIGSEGV", "exit status 0".
fn describe(status: Option<ExitStatus>) -> String {
    let Some(status) = status else {
        return "an unknown cause".into();
    };
    match status.signal() {
        Some(signal) => signal_name(signal),
        None => format!("exit status {}", status.code().unwrap_or(-1)),
    }
}

fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGILL => "SIGILL".into(),
        libc::SIGFPE => "SIGFPE".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGTERM => "SIGTERM".into(),
        other => format!("signal {other}"),
    }
}

/// The host's end of one isolated plugin.
pub(crate) struct Isolated {
    program: PathBuf,
    hello: Hello,
    timeout: Duration,
    connection: Mutex<Option<Connection>>,
    /// When it crashed lately, and why it is disabled, if it is.
    crashes: Mutex<(Vec<Instant>, Option<String>)>,
}

impl Isolated {
    /// Starts the child and builds the plugin in it, so a constructor's error is reported
    /// where an in-process one would be.
    pub(crate) fn start(program: PathBuf, hello: Hello) -> Result<Arc<Self>, PluginError> {
        let timeout = Duration::from_millis(hello.timeout_ms);
        let isolated = Arc::new(Self {
            program,
            hello,
            timeout,
            connection: Mutex::new(None),
            crashes: Mutex::new((Vec::new(), None)),
        });
        let connection = isolated.spawn()?;
        *isolated.lock_connection() = Some(connection);
        Ok(isolated)
    }

    fn lock_connection(&self) -> std::sync::MutexGuard<'_, Option<Connection>> {
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a child and waits for the plugin to be built in it.
    fn spawn(&self) -> Result<Connection, PluginError> {
        let mut child = Command::new(&self.program)
            .args(["plugins", "serve"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                PluginError::unavailable(format!(
                    "cannot start {} to run the isolated plugin: {e}",
                    self.program.display()
                ))
            })?;
        CHILDREN
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child.id());
        let (Some(input), Some(output)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err(PluginError::failed(
                "the isolated plugin's pipes were not set up",
            ));
        };
        let mut connection = Connection {
            child,
            input,
            output,
        };
        let deadline = Instant::now() + self.timeout;
        let built = write_frame(&mut connection.input, &self.hello)
            .map_err(FrameError::Io)
            .and_then(|()| read_frame(&mut connection.output, Some(deadline)));
        let reply = match built {
            Ok(reply) => reply,
            Err(error) => {
                let cause = self.failure(error, "its constructor (new)", self.timeout, connection);
                return Err(PluginError::unavailable(cause));
            }
        };
        match serde_json::from_slice::<Result<(), PluginError>>(&reply) {
            Ok(Ok(())) => Ok(connection),
            Ok(Err(error)) => {
                connection.end();
                Err(error)
            }
            Err(e) => {
                connection.end();
                Err(PluginError::failed(format!(
                    "the isolated plugin's process answered nonsense ({e})"
                )))
            }
        }
    }

    /// Ends a child that failed `method` and says why, counting a crash.
    fn failure(
        &self,
        error: FrameError,
        method: &str,
        limit: Duration,
        connection: Connection,
    ) -> String {
        match error {
            FrameError::TimedOut => {
                connection.end();
                format!(
                    "did not answer {method} within {} ms, so its process was killed (raise the timeout in ao-rs.yaml if it is just slow)",
                    limit.as_millis()
                )
            }
            FrameError::Closed | FrameError::Io(_) => {
                if let FrameError::Io(error) = &error {
                    tracing::debug!("isolated plugin `{}`: pipe: {error}", self.hello.name);
                }
                let cause = describe(connection.end());
                let mut crashes = self.crashes.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                crashes
                    .0
                    .retain(|at| now.duration_since(*at) < CRASH_WINDOW);
                crashes.0.push(now);
                let plugin = &self.hello.name;
                if crashes.0.len() >= MAX_CRASHES {
                    let why = format!(
                        "plugin `{plugin}` is disabled: it crashed {} times within a minute (last: {cause} in {method}); fix or remove its library",
                        crashes.0.len()
                    );
                    crashes.1 = Some(why.clone());
                    why
                } else {
                    format!(
                        "plugin `{plugin}` crashed ({cause}) in {method}; it runs isolated, so only this call failed, and its process is restarted for the next one"
                    )
                }
            }
        }
    }

    /// Sends `call` and returns the plugin's answer. An answer that does not parse means the
    /// channel is out of step: the child is ended, and the next call starts a new one.
    fn request<T: DeserializeOwned>(&self, call: Call) -> RResult<T, PluginError> {
        self.exchange(call)
            .and_then(|reply| {
                serde_json::from_slice::<Result<T, PluginError>>(&reply).unwrap_or_else(|e| {
                    if let Some(connection) = self.lock_connection().take() {
                        connection.end();
                    }
                    Err(PluginError::unavailable(format!(
                        "plugin `{}` answered nonsense ({e}); its process was restarted",
                        self.hello.name
                    )))
                })
            })
            .into()
    }

    fn exchange(&self, call: Call) -> Result<Vec<u8>, PluginError> {
        if let Some(why) = &self.crashes.lock().unwrap_or_else(|e| e.into_inner()).1 {
            return Err(PluginError::unavailable(why.clone()));
        }
        let method = call.method();
        let mut slot = self.lock_connection();
        let mut connection = match slot.take() {
            Some(connection) => connection,
            None => self.spawn()?,
        };
        let limit = match call {
            Call::CreateWorkspace(_) => Duration::from_millis(self.hello.create_timeout_ms),
            _ => self.timeout,
        };
        let deadline = Instant::now() + limit + KILL_GRACE;
        let answered = write_frame(&mut connection.input, &call)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::BrokenPipe => FrameError::Closed,
                _ => FrameError::Io(e),
            })
            .and_then(|()| read_frame(&mut connection.output, Some(deadline)));
        match answered {
            Ok(reply) => {
                *slot = Some(connection);
                Ok(reply)
            }
            Err(error) => Err(PluginError::unavailable(
                self.failure(error, method, limit, connection),
            )),
        }
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        if let Some(connection) = self.lock_connection().take() {
            connection.end();
        }
    }
}

/// Builds the host's handle on an isolated plugin of `hello.kind`.
pub(crate) fn start_runtime(program: PathBuf, hello: Hello) -> Result<RuntimeObject, PluginError> {
    Ok(RuntimeFfi_TO::from_value(
        IsolatedRuntime(Isolated::start(program, hello)?),
        TD_Opaque,
    ))
}

pub(crate) fn start_agent(program: PathBuf, hello: Hello) -> Result<AgentObject, PluginError> {
    Ok(AgentFfi_TO::from_value(
        IsolatedAgent(Isolated::start(program, hello)?),
        TD_Opaque,
    ))
}

pub(crate) fn start_workspace(
    program: PathBuf,
    hello: Hello,
) -> Result<WorkspaceObject, PluginError> {
    Ok(WorkspaceFfi_TO::from_value(
        IsolatedWorkspace(Isolated::start(program, hello)?),
        TD_Opaque,
    ))
}

fn text(value: RStr<'_>) -> RString {
    value.into()
}

/// An isolated runtime, as the host calls it.
pub(crate) struct IsolatedRuntime(Arc<Isolated>);

impl RuntimeFfi for IsolatedRuntime {
    fn create(&self, request: &RuntimeCreateRequest) -> RResult<RString, PluginError> {
        self.0.request(Call::Create(request.clone()))
    }
    fn send_message(&self, handle: RStr<'_>, message: RStr<'_>) -> RResult<(), PluginError> {
        self.0
            .request(Call::SendMessage(text(handle), text(message)))
    }
    fn send_keys(&self, handle: RStr<'_>, keys: RSlice<'_, RString>) -> RResult<(), PluginError> {
        self.0.request(Call::SendKeys(text(handle), keys.to_vec()))
    }
    fn capture_output(&self, handle: RStr<'_>, lines: u32) -> RResult<RString, PluginError> {
        self.0.request(Call::CaptureOutput(text(handle), lines))
    }
    fn is_alive(&self, handle: RStr<'_>) -> RResult<bool, PluginError> {
        self.0.request(Call::IsAlive(text(handle)))
    }
    fn destroy(&self, handle: RStr<'_>) -> RResult<(), PluginError> {
        self.0.request(Call::Destroy(text(handle)))
    }
    fn attach_command(&self, handle: RStr<'_>) -> RResult<RVec<RString>, PluginError> {
        self.0.request(Call::AttachCommand(text(handle)))
    }
    fn alive_handles(&self) -> RResult<RVec<RString>, PluginError> {
        self.0.request(Call::AliveHandles)
    }
    fn doctor(&self) -> RResult<RVec<DoctorCheck>, PluginError> {
        self.0.request(Call::Doctor)
    }
    fn capture_outputs(
        &self,
        handles: RSlice<'_, RString>,
        lines: u32,
    ) -> RResult<RVec<RResult<RString, PluginError>>, PluginError> {
        let screens: RResult<Vec<Result<RString, PluginError>>, PluginError> = self
            .0
            .request(Call::CaptureOutputs(handles.to_vec(), lines));
        screens.map(|screens| screens.into_iter().map(RResult::from).collect())
    }
    fn owned_handles(&self) -> RResult<RVec<RString>, PluginError> {
        self.0.request(Call::OwnedHandles)
    }
    fn capture_styled(&self, handle: RStr<'_>, lines: u32) -> RResult<RString, PluginError> {
        self.0.request(Call::CaptureStyled(text(handle), lines))
    }
    fn start(&self, request: &RuntimeCreateRequest) -> RResult<RString, PluginError> {
        self.0.request(Call::Start(request.clone()))
    }
}

/// An isolated agent, as the host calls it.
pub(crate) struct IsolatedAgent(Arc<Isolated>);

impl AgentFfi for IsolatedAgent {
    fn launch_command(&self, session: &AgentSession) -> RResult<RVec<RString>, PluginError> {
        self.0.request(Call::LaunchCommand(session.clone()))
    }
    fn environment(&self, session: &AgentSession) -> RResult<RVec<EnvVar>, PluginError> {
        self.0.request(Call::Environment(session.clone()))
    }
    fn is_ready(&self, output: RStr<'_>) -> RResult<Readiness, PluginError> {
        self.0.request(Call::IsReady(text(output)))
    }
    fn activity(&self, output: RStr<'_>) -> RResult<Activity, PluginError> {
        self.0.request(Call::Activity(text(output)))
    }
    fn input_pending(&self, output: RStr<'_>) -> RResult<bool, PluginError> {
        self.0.request(Call::InputPending(text(output)))
    }
    fn doctor(&self) -> RResult<RVec<DoctorCheck>, PluginError> {
        self.0.request(Call::Doctor)
    }
    fn launch(&self, request: &LaunchRequest) -> RResult<LaunchPlan, PluginError> {
        self.0.request(Call::Launch(request.clone()))
    }
    fn forget(&self, session_id: RStr<'_>) -> RResult<(), PluginError> {
        self.0.request(Call::Forget(text(session_id)))
    }
    fn silent_events_hint(&self) -> RResult<RString, PluginError> {
        self.0.request(Call::SilentEventsHint)
    }
}

/// An isolated workspace, as the host calls it.
pub(crate) struct IsolatedWorkspace(Arc<Isolated>);

impl WorkspaceFfi for IsolatedWorkspace {
    fn create(&self, config: &WorkspaceCreateConfig) -> RResult<RString, PluginError> {
        self.0.request(Call::CreateWorkspace(config.clone()))
    }
    fn destroy(&self, path: RStr<'_>, delete_branch: bool) -> RResult<(), PluginError> {
        self.0
            .request(Call::DestroyWorkspace(text(path), delete_branch))
    }
    fn exists(&self, path: RStr<'_>) -> RResult<bool, PluginError> {
        self.0.request(Call::Exists(text(path)))
    }
    fn list_owned(&self) -> RResult<RVec<RString>, PluginError> {
        self.0.request(Call::ListOwned)
    }
    fn has_unsaved_work(&self, path: RStr<'_>) -> RResult<bool, PluginError> {
        self.0.request(Call::HasUnsavedWork(text(path)))
    }
    fn doctor(&self) -> RResult<RVec<DoctorCheck>, PluginError> {
        self.0.request(Call::Doctor)
    }
    fn discover_repository(&self, dir: RStr<'_>) -> RResult<RepositoryInfo, PluginError> {
        self.0.request(Call::DiscoverRepository(text(dir)))
    }
    fn remove_merged_branches(
        &self,
        repo: RStr<'_>,
        branches: RSlice<'_, RString>,
        dry_run: bool,
    ) -> RResult<RVec<RString>, PluginError> {
        self.0.request(Call::RemoveMergedBranches(
            text(repo),
            branches.to_vec(),
            dry_run,
        ))
    }
    fn base_of(&self, repo: RStr<'_>, default_branch: RStr<'_>) -> RResult<RString, PluginError> {
        self.0
            .request(Call::BaseOf(text(repo), text(default_branch)))
    }
}

/// A call the child cannot answer with this kind of plugin.
pub(crate) fn not_a_method(call: &Call, kind: PluginKind) -> PluginError {
    PluginError::new(
        PluginErrorKind::Unsupported,
        format!("`{}` is not a method of a {kind} plugin", call.method()),
    )
}
