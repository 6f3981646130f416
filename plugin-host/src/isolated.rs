//! Isolated plugins (`plugins.isolate`): the library runs in a child process, so a crash there
//! fails one call instead of taking the host down.
//!
//! The host never loads an isolated library itself (its manifest, pins and API version are judged
//! from the file; see `library`). It starts `ao-host plugins serve`, which loads the library the
//! usual way, builds the plugin, and answers calls over the child's stdin and stdout: one
//! length-prefixed JSON frame per request and per reply ([`serve`] is the child's side). On the
//! host's side, `IsolatedPlugin` implements the plugins' FFI traits by forwarding each call;
//! both sides are expanded from the interfaces' method table (`ao_plugin_api::methods`), so a
//! method added there is forwarded with nothing written here. Everything above (`instance`)
//! calls an isolated plugin exactly as a loaded one, with the same results and errors.
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
        nonexhaustive_enum::{NonExhaustive, NonExhaustiveFor},
        sabi_trait::TD_Opaque,
        std_types::{RErr, ROption, RResult, RSlice, RStr, RString, RVec},
    },
    ffi::{
        AgentFfi, AgentFfi_TO, AgentObject, RuntimeFfi, RuntimeFfi_TO, RuntimeObject, SandboxFfi,
        SandboxFfi_TO, SandboxObject, ScmFfi, ScmFfi_TO, ScmObject, WorkspaceFfi, WorkspaceFfi_TO,
        WorkspaceObject,
    },
    sandbox::{
        ConfinedCommand, ConfinedLaunchPlan, ConfinedLaunchRequest, PathRule, SandboxRequest,
        WorkspaceConfinement, WorkspaceConfinementQuery,
    },
    scm::{
        Check, CheckState, ChecksQuery, Fetched, MergeRequest, Mergeability, PullRequest,
        PullRequestQuery, PullRequestState, RateLimit, Review, ReviewComment, ReviewDecision,
        ReviewFeedback, ReviewsQuery, WebhookDelivery, WebhookHint,
    },
    usage::{UsageQuery, UsageReport},
    Activity, ActivityState, AgentSession, DoctorCheck, EnvVar, ErrorKind, InterfaceKind,
    LaunchPlan, LaunchRequest, PluginContext, PluginError, PluginErrorKind, PluginFailure,
    Readiness, ReadinessState, RepositoryInfo, RuntimeCreateRequest, Transport,
    WorkspaceCreateConfig,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::successors;

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
    pub kind: InterfaceKind,
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

/// One call, as the host sends it: a method of the plugin's interface, named as in the
/// interface's table (`ao_plugin_api::methods`), and its arguments as a JSON array.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Call {
    pub method: String,
    pub args: serde_json::Value,
}

/// An argument type of an FFI method, as it travels to the isolated child: owned there, lent
/// to the plugin's method as the FFI type again.
pub(crate) trait Arg<'a>: Sized {
    type Owned: Serialize + DeserializeOwned;
    fn own(self) -> Self::Owned;
    fn lend(owned: &'a Self::Owned) -> Self;
}

impl<'a> Arg<'a> for RStr<'a> {
    type Owned = RString;
    fn own(self) -> RString {
        self.into()
    }
    fn lend(owned: &'a RString) -> Self {
        owned.as_rstr()
    }
}

impl<'a> Arg<'a> for RSlice<'a, RString> {
    type Owned = Vec<RString>;
    fn own(self) -> Vec<RString> {
        self.to_vec()
    }
    fn lend(owned: &'a Vec<RString>) -> Self {
        RSlice::from_slice(owned)
    }
}

impl<'a, T: Clone + Serialize + DeserializeOwned> Arg<'a> for &'a T {
    type Owned = T;
    fn own(self) -> T {
        self.clone()
    }
    fn lend(owned: &'a T) -> Self {
        owned
    }
}

/// Arguments passed by value.
macro_rules! copied_args {
    ($($ty:ty),*) => {$(
        impl<'a> Arg<'a> for $ty {
            type Owned = $ty;
            fn own(self) -> $ty {
                self
            }
            fn lend(owned: &'a $ty) -> Self {
                *owned
            }
        }
    )*};
}

copied_args!(u32, bool);

/// An FFI method's answer, as it travels back from the isolated child: as itself, but for the
/// enums that can grow, whose variant the child may not know (see [`successors`]).
pub(crate) trait Reply: Sized {
    type Wire: Serialize + DeserializeOwned;
    fn to_wire(self) -> Self::Wire;
    fn from_wire(wire: Self::Wire, plugin: &str) -> Self;
}

