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
    nonexhaustive_enum::{NonExhaustive, NonExhaustiveFor},
    sabi_trait,
    sabi_trait::TD_Opaque,
    std_types::{RBox, RErr, ROk, ROption, RResult, RSlice, RStr, RString, RVec},
};

use crate::{
    error::{PluginError, PluginErrorKind},
    sandbox::{
        ConfinedCommand, ConfinedLaunchPlan, ConfinedLaunchRequest, PathRule, SandboxRequest,
        WorkspaceConfinement, WorkspaceConfinementQuery,
    },
    scm::{
        Check, ChecksQuery, Fetched, MergeRequest, PullRequest, PullRequestQuery, RateLimit,
        ReviewFeedback, ReviewsQuery, WebhookDelivery, WebhookHint,
    },
    successors::{ActivityState, PluginFailure, ReadinessState},
    traits::{Agent, Runtime, Sandbox, Scm, Workspace},
    types::{
        Activity, AgentSession, DoctorCheck, EnvVar, LaunchPlan, LaunchRequest, PluginContext,
        Readiness, RepositoryInfo, RuntimeCreateRequest, Transport, WorkspaceCreateConfig,
    },
    usage::{UsageQuery, UsageReport},
};

/// What the host gets for a method a plugin's library predates: its vtable has no such entry.
fn built_before<T, E: From<PluginError>>(kind: &str, method: &str) -> RResult<T, E> {
    RErr(PluginError::unsupported(format!(
        "this {kind} plugin was built before `{method}` existed; rebuild it against a newer ao-plugin-api"
    ))
    .into())
}

