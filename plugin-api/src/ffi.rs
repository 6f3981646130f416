//! The FFI-safe trait objects that actually cross the boundary, and the adapters that build them
//! from the plain-Rust traits.
//!
//! Each adapter runs the plugin's code inside `catch_unwind`: abi_stable aborts the whole process
//! when a panic unwinds through a `#[sabi_trait]` method, so the plugin side must stop it first.

// The `#[sabi_trait]` expansion trips these lints in code we do not write.
#![allow(
    non_camel_case_types,
    non_local_definitions,
    clippy::needless_lifetimes
)]

use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::{
    sabi_trait,
    sabi_trait::TD_Opaque,
    std_types::{RBox, RErr, ROk, RResult, RSlice, RStr, RString, RVec},
};

use crate::{
    error::{PluginError, PluginErrorKind, PluginResult},
    traits::{Agent, Runtime, Workspace},
    types::{
        Activity, AgentSession, DoctorCheck, EnvVar, LaunchPlan, LaunchRequest, PluginContext,
        Readiness, RepositoryInfo, RuntimeCreateRequest, Transport, WorkspaceCreateConfig,
    },
};

/// What the host gets for a method a plugin's library predates: its vtable has no such entry.
fn built_before<T>(kind: &str, method: &str) -> RResult<T, PluginError> {
    RErr(PluginError::unsupported(format!(
        "this {kind} plugin was built before `{method}` existed; rebuild it against a newer ao-plugin-api"
    )))
}

