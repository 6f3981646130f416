//! Quoting argv into one POSIX shell command line, for the one place a shell cannot be avoided:
//! an agent's own settings that take a command string (Claude Code's hooks run theirs through
//! `sh -c`). Everything else runs programs by argv ([`crate::program`]).

/// `argv` as a command line that `sh -c` splits back into exactly these arguments: each one in
/// single quotes, a quote inside written as `'\''`. Nothing in an argument is ever interpreted.
pub fn join(argv: &[impl AsRef<str>]) -> String {
    argv.iter()
        .map(|arg| quote(arg.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sh_splits_the_line_back_into_the_same_arguments() {
        let argv = [
            "/path with space/ao-host",
            "",
            "it's",
            "$(touch /tmp/ao-shell-quote-pwned)",
            "`id`",
            "a\nb\tc",
            "~user",
            "*",
            "--flag=x;y|z&",
            "ünï 🎉",
            "'",
        ];
        let line = join(&argv);
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("for a in {line}; do printf '%s\\0' \"$a\"; done"))
            .output()
            .unwrap();
        assert!(output.status.success());
        let back: Vec<String> = String::from_utf8(output.stdout)
            .unwrap()
            .split_terminator('\0')
            .map(String::from)
            .collect();
        assert_eq!(back, argv);
        assert!(!std::path::Path::new("/tmp/ao-shell-quote-pwned").exists());
    }

    #[test]
    fn plain_words_stay_readable() {
        assert_eq!(
            join(&["ao-host", "hook", "--status", "idle"]),
            "ao-host hook --status idle"
        );
    }
}
