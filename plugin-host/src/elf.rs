//! Reading an ELF shared library as data, without the dynamic loader (through the `object`
//! crate's raw ELF structures).
//!
//! `dlopen` runs a library's constructors before it returns, so nothing can be refused after
//! it: a library must be judged (its structure, its manifest, its digest) from its bytes alone.
//! This reader checks that every segment and every section with file bytes lies inside the file
//! (glibc trusts the headers it maps, and a truncated library kills the process with SIGBUS),
//! finds a symbol in the dynamic symbol table, and reads pointers in static data the way the
//! loader would see them after relocation: a relative relocation's addend (RELA), or the bytes
//! in place (REL, RELR, or no relocation at all).

use std::{collections::HashMap, ops::Range};

use object::{
    elf,
    read::elf::{
        Dyn, FileHeader, GnuHashTable, HashTable, ProgramHeader, Rel, Rela, SectionHeader,
        SectionTable, Sym,
    },
    Endianness, ReadRef, StringTable,
};

/// The ELF header layout of this host's word size (a library of the other is refused from its
/// header before anything else is read: `elf_target`).
#[cfg(target_pointer_width = "64")]
pub(super) type HostHeader = elf::FileHeader64<Endianness>;
#[cfg(target_pointer_width = "32")]
pub(super) type HostHeader = elf::FileHeader32<Endianness>;

pub(super) const ELF_MAGIC: [u8; 4] = elf::ELFMAG;
/// Dynamic entries read at most: a real library has a few dozen.
const MAX_DYNAMIC_ENTRIES: usize = 4096;

type Word = <HostHeader as FileHeader>::Word;
type SymbolEntry = <HostHeader as FileHeader>::Sym;
type RelaEntry = <HostHeader as FileHeader>::Rela;
type RelEntry = <HostHeader as FileHeader>::Rel;

/// A header word as `u64` (a no-op on 64-bit hosts, a widening on 32-bit ones).
#[allow(clippy::useless_conversion)]
fn wide(word: Word) -> u64 {
    word.into()
}

/// A relocation's addend as the `u64` it adds (it wraps like the loader's addition does).
#[allow(clippy::useless_conversion)]
fn addend(addend: <HostHeader as FileHeader>::Sword) -> u64 {
    i64::from(addend) as u64
}

/// A loadable segment: where its file bytes appear in memory.
struct Segment {
    vaddr: u64,
    offset: u64,
    filesz: u64,
}

/// How one word in static data is relocated at load time.
#[derive(Debug, Clone, Copy)]
enum Relocation {
    /// Base address plus this addend (RELA); with `None`, plus the bytes in place (REL).
    Relative(Option<u64>),
    /// Anything else (a symbol's address): not a plain pointer into the library.
    Other(u32),
}

pub(super) struct Elf<'a> {
    bytes: &'a [u8],
    endian: Endianness,
    machine: u16,
    loads: Vec<Segment>,
    dynamic: Vec<(u64, u64)>,
    symbols: &'a [SymbolEntry],
    symbol_names: StringTable<'a>,
}

