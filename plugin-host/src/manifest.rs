//! A library's manifest (`AO_PLUGIN_MANIFEST`), read from the file with nothing of it run.
//!
//! The manifest is a frozen `repr(C)` struct of pointers to static strings
//! (`ao_plugin_api::manifest`). In the file those pointers are relocation entries, not values,
//! so they are read as the loader would patch them ([`super::elf::LoadedView`]); every address
//! is checked to lie in the file's loaded data before a byte of it is read.

use ao_plugin_api::{
    manifest::{
        parse_remote_names, MANIFEST_FORMAT, MANIFEST_MAGIC, MANIFEST_SYMBOL, REMOTE_SYMBOL,
    },
    PluginKind,
};

use super::{
    elf::{Elf, LoadedView},
    library::{ManifestInfo, ManifestPlugin},
};

/// A library's manifest can list at most this many plugins; more means a corrupt manifest.
pub(super) const MAX_PLUGINS_PER_LIBRARY: u64 = 256;
/// The longest name, kind or version string a manifest may hold.
const MAX_STRING: usize = 256;

/// Why a manifest could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ManifestError {
    /// The library exports no manifest: not an ao plugin.
    Missing,
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

/// Reads the manifest of the ELF library `bytes`.
pub(super) fn read_elf_manifest(bytes: &[u8]) -> Result<ManifestInfo, ManifestError> {
    let corrupt = ManifestError::Corrupt;
    let elf = Elf::parse(bytes).map_err(corrupt)?;
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
    let remote = match elf.symbol(REMOTE_SYMBOL).map_err(corrupt)? {
        None => Vec::new(),
        Some((address, size)) => {
            let size = size.min(64 * 1024);
            let view = elf.loaded_view(address..address + size).map_err(corrupt)?;
            parse_remote_names(view.bytes_at(address, size).map_err(corrupt)?)
        }
    };
    Ok(ManifestInfo {
        api_version,
        plugins,
        remote,
    })
}