impl<T: Reply, E: Reply> Reply for RResult<T, E> {
    type Wire = Result<T::Wire, E::Wire>;
    fn to_wire(self) -> Self::Wire {
        self.into_result()
            .map(Reply::to_wire)
            .map_err(Reply::to_wire)
    }
    fn from_wire(wire: Self::Wire, plugin: &str) -> Self {
        wire.map(|value| T::from_wire(value, plugin))
            .map_err(|error| E::from_wire(error, plugin))
            .into()
    }
}

impl<T: Reply> Reply for ROption<T> {
    type Wire = Option<T::Wire>;
    fn to_wire(self) -> Self::Wire {
        self.into_option().map(Reply::to_wire)
    }
    fn from_wire(wire: Self::Wire, plugin: &str) -> Self {
        wire.map(|value| T::from_wire(value, plugin)).into()
    }
}

impl<T: Reply> Reply for RVec<T> {
    type Wire = Vec<T::Wire>;
    fn to_wire(self) -> Self::Wire {
        self.into_iter().map(Reply::to_wire).collect()
    }
    fn from_wire(wire: Self::Wire, plugin: &str) -> Self {
        wire.into_iter()
            .map(|value| T::from_wire(value, plugin))
            .collect()
    }
}

/// Answers that travel as themselves.
macro_rules! replied_as_is {
    ($($ty:ty),*) => {$(
        impl Reply for $ty {
            type Wire = $ty;
            fn to_wire(self) -> $ty {
                self
            }
            fn from_wire(wire: $ty, _plugin: &str) -> Self {
                wire
            }
        }
    )*};
}

replied_as_is!(
    (),
    bool,
    u32,
    RString,
    Activity,
    Readiness,
    DoctorCheck,
    EnvVar,
    LaunchPlan,
    RepositoryInfo,
    PluginError,
    WebhookHint,
    RateLimit,
    ReviewComment,
    UsageReport,
    ConfinedLaunchPlan,
    WorkspaceConfinement,
    ConfinedCommand,
    PathRule
);

/// Enums that can grow travel as the variant when the child knows it, else as its name; the
/// host reads a name as the enum's fallback and logs it.
macro_rules! replied_as_known {
    ($($enum:ty),*) => {$(
        impl Reply for NonExhaustiveFor<$enum> {
            type Wire = Result<$enum, String>;
            fn to_wire(self) -> Self::Wire {
                self.as_enum().cloned().map_err(|_| format!("{self:?}"))
            }
            fn from_wire(wire: Self::Wire, plugin: &str) -> Self {
                NonExhaustive::new(wire.unwrap_or_else(|name| successors::unknown(&name, plugin)))
            }
        }
    )*};
}

replied_as_known!(
    ActivityState,
    ReadinessState,
    ErrorKind,
    PullRequestState,
    Mergeability,
    ReviewDecision,
    CheckState
);

/// Answers that may be "unchanged" travel as `None`.
impl<T: Reply> Reply for Fetched<T> {
    type Wire = Option<(T::Wire, RString)>;
    fn to_wire(self) -> Self::Wire {
        match self {
            Self::Unchanged => None,
            Self::Changed { value, validator } => Some((value.to_wire(), validator)),
        }
    }
    fn from_wire(wire: Self::Wire, plugin: &str) -> Self {
        match wire {
            None => Self::Unchanged,
            Some((value, validator)) => Self::Changed {
                value: T::from_wire(value, plugin),
                validator,
            },
        }
    }
}

/// Structs that hold enums that can grow travel field by field, each such enum as
/// [`replied_as_known!`] sends it, the other fields as themselves.
macro_rules! replied_by_field {
    ($($struct:ident $wire:ident { $($field:ident: $ty:ty),* $(,)? })*) => {$(
        #[derive(Serialize, Deserialize)]
        pub(crate) struct $wire {
            $($field: <$ty as Reply>::Wire,)*
        }

        impl Reply for $struct {
            type Wire = $wire;
            fn to_wire(self) -> $wire {
                $wire { $($field: self.$field.to_wire(),)* }
            }
            fn from_wire(wire: $wire, plugin: &str) -> Self {
                Self { $($field: <$ty as Reply>::from_wire(wire.$field, plugin),)* }
            }
        }
    )*};
}

replied_as_is!(u64);

replied_by_field! {
    PullRequest PullRequestWire {
        number: u64,
        node_id: RString,
        url: RString,
        title: RString,
        branch: RString,
        head_sha: RString,
        state: NonExhaustiveFor<PullRequestState>,
        draft: bool,
        mergeable: NonExhaustiveFor<Mergeability>,
        review_decision: NonExhaustiveFor<ReviewDecision>,
    }
    Check CheckWire {
        id: RString,
        name: RString,
        state: NonExhaustiveFor<CheckState>,
        conclusion: RString,
        url: RString,
        log_tail: RString,
    }
    Review ReviewWire {
        id: RString,
        author: RString,
        decision: NonExhaustiveFor<ReviewDecision>,
        body: RString,
        url: RString,
    }
    ReviewFeedback ReviewFeedbackWire {
        number: u64,
        reviews: RVec<Review>,
        unresolved: RVec<ReviewComment>,
    }
}

