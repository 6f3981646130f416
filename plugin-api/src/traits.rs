//! The plain-Rust traits a plugin author implements.
//!
//! These never cross the boundary themselves: [`export_plugins!`](crate::export_plugins) wraps an
//! implementation in an adapter that converts values to their FFI-safe forms and turns panics into
//! [`PluginErrorKind::Panicked`](crate::PluginErrorKind::Panicked) errors. Every method is
//! synchronous and may block (the host calls it from a blocking thread pool with a timeout); do
//! not start or expect an async runtime inside a plugin.

use abi_stable::std_types::RString;

use crate::{
    error::{PluginError, PluginResult},
    sandbox::{
        ConfinedCommand, ConfinedLaunchPlan, ConfinedLaunchRequest, PathRule, SandboxRequest,
        WorkspaceConfinement, WorkspaceConfinementQuery,
    },
    scm::{
        Check, ChecksQuery, Fetched, MergeRequest, PullRequest, PullRequestQuery, RateLimit,
        ReviewFeedback, ReviewsQuery, WebhookDelivery, WebhookHint,
    },
    successors::{ActivityState, ErrorKind, PluginFailure, ReadinessState},
    types::{
        Activity, AgentSession, DoctorCheck, EnvVar, LaunchPlan, LaunchRequest, PluginContext,
        Readiness, RepositoryInfo, RuntimeCreateRequest, WorkspaceCreateConfig,
    },
    usage::{UsageQuery, UsageReport},
};

/// Runs agent processes: a terminal multiplexer, a child process, a container, a remote shell.
///
/// A handle is an opaque string the runtime chooses in [`Runtime::create`]; the host stores it
/// and passes it back unchanged.
pub trait Runtime: Send + Sync + 'static {
    /// Builds the runtime from its config (`plugins.config.<name>`).
    fn new(context: &PluginContext) -> PluginResult<Self>
    where
        Self: Sized;

    /// Starts `request.launch_command` in `request.cwd` with `request.env` and returns a handle.
    fn create(&self, request: &RuntimeCreateRequest) -> PluginResult<String>;

    /// Starts the agent as [`Runtime::create`] does, except that `request.env` is its *whole*
    /// environment: the host's choice (the environment of the `ao-host` that spawns it, plus
    /// what plugins set). Nothing of the runtime's own processes may reach the agent (a tmux
    /// server keeps the environment of whoever started it, long ago), but the few variables
    /// the runtime must set for its terminal (`TERM`, …); and no value may appear on a command
    /// line, where every local user can read it. `ao_plugin_kit::launch::Launch` does both.
    /// (Added in 0.1.7; the default refuses as unsupported, and the host then calls
    /// [`Runtime::create`] with only the variables plugins set.)
    fn start(&self, request: &RuntimeCreateRequest) -> PluginResult<String> {
        let _ = request;
        Err(PluginError::unsupported(
            "this runtime cannot start an agent with exactly the host's environment",
        ))
    }

    /// Delivers `text` byte-exact as one message and submits it once.
    fn send_message(&self, handle: &str, text: &str) -> PluginResult<()>;

    /// Presses keys, named as tmux names them (`Enter`, `Escape`, `Down`, `C-c`, or a
    /// literal character). Used to answer start-up dialogs and to resubmit.
    fn send_keys(&self, handle: &str, keys: &[RString]) -> PluginResult<()>;

    /// The last `lines` lines of what the agent shows.
    fn capture_output(&self, handle: &str, lines: u32) -> PluginResult<String>;

    /// Whether the agent process still runs.
    fn is_alive(&self, handle: &str) -> PluginResult<bool>;

    /// Stops the process. Destroying something already gone succeeds.
    fn destroy(&self, handle: &str) -> PluginResult<()>;

    /// The argv an operator runs to watch and type into the session.
    fn attach_command(&self, handle: &str) -> PluginResult<Vec<String>>;

    /// Handles of every live session this runtime can see, in one call: `ao-host session ls`
    /// asks once instead of calling [`Runtime::is_alive`] per session, which matters with
    /// thousands of records.
    fn alive_handles(&self) -> PluginResult<Vec<String>>;

    /// What this runtime needs on this machine (programs on PATH and their versions, folders),
    /// one [`DoctorCheck`] each, for `ao-host doctor`. Report a missing thing as a failed check
    /// with its fix rather than as an error. (Added in 0.1.3; the default checks nothing.)
    fn doctor(&self) -> PluginResult<Vec<DoctorCheck>> {
        Ok(Vec::new())
    }

    /// The screens of several sessions, in the order of `handles`, each as
    /// [`Runtime::capture_output`] would give it (a missing session is its own `NotFound`, not
    /// the whole call's failure). `ao-host session ls` reads every live session's screen; a
    /// runtime that can answer in one round trip should. (Added in 0.1.3; the default asks
    /// `capture_output` once per handle.)
    fn capture_outputs(
        &self,
        handles: &[RString],
        lines: u32,
    ) -> PluginResult<Vec<PluginResult<String>>> {
        Ok(handles
            .iter()
            .map(|handle| self.capture_output(handle, lines))
            .collect())
    }

    /// Handles of every session this runtime made for this data dir that still exists, live or
    /// not (a session whose agent exited but whose screen is kept): what `ao-host gc` may remove
    /// when no record names it. [`Runtime::alive_handles`] must leave those out, so `gc` would
    /// never see them. Same handle strings as `create` returned. (Added in 0.1.3; the default
    /// is `alive_handles`, right for a runtime whose sessions end with their agent.)
    fn owned_handles(&self) -> PluginResult<Vec<String>> {
        self.alive_handles()
    }

    /// What [`Runtime::capture_output`] gives, with the screen's colours and text attributes
    /// kept as ANSI SGR escape sequences (`ESC [ … m`), for front ends that show the screen as
    /// the operator would see it (the dashboard). Nothing but SGR sequences may be added: the
    /// text is rendered, not replayed into a terminal. (Added in 0.1.5; the default is the plain
    /// `capture_output`.)
    fn capture_styled(&self, handle: &str, lines: u32) -> PluginResult<String> {
        self.capture_output(handle, lines)
    }

    /// What a program this runtime started must not reach when it is confined (see
    /// [`crate::sandbox`]): the runtime's own server, through which it could drive every other
    /// session, unconfined ones included (tmux's socket: a socket on a read-only mount still
    /// takes connections). `Hidden` rules on this runtime's machine, which the host applies
    /// after its own. (Added in 0.1.9; the default names nothing, right for a runtime without a
    /// server a program could reach.)
    fn confinement(&self) -> Result<Vec<PathRule>, PluginFailure> {
        Ok(Vec::new())
    }
}

