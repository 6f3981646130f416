//! Dispatch overhead: one agent method through the stable ABI, natively, and over a pipe.

use std::{
    io::{Read, Write},
    path::PathBuf,
    process::{Command, Stdio},
};

use ao_core::plugins::library::{load_library, LoadedPlugin};
use ao_plugin_api::{abi_stable::std_types::RStr, Agent, PluginConstructor, PluginContext};

use crate::measure::per_call_ns;

const IDLE_SCREEN: &str = include_str!("../../../plugins/agent-claude-code/tests/screens/idle.txt");

/// The claude-code agent linked into this binary, called without the ABI.
pub(crate) fn native_agent() -> Box<dyn Agent> {
    let context = PluginContext {
        plugin_name: "claude-code".into(),
        data_dir: "/tmp".into(),
        config_yaml: "".into(),
    };
    Box::new(ao_agent_claude_code::ClaudeCode::new(&context).unwrap())
}

pub(crate) fn dispatch(plugins: &[PathBuf]) {
    let library = plugins
        .iter()
        .find(|p| p.to_string_lossy().contains("claude"))
        .unwrap();
    let report = load_library(library);
    let loaded = report.outcome.unwrap().remove(0);
    let LoadedPlugin::InProcess(declaration, _) = loaded else {
        panic!("loaded without isolation")
    };
    let PluginConstructor::Agent(construct) = declaration.constructor else {
        panic!("claude-code is an agent")
    };
    let context = PluginContext {
        plugin_name: "claude-code".into(),
        data_dir: "/tmp".into(),
        config_yaml: "".into(),
    };
    let ffi = construct(&context).unwrap();
    let native = native_agent();

    let mut pipe = Command::new(std::env::current_exe().unwrap())
        .args(["--child", "pipe-server"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_child = pipe.stdin.take().unwrap();
    let mut from_child = std::io::BufReader::new(pipe.stdout.take().unwrap());
    let mut pipe_call = |screen: &str| {
        to_child
            .write_all(&(screen.len() as u32).to_le_bytes())
            .unwrap();
        to_child.write_all(screen.as_bytes()).unwrap();
        to_child.flush().unwrap();
        let mut answer = [0u8; 1];
        from_child.read_exact(&mut answer).unwrap();
        std::hint::black_box(answer);
    };

    println!("## Dispatch overhead\n");
    println!(
        "`Agent::activity(screen)` of the claude-code plugin: the same code called through the"
    );
    println!(
        "stable ABI (`AgentFfi_TO` from the loaded library, `catch_unwind` included), natively"
    );
    println!(
        "through `Box<dyn Agent>`, and in a child process over a pipe (length-prefixed request,"
    );
    println!("one-byte answer), as process-isolated plugin hosts do.\n");
    println!(
        "| input | native `Box<dyn>` | stable ABI | ABI / native | pipe round-trip | pipe / ABI |"
    );
    println!("|---|---|---|---|---|---|");
    for (label, screen) in [
        ("idle screen (40 lines)", IDLE_SCREEN),
        ("empty screen", ""),
    ] {
        let native_ns = per_call_ns(20_000, || {
            std::hint::black_box(native.activity(std::hint::black_box(screen)).unwrap());
        });
        let ffi_ns = per_call_ns(20_000, || {
            std::hint::black_box(
                ffi.activity(RStr::from_str(std::hint::black_box(screen)))
                    .unwrap(),
            );
        });
        let pipe_ns = per_call_ns(2_000, || pipe_call(screen));
        println!(
            "| {label} | {native_ns:.0} ns | {ffi_ns:.0} ns | {:.2}x | {:.1} µs | {:.0}x |",
            ffi_ns / native_ns,
            pipe_ns / 1000.0,
            pipe_ns / ffi_ns
        );
    }
    drop(to_child);
    let _ = pipe.wait();
    println!("\nTarget: ABI / native <= 1.5x.\n");
}
