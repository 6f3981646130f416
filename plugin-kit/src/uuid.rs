//! Random UUIDs, the conversation ids several agent CLIs accept from the caller
//! (`claude --session-id`, `gemini --session-id`): chosen at spawn, stored in the session record,
//! and given back to resume the conversation.

use ao_plugin_api::{PluginError, PluginResult};

/// A random (version 4) UUID, lower-case, from the kernel's random source.
pub fn new_v4() -> PluginResult<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| std::io::Read::read_exact(&mut random, &mut bytes))
        .map_err(|e| PluginError::failed(format!("reading /dev/urandom: {e}")))?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// Whether `id` is a UUID in its 36-character text form: check a stored id with it before it
/// goes on a command line.
pub fn is_uuid(id: &str) -> bool {
    id.len() == 36
        && id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The conversation a launch continues: `resume` when given (refused unless it is a UUID, the
/// only thing such a CLI's resume flag is ever given; `cli` names it in the error), else a new
/// id. The flag is the caller's: `(id, resumed)`.
pub fn resume_or_new(resume: Option<&str>, cli: &str) -> PluginResult<(String, bool)> {
    match resume {
        Some(id) if is_uuid(id) => Ok((id.to_string(), true)),
        Some(id) => Err(PluginError::invalid_input(format!(
            "{id:?} is not a {cli} conversation id (a UUID)"
        ))),
        None => Ok((new_v4()?, false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_distinct_version_4_uuids() {
        let a = new_v4().unwrap();
        let b = new_v4().unwrap();
        assert!(is_uuid(&a) && is_uuid(&b));
        assert_ne!(a, b);
        assert_eq!(&a[14..15], "4");
        assert!("89ab".contains(&a[19..20]));
        for bad in ["", "not-a-uuid", "--resume", &a[..35], &format!("{a}0")] {
            assert!(!is_uuid(bad), "{bad:?}");
        }
    }
}
