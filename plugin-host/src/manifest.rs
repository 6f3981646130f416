//! A library's manifests, read from the file with nothing of it run.
//!
//! The format-2 manifest (`AO_PLUGIN_ABI`, `ao_plugin_api::manifest::AbiManifest`) is plain
//! bytes: a header and JSON naming the ABI level, the versions that built the library, the host
//! features it needs and its plugins. It is read wherever a library has it, ELF or Mach-O.
//! Libraries built before it have only the format-1 manifest (`AO_PLUGIN_MANIFEST`), a frozen
//! `repr(C)` struct of pointers to static strings. In an ELF file those pointers are relocation
//! entries, not values, so they are read as the loader would patch them
//! ([`super::elf::LoadedView`]); every address is checked to lie in the file's loaded data before
//! a byte of it is read. In a Mach-O file they are dyld fixups, which are not decoded: such a
//! library is refused before loading. A library with both is described by format 2, and the two
//! must list the same plugins.

use ao_plugin_api::{
    manifest::{
        parse_remote_names, ABI_HEADER_LEN, ABI_MANIFEST_FORMAT, ABI_SYMBOL, MANIFEST_FORMAT,
        MANIFEST_MAGIC, MANIFEST_SYMBOL, REMOTE_SYMBOL,
    },
    InterfaceKind,
};
use serde::Deserialize;

use super::{
    elf::{Elf, LoadedView},
    file_format::LibraryFile,
    library::{ManifestInfo, ManifestPlugin},
};

/// The most bytes read of an exported manifest symbol (format 2, or the remote names).
pub(super) const MAX_SYMBOL_BYTES: u64 = 64 * 1024;

/// A library's manifest can list at most this many plugins; more means a corrupt manifest.
pub(super) const MAX_PLUGINS_PER_LIBRARY: u64 = 256;
/// The longest name, kind or version string a manifest may hold.
const MAX_STRING: usize = 256;

/// Why a manifest could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ManifestError {
    /// The library exports no manifest: not an ao plugin.
    Missing,
    /// Only the format-1 manifest, in a file whose pointers only dyld can resolve (Mach-O).
    PointersOnly,
    /// A manifest that cannot be read as written.
    Corrupt(String),
}

/// The longest plugin name: it becomes part of settings keys, file names and tmux names.
const MAX_NAME: usize = 64;

/// Refuses a manifest whose plugins this host could not register safely: a kind it does not
/// know, or a name that is not a plain identifier (`../../etc/evil` would become a path in the
/// data dir). Judged from the manifest, so such a library is never loaded, in-process or not.
pub(super) fn check_manifest_plugins(manifest: &ManifestInfo) -> Result<(), String> {
    for plugin in &manifest.plugins {
        let plain = !plugin.name.is_empty()
            && plugin.name.len() <= MAX_NAME
            && plugin.name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && plugin
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !plain {
            return Err(format!(
                "plugin name {:?} is not a plain identifier (letters, digits, `-` and `_`, at most {MAX_NAME}, starting with a letter or digit)",
                plugin.name
            ));
        }
        if plugin.kind.is_none() {
            let known: Vec<&str> = InterfaceKind::ALL.iter().map(|k| k.as_str()).collect();
            return Err(format!(
                "plugin `{}` has an unknown kind `{}` (this host knows {}): upgrade ao-host to one that knows it",
                plugin.name,
                plugin.kind_name,
                known.join(", ")
            ));
        }
    }
    Ok(())
}

/// What the format-1 manifest and its companion `AO_PLUGIN_REMOTE` say.
pub(super) struct Format1Manifest {
    /// The crate version (before the format-2 manifest) or interface revision (since) it was
    /// built for.
    pub(super) api_version: String,
    pub(super) plugins: Vec<ManifestPlugin>,
    pub(super) remote: Vec<String>,
}

/// The format-2 manifest's payload. Fields this host does not know are ignored: later releases
/// may add some.
#[derive(Deserialize)]
struct AbiPayload {
    abi_level: u32,
    api: String,
    interface: String,
    kit: Option<String>,
    needs: Vec<String>,
    plugins: Vec<AbiPayloadPlugin>,
}

