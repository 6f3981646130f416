//! Making the forge's text fit to type into an agent: a CI log or a review body is written by
//! whoever pushed or commented, so it reaches an agent only as plain, bounded lines (no escape
//! sequence that could redraw a terminal, no control character that a TUI reads as a key).

/// The most lines of a failed check's log an agent gets.
pub const LOG_LINES: usize = 40;
/// The most bytes of a failed check's log an agent gets.
const LOG_BYTES: usize = 4000;
/// A log line longer than this is cut (minified output, progress bars).
const LINE_CHARS: usize = 300;
/// The most bytes of one review or comment body.
const BODY_BYTES: usize = 2000;

/// `text` without terminal escape sequences (CSI, OSC, and two-byte escapes), without bidi
/// controls and zero-width characters, and with every other control character but the line
/// break replaced: tabs by a space, the rest dropped.
/// Carriage returns end a line the way a terminal would draw it (the last rewrite wins).
pub fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters and intermediates up to a final byte in @..~.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC (and DCS, SOS, PM, APC): up to BEL or ST (ESC \).
                Some(']' | 'P' | 'X' | '^' | '_') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                _ => {}
            },
            // C1 CSI, the 8-bit form.
            '\u{9b}' => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            '\n' => out.push('\n'),
            '\r' => {
                // `\r\n` is a line break; a lone `\r` starts the line again.
                if chars.peek() != Some(&'\n') {
                    let start = out.rfind('\n').map_or(0, |at| at + 1);
                    out.truncate(start);
                }
            }
            '\t' => out.push(' '),
            c if c.is_control() || is_invisible_format(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// A bidirectional control or zero-width character: invisible on screen, yet it reorders or
/// hides text an agent reads (a "Trojan Source" review comment looks harmless to the operator).
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{061C}'
            | '\u{200B}'..='\u{200D}'
            | '\u{2060}'
            | '\u{FEFF}'
    )
}

/// The end of a log, plain: its last non-blank lines, each cut to a length, the whole within a
/// byte bound (the last lines are the ones that say what failed).
pub fn log_tail(log: &str) -> String {
    let plain = plain(log);
    let lines: Vec<String> = plain
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.is_empty())
        .map(|line| cut(line, LINE_CHARS))
        .collect();
    let mut kept: Vec<String> = Vec::new();
    let mut bytes = 0;
    for line in lines.into_iter().rev().take(LOG_LINES) {
        bytes += line.len() + 1;
        if bytes > LOG_BYTES {
            break;
        }
        kept.push(line);
    }
    kept.reverse();
    kept.join("\n")
}

/// A review's or comment's body, plain and bounded.
pub fn body(text: &str) -> String {
    let plain = plain(text);
    let trimmed = plain.trim();
    if trimmed.len() <= BODY_BYTES {
        return trimmed.to_string();
    }
    let mut end = BODY_BYTES;
    while !trimmed.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} […]", &trimmed[..end])
}

/// One line of forge text (a name, a title, an author), plain, on one line, bounded.
pub fn line(text: &str) -> String {
    cut(
        &plain(text).split_whitespace().collect::<Vec<_>>().join(" "),
        LINE_CHARS,
    )
}

fn cut(line: &str, chars: usize) -> String {
    match line.char_indices().nth(chars) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_control_characters_never_reach_an_agent() {
        let log = "\u{1b}[31merror\u{1b}[0m: \u{1b}]0;title\u{7}failed\u{1b}]8;;http://x\u{1b}\\link\u{1b}]8;;\u{1b}\\\u{8}\u{3}\u{9b}2Jok\ttab\r\n";
        assert_eq!(plain(log), "error: failedlinkok tab\n");
        // A progress bar's rewrites leave only the last one.
        assert_eq!(plain("10%\r50%\r100%\ndone"), "100%\ndone");
        for c in plain(log).chars() {
            assert!(c == '\n' || !c.is_control(), "{c:?}");
        }
    }

    #[test]
    fn bidi_controls_and_zero_width_characters_never_reach_an_agent() {
        let text = "a\u{202E}b\u{202A}\u{202B}\u{202C}\u{202D}c\u{2066}\u{2067}\u{2068}\u{2069}d\u{200E}\u{200F}\u{061C}e\u{200B}\u{200C}\u{200D}\u{2060}\u{FEFF}f";
        assert_eq!(plain(text), "abcdef");
        assert_eq!(line(text), "abcdef");
        assert_eq!(body(text), "abcdef");
        // Visible non-ASCII text is kept.
        assert_eq!(plain("café — ok"), "café — ok");
    }

    #[test]
    fn a_log_tail_keeps_the_last_lines_within_its_bounds() {
        let log: String = (0..1000).map(|i| format!("line {i}\n\n")).collect();
        let tail = log_tail(&log);
        assert_eq!(tail.lines().count(), LOG_LINES);
        assert!(tail.ends_with("line 999"), "{tail}");
        let wide: String = (0..100)
            .map(|i| format!("{i} {}\n", "x".repeat(5000)))
            .collect();
        let tail = log_tail(&wide);
        assert!(tail.len() <= LOG_BYTES + LOG_LINES * 3, "{}", tail.len());
        assert!(tail.lines().all(|l| l.chars().count() <= LINE_CHARS + 1));
        assert!(tail.lines().last().unwrap().starts_with("99 "));
        assert_eq!(log_tail(""), "");
    }

    #[test]
    fn bodies_and_lines_are_bounded_without_splitting_a_character() {
        let long = "é".repeat(5000);
        let cut = body(&long);
        assert!(cut.len() <= BODY_BYTES + 10 && cut.ends_with("[…]"));
        assert_eq!(line("a\nb\u{1b}[1m  c"), "a b c");
    }
}
