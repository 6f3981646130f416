//! A plain-C description of a plugin library, readable without abi_stable.
//!
//! The host reads it with `dlsym` *before* abi_stable's layout check, so a library whose layout
//! no longer matches can still be named with the API version it was built for, and a shared
//! library without it is simply "not an ao plugin". Its layout is frozen: new information goes
//! behind a new `format` number, never into these fields.

use std::ffi::{c_char, CStr};

/// The exported symbol's name.
pub const MANIFEST_SYMBOL: &str = "AO_PLUGIN_MANIFEST";
/// First bytes of every manifest.
pub const MANIFEST_MAGIC: [u8; 8] = *b"AOPLUGIN";
/// The layout of [`PluginManifest`] this crate writes.
pub const MANIFEST_FORMAT: u32 = 1;

/// A pointer to a static NUL-terminated UTF-8 string.
#[repr(transparent)]
#[derive(Clone, Copy)]
pub struct ManifestStr(*const c_char);

impl ManifestStr {
    /// Panics at compile time (the macro evaluates it in a `static`) unless `text` ends in NUL.
    pub const fn from_nul_terminated(text: &'static str) -> Self {
        let bytes = text.as_bytes();
        assert!(!bytes.is_empty() && bytes[bytes.len() - 1] == 0);
        Self(bytes.as_ptr().cast())
    }

    /// Reads the string.
    ///
    /// # Safety
    /// The pointer must come from a loaded library's manifest that is still mapped.
    pub unsafe fn read(&self) -> Option<String> {
        if self.0.is_null() {
            return None;
        }
        // SAFETY: the caller guarantees a live, NUL-terminated string.
        let text = unsafe { CStr::from_ptr(self.0) };
        Some(text.to_string_lossy().into_owned())
    }
}

/// One plugin of the library: kind (`runtime`/`agent`/`workspace`), name and version.
#[repr(C)]
pub struct ManifestEntry {
    pub kind: ManifestStr,
    pub name: ManifestStr,
    pub version: ManifestStr,
}

/// The exported manifest.
#[repr(C)]
pub struct PluginManifest {
    pub magic: [u8; 8],
    pub format: u32,
    /// The `ao-plugin-api` version the library was compiled against.
    pub api_version: ManifestStr,
    pub plugin_count: usize,
    pub plugins: *const ManifestEntry,
}

// SAFETY: a manifest only points at immutable `'static` data.
unsafe impl Sync for PluginManifest {}

impl PluginManifest {
    pub const fn new(api_version: ManifestStr, plugins: &'static [ManifestEntry]) -> Self {
        Self {
            magic: MANIFEST_MAGIC,
            format: MANIFEST_FORMAT,
            api_version,
            plugin_count: plugins.len(),
            plugins: plugins.as_ptr(),
        }
    }
}
