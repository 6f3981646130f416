//! The `bubblewrap` sandbox plugin: an agent's argv becomes `bwrap … -- <argv>`, which runs it
//! with the whole system read-only, the policy's paths mounted over it in order (writable,
//! hidden, private), in namespaces of its own (pids, IPC, hostname, and with `network: none`
//! the network), and without capabilities.
//!
//! bwrap needs no daemon and no privilege beyond unprivileged user namespaces; the plugin
//! checks it works on the host the agent runs on (see [`probe`]) before it hands out an argv.
//! For an instance on another host (exported `[remote]`), the probe and the look at each rule's
//! path happen there, through the kit's transport-aware helpers.

use std::{path::Path, sync::Mutex};

use ao_plugin_api::{
    export_plugins,
    sandbox::{ConfinedCommand, SandboxRequest},
    DoctorCheck, ErrorKind, PluginContext, PluginError, PluginFailure, PluginResult, Sandbox,
};
use ao_plugin_kit::{files::Files, prelude::*};
use serde::Deserialize;

pub mod policy;
pub mod probe;

export_plugins! {
    sandbox "bubblewrap" => Bubblewrap [remote],
}

/// `plugins.config.bubblewrap`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The bwrap to run: a name looked up on `PATH` (of the host the agent runs on), or a path.
    program: Option<String>,
}

/// The plugin instance: where bwrap is, and what the probe found (asked once).
pub struct Bubblewrap {
    program: String,
    plugin: String,
    files: Files,
    probed: Mutex<Option<probe::Probed>>,
}

impl Bubblewrap {
    /// What the quick probe found, probing on the first call. A host that did not answer is
    /// asked again next time; a definite answer is kept.
    fn probed(&self) -> Result<probe::Probed, PluginError> {
        let mut probed = self.probed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = probed.as_ref() {
            return Ok(known.clone());
        }
        let fresh = probe::probe(&self.program, &self.plugin, probe::Depth::Quick)?;
        *probed = Some(fresh.clone());
        Ok(fresh)
    }
}

impl Sandbox for Bubblewrap {
    fn new(context: &PluginContext) -> PluginResult<Self> {
        let settings: Settings = context.parse_config()?;
        let program = settings.program.unwrap_or_else(|| "bwrap".to_string());
        if program.trim().is_empty() || program.contains('\0') {
            return Err(PluginError::config(format!(
                "plugins.config.{}.program is empty: give bwrap's name or path, or remove the \
                 setting",
                context.plugin_name
            )));
        }
        Ok(Self {
            program,
            plugin: context.plugin_name.to_string(),
            files: Files::here(),
            probed: Mutex::new(None),
        })
    }

    fn confine(&self, request: &SandboxRequest) -> Result<ConfinedCommand, PluginFailure> {
        let checked = policy::check(request)?;
        let probed = self.probed()?;
        let found = probed.ready()?;
        let place = probe::place();
        let paths: Vec<&Path> = checked.rules.iter().map(|(p, _)| p.as_path()).collect();
        let kinds = self.files.kinds(&paths).map_err(|e| {
            PluginFailure::new(
                if e.kind() == std::io::ErrorKind::ConnectionAborted {
                    ErrorKind::Unavailable
                } else {
                    ErrorKind::Failed
                },
                format!("looking at the sandbox's paths{place}: {e}"),
            )
        })?;
        let mounts = policy::mounts(&checked, &kinds, &place)?;
        let mut argv = vec![found.path.clone()];
        argv.extend(policy::base_args(request.network));
        argv.extend(mounts);
        argv.push("--".to_string());
        argv.extend(request.argv.iter().map(|a| a.to_string()));
        Ok(ConfinedCommand {
            argv: argv.into_iter().map(Into::into).collect(),
            notes: Vec::new().into(),
        })
    }

    fn doctor(&self) -> PluginResult<Vec<DoctorCheck>> {
        // Asked afresh: the operator may just have applied the fix.
        Ok(
            match probe::probe(&self.program, &self.plugin, probe::Depth::Thorough) {
                Ok(probed) => probed.doctor(),
                Err(error) => vec![DoctorCheck::failed("bwrap", error.message())],
            },
        )
    }
}
