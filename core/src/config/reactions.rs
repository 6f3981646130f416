//! What a project's pull requests are watched with (`scm:`, `scm_repository:`), what the watcher
//! does about what it sees (`reactions:`), and how often it looks (the top-level `watch:`).
//!
//! Every key is optional and defaults to what the design shows; a key that is not known, or a
//! value that cannot be meant, is an error naming the field and the fix, never ignored.

use serde::Deserialize;

/// `projects.<id>.reactions` as written: every reaction optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReactionsSection {
    pub ci_failed: Option<SendSection>,
    pub changes_requested: Option<SendSection>,
    pub review_comments: Option<SendSection>,
    pub merge_conflict: Option<SendSection>,
    pub approved_and_green: Option<ApprovedSection>,
    pub merged: Option<MergedSection>,
    pub closed: Option<NotifySection>,
}

/// A reaction that hands the agent something to fix.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SendSection {
    pub action: Option<String>,
    pub max_sends: Option<u32>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApprovedSection {
    pub action: Option<String>,
    pub auto_merge: Option<bool>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MergedSection {
    pub action: Option<String>,
    pub cleanup: Option<bool>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NotifySection {
    pub action: Option<String>,
}

/// The top-level `watch:` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WatchSection {
    pub poll_secs: Option<u64>,
    pub reviews_secs: Option<u64>,
}

/// What a reaction does when its facts are new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReactionAction {
    /// Type it to the agent (at an idle prompt), up to `max_sends` times, then notify.
    Send,
    /// Run `notify:` only.
    Notify,
    /// Nothing.
    Off,
}

impl ReactionAction {
    fn parse(field: &str, value: &str, allowed: &[Self]) -> Result<Self, String> {
        let action = match value {
            "send" => Self::Send,
            "notify" => Self::Notify,
            "off" => Self::Off,
            _ => return Err(Self::refusal(field, value, allowed)),
        };
        if allowed.contains(&action) {
            Ok(action)
        } else {
            Err(Self::refusal(field, value, allowed))
        }
    }

    fn refusal(field: &str, value: &str, allowed: &[Self]) -> String {
        let names: Vec<&str> = allowed.iter().map(|a| a.as_str()).collect();
        format!(
            "{field}.action: {value:?} is not an action here; use one of {}",
            names.join(", ")
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Send => "send",
            Self::Notify => "notify",
            Self::Off => "off",
        }
    }
}

/// A reaction that sends the agent what to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendReaction {
    pub action: ReactionAction,
    /// Messages per session at most; after that the operator is notified once instead.
    pub max_sends: u32,
}

/// What the watcher does about a project's pull requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reactions {
    pub ci_failed: SendReaction,
    pub changes_requested: SendReaction,
    pub review_comments: SendReaction,
    pub merge_conflict: SendReaction,
    pub approved_and_green: ReactionAction,
    /// Merge an approved, green pull request at the head that was seen green.
    pub auto_merge: bool,
    pub merged: ReactionAction,
    /// Kill a merged session and remove its worktree (never one holding uncommitted work).
    pub cleanup: bool,
    pub closed: ReactionAction,
}

impl Default for Reactions {
    fn default() -> Self {
        let send = |max_sends| SendReaction {
            action: ReactionAction::Send,
            max_sends,
        };
        Self {
            ci_failed: send(3),
            changes_requested: send(3),
            review_comments: send(3),
            merge_conflict: send(2),
            approved_and_green: ReactionAction::Notify,
            auto_merge: false,
            merged: ReactionAction::Notify,
            cleanup: true,
            closed: ReactionAction::Notify,
        }
    }
}

/// The most messages of one kind a session may get: more is a loop, not help.
const MAX_SENDS_LIMIT: u32 = 100;

