//! What a runtime delivered, judged against what was sent (the host's own delivery check
//! names differences the same way).

/// Where `received` first differs from `sent`, for a message that says what changed.
pub fn first_difference(sent: &str, received: &str) -> String {
    let at = sent
        .bytes()
        .zip(received.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    let around = |text: &str| {
        let mut start = at.saturating_sub(8).min(text.len());
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (at + 16).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        format!("{:?}", &text[start..end])
    };
    format!(
        "{} bytes sent, {} received, first difference at byte {at}: sent {}, received {}",
        sent.len(),
        received.len(),
        around(sent),
        around(received)
    )
}

/// Whether `chunk` (what the probe got for one message) is `text` with only terminal framing
/// around it: an optional line clear (C-u), bracketed-paste markers, and one submit (CR or LF).
pub(crate) fn delivered_intact(chunk: &[u8], text: &str) -> Result<(), String> {
    let mut rest = chunk;
    rest = rest.strip_prefix(b"\x15").unwrap_or(rest);
    let body = match rest.strip_prefix(b"\x1b[200~") {
        Some(pasted) => pasted
            .strip_suffix(b"\x1b[201~\r")
            .or_else(|| pasted.strip_suffix(b"\x1b[201~\n"))
            .ok_or("a bracketed paste without its end marker and one Enter after it")?,
        None => rest
            .strip_suffix(b"\r")
            .or_else(|| rest.strip_suffix(b"\n"))
            .ok_or("no Enter after the message")?,
    };
    if body == text.as_bytes() {
        return Ok(());
    }
    let received = String::from_utf8_lossy(body);
    Err(format!(
        "the message arrived changed ({} bytes sent, {} received; {})",
        text.len(),
        body.len(),
        first_difference(text, &received)
    ))
}

/// The messages in what a probe received for several, each as the runtime submitted it:
/// terminal framing (line clears, bracketed-paste markers) left out, split at each Enter.
pub(crate) fn submitted_lines(received: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(received)
        .replace(['\u{15}'], "")
        .replace("\x1b[200~", "")
        .replace("\x1b[201~", "");
    text.split(['\r', '\n'])
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}
