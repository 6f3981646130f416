//! The git-worktree workspace: worktrees, branches, symlinks, post_create and what it owns.

use super::*;

fn worktree_request(repo: &Path, session: &str) -> WorkspaceCreateConfig {
    WorkspaceCreateConfig {
        project_id: "app".into(),
        session_id: session.into(),
        branch: format!("session/{session}").into(),
        repo_path: repo.display().to_string().into(),
        default_branch: "main".into(),
        symlinks: Vec::new().into(),
        post_create: Vec::new().into(),
        reuse_branch: false,
    }
}

fn branches(repo: &Path) -> Vec<String> {
    git(repo, &["branch", "--format=%(refname:short)"])
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worktree_gets_its_branch_symlinks_and_post_create() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    init_repo(&repo);
    std::fs::write(repo.join(".env"), "SECRET=1\n").unwrap();
    let workspace = worktrees(temp.path(), "");
    let mut request = worktree_request(&repo, "app-1");
    request.symlinks = vec![RString::from(".env")].into();
    request.post_create = vec![RString::from("echo ran > post-create.txt")].into();
    let path = PathBuf::from(workspace.create(request).await.unwrap());
    assert_eq!(
        path,
        temp.path().join("worktrees").join("app").join("app-1")
    );
    assert_eq!(
        git(&path, &["rev-parse", "--abbrev-ref", "HEAD"]),
        "session/app-1"
    );
    assert_eq!(
        git(&path, &["rev-parse", "HEAD"]),
        git(&repo, &["rev-parse", "main"])
    );
    assert!(path.join(".env").is_symlink());
    assert_eq!(
        std::fs::read_to_string(path.join(".env")).unwrap(),
        "SECRET=1\n"
    );
    assert_eq!(
        std::fs::read_to_string(path.join("post-create.txt")).unwrap(),
        "ran\n"
    );
    assert!(workspace.exists(&path.display().to_string()).await.unwrap());

    // Work committed on the branch keeps it alive past the workspace.
    git(
        &path,
        &["commit", "-q", "--allow-empty", "-m", "agent work"],
    );
    workspace
        .destroy(&path.display().to_string(), false)
        .await
        .unwrap();
    workspace
        .destroy(&path.display().to_string(), false)
        .await
        .unwrap();
    assert!(!path.exists());
    assert!(
        branches(&repo).contains(&"session/app-1".to_string()),
        "a branch with work is kept"
    );
    assert!(!git(&repo, &["worktree", "list"]).contains("app-1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn destroying_a_failed_spawns_worktree_can_delete_its_branch() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    init_repo(&repo);
    let workspace = worktrees(temp.path(), "");
    let path = workspace
        .create(worktree_request(&repo, "app-9"))
        .await
        .unwrap();
    workspace.destroy(&path, true).await.unwrap();
    assert_eq!(branches(&repo), vec!["main".to_string()]);
    assert!(!Path::new(&path).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worktree_starts_from_origin_when_the_remote_has_the_branch() {
    let temp = tempfile::tempdir().unwrap();
    let upstream = temp.path().join("upstream");
    init_repo(&upstream);
    let repo = temp.path().join("clone");
    git(
        temp.path(),
        &[
            "clone",
            "-q",
            upstream.to_str().unwrap(),
            repo.to_str().unwrap(),
        ],
    );
    // Local main moves ahead of origin/main; the worktree must start from origin/main.
    std::fs::write(repo.join("local.txt"), "unpushed\n").unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "local only"]);
    let path = worktrees(temp.path(), "")
        .create(worktree_request(&repo, "app-2"))
        .await
        .unwrap();
    assert_eq!(
        git(Path::new(&path), &["rev-parse", "HEAD"]),
        git(&repo, &["rev-parse", "origin/main"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_concurrent_worktrees_in_one_repo_all_succeed() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    init_repo(&repo);
    let workspace = worktrees(temp.path(), "");
    let creates = (1..=20).map(|n| {
        let workspace = workspace.clone();
        let request = worktree_request(&repo, &format!("app-{n}"));
        tokio::spawn(async move { workspace.create(request).await })
    });
    let results = futures_join(creates.collect()).await;
    for result in &results {
        assert!(result.is_ok(), "{result:?}");
    }
    let listed = git(&repo, &["worktree", "list"]);
    assert_eq!(listed.lines().count(), 21, "{listed}");
    assert_eq!(branches(&repo).len(), 21);
}

async fn futures_join<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(handle.await.unwrap());
    }
    results
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_post_create_leaves_no_worktree_and_no_branch() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    init_repo(&repo);
    let mut request = worktree_request(&repo, "app-3");
    request.post_create = vec![RString::from("echo boom >&2; exit 7")].into();
    let err = worktrees(temp.path(), "")
        .create(request)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("boom"), "{err}");
    assert!(err.to_string().contains("exit status: 7"), "{err}");
    assert!(!temp.path().join("worktrees/app/app-3").exists());
    assert_eq!(branches(&repo), vec!["main".to_string()]);
    assert_eq!(git(&repo, &["worktree", "list"]).lines().count(), 1);
    assert!(pending_files(temp.path()).is_empty(), "intent file left");
}

#[tokio::test(flavor = "multi_thread")]
async fn escaping_symlinks_and_bad_branches_are_refused_and_leave_nothing() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    init_repo(&repo);
    let workspace = worktrees(temp.path(), "");
    for entry in ["../../etc/passwd", "/etc/passwd"] {
        let mut request = worktree_request(&repo, "app-4");
        request.symlinks = vec![RString::from(entry)].into();
        let err = workspace.create(request).await.unwrap_err();
        assert_eq!(err.kind(), PluginErrorKind::InvalidInput, "{entry}: {err}");
    }
    for branch in ["bad..branch", "-x", "has space", "ends.lock"] {
        let mut request = worktree_request(&repo, "app-5");
        request.branch = branch.into();
        let err = workspace.create(request).await.unwrap_err();
        assert!(
            err.to_string().contains("not a valid git branch name"),
            "{branch}: {err}"
        );
    }
    assert_eq!(branches(&repo), vec!["main".to_string()]);
    assert_eq!(git(&repo, &["worktree", "list"]).lines().count(), 1);
    assert!(!temp.path().join("worktrees/app/app-4").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn symlinks_naming_a_git_folder_are_refused_and_leave_nothing() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    init_repo(&repo);
    std::fs::create_dir_all(repo.join("sub/.GIT")).unwrap();
    let workspace = worktrees(temp.path(), "");
    for entry in [".git", "sub/.GIT"] {
        let mut request = worktree_request(&repo, "app-6");
        request.symlinks = vec![RString::from(entry)].into();
        let err = workspace.create(request).await.unwrap_err();
        assert_eq!(err.kind(), PluginErrorKind::InvalidInput, "{entry}: {err}");
        assert!(err.to_string().contains("`.git` folder"), "{entry}: {err}");
    }
    assert_eq!(branches(&repo), vec!["main".to_string()]);
    assert_eq!(git(&repo, &["worktree", "list"]).lines().count(), 1);
    assert!(!temp.path().join("worktrees/app/app-6").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_post_create_is_stopped_with_its_processes_and_leaves_nothing() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    init_repo(&repo);
    let pid_file = temp.path().join("post-create.pid");
    let mut request = worktree_request(&repo, "app-8");
    request.post_create = vec![RString::from(format!(
        "echo $$ > '{}'; sleep 30",
        pid_file.display()
    ))]
    .into();
    let started = std::time::Instant::now();
    let err = worktrees(temp.path(), "post_create_timeout_ms: 500")
        .create(request)
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(15), "{err}");
    let message = err.to_string();
    for part in [
        "sleep 30",
        "500 ms",
        "it and the processes of its process group were stopped",
        "post_create_timeout_ms",
        "defaults.call_timeout_ms",
    ] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
    assert!(!temp.path().join("worktrees/app/app-8").exists());
    assert_eq!(branches(&repo), vec!["main".to_string()]);
    assert_eq!(git(&repo, &["worktree", "list"]).lines().count(), 1);
    let group: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || live_group_members(group)
            .is_empty()),
        "post_create processes survived: {:?}",
        live_group_members(group)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn discover_repository_finds_the_main_repository_from_anywhere_inside_it() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    init_repo(&repo);
    std::fs::create_dir_all(repo.join("sub/deeper")).unwrap();
    let workspace = worktrees(temp.path(), "");
    let linked = PathBuf::from(
        workspace
            .create(worktree_request(&repo, "app-1"))
            .await
            .unwrap(),
    );
    std::fs::create_dir_all(linked.join("inner")).unwrap();
    let discover = |dir: PathBuf| {
        let workspace = workspace.clone();
        async move {
            workspace
                .discover_repository(&dir.display().to_string())
                .await
        }
    };
    let root = repo.canonicalize().unwrap();
    for dir in [
        repo.clone(),
        repo.join("sub/deeper"),
        linked.clone(),
        linked.join("inner"),
    ] {
        let info = discover(dir.clone()).await.unwrap();
        assert_eq!(
            Path::new(info.root.as_str()).canonicalize().unwrap(),
            root,
            "{dir:?}"
        );
        assert_eq!(
            info.default_branch,
            ROption::RSome(RString::from("main")),
            "{dir:?}"
        );
    }

    // origin's HEAD branch wins over whatever the main worktree has checked out.
    let upstream = temp.path().join("upstream");
    init_repo(&upstream);
    git(&upstream, &["branch", "-m", "main", "trunk"]);
    let clone = temp.path().join("clone");
    git(
        temp.path(),
        &[
            "clone",
            "-q",
            upstream.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    git(&clone, &["switch", "-q", "-c", "feature"]);
    let info = discover(clone.clone()).await.unwrap();
    assert_eq!(info.default_branch, ROption::RSome(RString::from("trunk")));

    // No remote and a detached HEAD: nothing to tell.
    git(&repo, &["checkout", "-q", "--detach"]);
    assert_eq!(
        discover(repo.clone()).await.unwrap().default_branch,
        ROption::RNone
    );

    let plain = temp.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let err = discover(plain).await.unwrap_err();
    assert_eq!(err.kind(), PluginErrorKind::NotFound, "{err}");
    assert!(
        err.to_string().contains("not inside a git repository"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn list_owned_lists_only_this_data_dirs_worktrees() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    init_repo(&repo);
    let shared_root = temp.path().join("shared-worktrees");
    let settings = format!("root: {:?}", shared_root.display().to_string());
    let (data_a, data_b) = (temp.path().join("data-a"), temp.path().join("data-b"));
    let (a, b) = (worktrees(&data_a, &settings), worktrees(&data_b, &settings));
    let path_a = a.create(worktree_request(&repo, "app-1")).await.unwrap();
    let path_b = b.create(worktree_request(&repo, "app-2")).await.unwrap();
    // A worktree made by hand (or by a version that recorded no owner) is no one's.
    let by_hand = shared_root.join("app").join("app-3");
    git(
        &repo,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "by-hand",
            by_hand.to_str().unwrap(),
            "main",
        ],
    );
    assert_eq!(a.list_owned().await.unwrap(), vec![path_a.clone()]);
    assert_eq!(b.list_owned().await.unwrap(), vec![path_b]);
    let admin = git(
        Path::new(&path_a),
        &["rev-parse", "--path-format=absolute", "--git-dir"],
    );
    assert_eq!(
        std::fs::read_to_string(Path::new(&admin).join("ao-owner")).unwrap(),
        data_a.display().to_string()
    );

    // Even in the default root, inside the data dir, a worktree without an owner record and
    // without an intent file of this data dir (see the killed-spawn test) is no one's.
    let private = worktrees(&data_a, "");
    let path = private
        .create(worktree_request(&repo, "app-4"))
        .await
        .unwrap();
    std::fs::remove_file(admin_dir(&path).join("ao-owner")).unwrap();
    assert!(private.list_owned().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn destroy_removes_only_worktrees_this_data_dir_made_under_its_root() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    init_repo(&repo);
    let data = temp.path().join("data");
    let workspace = worktrees(&data, "");
    let ours = workspace
        .create(worktree_request(&repo, "app-1"))
        .await
        .unwrap();
    // Made by hand: outside the root, and inside it where a session's would be.
    let outside = temp.path().join("by-hand");
    let inside = data.join("worktrees/app/app-2");
    for (path, branch) in [(&outside, "outside"), (&inside, "inside")] {
        git(
            &repo,
            &[
                "worktree",
                "add",
                "-q",
                "-b",
                branch,
                path.to_str().unwrap(),
                "main",
            ],
        );
        std::fs::write(path.join("MARK"), "mine").unwrap();
    }
    // An intent file naming the outside one under another session's name.
    std::fs::create_dir_all(data.join("git-worktree/pending")).unwrap();
    std::fs::write(
        data.join("git-worktree/pending/app__app-3"),
        outside.display().to_string(),
    )
    .unwrap();
    for path in [&outside, &inside] {
        let err = workspace
            .destroy(path.to_str().unwrap(), true)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("does not remove it"), "{err}");
        assert!(path.join("MARK").exists(), "{}", path.display());
    }
    assert_eq!(workspace.list_owned().await.unwrap(), vec![ours.clone()]);
    // A link in the root to a worktree elsewhere is not a worktree of the root.
    let link = data.join("worktrees/app/app-4");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    assert!(workspace
        .destroy(link.to_str().unwrap(), true)
        .await
        .is_err());
    assert!(outside.join("MARK").exists());
    workspace.destroy(&ours, true).await.unwrap();
    assert!(!Path::new(&ours).exists());
}

/// A worktree's admin folder, where the plugin keeps its records.
fn admin_dir(worktree: &str) -> PathBuf {
    PathBuf::from(git(
        Path::new(worktree),
        &["rev-parse", "--path-format=absolute", "--git-dir"],
    ))
}

fn pending_files(data_dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(data_dir.join("git-worktree/pending")) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// What a spawn killed between `git worktree add` and the owner record leaves: the worktree
/// (checked out with `--no-checkout`, as the plugin does) and the plugin's intent file.
fn interrupted_create(repo: &Path, data_dir: &Path, root: &Path, session: &str) -> String {
    let path = root.join("app").join(session).display().to_string();
    let branch = format!("session/{session}");
    let args = [
        "worktree",
        "add",
        "-q",
        "--no-checkout",
        "-b",
        &branch,
        &path,
    ];
    git(repo, &[&args[..], &["main"]].concat());
    let pending = data_dir.join("git-worktree/pending");
    std::fs::create_dir_all(&pending).unwrap();
    std::fs::write(pending.join(format!("app__{session}")), &path).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worktree_left_by_a_killed_spawn_is_listed_holds_no_work_and_goes_with_its_branch() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    init_repo(&repo);
    // A custom root, which lies inside another installation's data dir.
    let outer = temp.path().join("outer");
    let root = outer.join("wt");
    let settings = format!("root: {:?}", root.display().to_string());
    let data = temp.path().join("data");
    let workspace = worktrees(&data, &settings);
    let leaked = interrupted_create(&repo, &data, &root, "app-1");
    assert!(
        git(Path::new(&leaked), &["status", "--porcelain"]).contains("D  README.md"),
        "a half-done checkout shows every file deleted"
    );
    assert_eq!(workspace.list_owned().await.unwrap(), vec![leaked.clone()]);
    assert!(!workspace.has_unsaved_work(&leaked).await.unwrap());
    // The installation whose data dir holds that root claims none of it, with that root or its
    // own.
    for settings in [settings.as_str(), ""] {
        let other = worktrees(&outer, settings);
        assert!(other.list_owned().await.unwrap().is_empty(), "{settings}");
    }

    workspace.destroy(&leaked, false).await.unwrap();
    assert!(!Path::new(&leaked).exists());
    assert_eq!(branches(&repo), vec!["main".to_string()]);
    assert!(workspace.list_owned().await.unwrap().is_empty());

    // An intent file naming no worktree is dropped when listing, unless it is young enough to
    // belong to a create still running.
    let [stale] = &pending_files(&data)[..] else {
        panic!("{:?}", pending_files(&data));
    };
    let fresh = data.join("git-worktree/pending/app__app-2");
    std::fs::write(&fresh, root.join("app/app-2").display().to_string()).unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(600);
    std::fs::File::options()
        .write(true)
        .open(stale)
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert!(workspace.list_owned().await.unwrap().is_empty());
    assert_eq!(pending_files(&data), vec![fresh]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worktree_whose_create_never_finished_keeps_a_branch_that_holds_commits() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    init_repo(&repo);
    let workspace = worktrees(temp.path(), "");
    let path = workspace
        .create(worktree_request(&repo, "app-1"))
        .await
        .unwrap();
    let admin = admin_dir(&path);
    assert!(admin.join("ao-ready").exists());
    assert!(admin.join("ao-owner").exists());
    assert!(pending_files(temp.path()).is_empty());
    std::fs::write(Path::new(&path).join("work.txt"), "work\n").unwrap();
    assert!(workspace.has_unsaved_work(&path).await.unwrap());

    // Killed during post_create: the owner record is written, the ready one is not.
    std::fs::remove_file(admin.join("ao-ready")).unwrap();
    assert!(!workspace.has_unsaved_work(&path).await.unwrap());
    assert_eq!(workspace.list_owned().await.unwrap(), vec![path.clone()]);
    // Commits on the branch are work: `git branch -d` refuses the branch, and it is kept.
    git(Path::new(&path), &["add", "."]);
    git(Path::new(&path), &["commit", "-q", "-m", "work"]);
    workspace.destroy(&path, false).await.unwrap();
    assert!(!Path::new(&path).exists());
    assert!(
        branches(&repo).contains(&"session/app-1".to_string()),
        "{:?}",
        branches(&repo)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repo_that_is_not_a_git_repository_is_named_as_such() {
    let temp = tempfile::tempdir().unwrap();
    let plain = temp.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let err = worktrees(temp.path(), "")
        .create(worktree_request(&plain, "app-1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), PluginErrorKind::InvalidInput, "{err}");
    let message = err.to_string();
    let named = format!("{} is not a git repository (git: ", plain.display());
    for part in [
        named.as_str(),
        "not a git repository",
        "fix `repo` for project `app`",
    ] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
    assert!(!message.contains("default branch"), "{message}");
    assert!(!temp.path().join("worktrees/app/app-1").exists());
    assert!(pending_files(temp.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_branch_checked_out_elsewhere_is_refused_naming_where() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    init_repo(&repo);
    let a = worktrees(&temp.path().join("data-a"), "");
    let b = worktrees(&temp.path().join("data-b"), "");
    // Another installation with the same repository and session_prefix took `session/app-1`.
    let path_a = a.create(worktree_request(&repo, "app-1")).await.unwrap();
    let err = b
        .create(worktree_request(&repo, "app-1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), PluginErrorKind::InvalidInput, "{err}");
    for part in [path_a.as_str(), "another session", "session_prefix"] {
        assert!(
            err.to_string().contains(part),
            "{part:?} missing from: {err}"
        );
    }
    assert!(!temp.path().join("data-b/worktrees/app/app-1").exists());
    assert!(Path::new(&path_a).join(".git").exists());

    git(&repo, &["branch", "session/app-5"]);
    git(&repo, &["switch", "-q", "session/app-5"]);
    let err = b
        .create(worktree_request(&repo, "app-5"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("main worktree"), "{err}");
    assert_eq!(git(&repo, &["worktree", "list"]).lines().count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn worktree_doctor_checks_git_and_the_root() {
    let temp = tempfile::tempdir().unwrap();
    let checks = worktrees(temp.path(), "").doctor().await.unwrap();
    let whats: Vec<&str> = checks.iter().map(|c| c.what.as_str()).collect();
    assert_eq!(whats, ["git", "worktree root"]);
    assert!(checks.iter().all(|c| c.ok), "{checks:?}");
    assert!(checks[0].detail.starts_with("git version"), "{checks:?}");

    // A root under a plain file can never be made, whoever runs the test.
    std::fs::write(temp.path().join("file"), "").unwrap();
    let settings = format!(
        "root: {:?}",
        temp.path().join("file/sub").display().to_string()
    );
    let checks = worktrees(temp.path(), &settings).doctor().await.unwrap();
    assert!(!checks[1].ok, "{checks:?}");
    assert!(
        checks[1]
            .detail
            .contains("plugins.config.git-worktree.root"),
        "{checks:?}"
    );
}