impl Reply for PluginFailure {
    type Wire = (Result<ErrorKind, String>, RString);
    fn to_wire(self) -> Self::Wire {
        (self.kind.to_wire(), self.message)
    }
    fn from_wire((kind, message): Self::Wire, plugin: &str) -> Self {
        Self {
            kind: Reply::from_wire(kind, plugin),
            message,
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
    fn request<T: Reply, E: Reply + From<PluginError>>(
        &self,
        method: &'static str,
        args: impl Serialize,
    ) -> RResult<T, E> {
        let reply = serde_json::to_value(args)
            .map_err(|e| {
                PluginError::failed(format!(
                    "the arguments of `{method}` could not be encoded: {e}"
                ))
            })
            .and_then(|args| {
                self.exchange(Call {
                    method: method.to_string(),
                    args,
                })
            })
            .and_then(|reply| {
                serde_json::from_slice(&reply).map_err(|e| {
                    if let Some(connection) = self.lock_connection().take() {
                        connection.end();
                    }
                    PluginError::unavailable(format!(
                        "plugin `{}` answered nonsense ({e}); its process was restarted",
                        self.hello.name
                    ))
                })
            });
        match reply {
            Ok(wire) => Reply::from_wire(wire, &self.hello.name),
            Err(error) => RErr(error.into()),
        }
    }

    fn exchange(&self, call: Call) -> Result<Vec<u8>, PluginError> {
        if let Some(why) = &self.crashes.lock().unwrap_or_else(|e| e.into_inner()).1 {
            return Err(PluginError::unavailable(why.clone()));
        }
        let method = call.method.as_str();
        let mut slot = self.lock_connection();
        let mut connection = match slot.take() {
            Some(connection) => connection,
            None => self.spawn()?,
        };
        let limit = if self.hello.kind == InterfaceKind::Workspace && method == "create" {
            Duration::from_millis(self.hello.create_timeout_ms)
        } else {
            self.timeout
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
        IsolatedPlugin(Isolated::start(program, hello)?),
        TD_Opaque,
    ))
}

pub(crate) fn start_agent(program: PathBuf, hello: Hello) -> Result<AgentObject, PluginError> {
    Ok(AgentFfi_TO::from_value(
        IsolatedPlugin(Isolated::start(program, hello)?),
        TD_Opaque,
    ))
}

pub(crate) fn start_workspace(
    program: PathBuf,
    hello: Hello,
) -> Result<WorkspaceObject, PluginError> {
    Ok(WorkspaceFfi_TO::from_value(
        IsolatedPlugin(Isolated::start(program, hello)?),
        TD_Opaque,
    ))
}

pub(crate) fn start_scm(program: PathBuf, hello: Hello) -> Result<ScmObject, PluginError> {
    Ok(ScmFfi_TO::from_value(
        IsolatedPlugin(Isolated::start(program, hello)?),
        TD_Opaque,
    ))
}

pub(crate) fn start_sandbox(program: PathBuf, hello: Hello) -> Result<SandboxObject, PluginError> {
    Ok(SandboxFfi_TO::from_value(
        IsolatedPlugin(Isolated::start(program, hello)?),
        TD_Opaque,
    ))
}

/// The host's handle on an isolated plugin: each FFI method sends its call to the child.
pub(crate) struct IsolatedPlugin(Arc<Isolated>);

/// Expands one interface's method table (see `ao_plugin_api::methods`) into the forwarding
/// implementation of its FFI trait.
macro_rules! forwarding {
    (
        $(#[$trait_doc:meta])*
        interface $plain:ident: $ffi:ident, $adapter:ident, $object:ident, $kind:literal;
        first_release { $($first:tt)* }
        last_of_first_release { $($last:tt)* }
        added { $($added:tt)* }
    ) => {
        forwarding!(@impl $ffi; $($first)* $($last)* $($added)*);
    };
    (@impl $ffi:ident; $(
        $(#[$doc:meta])*
        fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty = |$plugin:ident| $body:expr;
    )*) => {
        impl $ffi for IsolatedPlugin {
            $(
                fn $name(&self, $($arg: $ty),*) -> $ret {
                    self.0.request(stringify!($name), ($(Arg::own($arg),)*))
                }
            )*
        }
    };
}

ao_plugin_api::interface_methods!(forwarding);

/// A call the child cannot answer with this kind of plugin.
pub(crate) fn not_a_method(call: &Call, kind: InterfaceKind) -> PluginError {
    PluginError::new(
        PluginErrorKind::Unsupported,
        format!("`{}` is not a method of a {kind} plugin", call.method),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ao_plugin_api::abi_stable::std_types::ROk;

    /// An answer as it crosses the pipe: encoded by the child, decoded by the host.
    fn across<R: Reply>(answer: R::Wire) -> R {
        let bytes = serde_json::to_vec(&answer).unwrap();
        R::from_wire(serde_json::from_slice(&bytes).unwrap(), "future-agent")
    }

    #[test]
    fn a_variant_the_child_does_not_know_arrives_as_the_fallback() {
        let state: RResult<NonExhaustiveFor<ActivityState>, PluginFailure> =
            across(Ok(Err("Reviewing".to_string())));
        assert_eq!(state.unwrap().as_enum().ok(), Some(&ActivityState::Working));
        let failed: RResult<NonExhaustiveFor<ActivityState>, PluginFailure> =
            across(Err((Err("Throttled".to_string()), RString::from("wait"))));
        let failure = failed.unwrap_err();
        assert_eq!(failure.kind.as_enum().ok(), Some(&ErrorKind::Failed));
        assert_eq!(failure.message(), "wait");
    }

    #[test]
    fn a_known_variant_arrives_as_itself() {
        let sent: RResult<NonExhaustiveFor<ReadinessState>, PluginFailure> =
            ROk(NonExhaustive::new(ReadinessState::Blocked {
                reason: "trust this folder?".into(),
                answer: vec![RString::from("Enter")].into(),
            }));
        let expected = sent.clone();
        let received: RResult<NonExhaustiveFor<ReadinessState>, PluginFailure> =
            across(sent.to_wire());
        assert_eq!(received, expected);
    }

    fn pull_request(state: PullRequestState) -> PullRequest {
        PullRequest {
            number: 7,
            node_id: "PR_7".into(),
            url: "https://forge.invalid/pull/7".into(),
            title: "a title".into(),
            branch: "session/app-1".into(),
            head_sha: "abc123".into(),
            state: NonExhaustive::new(state),
            draft: true,
            mergeable: NonExhaustive::new(Mergeability::Conflicting),
            review_decision: NonExhaustive::new(ReviewDecision::ChangesRequested),
        }
    }

    #[test]
    fn a_forges_answers_cross_field_by_field() {
        type Pulls = RResult<Fetched<RVec<PullRequest>>, PluginFailure>;
        let sent: Pulls = ROk(Fetched::Changed {
            value: vec![pull_request(PullRequestState::Merged)].into(),
            validator: "W/\"etag\"".into(),
        });
        assert_eq!(across::<Pulls>(sent.clone().to_wire()), sent);
        let unchanged: Pulls = ROk(Fetched::Unchanged);
        assert_eq!(across::<Pulls>(unchanged.clone().to_wire()), unchanged);

        type Feedback = RResult<RVec<ReviewFeedback>, PluginFailure>;
        let sent: Feedback = ROk(vec![ReviewFeedback {
            number: 7,
            reviews: vec![Review {
                id: "R_1".into(),
                author: "reviewer".into(),
                decision: NonExhaustive::new(ReviewDecision::ChangesRequested),
                body: "please".into(),
                url: "https://forge.invalid/r/1".into(),
            }]
            .into(),
            unresolved: vec![ReviewComment {
                thread_id: "T_1".into(),
                comment_id: "C_1".into(),
                path: "src/lib.rs".into(),
                line: ROption::RSome(12),
                author: "reviewer".into(),
                body: "why?".into(),
                url: "https://forge.invalid/c/1".into(),
            }]
            .into(),
        }]
        .into());
        assert_eq!(across::<Feedback>(sent.clone().to_wire()), sent);

        let rate_limited: Pulls = RErr(PluginFailure::new(ErrorKind::RateLimited, "wait"));
        let received = across::<Pulls>(rate_limited.to_wire()).unwrap_err();
        assert_eq!(received.kind.as_enum().ok(), Some(&ErrorKind::RateLimited));
    }

    #[test]
    fn a_forge_state_the_child_does_not_know_arrives_as_the_fallback() {
        type Checks = RResult<Fetched<RVec<Check>>, PluginFailure>;
        let wire = serde_json::json!({"Ok": [[{
            "id": "1", "name": "test", "state": {"Err": "Stale"}, "conclusion": "stale",
            "url": "u", "log_tail": ""
        }], "v"]});
        let checks: Checks = across(serde_json::from_value(wire).unwrap());
        let Fetched::Changed { value, .. } = checks.unwrap() else {
            panic!("changed");
        };
        assert_eq!(value[0].state.as_enum().ok(), Some(&CheckState::Pending));
    }
}
