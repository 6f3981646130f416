//! Whether an ELF file could ever be a library of this process, from its header alone.
//!
//! This is judged before anything else is read: a library for another machine or word size has
//! a header the rest of the reader misreads (a 32-bit file's tables look "corrupt", its manifest
//! "missing"), and the loader's own refusal comes only after mapping it. The header says it
//! plainly, so the refusal can too.

use object::{
    elf::{self, FileHeader64},
    read::elf::FileHeader,
    Endianness,
};

/// Where `e_ident` keeps the word size and the byte order.
const EI_CLASS: usize = 4;
const EI_DATA: usize = 5;

/// Why an ELF file is not a library this process can load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TargetMismatch {
    /// Built for another machine, word size or byte order (the text says which).
    Foreign(String),
    /// An executable, an object file or a core dump, not a shared library.
    NotLibrary(String),
}

/// The machine this host was built for, as ELF names it.
const HOST_MACHINE: u16 = if cfg!(target_arch = "x86_64") {
    elf::EM_X86_64
} else if cfg!(target_arch = "aarch64") {
    elf::EM_AARCH64
} else if cfg!(target_arch = "riscv64") {
    elf::EM_RISCV
} else if cfg!(target_arch = "powerpc64") {
    elf::EM_PPC64
} else if cfg!(target_arch = "s390x") {
    elf::EM_S390
} else if cfg!(target_arch = "x86") {
    elf::EM_386
} else if cfg!(target_arch = "arm") {
    elf::EM_ARM
} else {
    elf::EM_NONE
};

/// A machine's usual name (as `uname -m` says it), for the refusal.
fn machine_name(machine: u16) -> String {
    match machine {
        elf::EM_X86_64 => "x86_64".into(),
        elf::EM_AARCH64 => "aarch64".into(),
        elf::EM_386 => "i386".into(),
        elf::EM_ARM => "arm".into(),
        elf::EM_RISCV => "riscv".into(),
        elf::EM_PPC64 => "ppc64".into(),
        elf::EM_PPC => "ppc".into(),
        elf::EM_S390 => "s390x".into(),
        elf::EM_MIPS => "mips".into(),
        elf::EM_LOONGARCH => "loongarch".into(),
        other => format!("ELF machine {other}"),
    }
}

/// Checks the ELF header at the start of `bytes` (at least its first 64 bytes) against this
/// process: word size, byte order, machine, and that it is a shared object.
pub(super) fn check_elf_target(bytes: &[u8]) -> Result<(), TargetMismatch> {
    let host = std::env::consts::ARCH;
    let foreign = |what: String| {
        TargetMismatch::Foreign(format!(
            "built for {what}, but this host is {host}: rebuild it for {host}"
        ))
    };
    let host_class = if cfg!(target_pointer_width = "64") {
        elf::ELFCLASS64
    } else {
        elf::ELFCLASS32
    };
    match bytes.get(EI_CLASS) {
        Some(&class) if class == host_class => {}
        Some(&elf::ELFCLASS32) => return Err(foreign("a 32-bit machine (ELFCLASS32)".into())),
        Some(&elf::ELFCLASS64) => return Err(foreign("a 64-bit machine (ELFCLASS64)".into())),
        _ => {
            return Err(TargetMismatch::Foreign(
                "an ELF file of unknown class: not a library for this host".into(),
            ))
        }
    }
    let host_data = if cfg!(target_endian = "little") {
        elf::ELFDATA2LSB
    } else {
        elf::ELFDATA2MSB
    };
    match bytes.get(EI_DATA) {
        Some(&data) if data == host_data => {}
        Some(&elf::ELFDATA2MSB) => return Err(foreign("a big-endian machine".into())),
        Some(&elf::ELFDATA2LSB) => return Err(foreign("a little-endian machine".into())),
        _ => {
            return Err(TargetMismatch::Foreign(
                "an ELF file of unknown byte order: not a library for this host".into(),
            ))
        }
    }
    let (machine, kind) = header_fields(bytes).ok_or_else(|| {
        TargetMismatch::NotLibrary("its ELF header is truncated, not a shared library".into())
    })?;
    if machine != HOST_MACHINE {
        return Err(foreign(machine_name(machine)));
    }
    match kind {
        elf::ET_DYN => Ok(()),
        elf::ET_EXEC => Err(TargetMismatch::NotLibrary(
            "an executable (ELF type ET_EXEC), not a shared library: build it as a `cdylib` (or with `-shared`)".into(),
        )),
        elf::ET_REL => Err(TargetMismatch::NotLibrary(
            "an object file (ELF type ET_REL), not a shared library: link it with `-shared`".into(),
        )),
        elf::ET_CORE => Err(TargetMismatch::NotLibrary(
            "a core dump (ELF type ET_CORE), not a shared library".into(),
        )),
        other => Err(TargetMismatch::NotLibrary(format!(
            "ELF type {other}, not a shared library"
        ))),
    }
}

/// `e_machine` and `e_type`, read in the file's byte order (64- or 32-bit layouts put them at
/// the same offsets).
fn header_fields(bytes: &[u8]) -> Option<(u16, u16)> {
    if bytes.get(EI_CLASS) == Some(&elf::ELFCLASS64) {
        let header = FileHeader64::<Endianness>::parse(bytes).ok()?;
        let endian = header.endian().ok()?;
        return Some((header.e_machine(endian), header.e_type(endian)));
    }
    let field = |at: usize| -> Option<u16> {
        let pair: [u8; 2] = bytes.get(at..at + 2)?.try_into().ok()?;
        Some(if bytes.get(EI_DATA) == Some(&elf::ELFDATA2MSB) {
            u16::from_be_bytes(pair)
        } else {
            u16::from_le_bytes(pair)
        })
    };
    Some((field(18)?, field(16)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn this_program() -> Vec<u8> {
        std::fs::read(std::env::current_exe().unwrap()).unwrap()
    }

    #[test]
    fn every_foreign_header_is_named_by_what_it_was_built_for() {
        let mut bytes = this_program();
        // The test program is a position-independent executable (ET_DYN): it passes.
        check_elf_target(&bytes).unwrap();
        let mut other = bytes.clone();
        other[18..20].copy_from_slice(&elf::EM_AARCH64.to_le_bytes());
        if HOST_MACHINE != elf::EM_AARCH64 {
            let Err(TargetMismatch::Foreign(text)) = check_elf_target(&other) else {
                panic!("aarch64 accepted");
            };
            assert!(text.contains("built for aarch64"), "{text}");
        }
        other = bytes.clone();
        other[EI_CLASS] = elf::ELFCLASS32;
        let Err(TargetMismatch::Foreign(text)) = check_elf_target(&other) else {
            panic!("32-bit accepted");
        };
        assert!(text.contains("32-bit"), "{text}");
        other = bytes.clone();
        other[EI_DATA] = elf::ELFDATA2MSB;
        let Err(TargetMismatch::Foreign(text)) = check_elf_target(&other) else {
            panic!("big-endian accepted");
        };
        assert!(text.contains("big-endian"), "{text}");
        bytes[16..18].copy_from_slice(&elf::ET_EXEC.to_le_bytes());
        let Err(TargetMismatch::NotLibrary(text)) = check_elf_target(&bytes) else {
            panic!("ET_EXEC accepted");
        };
        assert!(text.contains("ET_EXEC"), "{text}");
    }
}
