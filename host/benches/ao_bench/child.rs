//! Child processes of the benchmark's own binary (`--child MODE`), so that a measurement starts
//! from a process with nothing loaded yet, or is taken alone.

use std::{
    io::{Read, Write},
    path::PathBuf,
    process::{Command, Stdio},
    time::Instant,
};

use ao_core::plugins::{discovery, PluginRegistry};

use crate::dispatch::native_agent;

/// Runs child mode `args[0]` with the rest of `args`.
pub(crate) fn child(args: &[String]) {
    match args[0].as_str() {
        "load" => {
            let dir = PathBuf::from(&args[1]);
            let started = Instant::now();
            let dirs = [discovery::SearchDir {
                path: dir,
                origin: "bench",
            }];
            let registry = PluginRegistry::load(&discovery::candidates(&dirs));
            let elapsed = started.elapsed();
            assert!(registry
                .rows()
                .iter()
                .all(|r| r.reason.as_deref().is_none_or(|r| r.contains("shadowed"))));
            println!("{}", elapsed.as_nanos());
        }
        "pipe-server" => {
            let agent = native_agent();
            let stdin = std::io::stdin();
            let mut input = stdin.lock();
            let mut out = std::io::stdout().lock();
            let mut len = [0u8; 4];
            let mut buffer = Vec::new();
            while input.read_exact(&mut len).is_ok() {
                buffer.resize(u32::from_le_bytes(len) as usize, 0);
                input.read_exact(&mut buffer).unwrap();
                let activity = agent
                    .activity(std::str::from_utf8(&buffer).unwrap())
                    .unwrap();
                out.write_all(&[activity as u8]).unwrap();
                out.flush().unwrap();
            }
        }
        "rss" => {
            // Runs the command and reports its peak RSS alone (this process has no other child).
            let status = Command::new(&args[1])
                .args(&args[2..])
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success());
            println!("{}", children_peak_rss_mib());
        }
        other => panic!("unknown child mode {other}"),
    }
}

/// Runs this binary as `--child ARGS…`, which must succeed; its stdout, trimmed.
pub(crate) fn run_child(args: &[&str]) -> String {
    let output = Command::new(std::env::current_exe().unwrap())
        .arg("--child")
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Peak resident set of the largest child waited for so far, in MiB.
pub(crate) fn children_peak_rss_mib() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    usage.ru_maxrss as f64 / 1024.0
}
