//! What ao-host tells an agent about its role, through the agent's system prompt.
//!
//! Kept out of the task text on purpose: the operator's task reaches a worker byte-exact as its
//! first message, and everything ao-host adds lives here.

use crate::config::ProjectConfig;

/// Facts both prompts mention.
pub struct PromptFacts<'a> {
    pub project: &'a ProjectConfig,
    pub default_branch: &'a str,
    pub port: u16,
}

/// The system prompt of a worker session.
pub fn worker_prompt(facts: &PromptFacts<'_>, session_id: &str, branch: &str) -> String {
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

/// The orchestrator's prompt: its project, and how to run workers with `ao-host`.
pub fn orchestrator_prompt(facts: &PromptFacts<'_>, session_id: &str) -> String {
    let project = &facts.project;
    format!(
        "# You are the orchestrator `{session_id}` for project `{id}`\n\n\
         Repository: {repo}\nDefault branch: {default_branch}\nDashboard port: {port}\n\n\
         You do not write code yourself. You split the work into tasks and run one worker \
         session per task; each worker is a coding agent in its own checkout and branch.\n\n\
         ## Managing workers\n\
         - Start a worker: `ao-host spawn {id} --task \"<what to do>\"` (or `--task-file FILE` for \
         long tasks). It prints the new session id.\n\
         - See all sessions and what they are doing: `ao-host session ls {id}` \
         (`--json` for details).\n\
         - Send a worker a message: `ao-host send <session-id> \"<message>\"`.\n\
         - Stop a worker when its branch is merged or abandoned: `ao-host session kill <session-id>`.\n\n\
         Keep tasks small and independent, check on workers regularly, and review each branch \
         before it is merged into `{default_branch}`.\n",
        id = project.id,
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
        }
    }

    #[test]
    fn orchestrator_prompt_names_project_repo_branch_port_and_commands() {
        let project = project();
        let text = orchestrator_prompt(
            &PromptFacts {
                project: &project,
                default_branch: "main",
                port: 4123,
            },
            "app-orchestrator-1",
        );
        for needle in [
            "app-orchestrator-1",
            "/src/app",
            "Default branch: main",
            "4123",
            "ao-host spawn app --task",
            "ao-host session ls app",
            "ao-host send",
        ] {
            assert!(text.contains(needle), "missing {needle:?}");
        }
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
