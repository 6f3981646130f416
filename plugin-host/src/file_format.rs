//! A candidate file judged as a shared library before the dynamic loader maps it.
//!
//! glibc's `dlopen` trusts the headers it maps: a truncated ELF library makes it touch pages past
//! the end of the file and the whole process dies of SIGBUS. The host must survive any file in a
//! plugin folder, so it checks, from the bytes alone, that the file is a library for this
//! machine (`elf_target`, `macho`) and that every range the loader will map lies inside it.
//! ELF and Mach-O are both read, whatever the platform, so that `plugins list` names a library
//! built for another platform by its manifest before refusing it.

use super::{
    elf::{Elf, HostHeader, ELF_MAGIC},
    elf_target::{check_elf_target, TargetMismatch},
    macho::{is_macho, MachO},
};

/// A library's file, parsed and checked.
pub(super) enum LibraryFile<'a> {
    Elf(Elf<'a>),
    MachO(MachO<'a>),
}

impl<'a> LibraryFile<'a> {
    /// Checks that `bytes` are a library for this machine, whole and with every range inside
    /// the file.
    pub(super) fn parse(bytes: &'a [u8]) -> Result<Self, TargetMismatch> {
        let not_library = |text: &str| TargetMismatch::NotLibrary(text.into());
        if bytes.is_empty() {
            return Err(not_library("empty file, not a shared library"));
        }
        if bytes.starts_with(&ELF_MAGIC) {
            if bytes.len() < std::mem::size_of::<HostHeader>() {
                return Err(not_library(
                    "damaged ELF library (its header ends past the end of the file: truncated)",
                ));
            }
            check_elf_target(bytes)?;
            return Elf::parse(bytes).map(Self::Elf).map_err(|detail| {
                TargetMismatch::NotLibrary(format!("damaged ELF library ({detail})"))
            });
        }
        if is_macho(bytes) {
            return MachO::parse(bytes).map(Self::MachO);
        }
        if bytes.starts_with(b"MZ") {
            return Err(TargetMismatch::Foreign(format!(
                "a Windows library (PE), but this host runs on {}: install the plugin's build for {}",
                std::env::consts::OS,
                std::env::consts::OS
            )));
        }
        Err(not_library(
            "not a shared library (no ELF, Mach-O or PE header)",
        ))
    }

    /// The bytes of the exported data symbol `name`, read from the file: ELF gives its
    /// `st_size` bytes, Mach-O (no symbol sizes) the rest of its section.
    pub(super) fn exported_data(&self, name: &str) -> Result<Option<&'a [u8]>, String> {
        match self {
            Self::Elf(elf) => elf.exported_data(name),
            Self::MachO(macho) => macho.exported_data(name),
        }
    }

    /// Refuses a library this platform's loader cannot map (a Mach-O file on Linux, an ELF file
    /// on macOS), once its manifest was read so that listings can still name it.
    pub(super) fn check_platform(&self) -> Result<(), String> {
        let (format, platform) = match self {
            Self::Elf(_) => ("ELF", "Linux"),
            Self::MachO(_) => ("Mach-O", "macOS"),
        };
        let native = match self {
            Self::Elf(_) => !cfg!(target_os = "macos"),
            Self::MachO(_) => cfg!(target_os = "macos"),
        };
        if native {
            return Ok(());
        }
        let host = std::env::consts::OS;
        Err(format!(
            "a library for {platform} ({format}), but this host runs on {host}: install the plugin's build for {host}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(bytes: &[u8]) -> String {
        match LibraryFile::parse(bytes) {
            Ok(_) => panic!("accepted"),
            Err(TargetMismatch::Foreign(text) | TargetMismatch::NotLibrary(text)) => text,
        }
    }

    #[test]
    fn text_and_empty_files_are_refused() {
        assert!(refusal(b"").contains("empty file"));
        assert!(refusal(b"hello world").contains("not a shared library"));
    }

    #[test]
    fn this_test_binary_passes_and_every_truncation_of_it_is_caught() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        if exe.get(..4) != Some(&ELF_MAGIC[..]) {
            return; // not an ELF platform
        }
        LibraryFile::parse(&exe).unwrap_or_else(|_| panic!("this program refused"));
        for cut in [5, 64, 200, 4096, exe.len() / 2, exe.len() - 1] {
            let err = refusal(&exe[..cut]);
            assert!(err.contains("damaged ELF"), "cut at {cut}: {err}");
        }
    }
}
