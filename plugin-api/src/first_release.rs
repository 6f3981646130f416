//! The interface as ao-plugin-api 0.1.0 (`7925995`) declared it, so that hosts keep loading the
//! libraries built against it.
//!
//! 0.1.1 changed the interface in place: `AgentFfi::input_pending` joined the agent's fixed
//! vtable prefix and `WorkspaceFfi::destroy` gained `delete_branch`. The root module names all
//! three interfaces, so every 0.1.0 library fails the layout check against today's root module.
//! abi_stable compares, per type, the type's name, the declaring crate's name and (loosely, for
//! 0.x the same minor) version, fields by name and layout, and vtable prefixes; it does not
//! compare module paths. So the 0.1.0 root module and the three 0.1.0 FFI traits are declared
//! again here under their old names, and checked against a 0.1.0 library instead of today's.
//! Every type they carry (`PluginContext`, `PluginError`, `AgentSession`, …) kept its layout and
//! is today's.
//!
//! The host then wraps each 0.1.0 instance in an adapter implementing today's FFI traits
//! ([`runtime`], [`agent`], [`workspace`]): what 0.1.0 lacked answers as it did for hosts of
//! that release (no input pending, the branch kept on destroy), or as any method a library
//! predates (`Unsupported`).

// The `#[sabi_trait]` expansion trips these lints in code we do not write.
#![allow(
    non_camel_case_types,
    non_local_definitions,
    clippy::needless_lifetimes
)]

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    sabi_trait,
    sabi_trait::TD_Opaque,
    sabi_types::VersionStrings,
    std_types::{RBox, ROk, RResult, RSlice, RStr, RString, RVec},
    StableAbi,
};

use crate::{
    error::PluginError,
    ffi,
    types::{
        Activity, AgentSession, EnvVar, PluginContext, PluginKind, Readiness, RuntimeCreateRequest,
        WorkspaceCreateConfig,
    },
};

/// The ABI level of a library built against 0.1.0 (every later release is
/// [`crate::ABI_LEVEL`] 1).
pub const ABI_LEVEL: u32 = 0;

/// The crate version that built the only libraries of [`ABI_LEVEL`] 0.
pub const API_VERSION: &str = "0.1.0";

/// 0.1.0's `RuntimeFfi`: today's fixed prefix, nothing after it.
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
}

