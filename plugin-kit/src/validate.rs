//! Validation of the identifiers that end up in file names, tmux targets and git refs.
//!
//! Shared so the host and every plugin refuse the same things with the same words.

use ao_plugin_api::{PluginError, PluginResult};

/// Longest accepted id; tmux session names and path components stay comfortably short.
pub const MAX_ID_LEN: usize = 128;

/// Checks a session or project id: `[A-Za-z0-9_-]+`, at most [`MAX_ID_LEN`] bytes, not starting
/// with `-` (which programs would read as an option). `what` names the value in the error.
pub fn validate_id(what: &str, value: &str) -> PluginResult<()> {
    let problem = if value.is_empty() {
        Some("is empty".to_string())
    } else if value.len() > MAX_ID_LEN {
        Some(format!("is longer than {MAX_ID_LEN} characters"))
    } else if value.starts_with('-') {
        Some("starts with `-`".to_string())
    } else {
        value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
            .map(|c| format!("contains {c:?}"))
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(PluginError::invalid_input(format!(
            "{what} {value:?} {problem}; use only letters, digits, `-` and `_`, not starting with `-`"
        ))),
    }
}

/// Checks a program an agent may run without asking (`LaunchRequest::allowed_commands`): a
/// plain program name (`[A-Za-z0-9._-]+`), so that a permission rule made from it (a prefix of
/// the command line, a pattern) allows that program and nothing broader — `ao-host` never
/// `ao-host-other`, nor anything a shell or a pattern reads specially.
pub fn validate_program_name(program: &str) -> PluginResult<()> {
    if program.is_empty()
        || !program
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(PluginError::invalid_input(format!(
            "{program:?} cannot be allowed as a command: use a program name"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_program_names_may_be_allowed() {
        validate_program_name("ao-host").unwrap();
        validate_program_name("python3.11").unwrap();
        for hostile in [
            "",
            "ao host",
            "*",
            "ao-host;rm",
            "a(b)",
            "a/b",
            "$(x)",
            "a\nb",
        ] {
            assert!(validate_program_name(hostile).is_err(), "{hostile:?}");
        }
    }

    #[test]
    fn accepts_plain_ids() {
        for id in ["app", "app-1", "my_project-orchestrator-12", "A9"] {
            validate_id("session id", id).unwrap();
        }
    }

    #[test]
    fn refuses_anything_a_shell_path_or_option_parser_would_read_specially() {
        for id in [
            "", "a/b", "..", "a b", "a;b", "$(rm)", "a\nb", "-rf", "a.b", "é", "a:b", "=a",
        ] {
            let err = validate_id("session id", id).unwrap_err();
            assert!(err.message().contains("session id"), "{err}");
        }
        assert!(validate_id("id", &"x".repeat(MAX_ID_LEN + 1)).is_err());
    }

    proptest::proptest! {
        /// Fuzzing: any string is accepted exactly when it matches the documented rule, and
        /// whatever is accepted is safe as a file name and a tmux target.
        #[test]
        fn accepts_exactly_the_documented_ids(value in "\\PC{0,140}|[A-Za-z0-9_-]{1,130}") {
            let rule = !value.is_empty()
                && value.len() <= MAX_ID_LEN
                && !value.starts_with('-')
                && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            proptest::prop_assert_eq!(validate_id("id", &value).is_ok(), rule);
            if rule {
                proptest::prop_assert!(!value.contains(['/', '.', ':', ' ', '\n', '$', ';']));
            }
        }
    }
}
