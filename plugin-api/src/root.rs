//! The root module every plugin library exports, checked by abi_stable before first use.

// The `StableAbi` derive of a non-exhaustive enum trips this lint in code we do not write.
#![allow(non_local_definitions)]

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    nonexhaustive_enum::NonExhaustiveFor,
    sabi_types::VersionStrings,
    std_types::{RResult, RSlice, RStr},
    StableAbi,
};

use crate::{
    error::PluginError,
    ffi::{AgentObject, RuntimeObject, ScmObject, WorkspaceObject},
    successors::{InterfaceKind, PluginFailure},
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

/// Builds one plugin instance of a kind added after the first release: [`PluginConstructor`]
/// is exhaustive, so it can never gain a variant, and this enum can. It crosses the boundary as
/// [`NonExhaustiveFor<AddedKindConstructor>`]: a host reads a variant it does not know as a
/// plugin it cannot use (its manifest names the kind, so such a library is refused by name
/// before it is loaded). (Added in 0.1.9.)
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy)]
#[sabi(kind(WithNonExhaustive(size = [usize; 2], traits(Debug, Clone))))]
#[non_exhaustive]
pub enum AddedKindConstructor {
    /// Builds an scm plugin ([`crate::Scm`]).
    Scm(extern "C" fn(&PluginContext) -> RResult<ScmObject, PluginFailure>),
}

impl AddedKindConstructor {
    /// Which interface the constructed plugin has.
    pub fn kind(&self) -> InterfaceKind {
        match self {
            Self::Scm(_) => InterfaceKind::Scm,
        }
    }
}

/// One plugin of a kind added after the first release (see [`AddedKindConstructor`]).
/// (Added in 0.1.9.)
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct AddedKindDeclaration {
    /// The name operators write in `ao-rs.yaml`.
    pub name: RStr<'static>,
    /// The plugin's own semver version (its crate version).
    pub version: RStr<'static>,
    /// Builds it; the variant is its kind.
    pub constructor: NonExhaustiveFor<AddedKindConstructor>,
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
    /// The plugins of kinds added after the first release (`scm`, 0.1.9). A library built
    /// before has none; a host built before reads no further than `remote`, and refuses such a
    /// library from its manifest, by the kind's name. Hidden: only `export_plugins!` writes
    /// this struct, and it writes every field, so a field added here breaks no plugin's source
    /// (hosts read it through [`PluginLibraryRef::added_kinds`]).
    #[doc(hidden)]
    #[sabi(missing_field(default))]
    pub added_kinds: RSlice<'static, AddedKindDeclaration>,
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