/// Expands one interface's method table (see [`crate::methods`]) into its FFI trait and the
/// adapter that implements it over the plain-Rust trait.
macro_rules! ffi_interface {
    (
        $(#[$trait_doc:meta])*
        interface $plain:ident: $ffi:ident, $adapter:ident, $object:ident, $kind:literal;
        first_release { $(
            fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty = |$plugin:ident| $body:expr;
        )* }
        last_of_first_release {
            fn $last_name:ident($($last_arg:ident: $last_ty:ty),* $(,)?) -> $last_ret:ty
                = |$last_plugin:ident| $last_body:expr;
        }
        added { $(
            $(#[$added_doc:meta])*
            fn $added_name:ident($($added_arg:ident: $added_ty:ty),* $(,)?) -> $added_ret:ty
                = |$added_plugin:ident| $added_body:expr;
        )* }
    ) => {
        $(#[$trait_doc])*
        #[sabi_trait]
        pub trait $ffi: Send + Sync {
            $(
                #[doc = concat!("FFI form of [`", stringify!($plain), "::", stringify!($name), "`].")]
                fn $name(&self, $($arg: $ty),*) -> $ret;
            )*
            #[doc = concat!("FFI form of [`", stringify!($plain), "::", stringify!($last_name), "`].")]
            #[sabi(last_prefix_field)]
            fn $last_name(&self, $($last_arg: $last_ty),*) -> $last_ret;
            $(
                $(#[$added_doc])*
                fn $added_name(&self, $($added_arg: $added_ty),*) -> $added_ret {
                    let _ = ($(&$added_arg,)*);
                    built_before($kind, stringify!($added_name))
                }
            )*
        }

        #[doc = concat!("Wraps a [`", stringify!($plain), "`] so it can be handed across the boundary.")]
        #[doc(hidden)]
        pub struct $adapter<T>(T, Option<Transport>);

        ffi_interface!(@adapter $plain, $ffi, $adapter;
            $( fn $name($($arg: $ty),*) -> $ret = |$plugin| $body; )*
            fn $last_name($($last_arg: $last_ty),*) -> $last_ret = |$last_plugin| $last_body;
            $( fn $added_name($($added_arg: $added_ty),*) -> $added_ret
                = |$added_plugin| $added_body; )*
        );
    };
    (@adapter $plain:ident, $ffi:ident, $adapter:ident; $(
        fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = |$plugin:ident| $body:expr;
    )*) => {
        impl<T: $plain> $ffi for $adapter<T> {
            $(
                fn $name(&self, $($arg: $ty),*) -> $ret {
                    guarded(self.1.as_ref(), stringify!($name), || {
                        let $plugin = &self.0;
                        $body
                    })
                }
            )*
        }
    };
}

crate::interface_methods!(ffi_interface);

/// A runtime plugin instance as the host holds it.
pub type RuntimeObject = RuntimeFfi_TO<'static, RBox<()>>;
/// An agent plugin instance as the host holds it.
pub type AgentObject = AgentFfi_TO<'static, RBox<()>>;
/// A workspace plugin instance as the host holds it.
pub type WorkspaceObject = WorkspaceFfi_TO<'static, RBox<()>>;
/// An scm plugin instance as the host holds it. (Added in 0.1.9.)
pub type ScmObject = ScmFfi_TO<'static, RBox<()>>;
/// A sandbox plugin instance as the host holds it. (Added in 0.1.9.)
pub type SandboxObject = SandboxFfi_TO<'static, RBox<()>>;

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
fn guarded<T, R, E, F>(
    remote: Option<&Transport>,
    call: &str,
    body: impl FnOnce() -> Result<T, E>,
) -> RResult<R, F>
where
    T: Into<R>,
    E: Into<F>,
    F: From<PluginError>,
{
    install_panic_hook();
    match catch_unwind(AssertUnwindSafe(|| crate::transport::scoped(remote, body))) {
        Ok(Ok(value)) => ROk(value.into()),
        Ok(Err(error)) => RErr(error.into()),
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
            RErr(
                PluginError::new(
                    PluginErrorKind::Panicked,
                    format!("plugin panicked in `{call}`{location}: {detail}"),
                )
                .into(),
            )
        }
    }
}

fn to_rvec(items: Vec<String>) -> RVec<RString> {
    items.into_iter().map(RString::from).collect()
}

/// A list answer as it crosses the boundary.
fn fetched_rvec<T>(fetched: Fetched<Vec<T>>) -> Fetched<RVec<T>> {
    match fetched {
        Fetched::Unchanged => Fetched::Unchanged,
        Fetched::Changed { value, validator } => Fetched::Changed {
            value: value.into(),
            validator,
        },
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

/// The constructor of an scm plugin (a kind added in 0.1.9, declared in
/// [`crate::AddedKindConstructor`]). An scm plugin talks to its forge from the host, so it has
/// no remote form.
#[doc(hidden)]
pub extern "C" fn construct_scm<T: Scm>(
    context: &PluginContext,
) -> RResult<ScmObject, PluginFailure> {
    guarded(None, "new", || {
        T::new(context).map(|plugin| ScmFfi_TO::from_value(ScmAdapter(plugin, None), TD_Opaque))
    })
}

/// The constructor of a sandbox plugin (a kind added in 0.1.9, declared in
/// [`crate::AddedKindDeclaration`]) for the host that runs ao-host.
#[doc(hidden)]
pub extern "C" fn construct_sandbox<T: Sandbox>(
    context: &PluginContext,
) -> RResult<SandboxObject, PluginFailure> {
    build_sandbox::<T>(context, None)
}

/// The constructor of a sandbox plugin marked `[remote]`: it confines agents on the host
/// `transport` reaches, so it probes that host (is the tool there, are user namespaces on)
/// through the kit's transport-aware helpers.
#[doc(hidden)]
pub extern "C" fn construct_remote_sandbox<T: Sandbox>(
    context: &PluginContext,
    transport: &Transport,
) -> RResult<SandboxObject, PluginFailure> {
    build_sandbox::<T>(context, Some(transport))
}

fn build_sandbox<T: Sandbox>(
    context: &PluginContext,
    remote: Option<&Transport>,
) -> RResult<SandboxObject, PluginFailure> {
    guarded(remote, "new", || {
        T::new(context).map(|plugin| {
            SandboxFfi_TO::from_value(SandboxAdapter(plugin, remote.cloned()), TD_Opaque)
        })
    })
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
