//! Reading an ELF shared library as data, without the dynamic loader.
//!
//! `dlopen` runs a library's constructors before it returns, so nothing can be refused after
//! it: a library must be judged (its structure, its manifest, its digest) from its bytes alone.
//! This reader checks that every range the loader would map lies inside the file (glibc trusts
//! the headers it maps, and a truncated library kills the process with SIGBUS), finds a symbol
//! in the dynamic symbol table, and reads pointers in static data the way the loader would see
//! them after relocation: a relative relocation's addend (RELA), or the bytes in place (REL,
//! RELR, or no relocation at all).

use std::{collections::HashMap, ops::Range};

pub(super) const ELF_MAGIC: [u8; 4] = [0x7f, b'E', b'L', b'F'];
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const SHT_DYNSYM: u32 = 11;
const DT_NULL: u64 = 0;
const DT_HASH: u64 = 4;
const DT_STRTAB: u64 = 5;
const DT_SYMTAB: u64 = 6;
const DT_RELA: u64 = 7;
const DT_RELASZ: u64 = 8;
const DT_RELAENT: u64 = 9;
const DT_STRSZ: u64 = 10;
const DT_REL: u64 = 17;
const DT_RELSZ: u64 = 18;
const DT_RELENT: u64 = 19;
/// Dynamic entries read at most: a real library has a few dozen.
const MAX_DYNAMIC_ENTRIES: u64 = 4096;

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
    is_64: bool,
    little_endian: bool,
    machine: u16,
    loads: Vec<Segment>,
    dynamic: Vec<(u64, u64)>,
    /// The dynamic symbol table's section: (file offset, size, entry size, string table index).
    dynsym_section: Option<(u64, u64, u64, u64)>,
    section_headers: (u64, u64, u64),
}

