//! The interface as ao-plugin-api 0.1.0 (`7925995`) declared it, so that hosts keep loading the
//! libraries built against it.
//!
//! 0.1.1 changed the interface in place: `AgentFfi::input_pending` joined the agent's fixed
//! vtable prefix and `WorkspaceFfi::destroy` gained `delete_branch`. The root module names all
//! three interfaces, so every 0.1.0 library fails the layout check against today's root module.
//! abi_stable compares, per type, the type's name, the declaring crate's name and (loosely, for
//! 0.x the same minor) version, fields by name and layout, and vtable prefixes; it does not
//! compare module paths. So the 0.1.0 root module and the two FFI traits whose fixed prefix
//! changed (`AgentFfi`, `WorkspaceFfi`) are declared again here under their old names, and a
//! 0.1.0 library is checked against these instead of today's. Everything else they carry kept
//! its layout or only grew after its prefix (`RuntimeFfi`, `PluginContext`, `PluginError`,
//! `AgentSession`, …) and is today's.
//!
//! The host then wraps each 0.1.0 agent and workspace in an adapter implementing today's FFI
//! traits ([`agent`], [`workspace`]): what 0.1.0 lacked answers as it did for hosts of that
//! release (no input pending, the branch kept on destroy); methods added since answer as for
//! any library that predates them (`Unsupported`).

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
        Activity, AgentSession, EnvVar, PluginContext, PluginKind, Readiness, WorkspaceCreateConfig,
    },
};

/// The ABI level of a library built against 0.1.0 (every later release is
/// [`crate::ABI_LEVEL`] 1).
pub const ABI_LEVEL: u32 = 0;

/// The crate version that built the only libraries of [`ABI_LEVEL`] 0.
pub const API_VERSION: &str = "0.1.0";

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

/// A 0.1.0 agent instance.
pub type AgentObject = AgentFfi_TO<'static, RBox<()>>;
/// A 0.1.0 workspace instance.
pub type WorkspaceObject = WorkspaceFfi_TO<'static, RBox<()>>;

/// 0.1.0's `PluginConstructor`, building 0.1.0 instances.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub enum PluginConstructor {
    /// 0.1.0's runtime vtable is today's fixed prefix, so today's type reads it (the methods
    /// added since get their defaults, as for any older library).
    Runtime(extern "C" fn(&PluginContext) -> RResult<ffi::RuntimeObject, PluginError>),
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

/// Today's agent instance over a 0.1.0 one.
pub fn agent(object: AgentObject) -> ffi::AgentObject {
    ffi::AgentFfi_TO::from_value(Agent(object), TD_Opaque)
}

/// Today's workspace instance over a 0.1.0 one.
pub fn workspace(object: WorkspaceObject) -> ffi::WorkspaceObject {
    ffi::WorkspaceFfi_TO::from_value(Workspace(object), TD_Opaque)
}

#[cfg(test)]
mod tests {
    use abi_stable::abi_stability::abi_checking::check_layout_compatibility;

    use super::*;

    /// Why this module exists: today's root module refuses 0.1.0's, for the agent's prefix and
    /// `destroy`'s parameters, the two changes 0.1.1 made in place.
    #[test]
    fn todays_root_module_refuses_the_0_1_0_layout() {
        let report = check_layout_compatibility(
            <PluginLibraryRef as StableAbi>::LAYOUT,
            <crate::PluginLibraryRef as StableAbi>::LAYOUT,
        )
        .unwrap_err()
        .to_string();
        // The agent's vtable: 0.1.0's prefix ends at `activity`, today's at `input_pending`.
        assert!(
            report.contains("prefix-types have a different prefix"),
            "{report}"
        );
        // `WorkspaceFfi::destroy`: today's takes one parameter more.
        assert!(report.contains("unexpected field"), "{report}");
    }
}
