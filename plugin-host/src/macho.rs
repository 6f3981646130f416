//! Reading a Mach-O dynamic library (macOS's `.dylib`) as data, without dyld.
//!
//! As with ELF, a library must be judged before any of its code runs. A Mach-O file may be
//! universal (one thin image per architecture): this host's image is picked, or the file is
//! refused naming the architectures it has. The thin image must be a 64-bit dylib (or bundle)
//! for this host's CPU, and every segment and section with file bytes must lie inside it.
//!
//! Pointers in a dylib's data are dyld fixups (rebase opcodes or chained fixups), not values,
//! so only pointer-free data is read here: an exported symbol's bytes, from its address to the
//! end of its section (Mach-O symbols have no sizes). Exported C names carry a leading `_`.

use object::{
    macho,
    read::macho::{FatArch, MachHeader, MachOFatFile32, MachOFatFile64, Nlist, Section, Segment},
    Endianness, ReadRef,
};

use super::elf_target::TargetMismatch;

type Header = macho::MachHeader64<Endianness>;

/// This host's CPU, as Mach-O names it (`None` where macOS has no such CPU).
const HOST_CPU: Option<u32> = if cfg!(target_arch = "x86_64") {
    Some(macho::CPU_TYPE_X86_64)
} else if cfg!(target_arch = "aarch64") {
    Some(macho::CPU_TYPE_ARM64)
} else {
    None
};

/// A CPU's usual name, as `lipo -info` says it.
fn cpu_name(cpu: u32) -> String {
    match cpu {
        macho::CPU_TYPE_X86_64 => "x86_64".into(),
        macho::CPU_TYPE_ARM64 => "arm64".into(),
        macho::CPU_TYPE_X86 => "i386".into(),
        macho::CPU_TYPE_ARM => "arm".into(),
        macho::CPU_TYPE_ARM64_32 => "arm64_32".into(),
        macho::CPU_TYPE_POWERPC => "ppc".into(),
        macho::CPU_TYPE_POWERPC64 => "ppc64".into(),
        other => format!("Mach-O CPU type {other:#x}"),
    }
}

/// Whether `bytes` start like a Mach-O file, thin or universal.
pub(super) fn is_macho(bytes: &[u8]) -> bool {
    let Some(magic) = bytes.get(..4) else {
        return false;
    };
    let magic = u32::from_be_bytes(magic.try_into().expect("four bytes"));
    [
        macho::MH_MAGIC,
        macho::MH_CIGAM,
        macho::MH_MAGIC_64,
        macho::MH_CIGAM_64,
        macho::FAT_MAGIC,
        macho::FAT_MAGIC_64,
    ]
    .contains(&magic)
}

/// A section with bytes in the file, where its addresses are.
struct FileSection {
    addr: u64,
    size: u64,
    offset: u64,
}

pub(super) struct MachO<'a> {
    /// The thin image (a slice of a universal file).
    image: &'a [u8],
    endian: Endianness,
    /// Every section in load-command order, as symbols number them (from 1); `None` for one
    /// without file bytes (zero-fill).
    sections: Vec<Option<FileSection>>,
    symtab: Option<&'a macho::SymtabCommand<Endianness>>,
}

impl<'a> MachO<'a> {
    /// Picks this host's image, checks it is a dylib for this host, and that every segment and
    /// section lies inside it.
    pub(super) fn parse(bytes: &'a [u8]) -> Result<Self, TargetMismatch> {
        let image = this_hosts_image(bytes)?;
        let damaged = |detail: String| {
            TargetMismatch::NotLibrary(format!("damaged Mach-O library ({detail})"))
        };
        let truncated = |what: String| {
            damaged(format!(
                "{what} ends past the end of the file ({} bytes): truncated",
                image.len()
            ))
        };
        let magic = image
            .get(..4)
            .map(|m| u32::from_be_bytes(m.try_into().expect("4")));
        if matches!(magic, Some(macho::MH_MAGIC | macho::MH_CIGAM)) {
            return Err(foreign("a 32-bit machine (a 32-bit Mach-O file)".into()));
        }
        let header = Header::parse(image, 0).map_err(|_| truncated("the Mach-O header".into()))?;
        let endian = header.endian().map_err(|e| damaged(e.to_string()))?;
        let cpu = header.cputype(endian);
        if Some(cpu) != HOST_CPU {
            return Err(foreign(cpu_name(cpu)));
        }
        match header.filetype(endian) {
            macho::MH_DYLIB | macho::MH_BUNDLE => {}
            macho::MH_EXECUTE => {
                return Err(TargetMismatch::NotLibrary(
                    "an executable (Mach-O type MH_EXECUTE), not a dynamic library: build it as a `cdylib`".into(),
                ))
            }
            macho::MH_OBJECT => {
                return Err(TargetMismatch::NotLibrary(
                    "an object file (Mach-O type MH_OBJECT), not a dynamic library: link it with `-dynamiclib`".into(),
                ))
            }
            other => {
                return Err(TargetMismatch::NotLibrary(format!(
                    "Mach-O type {other}, not a dynamic library"
                )))
            }
        }
        let mut commands = header
            .load_commands(endian, image, 0)
            .map_err(|_| truncated("the load commands".into()))?;
        let mut macho = Self {
            image,
            endian,
            sections: Vec::new(),
            symtab: None,
        };
        while let Some(command) = commands.next().map_err(|e| damaged(e.to_string()))? {
            if let Some(symtab) = command.symtab().map_err(|e| damaged(e.to_string()))? {
                macho.symtab = Some(symtab);
                continue;
            }
            let Some((segment, section_data)) =
                command.segment_64().map_err(|e| damaged(e.to_string()))?
            else {
                continue;
            };
            let name = String::from_utf8_lossy(segment.name()).into_owned();
            let (offset, size) = segment.file_range(endian);
            if !macho.fits(offset, size) {
                return Err(truncated(format!("segment {name}")));
            }
            let sections = segment
                .sections(endian, section_data)
                .map_err(|e| damaged(format!("segment {name}: {e}")))?;
            for section in sections {
                let file_section = section
                    .file_range(endian)
                    .map(|(offset, size)| FileSection {
                        addr: section.addr(endian),
                        size,
                        offset,
                    });
                if let Some(found) = &file_section {
                    if !macho.fits(found.offset, found.size) {
                        let name = String::from_utf8_lossy(section.name()).into_owned();
                        return Err(truncated(format!("section {name}")));
                    }
                }
                macho.sections.push(file_section);
            }
        }
        if let Some(symtab) = macho.symtab {
            symtab
                .symbols::<Header, _>(endian, image)
                .map_err(|_| truncated("the symbol table".into()))?;
        }
        Ok(macho)
    }

