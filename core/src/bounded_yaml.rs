//! YAML from files ao-host does not write alone (the config, session records an agent or a
//! person may have edited), bounded before it is parsed: serde_yaml's cost grows with nesting
//! depth and alias expansion far faster than with size, so a small hostile file could stall
//! every command that reads it.

use std::{
    collections::{HashMap, HashSet},
    ffi::CStr,
    mem::MaybeUninit,
    ops::ControlFlow,
};

/// Deeper nesting than any real config or record needs. libyaml's scanner does work proportional to the
/// flow depth for every token, so a document of 50,000 `[` takes seconds to parse.
pub(crate) const MAX_DEPTH: usize = 64;
/// More values than any real config has (a page of settings has hundreds). An alias counts as
/// the values it repeats: serde_yaml expands each one, so `b: [*a, *a, …]` over `a: &a [1, 1, …]`
/// costs the product of their sizes (a 15 kB document took 1.8 s), and so does re-serialising
/// plugin settings.
pub(crate) const MAX_VALUES: u64 = 50_000;

/// Refuses, before serde_yaml sees it, a document that would make parsing slow: more than
/// `max_bytes`, nested deeper than [`MAX_DEPTH`], or more than [`MAX_VALUES`] values
/// once aliases are expanded. It reads the events of the same YAML parser serde_yaml uses, so
/// quotes, comments and block scalars are understood exactly as the parser understands them.
/// Every limit is checked as events arrive, and libyaml reads at most about 1,024 characters
/// ahead of the event it returns, so a refusal comes after little work. A document the parser
/// rejects is let through, for serde_yaml to report in its own words.
/// `what` names the document in the size message ("a config may have at most …").
pub fn check(text: &str, max_bytes: usize, what: &str) -> Result<(), String> {
    if text.len() > max_bytes {
        return Err(format!(
            "the file is over {max_bytes} bytes; {what} may have at most {max_bytes}"
        ));
    }
    if plainly_small(text) {
        return Ok(());
    }
    let mut depth = 0usize;
    let mut values = 0u64;
    // Open collections: their anchor and the value count when they opened.
    let mut open: Vec<(Option<Vec<u8>>, u64)> = Vec::new();
    // Expanded size of each anchored value; `None` while the value is still open.
    let mut anchors: HashMap<Vec<u8>, Option<u64>> = HashMap::new();
    let outcome = for_each_event(text, |event, line| {
        match event {
            Event::DocumentStart => {
                anchors.clear();
                values += 1;
            }
            Event::Open { anchor, .. } => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return ControlFlow::Break(format!(
                        "line {line}: nested deeper than {MAX_DEPTH} levels"
                    ));
                }
                if let Some(anchor) = anchor {
                    anchors.insert(anchor.to_vec(), None);
                }
                open.push((anchor.map(<[u8]>::to_vec), values));
                values += 1;
            }
            Event::Close => {
                depth = depth.saturating_sub(1);
                if let Some((Some(anchor), start)) = open.pop() {
                    anchors.insert(anchor, Some(values - start));
                }
            }
            Event::Scalar { anchor, .. } => {
                if let Some(anchor) = anchor {
                    anchors.insert(anchor.to_vec(), Some(1));
                }
                values += 1;
            }
            Event::Alias(anchor) => match anchors.get(anchor) {
                Some(Some(size)) => values += size,
                Some(None) => {
                    return ControlFlow::Break(format!(
                        "line {line}: alias *{} repeats the value that contains it",
                        String::from_utf8_lossy(anchor)
                    ))
                }
                // Unknown anchors are serde_yaml's to report.
                None => values += 1,
            },
            Event::Other => values += 1,
        }
        if values > MAX_VALUES {
            return ControlFlow::Break(format!(
                "line {line}: more than {MAX_VALUES} values (an alias counts as the values it repeats)"
            ));
        }
        ControlFlow::Continue(())
    });
    match outcome {
        ControlFlow::Break(message) => Err(message),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// The first key written twice in one mapping, with its 1-based line: serde_yaml names no line
/// for a struct's `duplicate field`, and a map (`projects:`) silently keeps the last of the two,
/// losing the first. Only plain keys are compared; a document the parser rejects has none.
pub(crate) fn duplicate_key(text: &str) -> Option<(u64, String)> {
    /// An open collection: for a mapping, its keys so far; and how many nodes it holds.
    struct Open {
        keys: Option<HashSet<Vec<u8>>>,
        nodes: usize,
    }
    let mut open: Vec<Open> = Vec::new();
    let outcome = for_each_event(text, |event, line| {
        let scalar = match event {
            Event::Open { mapping, .. } => {
                open.push(Open {
                    keys: mapping.then(HashSet::new),
                    nodes: 0,
                });
                return ControlFlow::Continue(());
            }
            Event::Close => {
                open.pop();
                None
            }
            Event::Scalar { value, .. } => Some(value),
            Event::Alias(_) => None,
            Event::DocumentStart | Event::Other => return ControlFlow::Continue(()),
        };
        let Some(parent) = open.last_mut() else {
            return ControlFlow::Continue(());
        };
        let is_key = parent.nodes % 2 == 0;
        parent.nodes += 1;
        if let (Some(keys), Some(key), true) = (&mut parent.keys, scalar, is_key) {
            if !keys.insert(key.to_vec()) {
                return ControlFlow::Break((line, String::from_utf8_lossy(key).into_owned()));
            }
        }
        ControlFlow::Continue(())
    });
    match outcome {
        ControlFlow::Break(found) => Some(found),
        ControlFlow::Continue(()) => None,
    }
}

/// Documents no larger than this may skip the event pass when [`plainly_small`] says so.
const QUICK_BYTES: usize = 64 * 1024;

/// Whether one pass over the bytes proves `text` within every limit, so the event pass (which
/// costs as much as parsing) can be skipped — `session ls` reads thousands of small records.
///
/// Sound because each limit has a byte-level bound: without `*` there is no alias to expand;
/// within [`QUICK_BYTES`] there are fewer values than bytes / 2 < [`MAX_VALUES`]; and nesting
/// is at most one level per `[` or `{` plus two per column of indentation (a block mapping and
/// a sequence under it may share a column), which is what is checked against [`MAX_DEPTH`].
/// Anything else takes the exact path.
fn plainly_small(text: &str) -> bool {
    if text.len() > QUICK_BYTES || text.contains('*') {
        return false;
    }
    let openers = text.bytes().filter(|b| matches!(b, b'[' | b'{')).count();
    let indent = text
        .lines()
        .map(|line| line.len() - line.trim_start_matches([' ', '\t']).len())
        .max()
        .unwrap_or(0);
    openers + 2 * indent <= MAX_DEPTH
}

/// What [`check`] needs to know of one parser event; anchors borrow from the event.
enum Event<'a> {
    DocumentStart,
    /// The start of a sequence or mapping, with its anchor.
    Open {
        anchor: Option<&'a [u8]>,
        mapping: bool,
    },
    /// The end of a sequence or mapping.
    Close,
    Scalar {
        anchor: Option<&'a [u8]>,
        value: &'a [u8],
    },
    Alias(&'a [u8]),
    /// Stream and document boundaries (other than a document's start).
    Other,
}

/// Streams libyaml's events over `text` to `visit`, with the event's 1-based line, until the
/// stream ends, the parser fails (silently: serde_yaml reports it) or `visit` breaks.
fn for_each_event<B>(
    text: &str,
    mut visit: impl FnMut(Event<'_>, u64) -> ControlFlow<B>,
) -> ControlFlow<B> {
    // Boxed: `yaml_parser_set_input_string` stores a pointer to the parser in the parser, so it
    // must not move.
    let mut parser = Box::new(MaybeUninit::<unsafe_libyaml::yaml_parser_t>::uninit());
    let parser = parser.as_mut_ptr();
    // SAFETY: `parser` points to writable memory for a `yaml_parser_t` that outlives every use
    // below; initialisation overwrites all of it. (It cannot fail in this port; if it did, it
    // would own nothing and the document would be left to serde_yaml.)
    if unsafe { unsafe_libyaml::yaml_parser_initialize(parser) }.fail {
        return ControlFlow::Continue(());
    }
    // SAFETY: the parser is initialised; `text` is borrowed for this whole function, and the
    // parser only reads `text.len()` bytes from it before `yaml_parser_delete` below.
    unsafe {
        unsafe_libyaml::yaml_parser_set_input_string(parser, text.as_ptr(), text.len() as u64)
    };
    let mut outcome = ControlFlow::Continue(());
    loop {
        let mut raw = MaybeUninit::<unsafe_libyaml::yaml_event_t>::uninit();
        // SAFETY: the parser is initialised and has input; on success `raw` is initialised.
        if unsafe { unsafe_libyaml::yaml_parser_parse(parser, raw.as_mut_ptr()) }.fail {
            break;
        }
        // SAFETY: initialised by the successful parse just above.
        let raw = unsafe { raw.assume_init_mut() };
        // SAFETY: the union field read is the one `type_` says is set; anchors are null or
        // NUL-terminated strings, and a scalar's value is `length` bytes, owned by the event, which lives until `yaml_event_delete`
        // below, after the last use of the borrowed `Event`.
        let (event, end) = unsafe {
            let anchor =
                |ptr: *const u8| (!ptr.is_null()).then(|| CStr::from_ptr(ptr.cast()).to_bytes());
            match raw.type_ {
                unsafe_libyaml::YAML_DOCUMENT_START_EVENT => (Event::DocumentStart, false),
                unsafe_libyaml::YAML_SEQUENCE_START_EVENT => (
                    Event::Open {
                        anchor: anchor(raw.data.sequence_start.anchor),
                        mapping: false,
                    },
                    false,
                ),
                unsafe_libyaml::YAML_MAPPING_START_EVENT => (
                    Event::Open {
                        anchor: anchor(raw.data.mapping_start.anchor),
                        mapping: true,
                    },
                    false,
                ),
                unsafe_libyaml::YAML_SEQUENCE_END_EVENT
                | unsafe_libyaml::YAML_MAPPING_END_EVENT => (Event::Close, false),
                unsafe_libyaml::YAML_SCALAR_EVENT => {
                    let scalar = &raw.data.scalar;
                    let value = if scalar.value.is_null() {
                        &[][..]
                    } else {
                        std::slice::from_raw_parts(scalar.value, scalar.length as usize)
                    };
                    (
                        Event::Scalar {
                            anchor: anchor(scalar.anchor),
                            value,
                        },
                        false,
                    )
                }
                unsafe_libyaml::YAML_ALIAS_EVENT => (
                    Event::Alias(anchor(raw.data.alias.anchor).unwrap_or_default()),
                    false,
                ),
                unsafe_libyaml::YAML_STREAM_END_EVENT => (Event::Other, true),
                _ => (Event::Other, false),
            }
        };
        outcome = visit(event, raw.start_mark.line + 1);
        // SAFETY: `raw` was filled by `yaml_parser_parse` and is deleted once; nothing borrowed
        // from it is used after this.
        unsafe { unsafe_libyaml::yaml_event_delete(raw) };
        if end || outcome.is_break() {
            break;
        }
    }
    // SAFETY: initialised above and deleted once; no event of it is alive.
    unsafe { unsafe_libyaml::yaml_parser_delete(parser) };
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quick_path_takes_only_documents_that_cannot_reach_a_limit() {
        assert!(plainly_small(
            "id: app-1\ntask: \"fix [the] {thing}\"\nnote: null\n"
        ));
        assert!(const { QUICK_BYTES / 2 < MAX_VALUES as usize });
        for text in [
            format!("a: {}", "[".repeat(MAX_DEPTH + 1)),
            format!("{}a: 1\n", " ".repeat(MAX_DEPTH / 2 + 1)),
            "a: &x [1]\nb: *x\n".to_string(),
            format!("a: \"{}\"\n", "x".repeat(QUICK_BYTES)),
        ] {
            assert!(!plainly_small(&text), "{text:.60}");
        }
        // What the quick path lets through, the exact one accepts too.
        check("a:\n  - b: [1, {c: 2}]\n", 1024, "a test").unwrap();
    }
}
