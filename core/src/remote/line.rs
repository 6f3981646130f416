//! A command line that reaches `sh` on the host whatever the login shell there is.
//!
//! sshd hands the command to the user's login shell (`$SHELL -c LINE`), and login shells do not
//! agree on syntax: fish reads `\\` and `\'` inside single quotes, tcsh expands `!` there and
//! refuses a newline, neither parses `if …; then …; fi`. So a line (always meant for a POSIX
//! shell, see `ao_plugin_kit::remote`) travels as
//! `exec /bin/sh -c 'eval "$(printf "$0")"' 'ENC'`, where ENC is the line with every byte those
//! shells could read differently written as a three-digit octal escape (`\ooo`): every login
//! shell passes ENC to `sh` untouched, and `printf` there gives back the line byte for byte.

/// The longest command a host's login shell accepts as its one `-c` argument (Linux's
/// `MAX_ARG_STRLEN`, 32 pages, less the closing NUL).
pub(crate) const MAX_COMMAND_LEN: usize = 32 * 4096 - 1;

/// What every login shell reads the same way; the rest is escaped.
/// `/bin/sh` by its path: a `PATH` without it (or without anything) must still run the line,
/// whose own programs are then reported missing by name.
const PROLOGUE: &str = "exec /bin/sh -c 'eval \"$(printf \"$0\")\"' '";

/// Why a line cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the command is {len} bytes once made safe for any login shell, over the {MAX_COMMAND_LEN} \
     a command line on the host may have; large inputs go on stdin, not in the command"
)]
pub(crate) struct TooLong {
    pub len: usize,
}

/// `line` as a command every login shell runs by handing it to `sh` unchanged.
pub(crate) fn login_safe(line: &[u8]) -> Result<String, TooLong> {
    let mut command = String::with_capacity(PROLOGUE.len() + line.len() + 1);
    command.push_str(PROLOGUE);
    for (at, &byte) in line.iter().enumerate() {
        if passes_as_is(byte) && !(at == 0 && byte == b'-') {
            command.push(byte as char);
        } else {
            // A leading `-` would read as an option of `printf`.
            command.push_str(&format!("\\{byte:03o}"));
        }
    }
    command.push('\'');
    if command.len() > MAX_COMMAND_LEN {
        return Err(TooLong { len: command.len() });
    }
    Ok(command)
}

/// Printable ASCII that no login shell reads inside single quotes and `printf` takes as itself:
/// not `'` (ends the quote), `\` (fish's escape, printf's), `!` (tcsh's history), `%` (printf's
/// directive). Control bytes (tcsh refuses a newline in quotes) and non-ASCII bytes (old shells
/// take the eighth bit for their own) are escaped too.
fn passes_as_is(byte: u8) -> bool {
    (0x20..0x7f).contains(&byte) && !b"'\\!%".contains(&byte)
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};

    use super::*;

    /// The login shells a host may have; all of them must be present under `CI`.
    const SHELLS: [&str; 6] = ["sh", "bash", "dash", "zsh", "fish", "tcsh"];

    /// Runs `command` as sshd would, `SHELL -c COMMAND`; `None` when that shell is not installed
    /// (allowed outside CI only).
    fn run_by(shell: &str, command: &str) -> Option<std::process::Output> {
        match Command::new(shell)
            .args(["-c", command])
            .env("HOME", std::env::temp_dir())
            .stdin(Stdio::null())
            .output()
        {
            Ok(output) => Some(output),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "{shell} is required under CI (.ci/run installs it)"
                );
                eprintln!("skipped {shell}: not installed");
                None
            }
            Err(e) => panic!("running {shell}: {e}"),
        }
    }

    /// Every byte but NUL, in lines each login shell would otherwise read its own way.
    #[test]
    fn every_login_shell_hands_the_line_to_sh_byte_for_byte() {
        let every_byte: Vec<u8> = (1..=255u8).collect();
        let mut printed = b"printf '%s' ".to_vec();
        printed.extend(ao_plugin_kit::shell::join(&[String::from_utf8_lossy(&every_byte)]).bytes());
        let lines: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (printed, String::from_utf8_lossy(&every_byte).into_owned().into_bytes()),
            (
                b"if command -v sh >/dev/null 2>&1; then echo 'it'\\''s' \"$((1+2))\" a\\b !x %s; fi".to_vec(),
                b"it's 3 ab !x %s\n".to_vec(),
            ),
            (b"--version 2>/dev/null; echo ok".to_vec(), b"ok\n".to_vec()),
            (b"echo one\necho two\n\n\n".to_vec(), b"one\ntwo\n".to_vec()),
            (b"cat <<'EOF'\n$HOME `x` \\\nEOF".to_vec(), b"$HOME `x` \\\n".to_vec()),
            (b"".to_vec(), b"".to_vec()),
            (b"false || exit 7".to_vec(), b"".to_vec()),
        ];
        for shell in SHELLS {
            for (line, expected) in &lines {
                let command = login_safe(line).unwrap();
                let Some(output) = run_by(shell, &command) else {
                    break;
                };
                let status = if line.ends_with(b"exit 7") { 7 } else { 0 };
                assert_eq!(
                    (
                        output.status.code(),
                        String::from_utf8_lossy(&output.stdout)
                    ),
                    (Some(status), String::from_utf8_lossy(expected)),
                    "{shell} ran {:?} as {command:?}: {}",
                    String::from_utf8_lossy(line),
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
    }

    #[test]
    fn a_100_kb_line_goes_through_and_a_longer_one_is_refused_with_the_reason() {
        let text = format!(
            "{} and 'quoted' once; ",
            "an ordinary line of text".repeat(40)
        )
        .repeat(105);
        let line = format!("printf '%s' {}", ao_plugin_kit::shell::join(&[&text]));
        assert!(line.len() >= 100_000);
        let command = login_safe(line.as_bytes()).unwrap();
        if let Some(output) = run_by("sh", &command) {
            assert_eq!(output.stdout, text.as_bytes());
        }
        let error = login_safe("'".repeat(40_000).as_bytes()).unwrap_err();
        assert_eq!(error.len, PROLOGUE.len() + 4 * 40_000 + 1);
        assert!(error.to_string().contains("stdin"), "{error}");
    }
}
