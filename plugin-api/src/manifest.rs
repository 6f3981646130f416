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

/// The companion symbol naming the library's plugins that work on another host (marked
/// `[remote]`): their names, each followed by a NUL, then one more NUL (an empty name ends the
/// list), in a plain byte array (no pointers), so the host reads it from the file like the
/// manifest. Kept apart from [`PluginManifest`], whose
/// layout is frozen; a library without it (built before 0.1.6) has no such plugin. (Added in
/// 0.1.6.)
pub const REMOTE_SYMBOL: &str = "AO_PLUGIN_REMOTE";

/// The bytes of [`REMOTE_SYMBOL`], `N` of them (see [`remote_names_len`]).
#[repr(transparent)]
pub struct RemoteNames<const N: usize>(pub [u8; N]);

/// How many bytes [`RemoteNames`] needs for the names of `plugins` whose flag is set, and the
/// empty name that ends them.
pub const fn remote_names_len(plugins: &[(&str, bool)]) -> usize {
    let mut len = 1;
    let mut i = 0;
    while i < plugins.len() {
        if plugins[i].1 {
            len += plugins[i].0.len() + 1;
        }
        i += 1;
    }
    len
}

/// The names in the bytes of a [`REMOTE_SYMBOL`], up to the empty one (or the end).
pub fn parse_remote_names(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|b| *b == 0)
        .take_while(|name| !name.is_empty())
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .collect()
}

impl<const N: usize> RemoteNames<N> {
    /// The names of `plugins` whose flag is set, each NUL-terminated, then a NUL.
    pub const fn new(plugins: &[(&str, bool)]) -> Self {
        let mut bytes = [0u8; N];
        let mut at = 0;
        let mut i = 0;
        while i < plugins.len() {
            if plugins[i].1 {
                let name = plugins[i].0.as_bytes();
                let mut j = 0;
                while j < name.len() {
                    bytes[at] = name[j];
                    at += 1;
                    j += 1;
                }
                at += 1;
            }
            i += 1;
        }
        Self(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_names_list_the_flagged_plugins_nul_terminated() {
        const PLUGINS: &[(&str, bool)] = &[("tmux", true), ("mine", false), ("git-worktree", true)];
        const NAMES: RemoteNames<{ remote_names_len(PLUGINS) }> = RemoteNames::new(PLUGINS);
        assert_eq!(&NAMES.0, b"tmux\0git-worktree\0\0");
        assert_eq!(parse_remote_names(&NAMES.0), ["tmux", "git-worktree"]);
        const NONE: &[(&str, bool)] = &[("mine", false)];
        assert_eq!(RemoteNames::<{ remote_names_len(NONE) }>::new(NONE).0, [0]);
        assert!(parse_remote_names(&[0]).is_empty());
    }
}
