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
    ffi::{AgentObject, RuntimeObject, SandboxObject, ScmObject, WorkspaceObject},
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

/// One plugin of a kind added after the first release (`scm`, `sandbox`, 0.1.9). [`PluginConstructor`] is
/// exhaustive, so it can never gain a variant; this is a prefix type instead, and each kind added
/// later is one more constructor field at its end: a host reads `None` for a field a library
/// lacks (built before the kind existed) and never sees a field it does not know (a kind added
/// after it, which the library's manifest names, so such a library is refused by that name
/// before it is loaded). One of the constructors is set. Hosts read it as an
/// [`AddedKindConstructor`], which can grow.
///
/// Not a non-exhaustive enum: abi_stable merges the layouts of such an enum seen in different
/// libraries, and when two have as many variants it may check the library's against the host's
/// the wrong way round, refusing a library whose nested enums that can grow have variants this
/// host lacks (`ErrorKind` in the constructor's `PluginFailure`).
///
/// Non-exhaustive, so the next kind's field breaks no source: `export_plugins!` builds it with
/// the constructor of its kind ([`AddedKindDeclaration::scm`]).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = AddedKindDeclarationRef)))]
#[sabi(missing_field(option))]
#[non_exhaustive]
pub struct AddedKindDeclaration {
    /// The name operators write in `ao-rs.yaml`.
    pub name: RStr<'static>,
    /// The plugin's own semver version (its crate version).
    #[sabi(last_prefix_field)]
    pub version: RStr<'static>,
    /// Builds it, when it is an scm plugin ([`crate::Scm`]).
    pub scm: Option<extern "C" fn(&PluginContext) -> RResult<ScmObject, PluginFailure>>,
    /// Builds it, when it is a sandbox plugin ([`crate::Sandbox`]).
    /// (Spelled out: the `StableAbi` derive reads function pointer types, not aliases.)
    pub sandbox: Option<extern "C" fn(&PluginContext) -> RResult<SandboxObject, PluginFailure>>,
    /// Builds it for another host, when it is a sandbox plugin marked `[remote]`: the added
    /// kinds carry their remote constructors here, since [`RemoteConstructor`] is exhaustive.
    pub sandbox_remote:
        Option<extern "C" fn(&PluginContext, &Transport) -> RResult<SandboxObject, PluginFailure>>,
}

/// What builds a sandbox plugin for the host that runs ao-host. (Added in 0.1.9.)
pub type SandboxConstructor =
    extern "C" fn(&PluginContext) -> RResult<SandboxObject, PluginFailure>;

/// What builds a sandbox plugin for the host `transport` reaches. (Added in 0.1.9.)
pub type RemoteSandboxConstructor =
    extern "C" fn(&PluginContext, &Transport) -> RResult<SandboxObject, PluginFailure>;

impl AddedKindDeclaration {
    /// An scm plugin named `name`, of version `version`.
    pub fn scm(
        name: &'static str,
        version: &'static str,
        constructor: extern "C" fn(&PluginContext) -> RResult<ScmObject, PluginFailure>,
    ) -> Self {
        Self {
            name: RStr::from_str(name),
            version: RStr::from_str(version),
            scm: Some(constructor),
            sandbox: None,
            sandbox_remote: None,
        }
    }

    /// A sandbox plugin named `name`, of version `version`; with `remote`, it also works on
    /// another host (`[remote]`).
    pub fn sandbox(
        name: &'static str,
        version: &'static str,
        constructor: SandboxConstructor,
        remote: Option<RemoteSandboxConstructor>,
    ) -> Self {
        Self {
            name: RStr::from_str(name),
            version: RStr::from_str(version),
            scm: None,
            sandbox: Some(constructor),
            sandbox_remote: remote,
        }
    }
}

impl AddedKindDeclarationRef {
    /// The constructor that is set; `None` if the library sets none this host knows.
    pub fn constructor(&self) -> Option<AddedKindConstructor> {
        let scm = || self.scm().flatten().map(AddedKindConstructor::Scm);
        let sandbox = || self.sandbox().flatten().map(AddedKindConstructor::Sandbox);
        scm().or_else(sandbox)
    }

    /// The constructor for another host, when the plugin is marked `[remote]`; `None` for a
    /// library built before its kind could be (an scm plugin never is).
    pub fn remote_constructor(&self) -> Option<AddedKindRemoteConstructor> {
        self.sandbox_remote()
            .flatten()
            .map(AddedKindRemoteConstructor::Sandbox)
    }
}

/// Builds one plugin instance of a kind added after the first release, as the host reads an
/// [`AddedKindDeclaration`]; the variant is its kind. (Added in 0.1.9.)
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum AddedKindConstructor {
    /// Builds an scm plugin ([`crate::Scm`]).
    Scm(extern "C" fn(&PluginContext) -> RResult<ScmObject, PluginFailure>),
    /// Builds a sandbox plugin ([`crate::Sandbox`]).
    Sandbox(SandboxConstructor),
}

impl AddedKindConstructor {
    /// Which interface the constructed plugin has.
    pub fn kind(&self) -> InterfaceKind {
        match self {
            Self::Scm(_) => InterfaceKind::Scm,
            Self::Sandbox(_) => InterfaceKind::Sandbox,
        }
    }
}

/// Builds one plugin instance of a kind added after the first release for another host, as the
/// host reads an [`AddedKindDeclaration`] marked `[remote]`; the variant is its kind.
/// (Added in 0.1.9.)
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum AddedKindRemoteConstructor {
    /// Builds a sandbox plugin that confines agents on the host the transport reaches.
    Sandbox(RemoteSandboxConstructor),
}

impl AddedKindRemoteConstructor {
    /// Which interface the constructed plugin has.
    pub fn kind(&self) -> InterfaceKind {
        match self {
            Self::Sandbox(_) => InterfaceKind::Sandbox,
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
    /// The plugins of kinds added after the first release (`scm`, `sandbox`, 0.1.9). A library built
    /// before has none; a host built before reads no further than `remote`, and refuses such a
    /// library from its manifest, by the kind's name. Hidden: only `export_plugins!` writes
    /// this struct, and it writes every field, so a field added here breaks no plugin's source
    /// (hosts read it through [`PluginLibraryRef::added_kinds`]).
    #[doc(hidden)]
    #[sabi(missing_field(default))]
    pub added_kinds: RSlice<'static, AddedKindDeclarationRef>,
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