    fn fits(&self, offset: u64, len: u64) -> bool {
        offset
            .checked_add(len)
            .is_some_and(|end| end <= self.image.len() as u64)
    }

    /// The bytes of the exported data symbol `name` (its C name, without the leading `_`), from
    /// its address to the end of its section, if the library exports one.
    pub(super) fn exported_data(&self, name: &str) -> Result<Option<&'a [u8]>, String> {
        let Some(symtab) = self.symtab else {
            return Ok(None);
        };
        let symbols = symtab
            .symbols::<Header, _>(self.endian, self.image)
            .map_err(|e| e.to_string())?;
        let mangled = format!("_{name}");
        let found = symbols.iter().find(|symbol| {
            !symbol.is_stab()
                && symbol.n_type() & macho::N_TYPE == macho::N_SECT
                && symbol.n_type() & macho::N_EXT != 0
                && symbol
                    .name(self.endian, symbols.strings())
                    .is_ok_and(|found| found == mangled.as_bytes())
        });
        let Some(symbol) = found else {
            return Ok(None);
        };
        let address = symbol.n_value(self.endian);
        let section = usize::from(symbol.n_sect())
            .checked_sub(1)
            .and_then(|index| self.sections.get(index))
            .ok_or_else(|| format!("`{name}` names a section the file does not have"))?
            .as_ref()
            .ok_or_else(|| format!("`{name}` is in a section without file bytes"))?;
        let start = address
            .checked_sub(section.addr)
            .filter(|start| *start < section.size)
            .ok_or_else(|| format!("`{name}` lies outside its section"))?;
        self.image
            .read_bytes_at(section.offset + start, section.size - start)
            .map(Some)
            .map_err(|()| format!("`{name}` lies past the end of the file"))
    }
}

fn foreign(what: String) -> TargetMismatch {
    let host = std::env::consts::ARCH;
    TargetMismatch::Foreign(format!(
        "built for {what}, but this host is {host}: rebuild it for {host}"
    ))
}

/// The thin image of `bytes` for this host: all of it, or its slice of a universal file.
fn this_hosts_image(bytes: &[u8]) -> Result<&[u8], TargetMismatch> {
    let magic = bytes
        .get(..4)
        .map(|m| u32::from_be_bytes(m.try_into().expect("4")));
    let arches = match magic {
        Some(macho::FAT_MAGIC) => fat_arches(MachOFatFile32::parse(bytes))?,
        Some(macho::FAT_MAGIC_64) => fat_arches(MachOFatFile64::parse(bytes))?,
        _ => return Ok(bytes),
    };
    let Some(FatImage {
        range: (offset, size),
        ..
    }) = arches.iter().find(|image| Some(image.cpu) == HOST_CPU)
    else {
        let names: Vec<String> = arches.iter().map(|image| cpu_name(image.cpu)).collect();
        return Err(foreign(format!(
            "{} only (a universal library without this host's architecture)",
            names.join(", ")
        )));
    };
    bytes.read_bytes_at(*offset, *size).map_err(|()| {
        TargetMismatch::NotLibrary(format!(
            "damaged Mach-O library (its {} image ends past the end of the file ({} bytes): truncated)",
            std::env::consts::ARCH,
            bytes.len()
        ))
    })
}

/// One image of a universal file: its CPU, and where it lies (offset, size).
struct FatImage {
    cpu: u32,
    range: (u64, u64),
}

/// The images of a universal file.
fn fat_arches<Fat: FatArch>(
    fat: object::Result<object::read::macho::MachOFatFile<'_, Fat>>,
) -> Result<Vec<FatImage>, TargetMismatch> {
    let fat = fat.map_err(|e| {
        TargetMismatch::NotLibrary(format!(
            "damaged universal Mach-O library ({e}: truncated or not Mach-O)"
        ))
    })?;
    Ok(fat
        .arches()
        .iter()
        .map(|arch| FatImage {
            cpu: arch.cputype(),
            range: arch.file_range(),
        })
        .collect())
}