impl<'a> Elf<'a> {
    /// Parses the headers and checks every range the loader maps, and every section's.
    pub(super) fn parse(bytes: &'a [u8]) -> Result<Self, String> {
        let header = HostHeader::parse(bytes).map_err(|e| format!("its header: {e}"))?;
        let endian = header.endian().map_err(|e| e.to_string())?;
        let truncated = |what: String| {
            format!(
                "{what} ends past the end of the file ({} bytes): truncated",
                bytes.len()
            )
        };
        let segments = header
            .program_headers(endian, bytes)
            .map_err(|_| truncated("the program header table".into()))?;
        let mut elf = Self {
            bytes,
            endian,
            machine: header.e_machine(endian),
            loads: Vec::new(),
            dynamic: Vec::new(),
            symbols: &[],
            symbol_names: StringTable::default(),
        };
        for (index, segment) in segments.iter().enumerate() {
            let (offset, filesz) = segment.file_range(endian);
            elf.fits(offset, filesz)
                .map_err(|()| truncated(format!("segment {index}")))?;
            match segment.p_type(endian) {
                elf::PT_LOAD => elf.loads.push(Segment {
                    vaddr: wide(segment.p_vaddr(endian)),
                    offset,
                    filesz,
                }),
                elf::PT_DYNAMIC => {
                    let entries = segment
                        .dynamic(endian, bytes)
                        .map_err(|e| e.to_string())?
                        .unwrap_or_default();
                    elf.dynamic = entries
                        .iter()
                        .take(MAX_DYNAMIC_ENTRIES)
                        .map(|entry| (wide(entry.d_tag(endian)), wide(entry.d_val(endian))))
                        .take_while(|(tag, _)| *tag != u64::from(elf::DT_NULL))
                        .collect();
                }
                _ => {}
            }
        }
        let sections = header
            .section_headers(endian, bytes)
            .map_err(|_| truncated("the section header table".into()))?;
        for (index, section) in sections.iter().enumerate() {
            if let Some((offset, size)) = section.file_range(endian) {
                elf.fits(offset, size)
                    .map_err(|()| truncated(format!("section {index}")))?;
            }
        }
        let dynsym = SectionTable::<HostHeader, &[u8]>::new(sections, StringTable::default())
            .symbols(endian, bytes, elf::SHT_DYNSYM)
            .map_err(|e| format!("the dynamic symbol table: {e}"))?;
        if dynsym.is_empty() {
            (elf.symbols, elf.symbol_names) = elf.loaders_symbol_table()?;
        } else {
            elf.symbols = dynsym.symbols();
            elf.symbol_names = dynsym.strings();
        }
        Ok(elf)
    }

    pub(super) fn word_size(&self) -> u64 {
        std::mem::size_of::<Word>() as u64
    }

