//! Checking a candidate file's structure before the dynamic loader maps it.
//!
//! glibc's `dlopen` trusts the headers it maps: a truncated ELF library makes it touch pages past
//! the end of the file and the whole process dies of SIGBUS. The host must survive any file in a
//! plugin folder, so it checks that every range the loader will map lies inside the file first.

use std::path::Path;

const ELF_MAGIC: [u8; 4] = [0x7f, b'E', b'L', b'F'];
const MACH_O_MAGICS: [[u8; 4]; 4] = [
    [0xfe, 0xed, 0xfa, 0xce],
    [0xfe, 0xed, 0xfa, 0xcf],
    [0xce, 0xfa, 0xed, 0xfe],
    [0xcf, 0xfa, 0xed, 0xfe],
];
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;

/// Returns why `path` cannot be a loadable shared library, if it plainly cannot.
pub fn check_library_file(path: &Path) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    check_library_bytes(&bytes)
}

fn check_library_bytes(bytes: &[u8]) -> Result<(), String> {
    if bytes.is_empty() {
        return Err("empty file, not a shared library".into());
    }
    let head = bytes.get(..4).unwrap_or(bytes);
    if head == ELF_MAGIC {
        check_elf(bytes).map_err(|detail| format!("damaged ELF library ({detail})"))
    } else if MACH_O_MAGICS.iter().any(|m| head == m) || head.starts_with(b"MZ") {
        Ok(())
    } else {
        Err("not a shared library (no ELF, Mach-O or PE header)".into())
    }
}

/// Reads the ELF fields the loader relies on, in the file's own class and byte order.
struct ElfReader<'a> {
    bytes: &'a [u8],
    is_64: bool,
    little_endian: bool,
}

impl ElfReader<'_> {
    fn uint(&self, offset: u64, size: usize) -> Result<u64, String> {
        let start = usize::try_from(offset).map_err(|_| "offset overflow".to_string())?;
        let field = start
            .checked_add(size)
            .and_then(|end| self.bytes.get(start..end))
            .ok_or_else(|| format!("header field at byte {offset} is past the end of the file"))?;
        let mut value = 0u64;
        for i in 0..size {
            let byte = if self.little_endian {
                field[size - 1 - i]
            } else {
                field[i]
            };
            value = (value << 8) | u64::from(byte);
        }
        Ok(value)
    }

    fn word(&self, offset: u64) -> Result<u64, String> {
        self.uint(offset, if self.is_64 { 8 } else { 4 })
    }

    fn fits(&self, offset: u64, len: u64, what: &str) -> Result<(), String> {
        match offset.checked_add(len) {
            Some(end) if end <= self.bytes.len() as u64 => Ok(()),
            _ => Err(format!(
                "{what} ends past the end of the file ({} bytes): truncated",
                self.bytes.len()
            )),
        }
    }
}

fn check_elf(bytes: &[u8]) -> Result<(), String> {
    let (class, data) = (bytes.get(4).copied(), bytes.get(5).copied());
    let elf = ElfReader {
        bytes,
        is_64: match class {
            Some(1) => false,
            Some(2) => true,
            _ => return Err("unknown ELF class".into()),
        },
        little_endian: match data {
            Some(1) => true,
            Some(2) => false,
            _ => return Err("unknown ELF byte order".into()),
        },
    };
    let (phoff, phentsize_at, shoff) = if elf.is_64 {
        (elf.word(0x20)?, 0x36, elf.word(0x28)?)
    } else {
        (elf.word(0x1c)?, 0x2a, elf.word(0x20)?)
    };
    let phentsize = elf.uint(phentsize_at, 2)?;
    let phnum = elf.uint(phentsize_at + 2, 2)?;
    let shentsize = elf.uint(phentsize_at + 4, 2)?;
    let shnum = elf.uint(phentsize_at + 6, 2)?;
    elf.fits(phoff, phentsize * phnum, "program header table")?;
    if shoff != 0 {
        elf.fits(shoff, shentsize * shnum, "section header table")?;
    }
    for index in 0..phnum {
        let entry = phoff + index * phentsize;
        let kind = elf.uint(entry, 4)? as u32;
        if kind != PT_LOAD && kind != PT_DYNAMIC {
            continue;
        }
        let (offset, filesz) = if elf.is_64 {
            (elf.word(entry + 8)?, elf.word(entry + 32)?)
        } else {
            (elf.word(entry + 4)?, elf.word(entry + 16)?)
        };
        elf.fits(offset, filesz, "a loadable segment")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_empty_files_are_refused() {
        assert!(check_library_bytes(b"").unwrap_err().contains("empty file"));
        assert!(check_library_bytes(b"hello world")
            .unwrap_err()
            .contains("not a shared library"));
    }

    #[test]
    fn this_test_binary_passes_and_every_truncation_of_it_is_caught() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        if exe.get(..4) != Some(&ELF_MAGIC[..]) {
            return; // not an ELF platform
        }
        check_library_bytes(&exe).unwrap();
        for cut in [5, 64, 200, 4096, exe.len() / 2, exe.len() - 1] {
            let err = check_library_bytes(&exe[..cut]).unwrap_err();
            assert!(err.contains("damaged ELF"), "cut at {cut}: {err}");
        }
    }
}
