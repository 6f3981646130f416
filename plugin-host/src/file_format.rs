//! Checking a candidate file's structure before the dynamic loader maps it.
//!
//! glibc's `dlopen` trusts the headers it maps: a truncated ELF library makes it touch pages past
//! the end of the file and the whole process dies of SIGBUS. The host must survive any file in a
//! plugin folder, so it checks that every range the loader will map lies inside the file first.

use super::elf::{Elf, ELF_MAGIC};

const MACH_O_MAGICS: [[u8; 4]; 4] = [
    [0xfe, 0xed, 0xfa, 0xce],
    [0xfe, 0xed, 0xfa, 0xcf],
    [0xce, 0xfa, 0xed, 0xfe],
    [0xcf, 0xfa, 0xed, 0xfe],
];

/// Returns why `bytes` cannot be a loadable shared library, if they plainly cannot.
pub(super) fn check_library_bytes(bytes: &[u8]) -> Result<(), String> {
    if bytes.is_empty() {
        return Err("empty file, not a shared library".into());
    }
    let head = bytes.get(..4).unwrap_or(bytes);
    if head == ELF_MAGIC {
        Elf::parse(bytes)
            .map(drop)
            .map_err(|detail| format!("damaged ELF library ({detail})"))
    } else if MACH_O_MAGICS.iter().any(|m| head == m) || head.starts_with(b"MZ") {
        Ok(())
    } else {
        Err("not a shared library (no ELF, Mach-O or PE header)".into())
    }
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