    fn slice(&self, offset: u64, len: u64) -> Result<&'a [u8], String> {
        self.bytes
            .read_bytes_at(offset, len)
            .map_err(|()| "range past the end of the file".to_string())
    }

    fn fits(&self, offset: u64, len: u64) -> Result<(), ()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.bytes.len() as u64 => Ok(()),
            _ => Err(()),
        }
    }

    /// The unsigned value of `size` bytes at file `offset`, in the file's byte order.
    fn uint(&self, offset: u64, size: usize) -> Result<u64, String> {
        let field = self
            .slice(offset, size as u64)
            .map_err(|_| format!("field at byte {offset} is past the end of the file"))?;
        let mut word = [0u8; 8];
        Ok(if self.endian == Endianness::Little {
            word[..size].copy_from_slice(field);
            u64::from_le_bytes(word)
        } else {
            word[8 - size..].copy_from_slice(field);
            u64::from_be_bytes(word)
        })
    }

    fn word(&self, offset: u64) -> Result<u64, String> {
        self.uint(offset, self.word_size() as usize)
    }

    /// The file offset of `len` bytes at virtual address `vaddr`, which must lie in the file
    /// part of one loadable segment.
    fn file_offset(&self, vaddr: u64, len: u64) -> Result<u64, String> {
        self.loads
            .iter()
            .find(|s| {
                vaddr >= s.vaddr
                    && vaddr
                        .checked_add(len)
                        .is_some_and(|end| end <= s.vaddr + s.filesz)
            })
            .map(|s| s.offset + (vaddr - s.vaddr))
            .ok_or_else(|| format!("address {vaddr:#x} is not in the file's loaded data"))
    }

    /// The loaded bytes from `vaddr` to the end of its segment's file part.
    fn loaded_from(&self, vaddr: u64) -> Result<&'a [u8], String> {
        let segment = self
            .loads
            .iter()
            .find(|s| vaddr >= s.vaddr && vaddr < s.vaddr + s.filesz)
            .ok_or_else(|| format!("address {vaddr:#x} is not in the file's loaded data"))?;
        self.slice(
            segment.offset + (vaddr - segment.vaddr),
            segment.filesz - (vaddr - segment.vaddr),
        )
    }

    fn dynamic_value(&self, tag: u32) -> Option<u64> {
        self.dynamic
            .iter()
            .find(|(t, _)| *t == u64::from(tag))
            .map(|(_, v)| *v)
    }

    /// The dynamic symbols as the loader finds them when the file has no section headers:
    /// `DT_SYMTAB`, counted by `DT_HASH` (or `DT_GNU_HASH`).
    fn loaders_symbol_table(&self) -> Result<(&'a [SymbolEntry], StringTable<'a>), String> {
        let missing = || "no dynamic symbol table".to_string();
        let symtab = self.dynamic_value(elf::DT_SYMTAB).ok_or_else(missing)?;
        let strtab = self.dynamic_value(elf::DT_STRTAB).ok_or_else(missing)?;
        let strsz = self.dynamic_value(elf::DT_STRSZ).ok_or_else(missing)?;
        let count = if let Some(hash) = self.dynamic_value(elf::DT_HASH) {
            HashTable::<HostHeader>::parse(self.endian, self.loaded_from(hash)?)
                .map_err(|e| e.to_string())?
                .symbol_table_length()
        } else {
            let hash = self.dynamic_value(elf::DT_GNU_HASH).ok_or_else(missing)?;
            GnuHashTable::<HostHeader>::parse(self.endian, self.loaded_from(hash)?)
                .map_err(|e| e.to_string())?
                .symbol_table_length(self.endian)
                .unwrap_or(0)
        };
        let entry = std::mem::size_of::<SymbolEntry>() as u64;
        let offset = self.file_offset(symtab, u64::from(count) * entry)?;
        let symbols = self
            .bytes
            .read_slice_at(offset, count as usize)
            .map_err(|()| "the dynamic symbol table is past the end of the file".to_string())?;
        let strings = self.file_offset(strtab, strsz)?;
        Ok((
            symbols,
            StringTable::new(self.bytes, strings, strings + strsz),
        ))
    }

    /// The address and size of the defined dynamic symbol `name`, if the library exports one.
    pub(super) fn symbol(&self, name: &str) -> Result<Option<(u64, u64)>, String> {
        Ok(self
            .symbols
            .iter()
            .find(|symbol| {
                symbol.st_shndx(self.endian) != elf::SHN_UNDEF
                    && symbol
                        .name(self.endian, self.symbol_names)
                        .is_ok_and(|found| found == name.as_bytes())
            })
            .map(|symbol| {
                (
                    wide(symbol.st_value(self.endian)),
                    wide(symbol.st_size(self.endian)),
                )
            }))
    }

    /// The `st_size` bytes of the exported data symbol `name`, read from the file (they must
    /// lie in the file part of a loadable segment), if the library exports one.
    pub(super) fn exported_data(&self, name: &str) -> Result<Option<&'a [u8]>, String> {
        let Some((address, size)) = self.symbol(name)? else {
            return Ok(None);
        };
        self.slice(self.file_offset(address, size)?, size)
            .map(Some)
            .map_err(|e| format!("`{name}`: {e}"))
    }

    /// The relocation type that means "base address + addend" on this machine.
    fn relative_type(&self) -> Option<u32> {
        match self.machine {
            elf::EM_X86_64 => Some(elf::R_X86_64_RELATIVE),
            elf::EM_386 => Some(elf::R_386_RELATIVE),
            elf::EM_AARCH64 => Some(elf::R_AARCH64_RELATIVE),
            elf::EM_ARM => Some(elf::R_ARM_RELATIVE),
            elf::EM_RISCV => Some(elf::R_RISCV_RELATIVE),
            elf::EM_PPC64 => Some(elf::R_PPC64_RELATIVE),
            elf::EM_S390 => Some(elf::R_390_RELATIVE),
            _ => None,
        }
    }

    /// The table of `T` entries the dynamic section's `table` and `size` tags point at, with
    /// `entry` (if present) saying the size this host reads.
    fn dynamic_table<T: object::Pod>(
        &self,
        table: u32,
        size: u32,
        entry: u32,
    ) -> Result<&'a [T], String> {
        let (Some(table), Some(size)) = (self.dynamic_value(table), self.dynamic_value(size))
        else {
            return Ok(&[]);
        };
        let entry_size = std::mem::size_of::<T>() as u64;
        if self
            .dynamic_value(entry)
            .is_some_and(|declared| declared != entry_size)
        {
            return Err("implausible relocation entry size".into());
        }
        self.bytes
            .read_slice_at(self.file_offset(table, size)?, (size / entry_size) as usize)
            .map_err(|()| "a relocation table is past the end of the file".into())
    }

    /// The dynamic relocations (RELA and REL tables) that patch an address in `range`, by that
    /// address. A library has tens of thousands; only the few in the range are kept.
    fn relocations(&self, range: &Range<u64>) -> Result<HashMap<u64, Relocation>, String> {
        let endian = self.endian;
        let relative = self.relative_type();
        let kind = |kind: u32, addend: Option<u64>| {
            if Some(kind) == relative {
                Relocation::Relative(addend)
            } else {
                Relocation::Other(kind)
            }
        };
        let mut relocations = HashMap::new();
        let rela: &[RelaEntry] =
            self.dynamic_table(elf::DT_RELA, elf::DT_RELASZ, elf::DT_RELAENT)?;
        for entry in rela {
            let patched = wide(entry.r_offset(endian));
            if range.contains(&patched) {
                let added = addend(entry.r_addend(endian));
                relocations.insert(patched, kind(entry.r_type(endian, false), Some(added)));
            }
        }
        let rel: &[RelEntry] = self.dynamic_table(elf::DT_REL, elf::DT_RELSZ, elf::DT_RELENT)?;
        for entry in rel {
            let patched = wide(entry.r_offset(endian));
            if range.contains(&patched) {
                relocations.insert(patched, kind(entry.r_type(endian), None));
            }
        }
        Ok(relocations)
    }

    /// A reader of the words in `range` as the loaded library would hold them (relocations
    /// applied, as addresses relative to the library's base).
    pub(super) fn loaded_view(&self, range: Range<u64>) -> Result<LoadedView<'_, 'a>, String> {
        Ok(LoadedView {
            elf: self,
            relocations: self.relocations(&range)?,
        })
    }
}

