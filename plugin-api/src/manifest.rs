//! What a plugin library says about itself, readable from its file without running it.
//!
//! Two manifests, both read by the host *before* abi_stable's layout check, so a library whose
//! layout no longer matches can still be named, and a shared library without them is simply
//! "not an ao plugin":
//!
//! - format 2, [`ABI_SYMBOL`] ([`AbiManifest`]): plain bytes, no pointers, so it is read from the
//!   file on every platform with no relocation, rebase or fixup to decode: the ABI level, the
//!   crate versions, the host features the library needs and its plugins.
//! - format 1, [`MANIFEST_SYMBOL`] ([`PluginManifest`]): a frozen `repr(C)` struct of pointers,
//!   kept for hosts before format 2 (and read from libraries built before it). Its layout is
//!   frozen: new information goes into format 2, never into these fields.

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
    /// `runtime`, `agent` or `workspace`.
    pub kind: ManifestStr,
    /// The plugin's name.
    pub name: ManifestStr,
    /// The plugin's own version.
    pub version: ManifestStr,
}

/// The exported manifest.
#[repr(C)]
pub struct PluginManifest {
    /// [`MANIFEST_MAGIC`].
    pub magic: [u8; 8],
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// The interface revision the library was compiled against ([`crate::INTERFACE_REVISION`];
    /// the crate version in libraries built before the format-2 manifest).
    pub api_version: ManifestStr,
    /// How many entries `plugins` points at.
    pub plugin_count: usize,
    /// The library's plugins.
    pub plugins: *const ManifestEntry,
}

// SAFETY: a manifest only points at immutable `'static` data.
unsafe impl Sync for PluginManifest {}

impl PluginManifest {
    /// The manifest of a library whose plugins are `plugins`.
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

/// The format-2 manifest's symbol.
pub const ABI_SYMBOL: &str = "AO_PLUGIN_ABI";
/// The format number of [`AbiManifest`].
pub const ABI_MANIFEST_FORMAT: u32 = 2;
/// Bytes before the payload: [`MANIFEST_MAGIC`], the format and the payload's length (`u32` LE).
pub const ABI_HEADER_LEN: usize = 16;
/// The longest host feature name.
pub const MAX_FEATURE_NAME: usize = 64;

/// One plugin as the format-2 manifest lists it.
pub struct AbiPlugin<'a> {
    /// `runtime`, `agent` or `workspace`.
    pub kind: &'a str,
    /// The plugin's name.
    pub name: &'a str,
    /// The plugin's own version (its crate's).
    pub version: &'a str,
    /// Marked `[remote]`: it works on another host.
    pub remote: bool,
}

/// What the format-2 manifest states about a library.
pub struct AbiDescription<'a> {
    /// [`crate::ABI_LEVEL`] of the crate that built it.
    pub abi_level: u32,
    /// The `ao-plugin-api` version that built it.
    pub api: &'a str,
    /// Its [`crate::INTERFACE_REVISION`].
    pub interface: &'a str,
    /// The author kit's version, when a kit wrote the manifest.
    pub kit: Option<&'a str>,
    /// Host features it cannot work without (see [`crate::HOST_FEATURES`]).
    pub needs: &'a [&'a str],
    /// Its plugins.
    pub plugins: &'a [AbiPlugin<'a>],
}

/// The bytes of [`ABI_SYMBOL`]: `b"AOPLUGIN"`, `u32` LE format 2, `u32` LE payload length, then
/// the payload, UTF-8 JSON without NUL, e.g.
/// `{"abi_level":1,"api":"0.1.7","interface":"0.1.7","kit":null,"needs":[],"plugins":[{"kind":
/// "runtime","name":"tmux","version":"0.1.0","remote":true}]}`. Readers ignore fields they do not
/// know, so later releases may add some. Built in const context by `export_plugins!`.
#[repr(transparent)]
pub struct AbiManifest<const N: usize>(pub [u8; N]);

impl<const N: usize> AbiManifest<N> {
    /// Encodes `description`; `N` must be [`abi_manifest_len`] of it. Fails the build (it runs in
    /// a `static`) on a host feature name that is not short kebab-case.
    pub const fn new(description: &AbiDescription<'_>) -> Self {
        let mut bytes = [0u8; N];
        let mut out = ConstWriter {
            out: &mut bytes,
            at: 0,
        };
        encode_abi_manifest(&mut out, description);
        assert!(out.at == N, "AbiManifest: N is not abi_manifest_len");
        Self(bytes)
    }
}

/// How many bytes the [`AbiManifest`] of `description` takes, header included.
pub const fn abi_manifest_len(description: &AbiDescription<'_>) -> usize {
    let mut out = ConstWriter {
        out: &mut [],
        at: 0,
    };
    encode_abi_manifest(&mut out, description);
    out.at
}

/// Whether `name` is a host feature name: lowercase ASCII letters and digits in words joined by
/// single `-`, starting with a letter, at most [`MAX_FEATURE_NAME`] bytes.
pub const fn is_feature_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_FEATURE_NAME || !bytes[0].is_ascii_lowercase() {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let plain = b.is_ascii_lowercase() || b.is_ascii_digit();
        let joins = b == b'-' && i + 1 < bytes.len() && bytes[i - 1] != b'-';
        if !plain && !joins {
            return false;
        }
        i += 1;
    }
    true
}

