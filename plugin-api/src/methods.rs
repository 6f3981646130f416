//! Every method of the plugin interfaces, declared once.
//!
//! [`interface_methods!`](crate::interface_methods) hands each interface's table to a macro of
//! the caller's, once per interface. This crate expands it into the FFI traits (with the
//! `built_before` default of each method added after the first release) and the adapters that
//! call a plugin's plain-Rust trait (`ffi`); the host expands the same table into its isolated
//! proxy (one forwarding method each) and the isolated child's dispatch. A method's position in
//! its table is its place in the vtable: methods are only ever appended to `added`, never
//! reordered or removed, so every library built before keeps loading.
//!
//! Adding a method to an interface is one entry at the end of its `added` section here (its
//! FFI signature, the doc a library built before it is described by, and how the adapter calls
//! the plain trait), the method (with a default) on the plain trait in `traits.rs`, and the
//! plugins that implement it. The FFI trait, its default, the adapter, the isolated proxy's
//! call and forwarding and the child's dispatch all follow from the entry; the host's typed
//! wrapper (`instance.rs`) is written where the host first uses the method.
//!
//! Each entry reads `fn NAME(ARG: FFI_TYPE, ...) -> RResult<OK, ERROR> = |plugin| CALL;`, the
//! FFI signature without `&self`, and `CALL` is how the adapter answers it from `plugin`, the
//! plain-Rust implementation (its `Result<T, E>` turns into the FFI result by `Into` on both
//! sides). `ERROR` is [`PluginError`](crate::PluginError) up to 0.1.7 and
//! [`PluginFailure`](crate::PluginFailure), whose kind can grow, for methods added since. Names
//! are resolved where the table is expanded, so the expanding module imports the types the
//! signatures use.