#[derive(Deserialize)]
struct AbiPayloadPlugin {
    kind: String,
    name: String,
    version: String,
    remote: bool,
}

/// Parses the bytes of an `AO_PLUGIN_ABI` symbol (the payload may be followed by padding).
pub(super) fn parse_abi_manifest(bytes: &[u8]) -> Result<ManifestInfo, String> {
    let header = bytes
        .get(..ABI_HEADER_LEN)
        .ok_or("format-2 manifest shorter than its header")?;
    if header[..8] != MANIFEST_MAGIC {
        return Err("format-2 manifest: wrong magic bytes".into());
    }
    let word = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().expect("4 bytes"));
    let format = word(8);
    if format != ABI_MANIFEST_FORMAT {
        return Err(format!(
            "manifest format {format} in `{ABI_SYMBOL}` (this host reads format {ABI_MANIFEST_FORMAT})"
        ));
    }
    let payload = bytes
        .get(ABI_HEADER_LEN..ABI_HEADER_LEN + word(12) as usize)
        .ok_or("format-2 manifest: payload runs past the symbol")?;
    let payload: AbiPayload =
        serde_json::from_slice(payload).map_err(|e| format!("format-2 manifest: {e}"))?;
    if payload.plugins.len() as u64 > MAX_PLUGINS_PER_LIBRARY {
        return Err("implausible plugin list".into());
    }
    let remote = payload
        .plugins
        .iter()
        .filter(|p| p.remote)
        .map(|p| p.name.clone())
        .collect();
    Ok(ManifestInfo {
        abi_level: Some(payload.abi_level),
        interface_revision: payload.interface,
        api_version: payload.api,
        kit_version: payload.kit,
        needs: payload.needs,
        plugins: payload
            .plugins
            .into_iter()
            .map(|p| ManifestPlugin {
                kind: InterfaceKind::parse(&p.kind),
                kind_name: p.kind,
                name: p.name,
                version: p.version,
            })
            .collect(),
        remote,
    })
}

/// The ABI level of a library built before the format-2 manifest: 1 for 0.1.1 and every later
/// 0.1.x. 0.1.0 is level 0: 0.1.1 changed its interface in place (the agent's fixed prefix
/// gained `input_pending`, `Workspace::destroy` gained `delete_branch`), so a 0.1.0 library is
/// checked against the 0.1.0 layouts (`ao_plugin_api::first_release`), not today's. Anything
/// else states no level this host knows.
fn format1_abi_level(api_version: &str) -> Option<u32> {
    let version = semver::Version::parse(api_version).ok()?;
    match (version.major, version.minor, version.patch) {
        (0, 1, 0) => Some(0),
        (0, 1, _) => Some(1),
        _ => None,
    }
}

/// One description of a library from what its file exports: the format-2 manifest when there
/// is one (checked against format 1, which must list the same plugins), else format 1.
pub(super) fn combine_manifests(
    abi: Option<ManifestInfo>,
    format1: Option<Format1Manifest>,
) -> Result<ManifestInfo, ManifestError> {
    match (abi, format1) {
        (None, None) => Err(ManifestError::Missing),
        (None, Some(format1)) => Ok(ManifestInfo {
            abi_level: format1_abi_level(&format1.api_version),
            interface_revision: format1.api_version.clone(),
            api_version: format1.api_version,
            kit_version: None,
            needs: Vec::new(),
            plugins: format1.plugins,
            remote: format1.remote,
        }),
        (Some(abi), format1) => {
            let listed = |plugins: &[ManifestPlugin]| -> Vec<(String, String)> {
                plugins
                    .iter()
                    .map(|p| (p.kind_name.clone(), p.name.clone()))
                    .collect()
            };
            match format1 {
                Some(format1) if listed(&format1.plugins) != listed(&abi.plugins) => {
                    Err(ManifestError::Corrupt(format!(
                        "`{MANIFEST_SYMBOL}` lists {:?} but `{ABI_SYMBOL}` lists {:?}",
                        listed(&format1.plugins),
                        listed(&abi.plugins)
                    )))
                }
                _ => Ok(abi),
            }
        }
    }
}

