//! Scale: listing 10,000 active and 10,000 archived records, reserving an id among them.

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use ao_core::session::{now_ms, Session, SessionRole, SessionStatus, SessionStore};

use crate::{
    measure::{median, ms},
    setup::{ao_host, spawn_setup},
};

/// A worker record `id`, the `n`th.
fn record(id: &str, n: u64) -> Session {
    Session {
        id: id.into(),
        project_id: "app".into(),
        role: SessionRole::Worker,
        status: SessionStatus::Working,
        agent: "claude-code".into(),
        runtime: "tmux".into(),
        workspace: "git-worktree".into(),
        branch: format!("session/{id}"),
        workspace_path: Some(format!("/nonexistent/{id}")),
        runtime_handle: Some(id.into()),
        task: Some(format!("task number {n}\nwith a second line")),
        created_at: now_ms() + n,
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

pub(crate) fn scale(plugins: &[PathBuf], work: &Path) {
    let setup = spawn_setup(plugins, work, "scale");
    let sessions = setup.dir.join("data").join("sessions").join("app");
    std::fs::create_dir_all(&sessions).unwrap();
    // 10,000 active records of project `app`, and 10,000 archived ones of project `old`.
    let archive = setup
        .dir
        .join("data")
        .join("sessions")
        .join("old")
        .join("archive");
    std::fs::create_dir_all(&archive).unwrap();
    for n in 1..=10_000u64 {
        let id = format!("app-{n}");
        let text = serde_yaml::to_string(&record(&id, n)).unwrap();
        std::fs::write(sessions.join(format!("{id}.yaml")), text).unwrap();
        let old = format!("old-{n}");
        let mut archived = record(&old, n);
        archived.project_id = "old".into();
        archived.status = SessionStatus::Killed;
        std::fs::write(
            archive.join(format!("{old}.yaml")),
            serde_yaml::to_string(&archived).unwrap(),
        )
        .unwrap();
    }
    let ls = |archived: bool| {
        median(
            (0..5)
                .map(|_| {
                    let mut args = vec!["session", "ls", "--json"];
                    if archived {
                        args.push("--archived");
                    }
                    let started = Instant::now();
                    let output = ao_host(&setup, &args).output().unwrap();
                    assert!(
                        output.status.success(),
                        "{}",
                        String::from_utf8_lossy(&output.stderr)
                    );
                    ms(started.elapsed())
                })
                .collect(),
        )
    };
    let active = ls(false);
    let archived = ls(true);

    let store = SessionStore::open(&setup.dir.join("data")).unwrap();
    let reserve: Vec<f64> = (0..20)
        .map(|_| {
            let started = Instant::now();
            let (session, _lock) = store
                .reserve("app", SessionRole::Orchestrator, record("", 0))
                .unwrap();
            let elapsed = ms(started.elapsed());
            store.delete("app", &session.id).unwrap();
            elapsed
        })
        .collect();
    println!("## Scale\n");
    println!(
        "10,000 active session records on disk (none of their tmux sessions alive) and 10,000"
    );
    println!("archived ones.\n");
    println!("| operation | median | target |");
    println!("|---|---|---|");
    println!("| `ao-host session ls --json` (live status: one `alive_handles` call, then parse and print) | {active:.0} ms | <= 200 ms |");
    println!(
        "| orchestrator id reservation (`app-orchestrator-1` among 10,000 workers) | {:.2} ms | |",
        median(reserve)
    );
    println!(
        "| `ao-host session ls --archived --json` (no live status) | {:.0} ms | |",
        archived
    );
    println!();
}