/// Knows one coding agent CLI: how to start it and how to read its screen.
pub trait Agent: Send + Sync + 'static {
    /// Builds the agent plugin from its config (`plugins.config.<name>`).
    fn new(context: &PluginContext) -> PluginResult<Self>
    where
        Self: Sized;

    /// The program and arguments that start the agent for `session`.
    fn launch_command(&self, session: &AgentSession) -> PluginResult<Vec<String>>;

    /// The agent's own environment variables (the host adds the `AO_*` ones).
    fn environment(&self, session: &AgentSession) -> PluginResult<Vec<EnvVar>>;

    /// Whether the agent, showing `output`, accepts a message now.
    fn is_ready(&self, output: &str) -> PluginResult<Readiness>;

    /// What the agent, showing `output`, is doing.
    fn activity(&self, output: &str) -> PluginResult<Activity>;

    /// Whether `output` shows text typed or pasted into the agent's input but not yet submitted.
    /// The host asks after sending a message, and presses Enter once more if so (TUIs may drop
    /// an Enter that arrives while they are still taking in a large paste).
    fn input_pending(&self, output: &str) -> PluginResult<bool>;

    /// What this agent needs on this machine (its CLI and version), as [`Runtime::doctor`].
    /// (Added in 0.1.3; the default checks nothing.)
    fn doctor(&self) -> PluginResult<Vec<DoctorCheck>> {
        Ok(Vec::new())
    }

    /// How to start the agent for `request`: its argv, whether that carries the first message,
    /// the conversation id to resume it by later, and whether it reports its state through
    /// `request.event_command`. (Added in 0.1.4; the default is [`Agent::launch_command`], with
    /// the first message typed in by the host, state read from the screen, and no resuming.)
    fn launch(&self, request: &LaunchRequest) -> PluginResult<LaunchPlan> {
        if request.resume.is_some() {
            return Err(PluginError::unsupported(
                "this agent cannot resume a conversation",
            ));
        }
        Ok(LaunchPlan {
            argv: self
                .launch_command(&request.session)?
                .into_iter()
                .map(Into::into)
                .collect(),
            takes_first_message: false,
            conversation_id: None.into(),
            reports_events: false,
        })
    }

    /// Removes what the plugin keeps for session `session_id` (its `SessionFiles` folder: a
    /// config home, seeded credentials), once the session is over for good: killed, or its
    /// spawn undone. It is never launched or resumed again. Something already gone is no
    /// error. (Added in 0.1.6; the default keeps nothing to remove.)
    fn forget(&self, _session_id: &str) -> PluginResult<()> {
        Ok(())
    }

    /// What may keep the agent from reporting events although its [`LaunchPlan`] said it would
    /// (a policy that forbids its hooks, say), for the note of a session whose events never
    /// came and whose status the host then reads from its screen. Asked only then, so it may
    /// read a file or two; empty when nothing is known. (Added in 0.1.7; the default knows
    /// nothing.)
    fn silent_events_hint(&self) -> PluginResult<String> {
        Ok(String::new())
    }

    /// What the agent is doing, as [`Agent::activity`] says, in the enum that can grow: a
    /// plugin that knows states this crate's [`Activity`] lacks answers here, and a host that
    /// does not know a state reads it as `Working` (and says so in its log). (Added in 0.1.8;
    /// the default is [`Agent::activity`].)
    fn activity_state(&self, output: &str) -> Result<ActivityState, PluginFailure> {
        Ok(self.activity(output)?.into())
    }

    /// Whether the agent accepts a message now, as [`Agent::is_ready`] says, in the enum that
    /// can grow; a host that does not know a state reads it as `Starting` (and says so in its
    /// log). (Added in 0.1.8; the default is [`Agent::is_ready`].)
    fn readiness_state(&self, output: &str) -> Result<ReadinessState, PluginFailure> {
        Ok(self.is_ready(output)?.into())
    }

    /// The session's token use so far, per model and UTC hour, read from the agent CLI's own
    /// records on from `query.cursor` (see [`crate::usage`]). Fails with `NotFound` when the
    /// session has no records yet to find (no reply made yet) and `Failed` when they cannot be
    /// read at all; records it can read only in part are counted with a note. Never a guess.
    /// (Added in 0.1.9; the default says unsupported, and the host shows usage as unknown.)
    fn usage(&self, query: &UsageQuery) -> Result<UsageReport, PluginFailure> {
        let _ = query;
        Err(PluginFailure::new(
            crate::ErrorKind::Unsupported,
            "this agent plugin cannot read what its sessions used",
        ))
    }

    /// The launch of a session confined by a sandbox (see [`crate::sandbox`]): the launch
    /// itself, the CLI's own state the sandbox must let it use (its config home, seeded for this
    /// session, never the operator's shared one: a confined agent that could write it could
    /// plant hooks every unconfined session runs), and the operator's variables it needs.
    /// With `request.unattended`, the agent starts in its own no-prompt mode.
    ///
    /// A plugin whose settings can switch the agent's prompts off (`skip_permissions` and the
    /// like) refuses them in [`Agent::launch`], which is only ever an unconfined launch, naming
    /// `unattended` and `sandbox:` as the fix.
    ///
    /// (Added in 0.1.9; the default is [`Agent::launch`] with nothing more to allow, and
    /// `Unsupported` for an unattended launch.)
    fn launch_confined(
        &self,
        request: &ConfinedLaunchRequest,
    ) -> Result<ConfinedLaunchPlan, PluginFailure> {
        if request.unattended {
            return Err(PluginFailure::new(
                ErrorKind::Unsupported,
                "this agent plugin has no no-prompt mode; remove `unattended`",
            ));
        }
        Ok(ConfinedLaunchPlan {
            plan: self.launch(&request.launch)?,
            paths: Default::default(),
            pass_env: Default::default(),
            env: Default::default(),
        })
    }
}