/// Calls `$callback! { ... }` once per plugin interface with its method table (see the
/// [module docs](crate::methods)). For the host and this crate's own FFI code; a plugin never
/// needs it.
#[doc(hidden)]
#[macro_export]
macro_rules! interface_methods {
    ($callback:ident) => {
        $callback! {
            /// FFI form of [`Runtime`].
            interface Runtime: RuntimeFfi, RuntimeAdapter, RuntimeObject, "runtime";
            first_release {
                fn create(request: &RuntimeCreateRequest) -> RResult<RString, PluginError>
                    = |plugin| plugin.create(request);
                fn send_message(handle: RStr<'_>, text: RStr<'_>) -> RResult<(), PluginError>
                    = |plugin| plugin.send_message(handle.as_str(), text.as_str());
                fn send_keys(
                    handle: RStr<'_>,
                    keys: RSlice<'_, RString>
                ) -> RResult<(), PluginError>
                    = |plugin| plugin.send_keys(handle.as_str(), keys.as_slice());
                fn capture_output(handle: RStr<'_>, lines: u32) -> RResult<RString, PluginError>
                    = |plugin| plugin.capture_output(handle.as_str(), lines);
                fn is_alive(handle: RStr<'_>) -> RResult<bool, PluginError>
                    = |plugin| plugin.is_alive(handle.as_str());
                fn destroy(handle: RStr<'_>) -> RResult<(), PluginError>
                    = |plugin| plugin.destroy(handle.as_str());
            }
            last_of_first_release {
                fn attach_command(handle: RStr<'_>) -> RResult<RVec<RString>, PluginError>
                    = |plugin| plugin.attach_command(handle.as_str()).map(to_rvec);
            }
            added {
                /// Added after the first release of the interface: a library built before it has
                /// no such entry in its vtable, and the host gets this default instead.
                fn alive_handles() -> RResult<RVec<RString>, PluginError>
                    = |plugin| plugin.alive_handles().map(to_rvec);
                /// Added in 0.1.3; older libraries get this default.
                fn doctor() -> RResult<RVec<DoctorCheck>, PluginError>
                    = |plugin| plugin.doctor();
                /// Added in 0.1.3; older libraries get this default (and the host asks per handle).
                fn capture_outputs(
                    handles: RSlice<'_, RString>,
                    lines: u32
                ) -> RResult<RVec<RResult<RString, PluginError>>, PluginError>
                    = |plugin| plugin.capture_outputs(handles.as_slice(), lines).map(|screens| {
                        screens
                            .into_iter()
                            .map(|screen| screen.map(RString::from).into())
                            .collect::<RVec<_>>()
                    });
                /// Added in 0.1.3; older libraries get this default (and the host lists live
                /// sessions only).
                fn owned_handles() -> RResult<RVec<RString>, PluginError>
                    = |plugin| plugin.owned_handles().map(to_rvec);
                /// Added in 0.1.5; older libraries get this default (and the host shows the plain
                /// screen).
                fn capture_styled(handle: RStr<'_>, lines: u32) -> RResult<RString, PluginError>
                    = |plugin| plugin.capture_styled(handle.as_str(), lines);
                /// Added in 0.1.7; older libraries get this default (and the host calls `create`).
                fn start(request: &RuntimeCreateRequest) -> RResult<RString, PluginError>
                    = |plugin| plugin.start(request);
                /// Added in 0.1.9; older libraries get this default (and the host hides nothing
                /// of theirs from a confined agent).
                fn confinement() -> RResult<RVec<PathRule>, PluginFailure>
                    = |plugin| plugin.confinement().map(RVec::from);
            }
        }
        $callback! {
            /// FFI form of [`Agent`].
            interface Agent: AgentFfi, AgentAdapter, AgentObject, "agent";
            first_release {
                fn launch_command(session: &AgentSession) -> RResult<RVec<RString>, PluginError>
                    = |plugin| plugin.launch_command(session).map(to_rvec);
                fn environment(session: &AgentSession) -> RResult<RVec<EnvVar>, PluginError>
                    = |plugin| plugin.environment(session);
                fn is_ready(output: RStr<'_>) -> RResult<Readiness, PluginError>
                    = |plugin| plugin.is_ready(output.as_str());
                fn activity(output: RStr<'_>) -> RResult<Activity, PluginError>
                    = |plugin| plugin.activity(output.as_str());
            }
            last_of_first_release {
                fn input_pending(output: RStr<'_>) -> RResult<bool, PluginError>
                    = |plugin| plugin.input_pending(output.as_str());
            }
            added {
                /// Added in 0.1.3; older libraries get this default.
                fn doctor() -> RResult<RVec<DoctorCheck>, PluginError>
                    = |plugin| plugin.doctor();
                /// Added in 0.1.4; older libraries get this default (and the host uses
                /// `launch_command`).
                fn launch(request: &LaunchRequest) -> RResult<LaunchPlan, PluginError>
                    = |plugin| plugin.launch(request);
                /// Added in 0.1.6; older libraries get this default (and keep their files).
                fn forget(session_id: RStr<'_>) -> RResult<(), PluginError>
                    = |plugin| plugin.forget(session_id.as_str());
                /// Added in 0.1.7; older libraries get this default (and the host says nothing
                /// more).
                fn silent_events_hint() -> RResult<RString, PluginError>
                    = |plugin| plugin.silent_events_hint();
                /// Added in 0.1.8; older libraries get this default (and the host asks `activity`).
                fn activity_state(
                    output: RStr<'_>
                ) -> RResult<NonExhaustiveFor<ActivityState>, PluginFailure>
                    = |plugin| plugin.activity_state(output.as_str()).map(NonExhaustive::new);
                /// Added in 0.1.8; older libraries get this default (and the host asks
                /// `is_ready`).
                fn readiness_state(
                    output: RStr<'_>
                ) -> RResult<NonExhaustiveFor<ReadinessState>, PluginFailure>
                    = |plugin| plugin.readiness_state(output.as_str()).map(NonExhaustive::new);
                /// Added in 0.1.9; older libraries get this default (and the host shows their
                /// sessions' usage as unknown).
                fn usage(query: &UsageQuery) -> RResult<UsageReport, PluginFailure>
                    = |plugin| plugin.usage(query);
                /// Added in 0.1.9; older libraries get this default (their plain launch, with
                /// nothing more for the sandbox to allow, and no unattended mode).
                fn launch_confined(
                    request: &ConfinedLaunchRequest
                ) -> RResult<ConfinedLaunchPlan, PluginFailure>
                    = |plugin| plugin.launch_confined(request);
            }
        }
        $callback! {
            /// FFI form of [`Workspace`].
            interface Workspace: WorkspaceFfi, WorkspaceAdapter, WorkspaceObject, "workspace";
            first_release {
                fn create(config: &WorkspaceCreateConfig) -> RResult<RString, PluginError>
                    = |plugin| plugin.create(config);
                fn destroy(path: RStr<'_>, delete_branch: bool) -> RResult<(), PluginError>
                    = |plugin| plugin.destroy(path.as_str(), delete_branch);
            }
            last_of_first_release {
                fn exists(path: RStr<'_>) -> RResult<bool, PluginError>
                    = |plugin| plugin.exists(path.as_str());
            }
            added {
                /// Added in 0.1.2; older libraries get this default.
                fn list_owned() -> RResult<RVec<RString>, PluginError>
                    = |plugin| plugin.list_owned().map(to_rvec);
                /// Added in 0.1.2; older libraries get this default.
                fn has_unsaved_work(path: RStr<'_>) -> RResult<bool, PluginError>
                    = |plugin| plugin.has_unsaved_work(path.as_str());
                /// Added in 0.1.3; older libraries get this default.
                fn doctor() -> RResult<RVec<DoctorCheck>, PluginError>
                    = |plugin| plugin.doctor();
                /// Added in 0.1.3; older libraries get this default.
                fn discover_repository(dir: RStr<'_>) -> RResult<RepositoryInfo, PluginError>
                    = |plugin| plugin.discover_repository(dir.as_str());
                /// Added in 0.1.7; older libraries get this default.
                fn remove_merged_branches(
                    repo: RStr<'_>,
                    branches: RSlice<'_, RString>,
                    dry_run: bool
                ) -> RResult<RVec<RString>, PluginError>
                    = |plugin| {
                        let branches: Vec<String> =
                            branches.iter().map(|b| b.as_str().to_string()).collect();
                        plugin
                            .remove_merged_branches(repo.as_str(), &branches, dry_run)
                            .map(to_rvec)
                    };
                /// Added in 0.1.7; older libraries get this default.
                fn base_of(
                    repo: RStr<'_>,
                    default_branch: RStr<'_>
                ) -> RResult<RString, PluginError>
                    = |plugin| plugin
                        .base_of(repo.as_str(), default_branch.as_str())
                        .map(RString::from);
                /// Added in 0.1.9; older libraries get this default (and the host matches a
                /// pull request to a session by its branch name alone).
                fn commits_since(
                    path: RStr<'_>,
                    commit: RStr<'_>
                ) -> RResult<ROption<u32>, PluginFailure>
                    = |plugin| plugin
                        .commits_since(path.as_str(), commit.as_str())
                        .map(ROption::from);
                /// Added in 0.1.9; older libraries get this default (and the host refuses to
                /// confine their sessions).
                fn confinement(
                    query: &WorkspaceConfinementQuery
                ) -> RResult<WorkspaceConfinement, PluginFailure>
                    = |plugin| plugin.confinement(query);
            }
        }
        $callback! {
            /// FFI form of [`Scm`]. (Added in 0.1.9, all of it its first release.)
            interface Scm: ScmFfi, ScmAdapter, ScmObject, "scm";
            first_release {
                fn pull_requests(
                    query: &PullRequestQuery
                ) -> RResult<Fetched<RVec<PullRequest>>, PluginFailure>
                    = |plugin| plugin.pull_requests(query).map(fetched_rvec);
                fn checks(query: &ChecksQuery) -> RResult<Fetched<RVec<Check>>, PluginFailure>
                    = |plugin| plugin.checks(query).map(fetched_rvec);
                fn reviews(query: &ReviewsQuery) -> RResult<RVec<ReviewFeedback>, PluginFailure>
                    = |plugin| plugin.reviews(query);
                fn merge(request: &MergeRequest) -> RResult<(), PluginFailure>
                    = |plugin| plugin.merge(request);
                fn webhook(delivery: &WebhookDelivery) -> RResult<WebhookHint, PluginFailure>
                    = |plugin| plugin.webhook(delivery);
                fn rate_limits() -> RResult<RVec<RateLimit>, PluginFailure>
                    = |plugin| plugin.rate_limits();
            }
            last_of_first_release {
                fn doctor() -> RResult<RVec<DoctorCheck>, PluginFailure>
                    = |plugin| plugin.doctor();
            }
            added {}
        }
        $callback! {
            /// FFI form of [`Sandbox`]. (Added in 0.1.9, all of it its first release.)
            interface Sandbox: SandboxFfi, SandboxAdapter, SandboxObject, "sandbox";
            first_release {
                fn confine(request: &SandboxRequest) -> RResult<ConfinedCommand, PluginFailure>
                    = |plugin| plugin.confine(request);
            }
            last_of_first_release {
                fn doctor() -> RResult<RVec<DoctorCheck>, PluginFailure>
                    = |plugin| plugin.doctor();
            }
            added {}
        }
    };
}
