//! The Claude Code agent: its launch command, readiness, doctor and screens.

use super::*;

fn claude(data_dir: &Path, settings: &str) -> AgentPlugin {
    registry()
        .agent(
            "claude-code",
            &context("claude-code", data_dir, settings),
            TIMEOUT,
        )
        .unwrap()
}

fn agent_session(agent_config: &str, system_prompt: Option<&str>) -> AgentSession {
    AgentSession {
        session_id: "app-7".into(),
        project_id: "app".into(),
        branch: "session/app-7".into(),
        workspace_path: "/work/app-7".into(),
        system_prompt: match system_prompt {
            Some(p) => ROption::RSome(p.into()),
            None => ROption::RNone,
        },
        agent_config: agent_config.into(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn claude_launch_command_carries_model_permissions_and_a_prompt_file() {
    let temp = tempfile::tempdir().unwrap();
    let agent = claude(
        temp.path(),
        "command: /opt/claude\nenv: { IS_SANDBOX: \"1\" }\n",
    );
    let prompt = "You are worker app-7.\nReport with `ao-host send`.\n";
    // No permission prompts only in a sandbox, with `unattended: true`: a plain launch
    // refuses the plugin's own setting for it.
    let err = agent
        .launch_command(&agent_session("skip_permissions: true\n", None))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`unattended: true`"), "{err}");
    let argv = agent
        .launch_command(&agent_session(
            "model: opus\npermission_mode: plan\n",
            Some(prompt),
        ))
        .await
        .unwrap();
    assert_eq!(
        &argv[..5],
        [
            "/opt/claude",
            "--model",
            "opus",
            "--permission-mode",
            "plan"
        ]
    );
    assert_eq!(argv[5], "--append-system-prompt-file");
    assert_eq!(std::fs::read_to_string(&argv[6]).unwrap(), prompt);

    let argv = agent
        .launch_command(&agent_session("permission_mode: acceptEdits\n", None))
        .await
        .unwrap();
    assert_eq!(argv, ["/opt/claude", "--permission-mode", "acceptEdits"]);

    let env = agent.environment(&agent_session("", None)).await.unwrap();
    assert_eq!(env, vec![EnvVar::new("IS_SANDBOX", "1")]);

    let err = agent
        .launch_command(&agent_session("modle: opus\n", None))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("projects.app.agent_config"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn claude_readiness_answers_the_trust_dialog_only_when_allowed() {
    let temp = tempfile::tempdir().unwrap();
    let screen = std::fs::read_to_string(
        support::repo_root().join("plugins/agent-claude-code/tests/screens/trust-dialog.txt"),
    )
    .unwrap();
    match claude(temp.path(), "trust_workspaces: true")
        .is_ready(&screen)
        .await
        .unwrap()
    {
        Readiness::Blocked { answer, .. } => assert_eq!(answer.len(), 1),
        other => panic!("{other:?}"),
    }
    match claude(temp.path(), "").is_ready(&screen).await.unwrap() {
        Readiness::Blocked { answer, reason } => {
            assert!(answer.is_empty());
            assert!(reason.contains("trust_workspaces: true"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn claude_doctor_runs_the_configured_command_or_says_how_to_install_it() {
    let temp = tempfile::tempdir().unwrap();
    let cli = temp.path().join("claude");
    std::fs::write(&cli, "#!/bin/sh\necho '9.9.9 (Claude Code)'\n").unwrap();
    std::fs::set_permissions(&cli, std::fs::Permissions::from_mode(0o755)).unwrap();
    let settings = format!("command: {:?}", cli.display().to_string());
    let checks = claude(temp.path(), &settings).doctor().await.unwrap();
    // The CLI, then whether a managed policy lets it run the hooks (see agent_state.rs).
    assert_eq!(checks.len(), 2, "{checks:?}");
    assert!(checks[0].ok, "{checks:?}");
    assert_eq!(checks[1].what, "Claude Code runs ao-host's hooks");
    assert_eq!(
        checks[0].detail,
        format!("9.9.9 (Claude Code) ({})", cli.display())
    );

    let checks = claude(temp.path(), "command: ao-no-such-claude")
        .doctor()
        .await
        .unwrap();
    assert!(!checks[0].ok, "{checks:?}");
    for part in [
        "npm install -g @anthropic-ai/claude-code",
        "plugins.config.claude-code.command",
    ] {
        assert!(checks[0].detail.contains(part), "{checks:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn capture_outputs_reads_many_screens_in_order_and_fails_each_on_its_own() {
    let temp = tempfile::tempdir().unwrap();
    let server = TmuxServer::new();
    let runtime = tmux_runtime(&server, temp.path());
    let (one, _) = started_fake(&runtime, "cap-1", temp.path()).await;
    let (two, _) = started_fake(&runtime, "cap-2", temp.path()).await;
    let handles = vec![
        one.clone(),
        "cap-gone".to_string(),
        two.clone(),
        "not a handle".to_string(),
        one.clone(),
    ];
    let screens = runtime.capture_outputs(handles, 50).await.unwrap();
    assert_eq!(screens.len(), 5);
    let single = runtime.capture_output(&one, 50).await.unwrap();
    assert_eq!(screens[0].as_ref().unwrap(), &single);
    assert_eq!(
        screens[1].as_ref().unwrap_err().kind,
        PluginErrorKind::NotFound
    );
    assert!(screens[2].as_ref().unwrap().contains("❯\u{a0}"));
    assert_eq!(
        screens[3].as_ref().unwrap_err().kind,
        PluginErrorKind::InvalidInput
    );
    assert_eq!(screens[4].as_ref().unwrap(), &single);
    // Many at once: more than one tmux command's worth.
    let many: Vec<String> = std::iter::repeat_n(two.clone(), 150).collect();
    let screens = runtime.capture_outputs(many, 50).await.unwrap();
    assert_eq!(screens.len(), 150);
    assert!(screens
        .iter()
        .all(|s| s.as_ref().unwrap().contains("❯\u{a0}")));
}
