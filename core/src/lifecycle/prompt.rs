//! What ao-host tells an agent about its role, through the agent's system prompt.
//!
//! Kept out of the task text on purpose: the operator's task reaches a worker byte-exact as its
//! first message, and everything ao-host adds lives here.

use crate::{config::ProjectConfig, session::Session};

/// Facts both prompts mention.
pub(crate) struct PromptFacts<'a> {
    pub project: &'a ProjectConfig,
    pub default_branch: &'a str,
    pub port: u16,
}

/// The system prompt of a worker session.
pub(crate) fn worker_prompt(facts: &PromptFacts<'_>, session_id: &str, branch: &str) -> String {
    format!(
        "You are `{session_id}`, a worker session managed by ao-host for project `{project}`.\n\
         You work in your own checkout of the repository, on branch `{branch}` (created from `{default_branch}`); \
         commit your work on that branch. Other agents work in parallel in their own worktrees.\n\
         Your session id is in $AO_SESSION. An orchestrator may send you messages; when you finish \
         or are blocked, say so plainly in your last message so `ao-host session ls` readers can see it.\n",
        project = facts.project.id,
        default_branch = facts.default_branch,
    )
}

/// The orchestrator's prompt: its project, the sessions it has at start, and how to run,
/// read and finish workers with `ao-host`.
pub(crate) fn orchestrator_prompt(
    facts: &PromptFacts<'_>,
    session_id: &str,
    sessions: &[Session],
) -> String {
    let project = &facts.project;
    let id = &project.id;
    let current = if sessions.is_empty() {
        "None yet.\n".to_string()
    } else {
        sessions
            .iter()
            .map(|s| {
                let (status, task) = (s.status.as_str(), s.task_headline(80));
                format!("- `{}` ({status}), branch `{}`: {task}\n", s.id, s.branch)
            })
            .collect()
    };
    format!(
        "# You are the orchestrator `{session_id}` for project `{id}`\n\n\
         Repository: {repo}\nDefault branch: {default_branch}\nDashboard port: {port}\n\n\
         You do not write code yourself. You split the work into tasks and run one worker \
         session per task; each worker is a coding agent in its own checkout and branch.\n\n\
         ## Sessions of this project when you started\n{current}\n\
         ## Managing workers\n\
         `ao-host` is on your PATH and acts on this project and data dir; run it by that name \
         (`ao-host …`), which you may do without asking (`$AO_HOST_BIN` is its absolute path, \
         but runs only after a permission prompt). Run nothing else that changes the \
         repository.\n\
         - Start a worker: `ao-host spawn {id} --task \"<what to do>\"` (or `--task-file FILE` for \
         long tasks). It prints the new session id; its branch is `session/<session-id>`.\n\
         - See the sessions: `ao-host session ls {id} --json` (one JSON array; each session has \
         `id`, `status`, `branch`, `workspace_path`, `waiting_for`, `activity_at`, `pr`, `queued`; \
         yours is marked `\"caller\": true`).\n\
         - Statuses: `working` (busy), `idle` (finished its turn: read its branch, then give it \
         more or stop it), `waiting_input` (it asks something, in `waiting_for`: answer with \
         `ao-host send`), `exited` (its agent is gone: `ao-host session restore <session-id>`), \
         `errored` (it never started).\n\
         - Read a worker's work: `git log {default_branch}..session/<session-id>` in the repository.\n\
         - Send a worker a message: `ao-host send <session-id> \"<message>\"` (refused while it \
         waits for a permission answer).\n\
         - Stop a worker when its branch is merged or abandoned: `ao-host session kill <session-id>`.\n\n\
         ## Workers' pull requests\n\
         When this project has an `scm` plugin, a watcher (`ao-host watch`, or the dashboard) \
         follows each worker's pull request: it sends the worker its failed CI checks (with links \
         and a log tail), review comments and merge conflicts itself, once each, only when the \
         worker is idle at its prompt, and tells the operator when a pull request is approved \
         and green. Do not send workers those nudges again. `ao-host session pr <session-id>` \
         shows a worker's pull request, CI and review state and its queued reactions. A worker \
         whose pull request is merged is killed and cleaned up for you (unless it holds unpushed \
         work).\n\n\
         Keep tasks small and independent, check on workers regularly, and review each branch \
         before it is merged into `{default_branch}`.\n",
        repo = project.repo.display(),
        default_branch = facts.default_branch,
        port = facts.port,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PluginChoice;

    fn project() -> ProjectConfig {
        ProjectConfig {
            id: "app".into(),
            repo: "/src/app".into(),
            default_branch: Some("main".into()),
            session_prefix: "app".into(),
            symlinks: vec![],
            post_create: vec![],
            agent_config: String::new(),
            plugins: PluginChoice {
                runtime: "tmux".into(),
                workspace: "git-worktree".into(),
                agent: "claude-code".into(),
            },
            hosts: Default::default(),
            scm: None,
            budgets: Default::default(),
            sandbox: Default::default(),
        }
    }

    /// The prompt of orchestrator `app-orchestrator-1` with no sessions yet.
    fn first_orchestrator_prompt() -> String {
        orchestrator_prompt(
            &PromptFacts {
                project: &project(),
                default_branch: "main",
                port: 4123,
            },
            "app-orchestrator-1",
            &[],
        )
    }

    #[test]
    fn orchestrator_prompt_names_project_repo_branch_port_and_commands() {
        let text = first_orchestrator_prompt();
        for needle in [
            "app-orchestrator-1",
            "/src/app",
            "Default branch: main",
            "4123",
            "ao-host spawn app --task",
            "ao-host session ls app --json",
            "ao-host send",
            "None yet.",
            "waiting_input",
            "session/<session-id>",
            "$AO_HOST_BIN",
        ] {
            assert!(text.contains(needle), "missing {needle:?}");
        }
    }

    #[test]
    fn the_orchestrator_prompt_says_the_watcher_sends_workers_their_ci_and_reviews() {
        let text = first_orchestrator_prompt();
        for needle in [
            "## Workers' pull requests",
            "failed CI checks",
            "review comments",
            "merge conflicts",
            "idle at its prompt",
            "Do not send workers those nudges again",
            "ao-host session pr <session-id>",
            "merged is killed and cleaned up",
            "`pr`, `queued`",
        ] {
            assert!(text.contains(needle), "missing {needle:?}");
        }
    }

    #[test]
    fn the_orchestrator_prompt_lists_the_projects_sessions_at_start() {
        let project = project();
        let session = |id: &str, status, task: &str| Session {
            id: id.into(),
            project_id: "app".into(),
            role: crate::session::SessionRole::Worker,
            status,
            agent: "claude-code".into(),
            runtime: "tmux".into(),
            workspace: "git-worktree".into(),
            branch: format!("session/{id}"),
            workspace_path: None,
            runtime_handle: None,
            task: Some(task.into()),
            created_at: 0,
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
        };
        let text = orchestrator_prompt(
            &PromptFacts {
                project: &project,
                default_branch: "main",
                port: 4123,
            },
            "app-orchestrator-1",
            &[
                session(
                    "app-1",
                    crate::session::SessionStatus::Idle,
                    "fix the login\nmore",
                ),
                session(
                    "app-2",
                    crate::session::SessionStatus::WaitingInput,
                    "add tests",
                ),
            ],
        );
        assert!(
            text.contains("- `app-1` (idle), branch `session/app-1`: fix the login\n"),
            "{text}"
        );
        assert!(text.contains("- `app-2` (waiting_input), branch `session/app-2`: add tests\n"));
        assert!(!text.contains("None yet."));
    }

    #[test]
    fn worker_prompt_names_the_session_and_branch() {
        let project = project();
        let text = worker_prompt(
            &PromptFacts {
                project: &project,
                default_branch: "main",
                port: 3000,
            },
            "app-3",
            "session/app-3",
        );
        assert!(text.contains("`app-3`") && text.contains("session/app-3"));
    }
}
