//! Mach-O dynamic libraries written byte by byte, shaped as a linker writes a `.dylib`.
//!
//! `object`'s writer only writes `MH_OBJECT` files, which would test the wrong path: a plugin
//! is an `MH_DYLIB` whose data lives in segments with sections, whose exports are in `LC_SYMTAB`
//! (C names with a leading `_`), and whose pointers are dyld rebase entries
//! (`LC_DYLD_INFO_ONLY`), not values. These fixtures have all of that, in the order `ld64`
//! writes it: `__TEXT` (headers, code, C strings), `__DATA_CONST` (the exported data), then
//! `__LINKEDIT` (rebase opcodes, symbols, their names).

pub const CPU_TYPE_X86_64: u32 = 0x0100_0007;
pub const CPU_TYPE_ARM64: u32 = 0x0100_000c;
pub const CPU_TYPE_X86: u32 = 7;

const MH_MAGIC_64: u32 = 0xfeed_facf;
const MH_DYLIB: u32 = 6;
/// `MH_NOUNDEFS | MH_DYLDLINK | MH_TWOLEVEL`, as a linked dylib has.
const MH_FLAGS: u32 = 0x1 | 0x4 | 0x80;
const LC_SEGMENT_64: u32 = 0x19;
const LC_SYMTAB: u32 = 0x2;
const LC_ID_DYLIB: u32 = 0xd;
const LC_DYLD_INFO_ONLY: u32 = 0x8000_0022;
const N_SECT_EXT: u8 = 0x0e | 0x01;
const PAGE: usize = 0x1000;
const HEADER_SIZE: usize = 32;
const SEGMENT_SIZE: usize = 72;
const SECTION_SIZE: usize = 80;

/// This host's CPU as Mach-O names it (x86_64 or arm64).
pub fn host_cpu() -> u32 {
    match std::env::consts::ARCH {
        "aarch64" => CPU_TYPE_ARM64,
        _ => CPU_TYPE_X86_64,
    }
}

/// A CPU this host is not.
pub fn other_cpu() -> u32 {
    if host_cpu() == CPU_TYPE_ARM64 {
        CPU_TYPE_X86_64
    } else {
        CPU_TYPE_ARM64
    }
}

/// The pointer-free format-2 manifest: `AOPLUGIN`, format 2, the payload's length, the payload.
pub fn abi_manifest(payload: &str) -> Vec<u8> {
    let mut bytes = b"AOPLUGIN".to_vec();
    bytes.extend(2u32.to_le_bytes());
    bytes.extend((payload.len() as u32).to_le_bytes());
    bytes.extend(payload.as_bytes());
    bytes
}

/// A format-2 payload naming one plugin.
pub fn payload(kind: &str, name: &str, version: &str) -> String {
    format!(
        r#"{{"abi_level":1,"api":"0.1.7","interface":"0.1.7","kit":null,"needs":[],"plugins":[{{"kind":"{kind}","name":"{name}","version":"{version}","remote":false}}]}}"#
    )
}

/// What one exported data symbol holds.
pub enum Export {
    /// Plain bytes.
    Bytes(Vec<u8>),
    /// The format-1 manifest: magic, format 1, then pointers to C strings (API version, then a
    /// one-entry plugin list of kind, name, version). Each pointer gets a rebase entry.
    PointerManifest {
        kind: String,
        name: String,
        version: String,
    },
}