/// The bytes of the exported data symbol `name` (at most [`MAX_SYMBOL_BYTES`]), if the library
/// exports it.
fn exported_bytes<'a>(file: &LibraryFile<'a>, name: &str) -> Result<Option<&'a [u8]>, String> {
    Ok(file
        .exported_data(name)?
        .map(|bytes| &bytes[..bytes.len().min(MAX_SYMBOL_BYTES as usize)]))
}

/// Reads the manifests of the library `file`: format 2 where it has one (checked against
/// format 1), else format 1 (ELF only).
pub(super) fn read_manifest(file: &LibraryFile<'_>) -> Result<ManifestInfo, ManifestError> {
    let corrupt = ManifestError::Corrupt;
    let abi = exported_bytes(file, ABI_SYMBOL)
        .and_then(|bytes| bytes.map(parse_abi_manifest).transpose())
        .map_err(corrupt)?;
    let format1 = match file {
        LibraryFile::Elf(elf) => match read_elf_format1(elf) {
            Ok(format1) => Some(format1),
            Err(ManifestError::Missing) => None,
            Err(error) => return Err(error),
        },
        LibraryFile::MachO(_) => {
            if abi.is_none()
                && file
                    .exported_data(MANIFEST_SYMBOL)
                    .map_err(corrupt)?
                    .is_some()
            {
                return Err(ManifestError::PointersOnly);
            }
            None
        }
    };
    combine_manifests(abi, format1)
}

/// Reads the format-1 manifest and the remote names of the ELF library `elf`, its pointers
/// relocated.
fn read_elf_format1(elf: &Elf<'_>) -> Result<Format1Manifest, ManifestError> {
    let corrupt = ManifestError::Corrupt;
    let (address, _) = elf
        .symbol(MANIFEST_SYMBOL)
        .map_err(corrupt)?
        .ok_or(ManifestError::Missing)?;
    let w = elf.word_size();
    // `repr(C)`: magic [u8; 8], format u32, then three pointer-aligned fields.
    let api_at = 12_u64.div_ceil(w) * w;
    let view = elf
        .loaded_view(address..address + api_at + 3 * w)
        .map_err(corrupt)?;
    if view.bytes_at(address, 8).map_err(corrupt)? != MANIFEST_MAGIC {
        return Err(corrupt("wrong magic bytes".into()));
    }
    let format = view.u32_at(address + 8).map_err(corrupt)?;
    if format != MANIFEST_FORMAT {
        return Err(corrupt(format!(
            "manifest format {format} (this host reads format {MANIFEST_FORMAT})"
        )));
    }
    let string = |view: &LoadedView<'_, '_>, pointer_at: u64, what: &str| {
        let target = view.word_at(pointer_at)?;
        if target == 0 {
            return Err(format!("no {what}"));
        }
        view.c_string_at(target, MAX_STRING)
            .map_err(|e| format!("{what}: {e}"))
    };
    let api_version = string(&view, address + api_at, "API version").map_err(corrupt)?;
    let count = view.word_at(address + api_at + w).map_err(corrupt)?;
    let entries = view.word_at(address + api_at + 2 * w).map_err(corrupt)?;
    if count > MAX_PLUGINS_PER_LIBRARY || entries == 0 {
        return Err(corrupt("implausible plugin list".into()));
    }
    let view = elf
        .loaded_view(entries..entries + count * 3 * w)
        .map_err(corrupt)?;
    let plugins = (0..count)
        .map(|index| {
            let entry = entries + index * 3 * w;
            let kind_name = string(&view, entry, "plugin kind")?;
            Ok(ManifestPlugin {
                kind: InterfaceKind::parse(&kind_name),
                kind_name,
                name: string(&view, entry + w, "plugin name")?,
                version: string(&view, entry + 2 * w, "plugin version")?,
            })
        })
        .collect::<Result<_, String>>()
        .map_err(corrupt)?;
    let remote = elf
        .exported_data(REMOTE_SYMBOL)
        .map_err(corrupt)?
        .map(|names| parse_remote_names(&names[..names.len().min(MAX_SYMBOL_BYTES as usize)]))
        .unwrap_or_default();
    Ok(Format1Manifest {
        api_version,
        plugins,
        remote,
    })
}

