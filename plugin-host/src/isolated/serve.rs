//! The child's side of an isolated plugin: `ao-host plugins serve`.
//!
//! It reads a `Hello`, loads the library the usual way (every check included), builds the
//! plugin and says whether that worked; then it answers `Call`s until its input closes. The
//! protocol runs on private, close-on-exec copies of the original stdin and stdout; descriptor 0
//! then reads `/dev/null` and 1 writes to stderr. So a plugin that prints cannot corrupt a
//! frame, and no process a plugin starts (an agent, a `git`) inherits the host's channel.

use std::{fs::File, os::fd::FromRawFd, time::Duration};

use ao_plugin_api::{
    abi_stable::std_types::RResult,
    ffi::{AgentObject, RuntimeObject, SandboxObject, ScmObject, WorkspaceObject},
    InterfaceKind, PluginError,
};

use super::{not_a_method, read_frame, write_frame, Arg, Call, FrameError, Hello, Reply};
use crate::{
    registry::{RawInstance, RegistryError},
    PluginRegistry,
};

/// Serves one isolated plugin until the host closes the pipe.
pub fn serve() -> Result<(), String> {
    exit_with_parent();
    let (requests, replies) = private_channel()?;
    // SAFETY: descriptors this process just made and owns alone.
    let (mut input, mut output) =
        unsafe { (File::from_raw_fd(requests), File::from_raw_fd(replies)) };
    let hello = read_frame(&mut input, None).map_err(|e| format!("reading the request: {e:?}"))?;
    let hello: Hello =
        serde_json::from_slice(&hello).map_err(|e| format!("reading the request: {e}"))?;
    let registry = PluginRegistry::load_pinned(std::slice::from_ref(&hello.library), &hello.pins);
    let built = registry.construct(
        hello.kind,
        &hello.name,
        &hello.context,
        hello.transport.as_ref(),
        Duration::from_millis(hello.timeout_ms),
    );
    let outcome: Result<(), PluginError> = match &built {
        Ok(_) => Ok(()),
        Err(RegistryError::Construct { error, .. }) => Err(error.clone()),
        // Not loaded here: why the library was refused (its layout, most likely) says more.
        Err(other) => Err(PluginError::failed(
            match registry.reports().first().map(|r| &r.outcome) {
                Some(Err(refused)) => refused.to_string(),
                _ => other.to_string(),
            },
        )),
    };
    write_frame(&mut output, &outcome).map_err(|e| e.to_string())?;
    let Ok(plugin) = built else {
        return Ok(());
    };
    loop {
        let frame = match read_frame(&mut input, None) {
            Ok(frame) => frame,
            Err(FrameError::Closed) => return Ok(()),
            Err(e) => return Err(format!("reading a call: {e:?}")),
        };
        let reply = match serde_json::from_slice::<Call>(&frame) {
            Ok(call) => answer(&plugin, hello.kind, call),
            Err(e) => encode(RResult::<(), _>::RErr(PluginError::failed(format!(
                "a call this plugin process cannot read ({e}); are host and child the same ao-host?"
            )))),
        };
        write_encoded(&mut output, &reply).map_err(|e| format!("answering: {e}"))?;
    }
}

/// Moves the channel off the standard descriptors, close-on-exec; returns (requests, replies).
fn private_channel() -> Result<(i32, i32), String> {
    let failed = || format!("setting up the pipe: {}", std::io::Error::last_os_error());
    // SAFETY: fcntl/open/dup2 on this process's own descriptors.
    unsafe {
        let requests = libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3);
        let replies = libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if requests < 0
            || replies < 0
            || null < 0
            || libc::dup2(null, 0) < 0
            || libc::dup2(2, 1) < 0
        {
            return Err(failed());
        }
        libc::close(null);
        Ok((requests, replies))
    }
}

/// Ends this process as soon as its parent is gone. A plugin call that hangs never reads the
/// closed pipe, and the host may have exited without killing it (its timeout abandons the
/// call); nothing of an isolated plugin may outlive the command that started it.
fn exit_with_parent() {
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(100));
        // SAFETY: as above; _exit ends the process without running plugin code.
        if unsafe { libc::getppid() } != parent {
            unsafe { libc::_exit(1) };
        }
    });
}

/// Writes an already-encoded reply as one frame (see `write_frame`).
fn write_encoded(output: &mut File, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    output.write_all(&(bytes.len() as u32).to_le_bytes())?;
    output.write_all(bytes)?;
    output.flush()
}

/// A plugin's answer as the host reads it (see [`Reply`]).
fn encode(answer: impl Reply) -> Vec<u8> {
    serde_json::to_vec(&answer.to_wire()).unwrap_or_else(|e| {
        serde_json::to_vec(&Err::<(), _>(PluginError::failed(format!(
            "its answer could not be encoded: {e}"
        ))))
        .unwrap_or_default()
    })
}

/// Calls the plugin method `call` names.
fn answer(plugin: &RawInstance, kind: InterfaceKind, call: Call) -> Vec<u8> {
    let answered = match plugin {
        RawInstance::Runtime(o) => o.answer(call),
        RawInstance::Agent(o) => o.answer(call),
        RawInstance::Workspace(o) => o.answer(call),
        RawInstance::Scm(o) => o.answer(call),
        RawInstance::Sandbox(o) => o.answer(call),
    };
    answered.unwrap_or_else(|call| encode(RResult::<(), _>::RErr(not_a_method(&call, kind))))
}

/// A plugin instance that answers calls sent by the host's isolated proxy.
trait Answer {
    /// The encoded answer to `call`; the call back if it names none of this interface's methods.
    fn answer(&self, call: Call) -> Result<Vec<u8>, Call>;
}

/// Expands one interface's method table (see `ao_plugin_api::methods`) into the dispatch of
/// the calls the host's isolated proxy sends.
macro_rules! dispatch {
    (
        $(#[$trait_doc:meta])*
        interface $plain:ident: $ffi:ident, $adapter:ident, $object:ident, $kind:literal;
        first_release { $($first:tt)* }
        last_of_first_release { $($last:tt)* }
        added { $($added:tt)* }
    ) => {
        dispatch!(@impl $object; $($first)* $($last)* $($added)*);
    };
    (@impl $object:ident; $(
        $(#[$doc:meta])*
        fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty = |$plugin:ident| $body:expr;
    )*) => {
        impl Answer for $object {
            fn answer(&self, call: Call) -> Result<Vec<u8>, Call> {
                Ok(match call.method.as_str() {
                    $(
                        stringify!($name) => match serde_json::from_value(call.args) {
                            Ok(($($arg,)*)) => encode(self.$name($(Arg::lend(&$arg)),*)),
                            Err(e) => unreadable(stringify!($name), e),
                        },
                    )*
                    _ => return Err(call),
                })
            }
        }
    };
}

ao_plugin_api::interface_methods!(dispatch);

/// The answer to a call whose arguments do not parse.
fn unreadable(method: &str, error: serde_json::Error) -> Vec<u8> {
    encode(RResult::<(), _>::RErr(PluginError::failed(format!(
        "a call of `{method}` this plugin process cannot read ({error}); are host and child the same ao-host?"
    ))))
}