/// FFI form of [`Runtime`].
#[sabi_trait]
pub trait RuntimeFfi: Send + Sync {
    fn create(&self, request: &RuntimeCreateRequest) -> RResult<RString, PluginError>;
    fn send_message(&self, handle: RStr<'_>, text: RStr<'_>) -> RResult<(), PluginError>;
    fn send_keys(&self, handle: RStr<'_>, keys: RSlice<'_, RString>) -> RResult<(), PluginError>;
    fn capture_output(&self, handle: RStr<'_>, lines: u32) -> RResult<RString, PluginError>;
    fn is_alive(&self, handle: RStr<'_>) -> RResult<bool, PluginError>;
    fn destroy(&self, handle: RStr<'_>) -> RResult<(), PluginError>;
    #[sabi(last_prefix_field)]
    fn attach_command(&self, handle: RStr<'_>) -> RResult<RVec<RString>, PluginError>;
    /// Added after the first release of the interface: a library built before it has no such
    /// entry in its vtable, and the host gets this default instead.
    fn alive_handles(&self) -> RResult<RVec<RString>, PluginError> {
        built_before("runtime", "alive_handles")
    }
    /// Added in 0.1.3; older libraries get this default.
    fn doctor(&self) -> RResult<RVec<DoctorCheck>, PluginError> {
        built_before("runtime", "doctor")
    }
    /// Added in 0.1.3; older libraries get this default (and the host asks per handle).
    fn capture_outputs(
        &self,
        _handles: RSlice<'_, RString>,
        _lines: u32,
    ) -> RResult<RVec<RResult<RString, PluginError>>, PluginError> {
        built_before("runtime", "capture_outputs")
    }
    /// Added in 0.1.3; older libraries get this default (and the host lists live sessions only).
    fn owned_handles(&self) -> RResult<RVec<RString>, PluginError> {
        built_before("runtime", "owned_handles")
    }
    /// Added in 0.1.5; older libraries get this default (and the host shows the plain screen).
    fn capture_styled(&self, _handle: RStr<'_>, _lines: u32) -> RResult<RString, PluginError> {
        built_before("runtime", "capture_styled")
    }
    /// Added in 0.1.7; older libraries get this default (and the host calls `create`).
    fn start(&self, _request: &RuntimeCreateRequest) -> RResult<RString, PluginError> {
        built_before("runtime", "start")
    }
}

/// FFI form of [`Agent`].
#[sabi_trait]
pub trait AgentFfi: Send + Sync {
    fn launch_command(&self, session: &AgentSession) -> RResult<RVec<RString>, PluginError>;
    fn environment(&self, session: &AgentSession) -> RResult<RVec<EnvVar>, PluginError>;
    fn is_ready(&self, output: RStr<'_>) -> RResult<Readiness, PluginError>;
    fn activity(&self, output: RStr<'_>) -> RResult<Activity, PluginError>;
    #[sabi(last_prefix_field)]
    fn input_pending(&self, output: RStr<'_>) -> RResult<bool, PluginError>;
    /// Added in 0.1.3; older libraries get this default.
    fn doctor(&self) -> RResult<RVec<DoctorCheck>, PluginError> {
        built_before("agent", "doctor")
    }
    /// Added in 0.1.4; older libraries get this default (and the host uses `launch_command`).
    fn launch(&self, _request: &LaunchRequest) -> RResult<LaunchPlan, PluginError> {
        built_before("agent", "launch")
    }
    /// Added in 0.1.6; older libraries get this default (and keep their files).
    fn forget(&self, _session_id: RStr<'_>) -> RResult<(), PluginError> {
        built_before("agent", "forget")
    }
    /// Added in 0.1.7; older libraries get this default (and the host says nothing more).
    fn silent_events_hint(&self) -> RResult<RString, PluginError> {
        built_before("agent", "silent_events_hint")
    }
}

/// FFI form of [`Workspace`].
#[sabi_trait]
pub trait WorkspaceFfi: Send + Sync {
    fn create(&self, config: &WorkspaceCreateConfig) -> RResult<RString, PluginError>;
    fn destroy(&self, path: RStr<'_>, delete_branch: bool) -> RResult<(), PluginError>;
    #[sabi(last_prefix_field)]
    fn exists(&self, path: RStr<'_>) -> RResult<bool, PluginError>;
    /// Added in 0.1.2; older libraries get this default.
    fn list_owned(&self) -> RResult<RVec<RString>, PluginError> {
        built_before("workspace", "list_owned")
    }
    /// Added in 0.1.2; older libraries get this default.
    fn has_unsaved_work(&self, _path: RStr<'_>) -> RResult<bool, PluginError> {
        built_before("workspace", "has_unsaved_work")
    }
    /// Added in 0.1.3; older libraries get this default.
    fn doctor(&self) -> RResult<RVec<DoctorCheck>, PluginError> {
        built_before("workspace", "doctor")
    }
    /// Added in 0.1.3; older libraries get this default.
    fn discover_repository(&self, _dir: RStr<'_>) -> RResult<RepositoryInfo, PluginError> {
        built_before("workspace", "discover_repository")
    }
    /// Added in 0.1.7; older libraries get this default.
    fn remove_merged_branches(
        &self,
        _repo: RStr<'_>,
        _branches: RSlice<'_, RString>,
        _dry_run: bool,
    ) -> RResult<RVec<RString>, PluginError> {
        built_before("workspace", "remove_merged_branches")
    }
    /// Added in 0.1.7; older libraries get this default.
    fn base_of(&self, _repo: RStr<'_>, _default_branch: RStr<'_>) -> RResult<RString, PluginError> {
        built_before("workspace", "base_of")
    }
}

/// A runtime plugin instance as the host holds it.
pub type RuntimeObject = RuntimeFfi_TO<'static, RBox<()>>;
/// An agent plugin instance as the host holds it.
pub type AgentObject = AgentFfi_TO<'static, RBox<()>>;
/// A workspace plugin instance as the host holds it.
pub type WorkspaceObject = WorkspaceFfi_TO<'static, RBox<()>>;

thread_local! {
    /// Where the last panic on this thread happened, recorded by the hook below.
    static PANIC_LOCATION: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Replaces this library's panic hook (each cdylib has its own copy of std, so the host's hook is
/// untouched): instead of printing to the host's stderr, it records where the panic happened, and
/// the error returned to the host carries that.
fn install_panic_hook() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()));
            PANIC_LOCATION.with(|slot| *slot.borrow_mut() = location);
        }));
    });
}

/// Runs plugin code, turning both its error and a panic into an FFI-safe result; with
/// `remote`, as the current transport (see [`crate::transport`]).
fn guarded<T, R>(
    remote: Option<&Transport>,
    call: &str,
    body: impl FnOnce() -> PluginResult<T>,
) -> RResult<R, PluginError>
where
    T: Into<R>,
{
    install_panic_hook();
    match catch_unwind(AssertUnwindSafe(|| crate::transport::scoped(remote, body))) {
        Ok(Ok(value)) => ROk(value.into()),
        Ok(Err(error)) => RErr(error),
        Err(payload) => {
            let detail = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_string());
            let location = PANIC_LOCATION
                .with(|slot| slot.borrow_mut().take())
                .map(|l| format!(" at {l}"))
                .unwrap_or_default();
            RErr(PluginError::new(
                PluginErrorKind::Panicked,
                format!("plugin panicked in `{call}`{location}: {detail}"),
            ))
        }
    }
}

fn to_rvec(items: Vec<String>) -> RVec<RString> {
    items.into_iter().map(RString::from).collect()
}

/// Wraps a [`Runtime`] so it can be handed across the boundary.
#[doc(hidden)]
pub struct RuntimeAdapter<T>(T, Option<Transport>);

impl<T: Runtime> RuntimeFfi for RuntimeAdapter<T> {
    fn create(&self, request: &RuntimeCreateRequest) -> RResult<RString, PluginError> {
        guarded(self.1.as_ref(), "create", || self.0.create(request))
    }
    fn send_message(&self, handle: RStr<'_>, text: RStr<'_>) -> RResult<(), PluginError> {
        guarded(self.1.as_ref(), "send_message", || {
            self.0.send_message(handle.as_str(), text.as_str())
        })
    }
    fn send_keys(&self, handle: RStr<'_>, keys: RSlice<'_, RString>) -> RResult<(), PluginError> {
        guarded(self.1.as_ref(), "send_keys", || {
            self.0.send_keys(handle.as_str(), keys.as_slice())
        })
    }
    fn capture_output(&self, handle: RStr<'_>, lines: u32) -> RResult<RString, PluginError> {
        guarded(self.1.as_ref(), "capture_output", || {
            self.0.capture_output(handle.as_str(), lines)
        })
    }
    fn is_alive(&self, handle: RStr<'_>) -> RResult<bool, PluginError> {
        guarded(self.1.as_ref(), "is_alive", || {
            self.0.is_alive(handle.as_str())
        })
    }
    fn destroy(&self, handle: RStr<'_>) -> RResult<(), PluginError> {
        guarded(self.1.as_ref(), "destroy", || {
            self.0.destroy(handle.as_str())
        })
    }
    fn attach_command(&self, handle: RStr<'_>) -> RResult<RVec<RString>, PluginError> {
        guarded(self.1.as_ref(), "attach_command", || {
            self.0.attach_command(handle.as_str()).map(to_rvec)
        })
    }
    fn alive_handles(&self) -> RResult<RVec<RString>, PluginError> {
        guarded(self.1.as_ref(), "alive_handles", || {
            self.0.alive_handles().map(to_rvec)
        })
    }
    fn doctor(&self) -> RResult<RVec<DoctorCheck>, PluginError> {
        guarded(self.1.as_ref(), "doctor", || self.0.doctor())
    }
    fn capture_outputs(
        &self,
        handles: RSlice<'_, RString>,
        lines: u32,
    ) -> RResult<RVec<RResult<RString, PluginError>>, PluginError> {
        guarded(self.1.as_ref(), "capture_outputs", || {
            self.0
                .capture_outputs(handles.as_slice(), lines)
                .map(|screens| {
                    screens
                        .into_iter()
                        .map(|screen| screen.map(RString::from).into())
                        .collect::<RVec<_>>()
                })
        })
    }
    fn owned_handles(&self) -> RResult<RVec<RString>, PluginError> {
        guarded(self.1.as_ref(), "owned_handles", || {
            self.0.owned_handles().map(to_rvec)
        })
    }
    fn capture_styled(&self, handle: RStr<'_>, lines: u32) -> RResult<RString, PluginError> {
        guarded(self.1.as_ref(), "capture_styled", || {
            self.0.capture_styled(handle.as_str(), lines)
        })
    }
    fn start(&self, request: &RuntimeCreateRequest) -> RResult<RString, PluginError> {
        guarded(self.1.as_ref(), "start", || self.0.start(request))
    }
}

/// Wraps an [`Agent`] so it can be handed across the boundary.
#[doc(hidden)]
pub struct AgentAdapter<T>(T, Option<Transport>);

impl<T: Agent> AgentFfi for AgentAdapter<T> {
    fn launch_command(&self, session: &AgentSession) -> RResult<RVec<RString>, PluginError> {
        guarded(self.1.as_ref(), "launch_command", || {
            self.0.launch_command(session).map(to_rvec)
        })
    }
    fn environment(&self, session: &AgentSession) -> RResult<RVec<EnvVar>, PluginError> {
        guarded(self.1.as_ref(), "environment", || {
            self.0.environment(session)
        })
    }
    fn is_ready(&self, output: RStr<'_>) -> RResult<Readiness, PluginError> {
        guarded(self.1.as_ref(), "is_ready", || {
            self.0.is_ready(output.as_str())
        })
    }
    fn activity(&self, output: RStr<'_>) -> RResult<Activity, PluginError> {
        guarded(self.1.as_ref(), "activity", || {
            self.0.activity(output.as_str())
        })
    }
    fn input_pending(&self, output: RStr<'_>) -> RResult<bool, PluginError> {
        guarded(self.1.as_ref(), "input_pending", || {
            self.0.input_pending(output.as_str())
        })
    }
    fn doctor(&self) -> RResult<RVec<DoctorCheck>, PluginError> {
        guarded(self.1.as_ref(), "doctor", || self.0.doctor())
    }
    fn launch(&self, request: &LaunchRequest) -> RResult<LaunchPlan, PluginError> {
        guarded(self.1.as_ref(), "launch", || self.0.launch(request))
    }
    fn forget(&self, session_id: RStr<'_>) -> RResult<(), PluginError> {
        guarded(self.1.as_ref(), "forget", || {
            self.0.forget(session_id.as_str())
        })
    }
    fn silent_events_hint(&self) -> RResult<RString, PluginError> {
        guarded(self.1.as_ref(), "silent_events_hint", || {
            self.0.silent_events_hint()
        })
    }
}

/// Wraps a [`Workspace`] so it can be handed across the boundary.
#[doc(hidden)]
pub struct WorkspaceAdapter<T>(T, Option<Transport>);

impl<T: Workspace> WorkspaceFfi for WorkspaceAdapter<T> {
    fn create(&self, config: &WorkspaceCreateConfig) -> RResult<RString, PluginError> {
        guarded(self.1.as_ref(), "create", || self.0.create(config))
    }
    fn destroy(&self, path: RStr<'_>, delete_branch: bool) -> RResult<(), PluginError> {
        guarded(self.1.as_ref(), "destroy", || {
            self.0.destroy(path.as_str(), delete_branch)
        })
    }
    fn exists(&self, path: RStr<'_>) -> RResult<bool, PluginError> {
        guarded(self.1.as_ref(), "exists", || self.0.exists(path.as_str()))
    }
    fn list_owned(&self) -> RResult<RVec<RString>, PluginError> {
        guarded(self.1.as_ref(), "list_owned", || {
            self.0.list_owned().map(to_rvec)
        })
    }
    fn has_unsaved_work(&self, path: RStr<'_>) -> RResult<bool, PluginError> {
        guarded(self.1.as_ref(), "has_unsaved_work", || {
            self.0.has_unsaved_work(path.as_str())
        })
    }
    fn doctor(&self) -> RResult<RVec<DoctorCheck>, PluginError> {
        guarded(self.1.as_ref(), "doctor", || self.0.doctor())
    }
    fn discover_repository(&self, dir: RStr<'_>) -> RResult<RepositoryInfo, PluginError> {
        guarded(self.1.as_ref(), "discover_repository", || {
            self.0.discover_repository(dir.as_str())
        })
    }
    fn remove_merged_branches(
        &self,
        repo: RStr<'_>,
        branches: RSlice<'_, RString>,
        dry_run: bool,
    ) -> RResult<RVec<RString>, PluginError> {
        guarded(self.1.as_ref(), "remove_merged_branches", || {
            let branches: Vec<String> = branches.iter().map(|b| b.as_str().to_string()).collect();
            self.0
                .remove_merged_branches(repo.as_str(), &branches, dry_run)
                .map(to_rvec)
        })
    }
    fn base_of(&self, repo: RStr<'_>, default_branch: RStr<'_>) -> RResult<RString, PluginError> {
        guarded(self.1.as_ref(), "base_of", || {
            self.0
                .base_of(repo.as_str(), default_branch.as_str())
                .map(RString::from)
        })
    }
}

/// Constructor entry points; `export_plugins!` stores one of these per plugin, and one of the
/// `construct_remote_*` for a plugin marked `[remote]`.
#[doc(hidden)]
pub extern "C" fn construct_runtime<T: Runtime>(
    context: &PluginContext,
) -> RResult<RuntimeObject, PluginError> {
    build_runtime::<T>(context, None)
}

#[doc(hidden)]
pub extern "C" fn construct_agent<T: Agent>(
    context: &PluginContext,
) -> RResult<AgentObject, PluginError> {
    build_agent::<T>(context, None)
}

#[doc(hidden)]
pub extern "C" fn construct_workspace<T: Workspace>(
    context: &PluginContext,
) -> RResult<WorkspaceObject, PluginError> {
    build_workspace::<T>(context, None)
}

#[doc(hidden)]
pub extern "C" fn construct_remote_runtime<T: Runtime>(
    context: &PluginContext,
    transport: &Transport,
) -> RResult<RuntimeObject, PluginError> {
    build_runtime::<T>(context, Some(transport))
}

#[doc(hidden)]
pub extern "C" fn construct_remote_agent<T: Agent>(
    context: &PluginContext,
    transport: &Transport,
) -> RResult<AgentObject, PluginError> {
    build_agent::<T>(context, Some(transport))
}

#[doc(hidden)]
pub extern "C" fn construct_remote_workspace<T: Workspace>(
    context: &PluginContext,
    transport: &Transport,
) -> RResult<WorkspaceObject, PluginError> {
    build_workspace::<T>(context, Some(transport))
}

fn build_runtime<T: Runtime>(
    context: &PluginContext,
    remote: Option<&Transport>,
) -> RResult<RuntimeObject, PluginError> {
    guarded(remote, "new", || {
        T::new(context).map(|plugin| {
            RuntimeFfi_TO::from_value(RuntimeAdapter(plugin, remote.cloned()), TD_Opaque)
        })
    })
}

fn build_agent<T: Agent>(
    context: &PluginContext,
    remote: Option<&Transport>,
) -> RResult<AgentObject, PluginError> {
    guarded(remote, "new", || {
        T::new(context)
            .map(|plugin| AgentFfi_TO::from_value(AgentAdapter(plugin, remote.cloned()), TD_Opaque))
    })
}

fn build_workspace<T: Workspace>(
    context: &PluginContext,
    remote: Option<&Transport>,
) -> RResult<WorkspaceObject, PluginError> {
    guarded(remote, "new", || {
        T::new(context).map(|plugin| {
            WorkspaceFfi_TO::from_value(WorkspaceAdapter(plugin, remote.cloned()), TD_Opaque)
        })
    })
}
