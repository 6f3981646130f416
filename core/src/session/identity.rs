//! Choosing session ids: `<prefix>-N` for workers, `<prefix>-orchestrator-N` for orchestrators,
//! N the smallest number no active or archived session of the project uses.
//!
//! These functions only choose; [`SessionStore::reserve`](super::SessionStore::reserve) makes the
//! choice stick across processes by creating the record exclusively.

use std::collections::HashSet;

use super::{Session, SessionRole};

/// Mirrors the reference implementation's cap.
pub(crate) const MAX_IDENTITY_NUMBER: u32 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no free session id left for prefix `{prefix}` after {MAX_IDENTITY_NUMBER} attempts; archive or remove old sessions")]
pub struct IdentityExhausted {
    pub prefix: String,
}

/// The id stem for `role`: `<prefix>` for workers, `<prefix>-orchestrator` for orchestrators.
pub(crate) fn stem(project_prefix: &str, role: SessionRole) -> String {
    match role {
        SessionRole::Worker => project_prefix.to_string(),
        SessionRole::Orchestrator => format!("{project_prefix}-orchestrator"),
    }
}

/// The numbers taken under `stem` by the given ids.
pub(crate) fn used_numbers<'a>(stem: &str, ids: impl IntoIterator<Item = &'a str>) -> HashSet<u32> {
    let search = format!("{stem}-");
    ids.into_iter()
        .filter_map(|id| id.strip_prefix(&search))
        .filter(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|rest| rest.parse::<u32>().ok())
        .collect()
}

/// The smallest free `<stem>-N`, skipping `also_taken` (numbers lost to a race just now).
pub(crate) fn next_identity(
    stem: &str,
    used: &HashSet<u32>,
    also_taken: &HashSet<u32>,
) -> Result<(String, u32), IdentityExhausted> {
    (1..=MAX_IDENTITY_NUMBER)
        .find(|n| !used.contains(n) && !also_taken.contains(n))
        .map(|n| (format!("{stem}-{n}"), n))
        .ok_or_else(|| IdentityExhausted {
            prefix: stem.to_string(),
        })
}

/// Whether a session is an orchestrator: by its recorded role, or for records without one, by
/// the id pattern (`…-orchestrator` or `…-orchestrator-<digits>`).
pub fn is_orchestrator_session(session: &Session) -> bool {
    session.role == SessionRole::Orchestrator || is_orchestrator_id(&session.id)
}

fn is_orchestrator_id(id: &str) -> bool {
    if id.ends_with("-orchestrator") {
        return true;
    }
    match id.rfind("-orchestrator-") {
        Some(pos) => {
            let suffix = &id[pos + "-orchestrator-".len()..];
            !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{now_ms, SessionStatus};

    /// The seed's `reserve_orchestrator_identity`, as the store composes it: the next unused
    /// `<prefix>-orchestrator-N` among `existing` (active and archived sessions).
    fn reserve_orchestrator_identity(
        project_prefix: &str,
        existing: &[Session],
    ) -> Result<String, IdentityExhausted> {
        let stem = stem(project_prefix, SessionRole::Orchestrator);
        let used = used_numbers(&stem, existing.iter().map(|s| s.id.as_str()));
        next_identity(&stem, &used, &HashSet::new()).map(|(id, _)| id)
    }

    fn session_with_id(id: &str, project: &str) -> Session {
        Session {
            id: id.into(),
            project_id: project.into(),
            role: SessionRole::Worker,
            status: SessionStatus::Working,
            agent: "claude-code".into(),
            runtime: "tmux".into(),
            workspace: "git-worktree".into(),
            branch: "orchestrator/x".into(),
            workspace_path: None,
            runtime_handle: None,
            task: None,
            created_at: now_ms(),
            host: None,
            activity_at: None,
            waiting_for: None,
            conversation_id: None,
            reports_events: false,
            status_from_screen: false,
            usage: None,
            unreachable_since: None,
            sandbox: None,
            note: None,
        }
    }

    #[test]
    fn reserve_starts_at_one_when_no_existing() {
        assert_eq!(
            reserve_orchestrator_identity("app", &[]).unwrap(),
            "app-orchestrator-1"
        );
    }

    #[test]
    fn reserve_skips_used_numbers_in_order() {
        let existing = vec![
            session_with_id("app-orchestrator-1", "app"),
            session_with_id("app-orchestrator-3", "app"),
        ];
        assert_eq!(
            reserve_orchestrator_identity("app", &existing).unwrap(),
            "app-orchestrator-2"
        );
        let existing_full = vec![
            session_with_id("app-orchestrator-1", "app"),
            session_with_id("app-orchestrator-2", "app"),
        ];
        assert_eq!(
            reserve_orchestrator_identity("app", &existing_full).unwrap(),
            "app-orchestrator-3"
        );
    }

    #[test]
    fn reserve_ignores_other_projects_and_worker_ids() {
        let existing = vec![
            session_with_id("app-1", "app"),
            session_with_id("other-orchestrator-1", "other"),
            session_with_id("app-orchestrator-abc", "app"),
        ];
        assert_eq!(
            reserve_orchestrator_identity("app", &existing).unwrap(),
            "app-orchestrator-1"
        );
    }

    #[test]
    fn reserve_fails_after_the_cap() {
        let existing: Vec<Session> = (1..=MAX_IDENTITY_NUMBER)
            .map(|n| session_with_id(&format!("app-orchestrator-{n}"), "app"))
            .collect();
        let err = reserve_orchestrator_identity("app", &existing).unwrap_err();
        assert!(err.to_string().contains("10000"), "{err}");
    }

    #[test]
    fn is_orchestrator_session_matches_numbered_pattern() {
        assert!(is_orchestrator_session(&session_with_id(
            "app-orchestrator-1",
            "app"
        )));
        assert!(is_orchestrator_session(&session_with_id(
            "my-project-orchestrator-42",
            "my-project"
        )));
    }

    #[test]
    fn is_orchestrator_session_matches_suffix_only() {
        assert!(is_orchestrator_session(&session_with_id(
            "app-orchestrator",
            "app"
        )));
    }

    #[test]
    fn is_orchestrator_session_rejects_workers_and_unrelated() {
        assert!(!is_orchestrator_session(&session_with_id("app-1", "app")));
        assert!(!is_orchestrator_session(&session_with_id(
            "deadbeef-aaaa-bbbb",
            "app"
        )));
        assert!(!is_orchestrator_session(&session_with_id(
            "app-orchestrator-abc",
            "app"
        )));
        assert!(!is_orchestrator_session(&session_with_id(
            "app-orchestrator-",
            "app"
        )));
    }

    #[test]
    fn the_recorded_role_counts_whatever_the_id() {
        let mut session = session_with_id("custom", "app");
        session.role = SessionRole::Orchestrator;
        assert!(is_orchestrator_session(&session));
    }

    #[test]
    fn worker_numbers_ignore_orchestrators_of_the_same_prefix() {
        let used = used_numbers("app", ["app-1", "app-orchestrator-2", "app-x", "app-3"]);
        assert_eq!(used, HashSet::from([1, 3]));
    }
}
