//! A library's manifest, read from the file with nothing of it run.
//!
//! The pointer-free format-2 manifest (`AO_PLUGIN_ABI`: magic, format, length, JSON) is read
//! wherever a library has it, ELF or Mach-O. Older libraries have only the format-1 manifest
//! (`AO_PLUGIN_MANIFEST`), a frozen `repr(C)` struct of pointers to static strings
//! (`ao_plugin_api::manifest`). In an ELF file those pointers are relocation entries, not
//! values, so they are read as the loader would patch them ([`super::elf::LoadedView`]); every
//! address is checked to lie in the file's loaded data before a byte of it is read. In a Mach-O
//! file they are dyld fixups, which are not decoded: such a library is refused before loading.

use ao_plugin_api::{
    manifest::{
        parse_remote_names, MANIFEST_FORMAT, MANIFEST_MAGIC, MANIFEST_SYMBOL, REMOTE_SYMBOL,
    },
    PluginKind,
};

use super::{
    elf::{Elf, LoadedView},
    file_format::LibraryFile,
    library::{ManifestInfo, ManifestPlugin},
};

/// The exported symbol holding the pointer-free format-2 manifest.
pub(super) const ABI_SYMBOL: &str = "AO_PLUGIN_ABI";
/// The format-2 manifest's magic bytes and format number.
const ABI_MAGIC: &[u8; 8] = b"AOPLUGIN";
const ABI_FORMAT: u32 = 2;
/// The longest format-2 payload read.
const MAX_ABI_PAYLOAD: usize = 64 * 1024;

/// A library's manifest can list at most this many plugins; more means a corrupt manifest.
const MAX_PLUGINS_PER_LIBRARY: u64 = 256;
/// The longest name, kind or version string a manifest may hold.
const MAX_STRING: usize = 256;

/// Why a manifest could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ManifestError {
    /// The library exports no manifest: not an ao plugin.
    Missing,
    /// Only the format-1 manifest, in a file whose pointers only dyld can resolve (Mach-O).
    PointersOnly,
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
            return Err(format!(
                "plugin `{}` has an unknown kind `{}` (this host knows runtime, agent and workspace)",
                plugin.name, plugin.kind_name
            ));
        }
    }
    Ok(())
}

/// Reads the manifest of the library `file`: format 2 where it has one, else format 1 (ELF only).
pub(super) fn read_manifest(file: &LibraryFile<'_>) -> Result<ManifestInfo, ManifestError> {
    let corrupt = ManifestError::Corrupt;
    if let Some(bytes) = file.exported_data(ABI_SYMBOL).map_err(corrupt)? {
        return parse_abi_manifest(bytes).map_err(corrupt);
    }
    match file {
        LibraryFile::Elf(elf) => read_pointer_manifest(elf),
        LibraryFile::MachO(_) => match file.exported_data(MANIFEST_SYMBOL).map_err(corrupt)? {
            Some(_) => Err(ManifestError::PointersOnly),
            None => Err(ManifestError::Missing),
        },
    }
}

/// The format-2 manifest in `bytes` (which may run on past its end, to the end of a Mach-O
/// section): `AOPLUGIN`, format 2 and the payload's length (both `u32` little-endian), then
/// the JSON payload.
fn parse_abi_manifest(bytes: &[u8]) -> Result<ManifestInfo, String> {
    let word = |at: usize| -> Result<u32, String> {
        let four = bytes.get(at..at + 4).ok_or("format-2 manifest cut short")?;
        Ok(u32::from_le_bytes(four.try_into().expect("four bytes")))
    };
    if bytes.get(..8) != Some(&ABI_MAGIC[..]) {
        return Err("wrong magic bytes".into());
    }
    let format = word(8)?;
    if format != ABI_FORMAT {
        return Err(format!(
            "manifest format {format} (this host reads format {ABI_FORMAT})"
        ));
    }
    let length = word(12)? as usize;
    let payload = bytes
        .get(16..)
        .and_then(|rest| rest.get(..length))
        .filter(|_| length <= MAX_ABI_PAYLOAD)
        .ok_or_else(|| format!("payload of {length} bytes runs past the manifest"))?;
    #[derive(serde::Deserialize)]
    struct Payload {
        api: String,
        plugins: Vec<PayloadPlugin>,
    }
    #[derive(serde::Deserialize)]
    struct PayloadPlugin {
        kind: String,
        name: String,
        version: String,
        #[serde(default)]
        remote: bool,
    }
    let payload: Payload =
        serde_json::from_slice(payload).map_err(|e| format!("format-2 payload: {e}"))?;
    if payload.plugins.len() as u64 > MAX_PLUGINS_PER_LIBRARY {
        return Err("implausible plugin list".into());
    }
    Ok(ManifestInfo {
        api_version: payload.api,
        remote: payload
            .plugins
            .iter()
            .filter(|p| p.remote)
            .map(|p| p.name.clone())
            .collect(),
        plugins: payload
            .plugins
            .into_iter()
            .map(|p| ManifestPlugin {
                kind: PluginKind::parse(&p.kind),
                kind_name: p.kind,
                name: p.name,
                version: p.version,
            })
            .collect(),
    })
}

/// Reads the format-1 manifest of the ELF library `elf`, its pointers relocated.
fn read_pointer_manifest(elf: &Elf<'_>) -> Result<ManifestInfo, ManifestError> {
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
                kind: PluginKind::parse(&kind_name),
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
        .map(|names| parse_remote_names(&names[..names.len().min(64 * 1024)]))
        .unwrap_or_default();
    Ok(ManifestInfo {
        api_version,
        plugins,
        remote,
    })
}