/// 0.1.0's `AgentFfi`: its prefix ends before `input_pending`.
#[sabi_trait]
pub trait AgentFfi: Send + Sync {
    fn launch_command(&self, session: &AgentSession) -> RResult<RVec<RString>, PluginError>;
    fn environment(&self, session: &AgentSession) -> RResult<RVec<EnvVar>, PluginError>;
    fn is_ready(&self, output: RStr<'_>) -> RResult<Readiness, PluginError>;
    #[sabi(last_prefix_field)]
    fn activity(&self, output: RStr<'_>) -> RResult<Activity, PluginError>;
}

/// 0.1.0's `WorkspaceFfi`: `destroy` without `delete_branch`.
#[sabi_trait]
pub trait WorkspaceFfi: Send + Sync {
    fn create(&self, config: &WorkspaceCreateConfig) -> RResult<RString, PluginError>;
    fn destroy(&self, path: RStr<'_>) -> RResult<(), PluginError>;
    #[sabi(last_prefix_field)]
    fn exists(&self, path: RStr<'_>) -> RResult<bool, PluginError>;
}

/// A 0.1.0 runtime instance.
pub type RuntimeObject = RuntimeFfi_TO<'static, RBox<()>>;
/// A 0.1.0 agent instance.
pub type AgentObject = AgentFfi_TO<'static, RBox<()>>;
/// A 0.1.0 workspace instance.
pub type WorkspaceObject = WorkspaceFfi_TO<'static, RBox<()>>;

/// 0.1.0's `PluginConstructor`, building 0.1.0 instances.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub enum PluginConstructor {
    Runtime(extern "C" fn(&PluginContext) -> RResult<RuntimeObject, PluginError>),
    Agent(extern "C" fn(&PluginContext) -> RResult<AgentObject, PluginError>),
    Workspace(extern "C" fn(&PluginContext) -> RResult<WorkspaceObject, PluginError>),
}

impl PluginConstructor {
    pub fn kind(&self) -> PluginKind {
        match self {
            Self::Runtime(_) => PluginKind::Runtime,
            Self::Agent(_) => PluginKind::Agent,
            Self::Workspace(_) => PluginKind::Workspace,
        }
    }
}

/// 0.1.0's `PluginDeclaration` (the same fields as today's, naming the 0.1.0 constructor).
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct PluginDeclaration {
    pub name: RStr<'static>,
    pub version: RStr<'static>,
    pub constructor: PluginConstructor,
}

/// 0.1.0's root module: no `remote` field.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginLibraryRef)))]
#[sabi(missing_field(panic))]
pub struct PluginLibrary {
    pub api_version: RStr<'static>,
    #[sabi(last_prefix_field)]
    pub plugins: RSlice<'static, PluginDeclaration>,
}

impl RootModule for PluginLibraryRef {
    declare_root_module_statics! {PluginLibraryRef}
    const BASE_NAME: &'static str = <crate::PluginLibraryRef as RootModule>::BASE_NAME;
    const NAME: &'static str = <crate::PluginLibraryRef as RootModule>::NAME;
    const VERSION_STRINGS: VersionStrings =
        <crate::PluginLibraryRef as RootModule>::VERSION_STRINGS;
}

/// A 0.1.0 runtime as today's hosts call it: its every method is in 0.1.0's vtable, the later
/// ones get the defaults a library gets for methods it predates.
struct Runtime(RuntimeObject);

impl ffi::RuntimeFfi for Runtime {
    fn create(&self, request: &RuntimeCreateRequest) -> RResult<RString, PluginError> {
        self.0.create(request)
    }
    fn send_message(&self, handle: RStr<'_>, text: RStr<'_>) -> RResult<(), PluginError> {
        self.0.send_message(handle, text)
    }
    fn send_keys(&self, handle: RStr<'_>, keys: RSlice<'_, RString>) -> RResult<(), PluginError> {
        self.0.send_keys(handle, keys)
    }
    fn capture_output(&self, handle: RStr<'_>, lines: u32) -> RResult<RString, PluginError> {
        self.0.capture_output(handle, lines)
    }
    fn is_alive(&self, handle: RStr<'_>) -> RResult<bool, PluginError> {
        self.0.is_alive(handle)
    }
    fn destroy(&self, handle: RStr<'_>) -> RResult<(), PluginError> {
        self.0.destroy(handle)
    }
    fn attach_command(&self, handle: RStr<'_>) -> RResult<RVec<RString>, PluginError> {
        self.0.attach_command(handle)
    }
}

/// A 0.1.0 agent as today's hosts call it.
struct Agent(AgentObject);

impl ffi::AgentFfi for Agent {
    fn launch_command(&self, session: &AgentSession) -> RResult<RVec<RString>, PluginError> {
        self.0.launch_command(session)
    }
    fn environment(&self, session: &AgentSession) -> RResult<RVec<EnvVar>, PluginError> {
        self.0.environment(session)
    }
    fn is_ready(&self, output: RStr<'_>) -> RResult<Readiness, PluginError> {
        self.0.is_ready(output)
    }
    fn activity(&self, output: RStr<'_>) -> RResult<Activity, PluginError> {
        self.0.activity(output)
    }
    /// 0.1.0 agents could not tell; hosts of that release delivered as if nothing were pending,
    /// and an error here would fail every delivery.
    fn input_pending(&self, _output: RStr<'_>) -> RResult<bool, PluginError> {
        ROk(false)
    }
}

/// A 0.1.0 workspace as today's hosts call it.
struct Workspace(WorkspaceObject);

impl ffi::WorkspaceFfi for Workspace {
    fn create(&self, config: &WorkspaceCreateConfig) -> RResult<RString, PluginError> {
        self.0.create(config)
    }
    /// 0.1.0 workspaces only knew one way to destroy: the branch stays whatever is asked, as it
    /// did under hosts of that release.
    fn destroy(&self, path: RStr<'_>, _delete_branch: bool) -> RResult<(), PluginError> {
        self.0.destroy(path)
    }
    fn exists(&self, path: RStr<'_>) -> RResult<bool, PluginError> {
        self.0.exists(path)
    }
}

/// Today's runtime instance over a 0.1.0 one.
pub fn runtime(object: RuntimeObject) -> ffi::RuntimeObject {
    ffi::RuntimeFfi_TO::from_value(Runtime(object), TD_Opaque)
}

/// Today's agent instance over a 0.1.0 one.
pub fn agent(object: AgentObject) -> ffi::AgentObject {
    ffi::AgentFfi_TO::from_value(Agent(object), TD_Opaque)
}

/// Today's workspace instance over a 0.1.0 one.
pub fn workspace(object: WorkspaceObject) -> ffi::WorkspaceObject {
    ffi::WorkspaceFfi_TO::from_value(Workspace(object), TD_Opaque)
}