impl<'a> Elf<'a> {
    /// Parses the headers and checks every range the loader maps.
    pub(super) fn parse(bytes: &'a [u8]) -> Result<Self, String> {
        if bytes.get(..4) != Some(&ELF_MAGIC[..]) {
            return Err("not an ELF file".into());
        }
        let mut elf = Self {
            bytes,
            is_64: match bytes.get(4) {
                Some(1) => false,
                Some(2) => true,
                _ => return Err("unknown ELF class".into()),
            },
            little_endian: match bytes.get(5) {
                Some(1) => true,
                Some(2) => false,
                _ => return Err("unknown ELF byte order".into()),
            },
            machine: 0,
            loads: Vec::new(),
            dynamic: Vec::new(),
            dynsym_section: None,
            section_headers: (0, 0, 0),
        };
        elf.machine = elf.uint(0x12, 2)? as u16;
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
            elf.section_headers = (shoff, shentsize, shnum);
        }
        let mut dynamic_segment = None;
        for index in 0..phnum {
            let entry = phoff + index * phentsize;
            let kind = elf.uint(entry, 4)? as u32;
            if kind != PT_LOAD && kind != PT_DYNAMIC {
                continue;
            }
            let (offset, vaddr, filesz) = if elf.is_64 {
                (
                    elf.word(entry + 8)?,
                    elf.word(entry + 16)?,
                    elf.word(entry + 32)?,
                )
            } else {
                (
                    elf.word(entry + 4)?,
                    elf.word(entry + 8)?,
                    elf.word(entry + 16)?,
                )
            };
            elf.fits(offset, filesz, "a loadable segment")?;
            if kind == PT_LOAD {
                elf.loads.push(Segment {
                    vaddr,
                    offset,
                    filesz,
                });
            } else {
                dynamic_segment = Some((offset, filesz));
            }
        }
        if let Some((offset, size)) = dynamic_segment {
            let entry_size = 2 * elf.word_size();
            for index in 0..(size / entry_size).min(MAX_DYNAMIC_ENTRIES) {
                let at = offset + index * entry_size;
                let tag = elf.word(at)?;
                if tag == DT_NULL {
                    break;
                }
                elf.dynamic.push((tag, elf.word(at + elf.word_size())?));
            }
        }
        for index in 0..elf.section_headers.2 {
            let at = shoff + index * shentsize;
            if elf.uint(at + 4, 4)? as u32 != SHT_DYNSYM {
                continue;
            }
            let w = elf.word_size();
            let (offset, size, link, entsize) = if elf.is_64 {
                (
                    elf.word(at + 24)?,
                    elf.word(at + 32)?,
                    elf.uint(at + 40, 4)?,
                    elf.word(at + 56)?,
                )
            } else {
                (
                    elf.word(at + 16)?,
                    elf.word(at + 20)?,
                    elf.uint(at + 24, 4)?,
                    elf.word(at + 36)?,
                )
            };
            elf.fits(offset, size, "the dynamic symbol table")?;
            if entsize < 3 * w {
                return Err("implausible dynamic symbol size".into());
            }
            elf.dynsym_section = Some((offset, size, entsize, link));
        }
        Ok(elf)
    }

    pub(super) fn word_size(&self) -> u64 {
        if self.is_64 {
            8
        } else {
            4
        }
    }

    fn uint(&self, offset: u64, size: usize) -> Result<u64, String> {
        let field = self
            .slice(offset, size as u64)
            .map_err(|_| format!("header field at byte {offset} is past the end of the file"))?;
        // Relocation tables run to tens of thousands of entries: read words whole.
        let mut word = [0u8; 8];
        Ok(if self.little_endian {
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

    fn slice(&self, offset: u64, len: u64) -> Result<&'a [u8], String> {
        let start = usize::try_from(offset).map_err(|_| "offset overflow".to_string())?;
        let len = usize::try_from(len).map_err(|_| "length overflow".to_string())?;
        start
            .checked_add(len)
            .and_then(|end| self.bytes.get(start..end))
            .ok_or_else(|| "range past the end of the file".to_string())
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

    fn dynamic_value(&self, tag: u64) -> Option<u64> {
        self.dynamic
            .iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, v)| *v)
    }

    /// Where the dynamic symbols are: (file offset, count, entry size, string table offset,
    /// string table size).
    fn symbol_table(&self) -> Result<(u64, u64, u64, u64, u64), String> {
        if let Some((offset, size, entsize, link)) = self.dynsym_section {
            let (shoff, shentsize, shnum) = self.section_headers;
            if link >= shnum {
                return Err("the symbol table names no string table".into());
            }
            let at = shoff + link * shentsize;
            let (str_offset, str_size) = if self.is_64 {
                (self.word(at + 24)?, self.word(at + 32)?)
            } else {
                (self.word(at + 16)?, self.word(at + 20)?)
            };
            self.fits(str_offset, str_size, "the dynamic string table")?;
            return Ok((offset, size / entsize, entsize, str_offset, str_size));
        }
        // No section headers: the loader's own view (DT_HASH says how many symbols there are).
        let missing = || "no dynamic symbol table".to_string();
        let symtab = self.dynamic_value(DT_SYMTAB).ok_or_else(missing)?;
        let hash = self.dynamic_value(DT_HASH).ok_or_else(missing)?;
        let strtab = self.dynamic_value(DT_STRTAB).ok_or_else(missing)?;
        let strsz = self.dynamic_value(DT_STRSZ).ok_or_else(missing)?;
        let count = self.uint(self.file_offset(hash + 4, 4)?, 4)?;
        let entsize = if self.is_64 { 24 } else { 16 };
        let offset = self.file_offset(symtab, count * entsize)?;
        Ok((
            offset,
            count,
            entsize,
            self.file_offset(strtab, strsz)?,
            strsz,
        ))
    }

    /// The address and size of the defined dynamic symbol `name`, if the library exports one.
    pub(super) fn symbol(&self, name: &str) -> Result<Option<(u64, u64)>, String> {
        let (offset, count, entsize, strings, strings_size) = self.symbol_table()?;
        let names = self.slice(strings, strings_size)?;
        for index in 0..count {
            let at = offset + index * entsize;
            let name_at = self.uint(at, 4)? as usize;
            let (value, size, section) = if self.is_64 {
                (
                    self.word(at + 8)?,
                    self.word(at + 16)?,
                    self.uint(at + 6, 2)?,
                )
            } else {
                (
                    self.word(at + 4)?,
                    self.word(at + 8)?,
                    self.uint(at + 14, 2)?,
                )
            };
            let Some(rest) = names.get(name_at..) else {
                continue;
            };
            let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
            if &rest[..end] == name.as_bytes() && section != 0 {
                return Ok(Some((value, size)));
            }
        }
        Ok(None)
    }

    /// The relocation type that means "base address + addend" on this machine.
    fn relative_type(&self) -> Option<u32> {
        match self.machine {
            62 | 3 => Some(8), // x86-64, i386
            183 => Some(1027), // AArch64
            40 => Some(23),    // ARM
            243 => Some(3),    // RISC-V
            21 => Some(22),    // PowerPC 64
            22 => Some(12),    // s390x
            _ => None,
        }
    }

    /// The dynamic relocations (RELA and REL tables) that patch an address in `range`, by that
    /// address. A library has tens of thousands; only the few in the range are kept.
    fn relocations(&self, range: &Range<u64>) -> Result<HashMap<u64, Relocation>, String> {
        let mut relocations = HashMap::new();
        let relative = self.relative_type();
        let w = self.word_size();
        for (table, size, entry, with_addend) in [
            (DT_RELA, DT_RELASZ, DT_RELAENT, true),
            (DT_REL, DT_RELSZ, DT_RELENT, false),
        ] {
            let (Some(table), Some(size)) = (self.dynamic_value(table), self.dynamic_value(size))
            else {
                continue;
            };
            let entry =
                self.dynamic_value(entry)
                    .unwrap_or(if with_addend { 3 * w } else { 2 * w });
            if entry < 2 * w {
                return Err("implausible relocation entry size".into());
            }
            let offset = self.file_offset(table, size)?;
            for index in 0..size / entry {
                let at = offset + index * entry;
                let patched = self.word(at)?;
                if !range.contains(&patched) {
                    continue;
                }
                let info = self.word(at + w)?;
                let kind = if self.is_64 {
                    info as u32
                } else {
                    (info & 0xff) as u32
                };
                let relocation = if Some(kind) == relative {
                    Relocation::Relative(if with_addend {
                        Some(self.word(at + 2 * w)?)
                    } else {
                        None
                    })
                } else {
                    Relocation::Other(kind)
                };
                relocations.insert(patched, relocation);
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
        let offset = self.elf.file_offset(vaddr, 1)?;
        let rest = self
            .elf
            .slice(offset, (self.elf.bytes.len() as u64) - offset)?;
        let end = rest
            .iter()
            .take(max + 1)
            .position(|b| *b == 0)
            .ok_or_else(|| {
                format!("string at {vaddr:#x} is unterminated or longer than {max} bytes")
            })?;
        self.elf.file_offset(vaddr, end as u64 + 1)?;
        String::from_utf8(rest[..end].to_vec())
            .map_err(|_| format!("string at {vaddr:#x} is not UTF-8"))
    }
}