/// Makes an isolated checkout for each session.
///
/// A workspace path is an opaque string owned by the plugin: the host never inspects it, so a
/// workspace may live on another machine.
pub trait Workspace: Send + Sync + 'static {
    /// Builds the workspace plugin from its config (`plugins.config.<name>`).
    fn new(context: &PluginContext) -> PluginResult<Self>
    where
        Self: Sized;

    /// Creates the workspace and returns its path. On failure nothing may be left behind.
    fn create(&self, config: &WorkspaceCreateConfig) -> PluginResult<String>;

    /// Removes the workspace. Destroying something already gone succeeds. `delete_branch` also
    /// removes the session's branch: the host asks for it when undoing a spawn that failed (no
    /// work was done on it). Without it (a killed session), the branch holds the agent's work:
    /// keep it at least while it holds work nowhere else (git-worktree deletes it only when it
    /// is merged).
    fn destroy(&self, path: &str, delete_branch: bool) -> PluginResult<()>;

    /// Whether the workspace at `path` is still there.
    fn exists(&self, path: &str) -> PluginResult<bool>;

    /// Paths of every workspace this plugin made that still exists, so `ao-host gc` can find
    /// workspaces no session record points to. (Added in 0.1.2; the default says unsupported.)
    fn list_owned(&self) -> PluginResult<Vec<String>> {
        Err(PluginError::unsupported(
            "this workspace plugin cannot list its workspaces",
        ))
    }

    /// Whether the workspace holds work that removing it would lose or strand (uncommitted
    /// changes; for a branch that was pushed, commits made since).
    /// (Added in 0.1.2; the default says unsupported, and `gc` then keeps the workspace.)
    fn has_unsaved_work(&self, _path: &str) -> PluginResult<bool> {
        Err(PluginError::unsupported(
            "this workspace plugin cannot tell whether a workspace holds unsaved work",
        ))
    }

    /// How many commits the workspace's checkout has on top of `commit`: `Some(0)` when its
    /// head is `commit`, `Some(n)` when `commit` is n commits behind its head, `None` when
    /// `commit` is not in its history (another checkout's work, or not known here). The host
    /// takes a pull request for a session's only when its head is in the session's history,
    /// and cleans a merged one up only when the session has nothing on top of what merged.
    /// (Added in 0.1.9; the default says unsupported, and the host then goes by the branch
    /// name and [`Workspace::has_unsaved_work`] alone.)
    fn commits_since(&self, path: &str, commit: &str) -> Result<Option<u32>, PluginFailure> {
        let _ = (path, commit);
        Err(PluginFailure::new(
            crate::ErrorKind::Unsupported,
            "this workspace plugin cannot tell which commits a workspace holds",
        ))
    }

    /// What this workspace plugin needs on this machine (programs, writable folders), as
    /// [`Runtime::doctor`]. (Added in 0.1.3; the default checks nothing.)
    fn doctor(&self) -> PluginResult<Vec<DoctorCheck>> {
        Ok(Vec::new())
    }

    /// Removes those of `branches` (sessions' branches, named by archived records) that still
    /// exist in `repo` but hold nothing unmerged into its checked-out branch and are checked out
    /// nowhere; with `dry_run`, removes nothing. Returns the ones removed (or that would be).
    /// Kills by releases up to v0.1.2 left such branches behind. (Added in 0.1.7; the default
    /// says unsupported, and `gc` then leaves branches alone.)
    fn remove_merged_branches(
        &self,
        _repo: &str,
        _branches: &[String],
        _dry_run: bool,
    ) -> PluginResult<Vec<String>> {
        Err(PluginError::unsupported(
            "this workspace plugin cannot remove merged branches",
        ))
    }

    /// What a session of `repo` branching from `default_branch` would start from (e.g.
    /// `origin/main`), for `ao-host doctor`, which would rather name a branch that is not there
    /// before a spawn meets it. (Added in 0.1.7; the default says unsupported, and doctor says
    /// the branch is not checked.)
    fn base_of(&self, _repo: &str, _default_branch: &str) -> PluginResult<String> {
        Err(PluginError::unsupported(
            "this workspace plugin cannot tell what a session would branch from",
        ))
    }

    /// The repository that holds `dir` and its default branch, for a host run with no project
    /// configured: the plugin knows its version control, the host does not read `.git` itself.
    /// Inside a linked worktree, the root is the main repository's. (Added in 0.1.3; the
    /// default says unsupported.)
    fn discover_repository(&self, _dir: &str) -> PluginResult<RepositoryInfo> {
        Err(PluginError::unsupported(
            "this workspace plugin cannot find the repository around a folder",
        ))
    }

    /// What a session confined to the workspace at `query.path` needs beyond that folder: what
    /// a commit on `query.branch` (and on no other branch) writes, what must stay read-only
    /// inside it, and the other workspaces to hide (see [`crate::sandbox`]). Fails with
    /// `InvalidInput` when the branch cannot be confined (it shares what it writes with other
    /// branches), saying how to name it. (Added in 0.1.9; the default says unsupported, and the
    /// host refuses to confine a session of this plugin.)
    fn confinement(
        &self,
        query: &WorkspaceConfinementQuery,
    ) -> Result<WorkspaceConfinement, PluginFailure> {
        let _ = query;
        Err(PluginFailure::new(
            ErrorKind::Unsupported,
            "this workspace plugin cannot say what a confined session may write",
        ))
    }
}

