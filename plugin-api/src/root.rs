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
    /// Builds a runtime.
    Runtime(extern "C" fn(&PluginContext) -> RResult<RuntimeObject, PluginError>),
    /// Builds an agent.
    Agent(extern "C" fn(&PluginContext) -> RResult<AgentObject, PluginError>),
    /// Builds a workspace plugin.
    Workspace(extern "C" fn(&PluginContext) -> RResult<WorkspaceObject, PluginError>),
}

impl PluginConstructor {
    /// Which interface the constructed plugin has.
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
    /// Builds a runtime working through the transport.
    Runtime(extern "C" fn(&PluginContext, &Transport) -> RResult<RuntimeObject, PluginError>),
    /// Builds an agent working through the transport.
    Agent(extern "C" fn(&PluginContext, &Transport) -> RResult<AgentObject, PluginError>),
    /// Builds a workspace plugin working through the transport.
    Workspace(extern "C" fn(&PluginContext, &Transport) -> RResult<WorkspaceObject, PluginError>),
}

/// A plugin of the library that can work on another host: its author marked it `[remote]` in
/// `export_plugins!`, promising that it reaches programs and files only through the plugin-API
/// helpers, which carry the transport. (Added in 0.1.6.)
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct RemoteDeclaration {
    /// The plugin's name, as in its [`PluginDeclaration`].
    pub name: RStr<'static>,
    /// Builds it for another host.
    pub constructor: RemoteConstructor,
}

/// One plugin provided by a library.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct PluginDeclaration {
    /// The name operators write in `ao-rs.yaml`.
    pub name: RStr<'static>,
    /// The plugin's own semver version (its crate version).
    pub version: RStr<'static>,
    /// Builds it; the variant is its kind.
    pub constructor: PluginConstructor,
}

/// The root module: which plugin-API version the library was built against and what it provides.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginLibraryRef)))]
#[sabi(missing_field(panic))]
pub struct PluginLibrary {
    /// The `ao-plugin-api` version the library was built with.
    pub api_version: RStr<'static>,
    #[sabi(last_prefix_field)]
    /// Every plugin the library provides.
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
