//! The root module every plugin library exports, checked by abi_stable before first use.

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    sabi_types::VersionStrings,
    std_types::{RResult, RSlice, RStr},
    StableAbi,
};

use crate::{
    error::PluginError,
    ffi::{AgentObject, RuntimeObject, WorkspaceObject},
    types::{PluginContext, PluginKind, Transport},
};

/// Builds one plugin instance from its context; which variant says which interface it has.
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

/// Builds one plugin instance that works on another host, through `transport` (see
/// [`crate::transport`]). (Added in 0.1.6.)
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub enum RemoteConstructor {
    Runtime(extern "C" fn(&PluginContext, &Transport) -> RResult<RuntimeObject, PluginError>),
    Agent(extern "C" fn(&PluginContext, &Transport) -> RResult<AgentObject, PluginError>),
    Workspace(extern "C" fn(&PluginContext, &Transport) -> RResult<WorkspaceObject, PluginError>),
}

/// A plugin of the library that can work on another host: its author marked it `[remote]` in
/// `export_plugins!`, promising that it reaches programs and files only through the plugin-API
/// helpers, which carry the transport. (Added in 0.1.6.)
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct RemoteDeclaration {
    pub name: RStr<'static>,
    pub constructor: RemoteConstructor,
}

/// One plugin provided by a library.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct PluginDeclaration {
    pub name: RStr<'static>,
    /// The plugin's own semver version (its crate version).
    pub version: RStr<'static>,
    pub constructor: PluginConstructor,
}

/// The root module: which plugin-API version the library was built against and what it provides.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginLibraryRef)))]
#[sabi(missing_field(panic))]
pub struct PluginLibrary {
    pub api_version: RStr<'static>,
    #[sabi(last_prefix_field)]
    pub plugins: RSlice<'static, PluginDeclaration>,
    /// The plugins that can work on another host. A library built before 0.1.6 has none: the
    /// host refuses to use its plugins on another host.
    #[sabi(missing_field(default))]
    pub remote: RSlice<'static, RemoteDeclaration>,
}

/// The version abi_stable compares between host and library.
///
/// abi_stable's own rule wants the library to be at least as new as the host, the opposite of the
/// policy ao-host needs (old plugins keep working in newer hosts of the same line). So abi_stable
/// gets this constant, and the host applies the real semver policy itself, from the manifest.
const ABI_GENERATION: VersionStrings = VersionStrings::new("1.0.0");

impl RootModule for PluginLibraryRef {
    declare_root_module_statics! {PluginLibraryRef}
    const BASE_NAME: &'static str = "ao_plugin";
    const NAME: &'static str = "ao_plugin";
    const VERSION_STRINGS: VersionStrings = ABI_GENERATION;
}