impl Reactions {
    /// `reactions` of project `id`, over the defaults.
    pub(super) fn from_section(id: &str, section: ReactionsSection) -> Result<Self, String> {
        use ReactionAction::{Notify, Off, Send};
        let defaults = Self::default();
        let field = |name: &str| format!("projects.{id}.reactions.{name}");
        let send = |name: &str, given: Option<SendSection>, default: SendReaction| {
            let Some(given) = given else {
                return Ok(default);
            };
            let field = field(name);
            let action = match given.action {
                Some(value) => ReactionAction::parse(&field, &value, &[Send, Notify, Off])?,
                None => default.action,
            };
            let max_sends = given.max_sends.unwrap_or(default.max_sends);
            if !(1..=MAX_SENDS_LIMIT).contains(&max_sends) {
                return Err(format!(
                    "{field}.max_sends: {max_sends} is out of range; give 1 to {MAX_SENDS_LIMIT} (after that many messages the operator is notified instead), or set `action: off`"
                ));
            }
            Ok(SendReaction { action, max_sends })
        };
        let notify = |name: &str, given: Option<String>, default: ReactionAction| match given {
            Some(value) => ReactionAction::parse(&field(name), &value, &[Notify, Off]),
            None => Ok(default),
        };
        let approved = section.approved_and_green.unwrap_or_default();
        let merged = section.merged.unwrap_or_default();
        Ok(Self {
            ci_failed: send("ci_failed", section.ci_failed, defaults.ci_failed)?,
            changes_requested: send(
                "changes_requested",
                section.changes_requested,
                defaults.changes_requested,
            )?,
            review_comments: send(
                "review_comments",
                section.review_comments,
                defaults.review_comments,
            )?,
            merge_conflict: send(
                "merge_conflict",
                section.merge_conflict,
                defaults.merge_conflict,
            )?,
            approved_and_green: notify(
                "approved_and_green",
                approved.action,
                defaults.approved_and_green,
            )?,
            auto_merge: approved.auto_merge.unwrap_or(defaults.auto_merge),
            merged: notify("merged", merged.action, defaults.merged)?,
            cleanup: merged.cleanup.unwrap_or(defaults.cleanup),
            closed: notify(
                "closed",
                section.closed.unwrap_or_default().action,
                defaults.closed,
            )?,
        })
    }
}

/// A project's forge: which `scm` plugin, which repository, what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScmConfig {
    /// The plugin of kind `scm` (its settings under `plugins.config.<name>`).
    pub plugin: String,
    /// `owner/name` on the forge; `None`: the plugin reads the clone's `origin`.
    pub repository: Option<String>,
    pub reactions: Reactions,
}

impl ScmConfig {
    /// `scm`, `scm_repository` and `reactions` of project `id`: the last two mean nothing
    /// without the first.
    pub(super) fn from_sections(
        id: &str,
        plugin: Option<String>,
        repository: Option<String>,
        reactions: Option<ReactionsSection>,
    ) -> Result<Option<Self>, String> {
        let Some(plugin) = plugin else {
            let orphan = match (&repository, &reactions) {
                (Some(_), _) => Some("scm_repository"),
                (None, Some(_)) => Some("reactions"),
                (None, None) => None,
            };
            return match orphan {
                Some(key) => Err(format!(
                    "projects.{id}.{key} is set but projects.{id}.scm is not; name the scm plugin that watches the project's pull requests (e.g. `scm: github`), or remove {key}"
                )),
                None => Ok(None),
            };
        };
        ao_plugin_kit::validate::validate_id("scm plugin name", &plugin)
            .map_err(|e| format!("projects.{id}.scm: {}", e.message()))?;
        if let Some(slug) = &repository {
            let parts: Vec<&str> = slug.split('/').collect();
            let plain = |part: &&str| {
                !part.is_empty()
                    && part != &"."
                    && part != &".."
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            };
            if parts.len() < 2 || !parts.iter().all(plain) {
                return Err(format!(
                    "projects.{id}.scm_repository: {slug:?} is not a repository name; write it as the forge does, `owner/name` (GitLab: `group/sub/name`), or leave it out to read the clone's origin"
                ));
            }
        }
        Ok(Some(Self {
            plugin,
            repository,
            reactions: Reactions::from_section(id, reactions.unwrap_or_default())?,
        }))
    }
}

/// How often the watcher asks the forge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchConfig {
    /// Pull requests and checks, every this many seconds.
    pub poll_secs: u64,
    /// Reviews (costlier, slower to change), every this many seconds.
    pub reviews_secs: u64,
}

/// The design's promise: what a listing shows is at most this old while a watcher runs.
const MAX_STALE_SECS: u64 = 300;

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            poll_secs: 30,
            reviews_secs: 120,
        }
    }
}