/// Knows one code host (GitHub, GitLab, …): the pull requests of the sessions' branches, the
/// checks on their commits, the reviews that wait for an answer. (Added in 0.1.9.)
///
/// The host polls it from its watcher (`ao-host watch`, the dashboard) and never from a
/// listing, so each call may take a network round trip. Answer with as few requests as the
/// forge allows (batch, and honour the query's validator), and fail with
/// [`ErrorKind::RateLimited`](crate::ErrorKind::RateLimited) when the forge says to wait, so
/// the host backs off until [`Scm::rate_limits`] says the window reset.
pub trait Scm: Send + Sync + 'static {
    /// Builds the plugin from its config (`plugins.config.<name>`): where the forge is, how to
    /// find a token.
    fn new(context: &PluginContext) -> PluginResult<Self>
    where
        Self: Sized;

    /// The pull requests whose head is one of the query's branches.
    fn pull_requests(
        &self,
        query: &PullRequestQuery,
    ) -> Result<Fetched<Vec<PullRequest>>, PluginFailure>;

    /// The checks on one commit, with the log tail of each failed one.
    fn checks(&self, query: &ChecksQuery) -> Result<Fetched<Vec<Check>>, PluginFailure>;

    /// The submitted reviews and unresolved review comments of each pull request asked about,
    /// one entry per number, in the query's order.
    fn reviews(&self, query: &ReviewsQuery) -> Result<Vec<ReviewFeedback>, PluginFailure>;

    /// Merges a pull request at the head the caller saw; fails if the head moved.
    fn merge(&self, request: &MergeRequest) -> Result<(), PluginFailure>;

    /// Verifies a webhook delivery (its signature, against the secret in the plugin's
    /// settings) and says what it concerns. A delivery that does not verify is an error of kind
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput). The default refuses every
    /// delivery as unsupported.
    fn webhook(&self, delivery: &WebhookDelivery) -> Result<WebhookHint, PluginFailure> {
        let _ = delivery;
        Err(PluginFailure::new(
            crate::ErrorKind::Unsupported,
            "this scm plugin takes no webhooks; the watcher polls",
        ))
    }

    /// The rate limits as the last answers stated them, one per API; empty before the first
    /// call.
    fn rate_limits(&self) -> Result<Vec<RateLimit>, PluginFailure> {
        Ok(Vec::new())
    }

    /// Checks what the plugin needs (a token, the forge answering). The default checks nothing.
    fn doctor(&self) -> PluginResult<Vec<DoctorCheck>> {
        Ok(Vec::new())
    }
}

/// Runs a program confined (bubblewrap, Landlock, firejail, `sandbox-exec`): turns a policy the
/// host decided and an argv into the argv that runs it under that policy (see
/// [`crate::sandbox`]). It starts nothing itself. (Added in 0.1.9.)
pub trait Sandbox: Send + Sync + 'static {
    /// Builds the plugin from its config (`plugins.config.<name>`).
    fn new(context: &PluginContext) -> PluginResult<Self>
    where
        Self: Sized;

    /// The argv that runs `request.argv` confined by the request's rules. Fails with
    /// `Unavailable` when the tool cannot confine here (not installed, user namespaces off),
    /// saying why and the fix, and with `Unsupported` naming a rule the tool cannot enforce
    /// exactly; never confines less than asked.
    fn confine(&self, request: &SandboxRequest) -> Result<ConfinedCommand, PluginFailure>;

    /// Checks the tool works here (for `ao-host doctor`), each failed check naming its fix.
    /// The default checks nothing.
    fn doctor(&self) -> PluginResult<Vec<DoctorCheck>> {
        Ok(Vec::new())
    }
}