#[cfg(test)]
mod tests {
    use ao_plugin_api::manifest::{abi_manifest_len, AbiDescription, AbiManifest, AbiPlugin};

    use super::*;

    const DESCRIPTION: AbiDescription<'static> = AbiDescription {
        abi_level: 1,
        api: "0.1.99",
        interface: "0.1.7",
        kit: Some("0.3.0"),
        needs: &["runtime-start"],
        plugins: &[
            AbiPlugin {
                kind: "runtime",
                name: "tmux",
                version: "1.2.3",
                remote: true,
            },
            AbiPlugin {
                kind: "agent",
                name: "mine",
                version: "0.1.0",
                remote: false,
            },
        ],
    };
    const LEN: usize = abi_manifest_len(&DESCRIPTION);
    const MANIFEST: AbiManifest<LEN> = AbiManifest::new(&DESCRIPTION);

    fn plugin(kind: InterfaceKind, name: &str, version: &str) -> ManifestPlugin {
        ManifestPlugin {
            kind: Some(kind),
            kind_name: kind.as_str().into(),
            name: name.into(),
            version: version.into(),
        }
    }

    #[test]
    fn the_format_2_manifest_reads_back_what_the_macro_wrote() {
        // Padding after the payload (a symbol rounded up) is ignored.
        let mut bytes = MANIFEST.0.to_vec();
        bytes.extend([0; 7]);
        let manifest = parse_abi_manifest(&bytes).unwrap();
        assert_eq!(
            manifest,
            ManifestInfo {
                abi_level: Some(1),
                interface_revision: "0.1.7".into(),
                api_version: "0.1.99".into(),
                kit_version: Some("0.3.0".into()),
                needs: vec!["runtime-start".into()],
                plugins: vec![
                    plugin(InterfaceKind::Runtime, "tmux", "1.2.3"),
                    plugin(InterfaceKind::Agent, "mine", "0.1.0"),
                ],
                remote: vec!["tmux".into()],
            }
        );
    }

    #[test]
    fn a_damaged_format_2_manifest_is_refused_saying_how() {
        let bytes = MANIFEST.0;
        let cases: [(&[u8], &str); 4] = [
            (&bytes[..10], "shorter than its header"),
            (&bytes[..LEN - 1], "payload runs past the symbol"),
            (&[b"AOPLUGIX", &bytes[8..]].concat(), "wrong magic bytes"),
            (
                &[&bytes[..8], &3u32.to_le_bytes()[..], &bytes[12..]].concat(),
                "format 3",
            ),
        ];
        for (bytes, want) in cases {
            let error = parse_abi_manifest(bytes).unwrap_err();
            assert!(error.contains(want), "{want}: {error}");
        }
    }

    #[test]
    fn a_library_without_format_2_is_level_1_from_0_1_1_and_level_0_at_0_1_0() {
        let format1 = |api_version: &str| Format1Manifest {
            api_version: api_version.into(),
            plugins: vec![plugin(InterfaceKind::Runtime, "old", "0.1.0")],
            remote: Vec::new(),
        };
        for (api_version, level) in [
            ("0.1.0", Some(0)),
            ("0.1.1", Some(1)),
            ("0.1.7", Some(1)),
            ("0.2.0", None),
            ("junk", None),
        ] {
            let manifest = combine_manifests(None, Some(format1(api_version))).unwrap();
            assert_eq!(manifest.abi_level, level, "{api_version}");
            assert_eq!(manifest.interface_revision, api_version);
            assert!(manifest.needs.is_empty());
        }
        assert_eq!(combine_manifests(None, None), Err(ManifestError::Missing));
        let abi = parse_abi_manifest(&MANIFEST.0).unwrap();
        let error = combine_manifests(Some(abi), Some(format1("0.1.7"))).unwrap_err();
        assert!(
            matches!(&error, ManifestError::Corrupt(detail) if detail.contains("`AO_PLUGIN_ABI` lists")),
            "{error:?}"
        );
    }
}
