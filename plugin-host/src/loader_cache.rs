//! The dynamic loader's cache (`/etc/ld.so.cache`, written by `ldconfig`): where glibc looks a
//! library name up after a library's own RUNPATH and before its default folders.
//!
//! Only the format glibc has written since 2.32 (`glibc-ld.so.cache1.1`, alone) is read; an
//! older or unknown file is taken as no cache, so a name it would have resolved is looked for in
//! the default folders instead (which are checked the same way).

use std::path::{Path, PathBuf};

pub(super) const LOADER_CACHE: &str = "/etc/ld.so.cache";
const MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
/// Magic, entry count, string table size, flags and padding, extension offset, three unused.
const HEADER: usize = 48;
/// flags (i32), key and value string offsets, OS version (u32 each), hwcap (u64).
const ENTRY: usize = 24;
/// `FLAG_ELF_LIBC6`: a glibc library.
const FLAG_ELF_LIBC6: i32 = 0x0003;
/// The architecture bits of an entry's flags (`FLAG_REQUIRED_MASK`).
const FLAG_ARCH_MASK: i32 = 0xff00;
/// This host's architecture bits, as ldconfig records them.
const HOST_ARCH_FLAGS: Option<i32> = if cfg!(target_arch = "x86_64") {
    Some(0x0300) // FLAG_X8664_LIB64
} else if cfg!(target_arch = "aarch64") {
    Some(0x0a00) // FLAG_AARCH64_LIB64
} else if cfg!(target_arch = "riscv64") {
    Some(0x1000) // FLAG_RISCV_FLOAT_ABI_DOUBLE (lp64d)
} else if cfg!(target_arch = "powerpc64") {
    Some(0x0500) // FLAG_POWERPC_LIB64
} else if cfg!(target_arch = "s390x") {
    Some(0x0400) // FLAG_S390_LIB64
} else {
    None
};

/// The cache's entries for this machine: (library name, path), in the cache's order.
#[derive(Debug, Default)]
pub(super) struct LoaderCache {
    entries: Vec<(String, PathBuf)>,
}

impl LoaderCache {
    /// Parses the cache's bytes; anything unreadable gives an empty cache.
    pub(super) fn parse(bytes: &[u8]) -> Self {
        Self {
            entries: entries(bytes).unwrap_or_default(),
        }
    }

    /// Where the cache sends `name`, if it knows it.
    pub(super) fn lookup(&self, name: &str) -> Option<&Path> {
        self.entries
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, path)| path.as_path())
    }
}

fn entries(bytes: &[u8]) -> Option<Vec<(String, PathBuf)>> {
    if !bytes.starts_with(MAGIC) {
        return None;
    }
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    let count = u32_at(MAGIC.len())? as usize;
    let string = |at: u32| -> Option<String> {
        let rest = bytes.get(at as usize..)?;
        let end = rest.iter().position(|b| *b == 0)?;
        String::from_utf8(rest[..end].to_vec()).ok()
    };
    let mut found = Vec::new();
    for index in 0..count {
        let at = HEADER.checked_add(index.checked_mul(ENTRY)?)?;
        let flags = u32_at(at)? as i32;
        let ours = flags & 0xff == FLAG_ELF_LIBC6
            && HOST_ARCH_FLAGS.is_none_or(|arch| flags & FLAG_ARCH_MASK == arch);
        if !ours {
            continue;
        }
        let (Some(key), Some(value)) = (string(u32_at(at + 4)?), string(u32_at(at + 8)?)) else {
            continue;
        };
        found.push((key, PathBuf::from(value)));
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machines_cache_knows_its_libc() {
        let Ok(bytes) = std::fs::read(LOADER_CACHE) else {
            return; // no cache on this machine
        };
        if !bytes.starts_with(MAGIC) {
            return;
        }
        let cache = LoaderCache::parse(&bytes);
        let libc = cache.lookup("libc.so.6").expect("libc.so.6 in the cache");
        assert!(libc.is_absolute() && libc.exists(), "{}", libc.display());
        assert!(cache.lookup("libnothing-such.so.9").is_none());
        assert!(LoaderCache::parse(b"ld.so-1.7.0junk")
            .lookup("libc.so.6")
            .is_none());
    }
}