/// Writes into `out` while there is room and counts every byte, so one encoder both measures
/// (into an empty slice) and writes.
struct ConstWriter<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl ConstWriter<'_> {
    const fn byte(&mut self, byte: u8) {
        if self.at < self.out.len() {
            self.out[self.at] = byte;
        }
        self.at += 1;
    }

    const fn raw(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            self.byte(bytes[i]);
            i += 1;
        }
    }

    /// `text` as a JSON string.
    const fn string(&mut self, text: &str) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let bytes = text.as_bytes();
        self.byte(b'"');
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'"' || b == b'\\' {
                self.byte(b'\\');
                self.byte(b);
            } else if b < 0x20 {
                self.raw(b"\\u00");
                self.byte(HEX[(b >> 4) as usize]);
                self.byte(HEX[(b & 0xf) as usize]);
            } else {
                self.byte(b);
            }
            i += 1;
        }
        self.byte(b'"');
    }

    const fn number(&mut self, mut value: u32) {
        let mut digits = [0u8; 10];
        let mut count = 0;
        loop {
            digits[count] = b'0' + (value % 10) as u8;
            count += 1;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        while count > 0 {
            count -= 1;
            self.byte(digits[count]);
        }
    }

    /// `"key":`, after a comma unless it is the object's first.
    const fn key(&mut self, key: &str, first: bool) {
        if !first {
            self.byte(b',');
        }
        self.string(key);
        self.byte(b':');
    }
}

const fn encode_abi_manifest(out: &mut ConstWriter<'_>, description: &AbiDescription<'_>) {
    out.raw(&MANIFEST_MAGIC);
    out.raw(&ABI_MANIFEST_FORMAT.to_le_bytes());
    let payload_len = out.out.len().saturating_sub(ABI_HEADER_LEN) as u32;
    out.raw(&payload_len.to_le_bytes());
    out.byte(b'{');
    out.key("abi_level", true);
    out.number(description.abi_level);
    out.key("api", false);
    out.string(description.api);
    out.key("interface", false);
    out.string(description.interface);
    out.key("kit", false);
    match description.kit {
        Some(kit) => out.string(kit),
        None => out.raw(b"null"),
    }
    out.key("needs", false);
    out.byte(b'[');
    let mut i = 0;
    while i < description.needs.len() {
        assert!(
            is_feature_name(description.needs[i]),
            "export_plugins!: a needed host feature is named in short kebab-case (`remote`, `runtime-start`)"
        );
        if i > 0 {
            out.byte(b',');
        }
        out.string(description.needs[i]);
        i += 1;
    }
    out.raw(b"],");
    out.string("plugins");
    out.raw(b":[");
    let mut i = 0;
    while i < description.plugins.len() {
        let plugin = &description.plugins[i];
        if i > 0 {
            out.byte(b',');
        }
        out.byte(b'{');
        out.key("kind", true);
        out.string(plugin.kind);
        out.key("name", false);
        out.string(plugin.name);
        out.key("version", false);
        out.string(plugin.version);
        out.key("remote", false);
        out.raw(if plugin.remote { b"true" } else { b"false" });
        out.byte(b'}');
        i += 1;
    }
    out.raw(b"]}");
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

    const DESCRIPTION: AbiDescription<'static> = AbiDescription {
        abi_level: 12,
        api: "0.1.9",
        interface: "0.1.7",
        kit: None,
        needs: &["remote", "x2-y"],
        plugins: &[
            AbiPlugin {
                kind: "runtime",
                name: "tmux",
                version: "1.0.0",
                remote: true,
            },
            AbiPlugin {
                kind: "agent",
                name: "q\"\\\n",
                version: "0.2.0",
                remote: false,
            },
        ],
    };

    #[test]
    fn the_abi_manifest_is_a_header_and_json_built_in_const_context() {
        const LEN: usize = abi_manifest_len(&DESCRIPTION);
        const MANIFEST: AbiManifest<LEN> = AbiManifest::new(&DESCRIPTION);
        let bytes = &MANIFEST.0;
        assert_eq!(&bytes[..8], b"AOPLUGIN");
        assert_eq!(bytes[8..12], 2u32.to_le_bytes());
        let payload_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
        assert_eq!(payload_len, LEN - ABI_HEADER_LEN);
        let payload = std::str::from_utf8(&bytes[ABI_HEADER_LEN..]).unwrap();
        assert_eq!(
            payload,
            r#"{"abi_level":12,"api":"0.1.9","interface":"0.1.7","kit":null,"needs":["remote","x2-y"],"plugins":[{"kind":"runtime","name":"tmux","version":"1.0.0","remote":true},{"kind":"agent","name":"q\"\\\u000a","version":"0.2.0","remote":false}]}"#
        );
    }

    #[test]
    fn feature_names_are_short_kebab_case() {
        for good in ["remote", "runtime-start", "a1-b2-c3"] {
            assert!(is_feature_name(good), "{good}");
        }
        let long = "a".repeat(MAX_FEATURE_NAME + 1);
        for bad in [
            "",
            "Remote",
            "-x",
            "x-",
            "a--b",
            "1x",
            "a_b",
            "a b",
            long.as_str(),
        ] {
            assert!(!is_feature_name(bad), "{bad}");
        }
    }
}
