//! The `export_plugins!` macro and the pieces its expansion names.
//!
//! The expansion is what `#[abi_stable::export_root_module]` would write, spelled with
//! `$crate::` paths so that a plugin crate depends on `ao-plugin-api` alone.

use abi_stable::library::ROOT_MODULE_LOADER_NAME;

/// The symbol abi_stable 0.11 looks up to find a library's header. The macro must spell it as an
/// identifier; the assertion below breaks the build if abi_stable ever renames it.
#[doc(hidden)]
pub const EXPECTED_LOADER_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

const _: () = assert!(const_str_eq(
    ROOT_MODULE_LOADER_NAME,
    EXPECTED_LOADER_SYMBOL
));

const fn const_str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Exports the plugins of a shared library.
///
/// ```ignore
/// ao_plugin_api::export_plugins! {
///     runtime "tmux" => TmuxRuntime [remote],
///     agent "mine" => MyAgent,
/// }
/// ```
///
/// Each entry is a kind (`runtime`, `agent`, `workspace`, `scm` or `sandbox`), the plugin's
/// name as operators write it in `ao-rs.yaml`, and a type implementing the matching trait
/// ([`Runtime`](crate::Runtime), [`Agent`](crate::Agent), [`Workspace`](crate::Workspace),
/// [`Scm`](crate::Scm), [`Sandbox`](crate::Sandbox)). The plugin's version is the
/// calling crate's `CARGO_PKG_VERSION`. Invoke it once per library, at the crate root; the crate
/// must have `crate-type = ["cdylib"]`.
///
/// `[remote]` says the plugin also works on another host (`ao-host spawn --host`): it reaches
/// programs and files only through `ao-plugin-kit`'s `program`, `files` and `session_files`,
/// which carry the host's transport (see [`crate::transport`]). Without it, the host refuses to
/// use the plugin on another host. A `sandbox` plugin may be `[remote]`: it then confines
/// agents on the host they run on, and probes that host through the same helpers. An `scm`
/// plugin cannot be `[remote]` (it talks to its forge
/// from the host that runs ao-host); the macro refuses that at compile time:
///
/// ```compile_fail
/// # use ao_plugin_api::{scm::*, PluginContext, PluginFailure, PluginResult, Scm};
/// # pub struct Forge;
/// # impl Scm for Forge {
/// #     fn new(_: &PluginContext) -> PluginResult<Self> { Ok(Forge) }
/// #     fn pull_requests(&self, _: &PullRequestQuery)
/// #         -> Result<Fetched<Vec<PullRequest>>, PluginFailure> { Ok(Fetched::Unchanged) }
/// #     fn checks(&self, _: &ChecksQuery)
/// #         -> Result<Fetched<Vec<Check>>, PluginFailure> { Ok(Fetched::Unchanged) }
/// #     fn reviews(&self, _: &ReviewsQuery)
/// #         -> Result<Vec<ReviewFeedback>, PluginFailure> { Ok(Vec::new()) }
/// #     fn merge(&self, _: &MergeRequest) -> Result<(), PluginFailure> { Ok(()) }
/// # }
/// ao_plugin_api::export_plugins! {
///     scm "forge" => Forge [remote],
/// }
/// # fn main() {}
/// ```
///
/// A library that cannot work without a host feature (see [`crate::HOST_FEATURES`]) says so
/// first; a host without it refuses the library, naming the feature, instead of loading it:
///
/// ```ignore
/// ao_plugin_api::export_plugins! {
///     needs ["runtime-start"];
///     runtime "mine" => MyRuntime,
/// }
/// ```
///
/// Only hosts that read the format-2 manifest (built with the release that introduced it, or
/// later) check `needs`; older ones go by the format-1 manifest alone.
#[macro_export]
macro_rules! export_plugins {
    (needs [$($need:literal),* $(,)?]; $($entries:tt)+) => {
        $crate::__export_plugins!(kit(::std::option::Option::None) [$($need),*] $($entries)+);
    };
    ($($entries:tt)+) => {
        $crate::__export_plugins!(kit(::std::option::Option::None) [] $($entries)+);
    };
}