impl WatchConfig {
    pub(super) fn from_section(section: WatchSection) -> Result<Self, String> {
        let defaults = Self::default();
        let check = |name: &str, value: Option<u64>, default: u64| {
            let value = value.unwrap_or(default);
            if (1..=MAX_STALE_SECS).contains(&value) {
                Ok(value)
            } else {
                Err(format!(
                    "watch.{name}: {value} is out of range; give 1 to {MAX_STALE_SECS} seconds (default {default})"
                ))
            }
        };
        Ok(Self {
            poll_secs: check("poll_secs", section.poll_secs, defaults.poll_secs)?,
            reviews_secs: check("reviews_secs", section.reviews_secs, defaults.reviews_secs)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("/etc/ao/ao-rs.yaml")).map_err(|e| e.to_string())
    }

    fn project(body: &str) -> Result<Option<ScmConfig>, String> {
        parse(&format!("projects:\n  app:\n    repo: /a\n{body}"))
            .map(|config| config.projects["app"].scm.clone())
    }

    #[test]
    fn reactions_default_to_the_designs_table_and_each_key_overrides_one_value() {
        assert_eq!(project("").unwrap(), None);
        let scm = project("    scm: github\n").unwrap().unwrap();
        assert_eq!(scm.plugin, "github");
        assert_eq!(scm.repository, None);
        assert_eq!(scm.reactions, Reactions::default());
        assert_eq!(scm.reactions.ci_failed.max_sends, 3);
        assert_eq!(scm.reactions.merge_conflict.max_sends, 2);
        assert!(scm.reactions.cleanup && !scm.reactions.auto_merge);
        let scm = project(
            "    scm: github\n    scm_repository: acme/app\n    reactions:\n      ci_failed: { max_sends: 1 }\n      merged: { cleanup: false }\n      approved_and_green: { auto_merge: true }\n      closed: { action: off }\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(scm.repository.as_deref(), Some("acme/app"));
        assert_eq!(
            scm.reactions.ci_failed,
            SendReaction {
                action: ReactionAction::Send,
                max_sends: 1
            }
        );
        assert!(!scm.reactions.cleanup && scm.reactions.auto_merge);
        assert_eq!(scm.reactions.closed, ReactionAction::Off);
        assert_eq!(scm.reactions.merged, ReactionAction::Notify);
    }

    #[test]
    fn bad_reactions_name_the_file_the_field_and_the_fix() {
        for (body, field, fix) in [
            (
                "    scm: github\n    reactions: { ci_failed: { max_send: 2 } }\n",
                "max_send",
                "max_sends",
            ),
            (
                "    scm: github\n    reactions: { ci_broken: {} }\n",
                "ci_broken",
                "ci_failed",
            ),
            (
                "    scm: github\n    reactions: { ci_failed: { action: shout } }\n",
                "projects.app.reactions.ci_failed.action",
                "send, notify, off",
            ),
            (
                "    scm: github\n    reactions: { merged: { action: send } }\n",
                "projects.app.reactions.merged.action",
                "notify, off",
            ),
            (
                "    scm: github\n    reactions: { merge_conflict: { max_sends: 0 } }\n",
                "projects.app.reactions.merge_conflict.max_sends",
                "1 to 100",
            ),
            (
                "    scm: github\n    reactions: { ci_failed: { max_sends: -1 } }\n",
                "max_sends",
                "line",
            ),
            (
                "    reactions: { ci_failed: {} }\n",
                "projects.app.reactions",
                "scm: github",
            ),
            (
                "    scm_repository: acme/app\n",
                "projects.app.scm_repository",
                "scm: github",
            ),
            (
                "    scm: github\n    scm_repository: \"acme/../x\"\n",
                "projects.app.scm_repository",
                "owner/name",
            ),
            ("    scm: \"../x\"\n", "projects.app.scm", "scm plugin name"),
        ] {
            let error = project(body).unwrap_err();
            assert!(
                error.contains("/etc/ao/ao-rs.yaml")
                    && error.contains(field)
                    && error.contains(fix),
                "{body:?}: {error}"
            );
        }
    }

    #[test]
    fn watch_intervals_default_and_accept_small_values_for_tests() {
        assert_eq!(parse("").unwrap().watch, WatchConfig::default());
        assert_eq!(
            parse("watch: { poll_secs: 1, reviews_secs: 2 }\n")
                .unwrap()
                .watch,
            WatchConfig {
                poll_secs: 1,
                reviews_secs: 2
            }
        );
        for (text, field) in [
            ("watch: { poll_secs: 0 }\n", "watch.poll_secs"),
            ("watch: { reviews_secs: 301 }\n", "watch.reviews_secs"),
            ("watch: { every: 3 }\n", "every"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(
                error.contains("/etc/ao/ao-rs.yaml") && error.contains(field),
                "{text:?}: {error}"
            );
        }
    }
}