/// One dylib image for `cpu` exporting each `(name, export)` (C names, without the `_`).
pub fn dylib(cpu: u32, exports: &[(&str, Export)]) -> Vec<u8> {
    let strings_of = |export: &Export| match export {
        Export::Bytes(_) => Vec::new(),
        Export::PointerManifest {
            kind,
            name,
            version,
        } => vec![
            "0.1.7".to_string(),
            kind.clone(),
            name.clone(),
            version.clone(),
        ],
    };
    // __TEXT: header and load commands, a `ret`, then every C string.
    let install_name = b"@rpath/libfixture.dylib\0";
    let id_dylib_size = (24 + install_name.len()).next_multiple_of(8);
    let commands_size = 3 * SEGMENT_SIZE + 3 * SECTION_SIZE + id_dylib_size + 48 + 24;
    let code_offset = HEADER_SIZE + commands_size;
    let cstring_offset = code_offset + 4;
    let mut cstrings = Vec::new();
    let mut string_addresses = Vec::new();
    for (_, export) in exports {
        let addresses: Vec<u64> = strings_of(export)
            .into_iter()
            .map(|text| {
                let at = (cstring_offset + cstrings.len()) as u64;
                cstrings.extend(text.as_bytes());
                cstrings.push(0);
                at
            })
            .collect();
        string_addresses.push(addresses);
    }
    let text_size = (cstring_offset + cstrings.len()).next_multiple_of(PAGE);
    // __DATA_CONST: each export, 8-byte aligned; pointers are link-time addresses, rebased.
    let data_offset = text_size;
    let mut data = Vec::new();
    let mut symbols = Vec::new();
    let mut rebased = Vec::new();
    for ((name, export), strings) in exports.iter().zip(&string_addresses) {
        let address = (data_offset + data.len()) as u64;
        symbols.push((format!("_{name}"), address));
        match export {
            Export::Bytes(bytes) => data.extend(bytes),
            Export::PointerManifest { .. } => {
                let entry = address + 16 + 24;
                data.extend(b"AOPLUGIN");
                data.extend(1u32.to_le_bytes());
                data.extend(0u32.to_le_bytes());
                for pointer in [strings[0], 1, entry, strings[1], strings[2], strings[3]] {
                    if pointer != 1 {
                        rebased.push((data.len()) as u64);
                    }
                    data.extend(pointer.to_le_bytes());
                }
            }
        }
        data.resize(data.len().next_multiple_of(8), 0);
    }
    let data_size = data.len().max(8).next_multiple_of(PAGE);
    // __LINKEDIT: rebase opcodes (pointers in segment 1), symbols, their names.
    let linkedit_offset = data_offset + data_size;
    let mut rebase = vec![0x11]; // REBASE_OPCODE_SET_TYPE_IMM | REBASE_TYPE_POINTER
    for offset in &rebased {
        rebase.push(0x21); // REBASE_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB, segment 1
        uleb(&mut rebase, *offset);
        rebase.push(0x51); // REBASE_OPCODE_DO_REBASE_IMM_TIMES, once
    }
    rebase.push(0x00); // REBASE_OPCODE_DONE
    rebase.resize(rebase.len().next_multiple_of(8), 0);
    let symbol_offset = linkedit_offset + rebase.len();
    let mut names = vec![b' ', 0];
    let mut nlists = Vec::new();
    for (name, address) in &symbols {
        nlists.extend((names.len() as u32).to_le_bytes());
        nlists.push(N_SECT_EXT);
        nlists.push(3); // sections count from 1: __text, __cstring, __const
        nlists.extend(0u16.to_le_bytes());
        nlists.extend(address.to_le_bytes());
        names.extend(name.as_bytes());
        names.push(0);
    }
    let string_offset = symbol_offset + nlists.len();
    let linkedit_size = rebase.len() + nlists.len() + names.len();

    let mut file = Vec::new();
    for word in [
        MH_MAGIC_64,
        cpu,
        if cpu == CPU_TYPE_X86_64 { 3 } else { 0 },
        MH_DYLIB,
        6,
        commands_size as u32,
        MH_FLAGS,
        0,
    ] {
        file.extend(word.to_le_bytes());
    }
    segment(
        &mut file,
        "__TEXT",
        (0, text_size),
        5,
        &[
            ("__text", 0x8000_0400, code_offset, 4),
            ("__cstring", 0x2, cstring_offset, cstrings.len()),
        ],
    );
    segment(
        &mut file,
        "__DATA_CONST",
        (data_offset, data_size),
        3,
        &[("__const", 0, data_offset, data.len())],
    );
    segment(
        &mut file,
        "__LINKEDIT",
        (linkedit_offset, linkedit_size),
        1,
        &[],
    );
    for word in [LC_ID_DYLIB, id_dylib_size as u32, 24, 2, 0x1_0000, 0x1_0000] {
        file.extend(word.to_le_bytes());
    }
    file.extend(install_name);
    file.resize(file.len().next_multiple_of(8), 0);
    for word in [
        LC_DYLD_INFO_ONLY,
        48,
        linkedit_offset as u32,
        rebase.len() as u32,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ] {
        file.extend(word.to_le_bytes());
    }
    for word in [
        LC_SYMTAB,
        24,
        symbol_offset as u32,
        symbols.len() as u32,
        string_offset as u32,
        names.len() as u32,
    ] {
        file.extend(word.to_le_bytes());
    }
    assert_eq!(file.len(), code_offset, "load commands miscounted");
    file.extend([0xc3, 0, 0, 0]); // ret
    file.extend(&cstrings);
    file.resize(data_offset, 0);
    file.extend(&data);
    file.resize(linkedit_offset, 0);
    file.extend(&rebase);
    file.extend(&nlists);
    file.extend(&names);
    file
}

/// A universal file holding each image, page-aligned, for its CPU.
pub fn universal(images: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut file = Vec::new();
    file.extend(0xcafe_babe_u32.to_be_bytes());
    file.extend((images.len() as u32).to_be_bytes());
    let mut offset = PAGE;
    let mut placed = Vec::new();
    for (cpu, image) in images {
        for word in [*cpu, 0, offset as u32, image.len() as u32, 12] {
            file.extend(word.to_be_bytes());
        }
        placed.push((offset, image));
        offset = (offset + image.len()).next_multiple_of(PAGE);
    }
    for (at, image) in placed {
        file.resize(at, 0);
        file.extend(image);
    }
    file
}

/// An `LC_SEGMENT_64` at file (and link-time) offset `range.0`, `range.1` bytes long, with its
/// sections `(name, flags, offset, size)`.
fn segment(
    file: &mut Vec<u8>,
    name: &str,
    range: (usize, usize),
    protection: u32,
    sections: &[(&str, u32, usize, usize)],
) {
    let size = SEGMENT_SIZE + SECTION_SIZE * sections.len();
    file.extend(LC_SEGMENT_64.to_le_bytes());
    file.extend((size as u32).to_le_bytes());
    file.extend(fixed_name(name));
    for word in [
        range.0 as u64,
        range.1 as u64,
        range.0 as u64,
        range.1 as u64,
    ] {
        file.extend(word.to_le_bytes());
    }
    for word in [protection, protection, sections.len() as u32, 0] {
        file.extend(word.to_le_bytes());
    }
    for (section, flags, offset, length) in sections {
        file.extend(fixed_name(section));
        file.extend(fixed_name(name));
        file.extend((*offset as u64).to_le_bytes());
        file.extend((*length as u64).to_le_bytes());
        for word in [*offset as u32, 3, 0, 0, *flags, 0, 0, 0] {
            file.extend(word.to_le_bytes());
        }
    }
}

fn fixed_name(name: &str) -> [u8; 16] {
    let mut field = [0u8; 16];
    field[..name.len()].copy_from_slice(name.as_bytes());
    field
}

fn uleb(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
