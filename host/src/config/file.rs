//! The file as written: its schema, strict parsing, and the guard that bounds what the YAML
//! parser is asked to do.

use std::{
    collections::BTreeMap, collections::HashMap, ffi::CStr, mem::MaybeUninit, ops::ControlFlow,
};

use serde::Deserialize;

/// The built-in defaults, a config document like any other.
const DEFAULTS: &str = include_str!("defaults.yaml");

/// A config file is a page of settings; anything this big is a mistake or an attack.
pub(super) const MAX_CONFIG_BYTES: usize = 1024 * 1024;
/// Deeper nesting than any real config needs. libyaml's scanner does work proportional to the
/// flow depth for every token, so a document of 50,000 `[` takes seconds to parse.
const MAX_DEPTH: usize = 64;
/// More values than any real config has (a page of settings has hundreds). An alias counts as
/// the values it repeats: serde_yaml expands each one, so `b: [*a, *a, …]` over `a: &a [1, 1, …]`
/// costs the product of their sizes (a 15 kB document took 1.8 s), and so does re-serialising
/// plugin settings.
const MAX_VALUES: u64 = 50_000;

/// A config file, or the built-in defaults, before they are combined. Every key is optional so
/// that a file overrides the defaults key by key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigFile {
    pub data_dir: Option<String>,
    pub port: Option<u16>,
    #[serde(default)]
    pub plugins: PluginsSection,
    #[serde(default)]
    pub defaults: DefaultsSection,
    #[serde(default)]
    pub projects: BTreeMap<String, ProjectSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PluginsSection {
    pub dirs: Option<Vec<String>>,
    #[serde(default)]
    pub config: BTreeMap<String, serde_yaml::Value>,
    #[serde(default)]
    pub pin: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DefaultsSection {
    pub runtime: Option<String>,
    pub workspace: Option<String>,
    pub agent: Option<String>,
    pub ready_timeout_ms: Option<u64>,
    pub call_timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProjectSection {
    pub repo: String,
    pub default_branch: Option<String>,
    pub session_prefix: Option<String>,
    #[serde(default)]
    pub symlinks: Vec<String>,
    #[serde(default)]
    pub post_create: Vec<String>,
    pub agent_config: Option<serde_yaml::Value>,
    pub runtime: Option<String>,
    pub workspace: Option<String>,
    pub agent: Option<String>,
}

impl ConfigFile {
    /// Parses a document strictly; the message names the line and the key, not the file.
    pub fn parse(text: &str) -> Result<Self, String> {
        guard(text)?;
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_yaml::from_str(text).map_err(|e| e.to_string())
    }

    /// The built-in defaults ([`DEFAULTS`]).
    pub fn builtin() -> Self {
        Self::parse(DEFAULTS).expect("defaults.yaml is a valid config (checked by a test)")
    }

    /// `self` with every key `file` sets replaced by the file's value.
    pub fn overlay(mut self, file: ConfigFile) -> Self {
        let (plugins, defaults) = (file.plugins, file.defaults);
        self.data_dir = file.data_dir.or(self.data_dir);
        self.port = file.port.or(self.port);
        self.plugins.dirs = plugins.dirs.or(self.plugins.dirs);
        self.plugins.config.extend(plugins.config);
        self.plugins.pin.extend(plugins.pin);
        self.defaults.runtime = defaults.runtime.or(self.defaults.runtime);
        self.defaults.workspace = defaults.workspace.or(self.defaults.workspace);
        self.defaults.agent = defaults.agent.or(self.defaults.agent);
        self.defaults.ready_timeout_ms =
            defaults.ready_timeout_ms.or(self.defaults.ready_timeout_ms);
        self.defaults.call_timeout_ms = defaults.call_timeout_ms.or(self.defaults.call_timeout_ms);
        self.projects.extend(file.projects);
        self
    }
}

/// Refuses, before serde_yaml sees it, a document that would make parsing slow: more than
/// [`MAX_CONFIG_BYTES`], nested deeper than [`MAX_DEPTH`], or more than [`MAX_VALUES`] values
/// once aliases are expanded. It reads the events of the same YAML parser serde_yaml uses, so
/// quotes, comments and block scalars are understood exactly as the parser understands them.
/// Every limit is checked as events arrive, and libyaml reads at most about 1,024 characters
/// ahead of the event it returns, so a refusal comes after little work. A document the parser
/// rejects is let through, for serde_yaml to report in its own words.
fn guard(text: &str) -> Result<(), String> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err(format!(
            "the file is over {MAX_CONFIG_BYTES} bytes; a config may have at most {MAX_CONFIG_BYTES}"
        ));
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
            Event::Open(anchor) => {
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
            Event::Scalar(anchor) => {
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

/// What [`guard`] needs to know of one parser event; anchors borrow from the event.
enum Event<'a> {
    DocumentStart,
    /// The start of a sequence or mapping, with its anchor.
    Open(Option<&'a [u8]>),
    /// The end of a sequence or mapping.
    Close,
    Scalar(Option<&'a [u8]>),
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
        // NUL-terminated strings owned by the event, which lives until `yaml_event_delete`
        // below, after the last use of the borrowed `Event`.
        let (event, end) = unsafe {
            let anchor =
                |ptr: *const u8| (!ptr.is_null()).then(|| CStr::from_ptr(ptr.cast()).to_bytes());
            match raw.type_ {
                unsafe_libyaml::YAML_DOCUMENT_START_EVENT => (Event::DocumentStart, false),
                unsafe_libyaml::YAML_SEQUENCE_START_EVENT => {
                    (Event::Open(anchor(raw.data.sequence_start.anchor)), false)
                }
                unsafe_libyaml::YAML_MAPPING_START_EVENT => {
                    (Event::Open(anchor(raw.data.mapping_start.anchor)), false)
                }
                unsafe_libyaml::YAML_SEQUENCE_END_EVENT
                | unsafe_libyaml::YAML_MAPPING_END_EVENT => (Event::Close, false),
                unsafe_libyaml::YAML_SCALAR_EVENT => {
                    (Event::Scalar(anchor(raw.data.scalar.anchor)), false)
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

    fn refused(text: &str) -> String {
        ConfigFile::parse(text).expect_err("refused")
    }

    #[test]
    fn the_defaults_are_a_valid_config_that_sets_every_default() {
        let builtin = ConfigFile::builtin();
        assert!(builtin.data_dir.is_some() && builtin.port.is_some());
        let defaults = &builtin.defaults;
        assert!(
            defaults.runtime.is_some() && defaults.workspace.is_some() && defaults.agent.is_some()
        );
        assert!(defaults.ready_timeout_ms.is_some() && defaults.call_timeout_ms.is_some());
        assert!(builtin.projects.is_empty() && builtin.plugins.config.is_empty());
    }

    #[test]
    fn a_file_overrides_the_defaults_key_by_key() {
        let file = ConfigFile::parse(
            "defaults: { agent: shell }\nplugins: { pin: { x: \"sha256:0\" } }\n",
        )
        .unwrap();
        let merged = ConfigFile::builtin().overlay(file);
        let builtin = ConfigFile::builtin();
        assert_eq!(merged.defaults.agent.as_deref(), Some("shell"));
        assert_eq!(merged.defaults.runtime, builtin.defaults.runtime);
        assert_eq!(merged.port, builtin.port);
        assert_eq!(merged.plugins.pin.len(), 1);
    }

    #[test]
    fn quotes_comments_and_block_scalars_do_not_hide_or_fake_nesting() {
        let deep =
            |prefix: &str| format!("{prefix}port: {}1{}\n", "[".repeat(100), "]".repeat(100));
        // A lone apostrophe made the old hand-written scanner think a quote opened.
        assert!(refused(&deep("data_dir: it's\n")).contains("line 2: nested deeper than 64"));
        assert!(refused(&deep("# it's [[[ {{{ \"\n")).contains("nested deeper than 64"));
        assert!(refused(&deep("data_dir: \"a ' [ b\"\n")).contains("nested deeper than 64"));
        assert!(
            refused(&format!("a: {}1{}\n", "{a: ".repeat(70), "}".repeat(70)))
                .contains("nested deeper than 64")
        );
        let block = (0..70)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect::<String>();
        assert!(
            refused(&block).contains("nested deeper than 64"),
            "{}",
            refused(&block)
        );
        // Brackets that are text, not nesting.
        let brackets = "[".repeat(500);
        for text in [
            format!("data_dir: \"{brackets}\"\n"),
            format!("data_dir: '{brackets} it''s'\n"),
            format!("port: 1 # {brackets}\n"),
            format!("plugins:\n  config:\n    x:\n      a: |\n        {brackets}\n      b: >\n        {brackets}\n"),
            format!("data_dir: a{brackets}\n"),
        ] {
            ConfigFile::parse(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        }
        // Nesting up to the limit is fine.
        ConfigFile::parse(&format!(
            "plugins: {{ config: {{ x: {}1{} }} }}\n",
            "[".repeat(61),
            "]".repeat(61)
        ))
        .unwrap();
    }

    #[test]
    fn huge_documents_and_alias_expansion_are_refused() {
        assert!(refused(&format!("# {}\n", "x".repeat(2 * 1024 * 1024))).contains("at most"));
        let product = format!(
            "plugins:\n  config:\n    x:\n      a: &a [{}]\n      b: [{}]\n",
            ["1"; 300].join(","),
            ["*a"; 300].join(",")
        );
        assert!(
            refused(&product).contains("more than 50000 values"),
            "{}",
            refused(&product)
        );
        let recursive = "plugins:\n  config:\n    x: &a [1, *a]\n";
        assert!(refused(recursive).contains("alias *a repeats the value that contains it"));
        // A few aliases are fine.
        ConfigFile::parse("plugins:\n  config:\n    x: { a: &a [1, 2], b: *a, c: *a }\n").unwrap();
    }

    #[test]
    fn parse_errors_are_left_to_serde_yaml() {
        let err = refused("port: [1\n");
        assert!(!err.contains("nested"), "{err}");
        assert!(refused("port: *nowhere\n").contains("unknown anchor"));
    }
}
