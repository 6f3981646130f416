//! The workspace checks: a workspace made in a scratch repository, looked at, and removed.
//!
//! Workspace plugins need a repository to work on; the kit makes a scratch git repository of
//! its own (with `git`, run directly with an argv), since the plugin interface has no way to
//! make one and a plugin must never be tried on the operator's own.

use std::path::Path;

use ao_plugin_api::{PluginErrorKind, WorkspaceCreateConfig};

use super::Kit;
use ao_plugin_host::WorkspacePlugin;

/// Makes a repository with one commit on `main`.
fn scratch_repository(repo: &Path) -> Result<(), String> {
    std::fs::create_dir_all(repo).map_err(|e| e.to_string())?;
    std::fs::write(
        repo.join("README"),
        "scratch repository of the ao-host conformance kit\n",
    )
    .map_err(|e| e.to_string())?;
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "README"],
        &[
            "-c",
            "user.name=ao-host kit",
            "-c",
            "user.email=kit@ao-host.invalid",
            "commit",
            "-q",
            "-m",
            "scratch",
        ],
    ] {
        let output = std::process::Command::new("git")
            .args(args)
            .current_dir(repo)
            .output()
            .map_err(|e| {
                format!("running git (the kit needs it for its scratch repository): {e}")
            })?;
        if !output.status.success() {
            return Err(format!(
                "git {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
    }
    Ok(())
}

fn request(repo: &Path, session: &str, branch: &str) -> WorkspaceCreateConfig {
    WorkspaceCreateConfig {
        project_id: "aokit".into(),
        session_id: session.into(),
        branch: branch.into(),
        repo_path: repo.display().to_string().into(),
        default_branch: "main".into(),
        symlinks: Vec::new().into(),
        post_create: Vec::new().into(),
        reuse_branch: false,
    }
}

pub(super) async fn check(kit: &mut Kit<'_>) {
    let home = kit.data_dir("data");
    let built = kit
        .registry
        .workspace(&kit.plugin, &kit.context(&home), kit.timeout);
    let Some(workspace) = kit.built(built) else {
        return;
    };
    let repo = kit.scratch.join("repo");
    if !kit.record(
        "scratch repository",
        scratch_repository(&repo).map(|()| repo.display().to_string()),
    ) {
        return;
    }
    kit.record(
        "discover_repository",
        match workspace
            .discover_repository(&repo.display().to_string())
            .await
        {
            Ok(info) if Path::new(info.root.as_str()) == repo => {
                Ok("finds the repository's root".into())
            }
            Ok(info) => Err(format!(
                "says the root is {}, not {}",
                info.root,
                repo.display()
            )),
            Err(e) if e.kind() == PluginErrorKind::Unsupported => {
                Ok("not supported (optional)".into())
            }
            Err(e) => Err(e.to_string()),
        },
    );
    let created = workspace
        .create(request(&repo, "aokit-1", "aokit/session-1"))
        .await
        .map_err(|e| e.to_string());
    let Ok(path) = created.clone() else {
        kit.record("create", created);
        return;
    };
    kit.record(
        "create",
        if Path::new(&path).is_dir() {
            Ok(format!("made {path}"))
        } else {
            Err(format!("returned {path}, which is not a folder"))
        },
    );
    made_checks(kit, &workspace, &path).await;
    refused_checks(kit, &workspace, &repo).await;

    let destroyed = workspace
        .destroy(&path, true)
        .await
        .map_err(|e| e.to_string());
    kit.record(
        "destroy",
        match destroyed {
            Err(e) => Err(e),
            Ok(()) if Path::new(&path).exists() => Err(format!("{path} is still there")),
            Ok(()) => match workspace.list_owned().await {
                Ok(owned) if owned.contains(&path) => Err("list_owned still lists it".into()),
                _ => Ok("the folder is gone and no longer listed".into()),
            },
        },
    );
    kit.record(
        "destroy twice",
        workspace
            .destroy(&path, true)
            .await
            .map(|()| "destroying what is gone succeeds".into())
            .map_err(|e| format!("the second destroy failed: {e}")),
    );
}

/// What a made workspace must answer.
async fn made_checks(kit: &mut Kit<'_>, workspace: &WorkspacePlugin, path: &str) {
    kit.record(
        "exists",
        match workspace.exists(path).await {
            Ok(true) => Ok("true".into()),
            Ok(false) => Err("false for the workspace just made".into()),
            Err(e) => Err(e.to_string()),
        },
    );
    kit.record(
        "list_owned",
        match workspace.list_owned().await {
            Ok(owned) if owned.iter().any(|p| p == path) => Ok("lists it".into()),
            Ok(owned) => Err(format!("does not list {path}: {owned:?}")),
            Err(e) if e.kind() == PluginErrorKind::Unsupported => {
                Ok("not supported (gc cannot find orphans)".into())
            }
            Err(e) => Err(e.to_string()),
        },
    );
    let clean = workspace.has_unsaved_work(path).await;
    let _ = std::fs::write(Path::new(path).join("aokit-unsaved"), "work in progress\n");
    let dirty = workspace.has_unsaved_work(path).await;
    kit.record(
        "has_unsaved_work",
        match (clean, dirty) {
            (Ok(false), Ok(true)) => Ok("false when clean, true with a new file".into()),
            (Err(e), _) | (_, Err(e)) if e.kind() == PluginErrorKind::Unsupported => {
                Ok("not supported (kills cannot protect work)".into())
            }
            (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
            (clean, dirty) => Err(format!(
                "said {clean:?} when clean and {dirty:?} with a new file"
            )),
        },
    );
}

/// Requests a workspace plugin must refuse, leaving nothing.
async fn refused_checks(kit: &mut Kit<'_>, workspace: &WorkspacePlugin, repo: &Path) {
    let before = workspace.list_owned().await.unwrap_or_default();
    let hostile = workspace
        .create(request(repo, "aokit-2", "../../escape; rm -rf ~"))
        .await;
    let after = workspace.list_owned().await.unwrap_or_default();
    kit.record(
        "create with a hostile branch name",
        match hostile {
            Ok(path) => {
                let _ = workspace.destroy(&path, true).await;
                Err(format!("accepted it and made {path}"))
            }
            Err(_) if after.len() > before.len() => Err("refused it, but left a workspace".into()),
            Err(e) => Ok(format!("refused: {e}")),
        },
    );
}