pub(super) struct LoadedView<'e, 'a> {
    elf: &'e Elf<'a>,
    relocations: HashMap<u64, Relocation>,
}

impl LoadedView<'_, '_> {
    pub(super) fn word_size(&self) -> u64 {
        self.elf.word_size()
    }

    /// The unsigned 32-bit value at `vaddr`.
    pub(super) fn u32_at(&self, vaddr: u64) -> Result<u32, String> {
        Ok(self.elf.uint(self.elf.file_offset(vaddr, 4)?, 4)? as u32)
    }

    pub(super) fn bytes_at(&self, vaddr: u64, len: u64) -> Result<&[u8], String> {
        self.elf.slice(self.elf.file_offset(vaddr, len)?, len)
    }

    /// The pointer-sized word at `vaddr` after relocation.
    pub(super) fn word_at(&self, vaddr: u64) -> Result<u64, String> {
        let in_place = self
            .elf
            .word(self.elf.file_offset(vaddr, self.word_size())?)?;
        match self.relocations.get(&vaddr) {
            None | Some(Relocation::Relative(None)) => Ok(in_place),
            Some(Relocation::Relative(Some(addend))) => Ok(*addend),
            Some(Relocation::Other(kind)) => Err(format!(
                "the word at {vaddr:#x} is relocated against a symbol (type {kind}), not a pointer into the library"
            )),
        }
    }

    /// The NUL-terminated UTF-8 string at `vaddr`, at most `max` bytes long.
    pub(super) fn c_string_at(&self, vaddr: u64, max: usize) -> Result<String, String> {
        let rest = self.elf.loaded_from(vaddr)?;
        let end = rest
            .iter()
            .take(max + 1)
            .position(|b| *b == 0)
            .ok_or_else(|| {
                format!("string at {vaddr:#x} is unterminated or longer than {max} bytes")
            })?;
        String::from_utf8(rest[..end].to_vec())
            .map_err(|_| format!("string at {vaddr:#x} is not UTF-8"))
    }
}