/// [`export_plugins!`] with the author kit's version for the format-2 manifest: an author kit
/// that re-exports the macro passes `kit(Some(its version))`.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_plugins {
    (kit($kit:expr) [$($need:literal),*] $($kind:ident $name:literal => $plugin:ty $([$capability:ident])?),+ $(,)?) => {
        #[doc(hidden)]
        const __AO_PLUGIN_MANIFEST_ENTRIES: &[$crate::manifest::ManifestEntry] = &[
            $($crate::manifest::ManifestEntry {
                kind: $crate::manifest::ManifestStr::from_nul_terminated(
                    concat!(stringify!($kind), "\0"),
                ),
                name: $crate::manifest::ManifestStr::from_nul_terminated(concat!($name, "\0")),
                version: $crate::manifest::ManifestStr::from_nul_terminated(
                    concat!(env!("CARGO_PKG_VERSION"), "\0"),
                ),
            },)+
        ];

        /// Read by hosts before the format-2 manifest, before anything else in this library.
        #[unsafe(no_mangle)]
        pub static AO_PLUGIN_MANIFEST: $crate::manifest::PluginManifest =
            $crate::manifest::PluginManifest::new(
                $crate::manifest::ManifestStr::from_nul_terminated($crate::INTERFACE_REVISION_NUL),
                __AO_PLUGIN_MANIFEST_ENTRIES,
            );

        #[doc(hidden)]
        const __AO_PLUGIN_ABI_DESCRIPTION: $crate::manifest::AbiDescription<'static> =
            $crate::manifest::AbiDescription {
                abi_level: $crate::ABI_LEVEL,
                api: $crate::API_VERSION,
                interface: $crate::INTERFACE_REVISION,
                kit: $kit,
                needs: &[$($need),*],
                plugins: &[$($crate::manifest::AbiPlugin {
                    kind: stringify!($kind),
                    name: $name,
                    version: env!("CARGO_PKG_VERSION"),
                    remote: $crate::__is_remote!($($capability)?),
                },)+],
            };

        /// The format-2 manifest: ABI level, needed host features and plugins, read by the
        /// host from the file.
        #[unsafe(no_mangle)]
        pub static AO_PLUGIN_ABI: $crate::manifest::AbiManifest<
            { $crate::manifest::abi_manifest_len(&__AO_PLUGIN_ABI_DESCRIPTION) },
        > = $crate::manifest::AbiManifest::new(&__AO_PLUGIN_ABI_DESCRIPTION);

        #[doc(hidden)]
        const __AO_PLUGIN_REMOTE_FLAGS: &[(&str, bool)] = &[
            $(($name, $crate::__is_remote!($($capability)?)),)+
        ];

        /// Which of these plugins work on another host; read by the host from the file.
        #[unsafe(no_mangle)]
        pub static AO_PLUGIN_REMOTE: $crate::manifest::RemoteNames<
            { $crate::manifest::remote_names_len(__AO_PLUGIN_REMOTE_FLAGS) },
        > = $crate::manifest::RemoteNames::new(__AO_PLUGIN_REMOTE_FLAGS);

        #[doc(hidden)]
        fn __ao_plugin_root_module() -> $crate::PluginLibraryRef {
            use $crate::abi_stable::prefix_type::PrefixTypeTrait as _;
            $crate::PluginLibrary {
                api_version: $crate::abi_stable::std_types::RStr::from_str($crate::API_VERSION),
                plugins: $crate::abi_stable::std_types::RSlice::from_slice(::std::vec::Vec::leak(
                    [$($crate::__plugin_declaration!($kind $name $plugin),)+]
                        .into_iter()
                        .flatten()
                        .collect::<::std::vec::Vec<$crate::PluginDeclaration>>(),
                )),
                remote: $crate::abi_stable::std_types::RSlice::from_slice(::std::vec::Vec::leak(
                    [$($crate::__remote_declaration!($kind $name $plugin $(, $capability)?),)+]
                        .into_iter()
                        .flatten()
                        .collect::<::std::vec::Vec<$crate::RemoteDeclaration>>(),
                )),
                added_kinds: $crate::abi_stable::std_types::RSlice::from_slice(::std::vec::Vec::leak(
                    [$($crate::__added_kind_declaration!($kind $name $plugin $(, $capability)?),)+]
                        .into_iter()
                        .flatten()
                        .collect::<::std::vec::Vec<$crate::AddedKindDeclarationRef>>(),
                )),
            }
            .leak_into_prefix()
        }

        /// The abi_stable library header (what `#[export_root_module]` would emit).
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub static _1as_0lib_1header_0root_bmodule_bloader: $crate::abi_stable::library::LibHeader = {
            extern "C" fn erased_root_module() -> $crate::abi_stable::library::RootModuleResult {
                $crate::abi_stable::library::__call_root_module_loader(__ao_plugin_root_module)
            }
            // SAFETY: `erased_root_module` returns exactly `PluginLibraryRef`, the module type
            // named here, so abi_stable checks the layout of what is actually returned.
            unsafe {
                $crate::abi_stable::library::LibHeader::from_constructor::<$crate::PluginLibraryRef>(
                    erased_root_module,
                    $crate::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

/// The [`PluginDeclaration`](crate::PluginDeclaration) of an entry of a first-release kind;
/// `None` for one of a kind added since (see [`__added_kind_declaration!`]).
#[doc(hidden)]
#[macro_export]
macro_rules! __plugin_declaration {
    (scm $name:literal $plugin:ty) => {
        ::std::option::Option::None
    };
    (sandbox $name:literal $plugin:ty) => {
        ::std::option::Option::None
    };
    ($kind:ident $name:literal $plugin:ty) => {
        ::std::option::Option::Some($crate::PluginDeclaration {
            name: $crate::abi_stable::std_types::RStr::from_str($name),
            version: $crate::abi_stable::std_types::RStr::from_str(env!("CARGO_PKG_VERSION")),
            constructor: $crate::__plugin_constructor!($kind $plugin),
        })
    };
}

/// The [`AddedKindDeclarationRef`](crate::AddedKindDeclarationRef) of an entry of a kind added
/// after the first release; `None` for the others.
#[doc(hidden)]
#[macro_export]
macro_rules! __added_kind_declaration {
    (scm $name:literal $plugin:ty) => {
        ::std::option::Option::Some(
            $crate::abi_stable::prefix_type::PrefixTypeTrait::leak_into_prefix(
                $crate::AddedKindDeclaration::scm(
                    $name,
                    env!("CARGO_PKG_VERSION"),
                    $crate::ffi::construct_scm::<$plugin>,
                ),
            ),
        )
    };
    (sandbox $name:literal $plugin:ty) => {
        ::std::option::Option::Some(
            $crate::abi_stable::prefix_type::PrefixTypeTrait::leak_into_prefix(
                $crate::AddedKindDeclaration::sandbox(
                    $name,
                    env!("CARGO_PKG_VERSION"),
                    $crate::ffi::construct_sandbox::<$plugin>,
                    ::std::option::Option::None,
                ),
            ),
        )
    };
    (sandbox $name:literal $plugin:ty, remote) => {
        ::std::option::Option::Some(
            $crate::abi_stable::prefix_type::PrefixTypeTrait::leak_into_prefix(
                $crate::AddedKindDeclaration::sandbox(
                    $name,
                    env!("CARGO_PKG_VERSION"),
                    $crate::ffi::construct_sandbox::<$plugin>,
                    ::std::option::Option::Some($crate::ffi::construct_remote_sandbox::<$plugin>),
                ),
            ),
        )
    };
    ($kind:ident $name:literal $plugin:ty $(, $capability:ident)?) => {
        ::std::option::Option::None
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __plugin_constructor {
    (runtime $plugin:ty) => {
        $crate::PluginConstructor::Runtime($crate::ffi::construct_runtime::<$plugin>)
    };
    (agent $plugin:ty) => {
        $crate::PluginConstructor::Agent($crate::ffi::construct_agent::<$plugin>)
    };
    (workspace $plugin:ty) => {
        $crate::PluginConstructor::Workspace($crate::ffi::construct_workspace::<$plugin>)
    };
    (remote runtime $plugin:ty) => {
        $crate::RemoteConstructor::Runtime($crate::ffi::construct_remote_runtime::<$plugin>)
    };
    (remote agent $plugin:ty) => {
        $crate::RemoteConstructor::Agent($crate::ffi::construct_remote_agent::<$plugin>)
    };
    (remote workspace $plugin:ty) => {
        $crate::RemoteConstructor::Workspace($crate::ffi::construct_remote_workspace::<$plugin>)
    };
    (remote $other:ident $plugin:ty) => {
        $crate::__plugin_constructor!($other $plugin)
    };
    ($other:ident $plugin:ty) => {
        compile_error!(concat!(
            "unknown plugin kind `",
            stringify!($other),
            "`: expected runtime, agent, workspace, scm or sandbox"
        ))
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __remote_declaration {
    (scm $name:literal $plugin:ty, remote) => {
        compile_error!(concat!(
            "scm plugin \"",
            $name,
            "\" cannot be `[remote]`: an scm plugin talks to its forge from the host that runs ao-host"
        ))
    };
    // A sandbox plugin's remote constructor is in its `AddedKindDeclaration`: the exhaustive
    // `RemoteConstructor` cannot name the kind.
    (sandbox $name:literal $plugin:ty, remote) => {
        ::std::option::Option::None
    };
    ($kind:ident $name:literal $plugin:ty) => {
        ::std::option::Option::None
    };
    ($kind:ident $name:literal $plugin:ty, remote) => {
        ::std::option::Option::Some($crate::RemoteDeclaration {
            name: $crate::abi_stable::std_types::RStr::from_str($name),
            constructor: $crate::__plugin_constructor!(remote $kind $plugin),
        })
    };
    ($kind:ident $name:literal $plugin:ty, $other:ident) => {
        ::std::option::Option::None
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __is_remote {
    () => {
        false
    };
    (remote) => {
        true
    };
    ($other:ident) => {
        compile_error!(concat!(
            "unknown capability `[",
            stringify!($other),
            "]`: the one there is, is `[remote]`"
        ))
    };
}
