//! Starting an agent with the environment the host chose, without any value on a command line.
//!
//! A terminal multiplexer starts a session's process with the environment of *its own* server
//! process, whoever started that long ago; and anything passed as an argument (`tmux -e
//! NAME=VALUE`, `env NAME=VALUE`) is readable by every local user in `/proc/*/cmdline`. So a
//! runtime writes the environment and the argv into a launch file (owner-only, created
//! exclusively, with an unpredictable name, in an owner-only folder) and has its multiplexer run
//! [`Launch::argv`]: a small `bash` program that reads the file, deletes it, sets exactly the
//! environment it holds (plus the few variables the runtime itself must set for its terminal,
//! such as `TERM`) and `exec`s the agent. Only the file's path and variable *names* appear on a
//! command line.
//!
//! On another host (a plugin built with a [`Transport`](ao_plugin_api::Transport)) the file is written there, by a
//! POSIX shell reached over the transport, with the same guarantees.

use std::path::{Path, PathBuf};

use ao_plugin_api::{EnvVar, PluginError, PluginResult, RuntimeCreateRequest};

use crate::files::Files;

/// Starts the agent from a launch file (`$1`). With `$2` = `exact`, the agent gets exactly the
/// file's variables plus those named after `$2` (the runtime's own terminal variables, which
/// win): their values are kept in a second private file (`$1.term`, never on a command line),
/// and the second stage runs under `env -i`, so nothing else of this process's environment
/// reaches the agent, not even a variable bash could not unset (`a-b=…`). With `add`, the file's
/// variables are added to what this process has.
///
/// The file: the number of variables, the variables (`NAME=VALUE`), then the argv; each item
/// ends with a NUL byte. The second stage reads both files, deletes them, and `exec`s the argv.
/// Names of its own start with `ao_` and are made fresh first, so a variable of the same name
/// in the environment cannot take their place.
const SHIM: &str = r#"builtin unset -v ao_f ao_m ao_k ao_n ao_s
ao_f=$1 ao_m=$2; shift 2
ao_k=()
if [[ $ao_m == exact ]]; then
  for ao_n in "$@"; do [[ -n ${!ao_n+x} ]] && ao_k+=("$ao_n=${!ao_n}"); done
fi
if ! (umask 077 && set -C && builtin printf '%s\0' "${ao_k[@]}" > "$ao_f.term"); then
  command -p rm -f -- "$ao_f"; echo "ao-launch: cannot write $ao_f.term" >&2; exit 126
fi
ao_s='builtin mapfile -d "" -t ao_d < "$1" && builtin mapfile -d "" -t ao_k < "$1.term"
ao_n=$?
command -p rm -f -- "$1" "$1.term"
if (( ao_n != 0 || ${#ao_d[@]} < 2 )); then
  echo "ao-launch: cannot read the launch file $1" >&2; exit 126
fi
ao_n=${ao_d[0]}
for ao_v in "${ao_d[@]:1:ao_n}" "${ao_k[@]}"; do
  [[ -n $ao_v ]] || continue
  builtin export -- "$ao_v" 2>/dev/null || echo "ao-launch: cannot set ${ao_v%%=*}" >&2
done
builtin exec -- "${ao_d[@]:ao_n+1}"'
if [[ $ao_m == exact ]]; then
  builtin exec env -i "$BASH" --noprofile --norc -c "$ao_s" ao-launch "$ao_f"
fi
builtin exec "$BASH" --noprofile --norc -c "$ao_s" ao-launch "$ao_f""#;

/// What the environment of the started process is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// Exactly the request's variables (and the runtime's own, named in [`Launch::prepare`]):
    /// [`Runtime::start`](ao_plugin_api::Runtime::start).
    Exact,
    /// The request's variables added to what the runtime's process has:
    /// [`Runtime::create`](ao_plugin_api::Runtime::create).
    Added,
}

/// A launch file written, and the argv that starts the agent from it.
#[derive(Debug)]
pub struct Launch {
    /// What the runtime runs: `env -u … bash --noprofile --norc -c SHIM ao-launch FILE …`.
    pub argv: Vec<String>,
    /// The launch file; the started program deletes it (and the `.term` file it writes beside
    /// it). Remove it yourself only when the runtime could not start anything
    /// ([`Launch::discard`]).
    pub file: PathBuf,
}

impl Launch {
    /// Writes the launch file of `request` into `dir` (made owner-only; on the plugin's
    /// machine) and gives the argv that runs it. `own` names the variables the runtime's
    /// process sets itself for the agent's terminal (`TERM`, `TMUX`, …): with
    /// [`Environment::Exact`] they are kept from the runtime's process, over the request's.
    pub fn prepare(
        dir: &Path,
        request: &RuntimeCreateRequest,
        environment: Environment,
        own: &[&str],
    ) -> PluginResult<Self> {
        if request.launch_command.is_empty() {
            return Err(PluginError::invalid_input("empty launch command"));
        }
        let data = contents(&request.env, &request.launch_command)?;
        let file = dir.join(format!(
            "{}-{}.launch",
            request.session_id,
            crate::uuid::new_v4()?
        ));
        // The folder is made owner-only (checked to be ours, not a link) and the file written
        // owner-only through an exclusive temporary name, here or on the plugin's host alike.
        let files = crate::files::Files::here();
        files
            .create_dir_all(dir, true)
            .and_then(|()| files.write(&file, &data))
            .map_err(|e| {
                PluginError::failed(format!("writing the launch file {}: {e}", file.display()))
            })?;
        let mut argv: Vec<String> = ["env", "-u", "BASH_ENV", "-u", "ENV"]
            .into_iter()
            .chain(["-u", "SHELLOPTS", "-u", "BASHOPTS"])
            .chain(["bash", "--noprofile", "--norc", "-c", SHIM, "ao-launch"])
            .map(str::to_string)
            .collect();
        argv.push(file.display().to_string());
        argv.push(
            match environment {
                Environment::Exact => "exact",
                Environment::Added => "add",
            }
            .to_string(),
        );
        if environment == Environment::Exact {
            argv.extend(own.iter().map(|name| name.to_string()));
        }
        Ok(Self { argv, file })
    }

    /// Removes the launch file when nothing was started from it, best effort.
    pub fn discard(&self) {
        let _ = crate::files::Files::here().remove_file(&self.file);
    }
}

/// The launch file's bytes; a NUL byte inside an item, or a name that is empty or holds `=`, is
/// refused (it could not be passed on).
fn contents(
    env: &[EnvVar],
    argv: &[ao_plugin_api::abi_stable::std_types::RString],
) -> PluginResult<Vec<u8>> {
    let mut data = Vec::new();
    data.extend_from_slice(env.len().to_string().as_bytes());
    data.push(0);
    for var in env {
        let (name, value) = (var.name.as_str(), var.value.as_str());
        if name.is_empty() || name.contains(['=', '\0']) || value.contains('\0') {
            return Err(PluginError::invalid_input(format!(
                "environment variable {name:?} cannot be passed on: a name must be non-empty \
                 without `=`, and neither name nor value may hold a NUL byte"
            )));
        }
        data.extend_from_slice(format!("{name}={value}").as_bytes());
        data.push(0);
    }
    for arg in argv {
        if arg.contains('\0') {
            return Err(PluginError::invalid_input(
                "launch argument contains a NUL byte",
            ));
        }
        data.extend_from_slice(arg.as_bytes());
        data.push(0);
    }
    Ok(data)
}

/// What the kit checks of a [`RuntimeCreateRequest`].
pub trait RequestExt {
    /// The working directory, refused unless it is an existing folder. Call it before starting
    /// anything: a runtime that starts the agent anyway runs it somewhere else (tmux falls back
    /// to the home folder), where it works on the wrong files.
    ///
    /// On another host (a plugin built with a transport), the folder is looked for there.
    fn existing_cwd(&self) -> PluginResult<&Path>;
}

impl RequestExt for RuntimeCreateRequest {
    fn existing_cwd(&self) -> PluginResult<&Path> {
        let cwd = Path::new(self.cwd.as_str());
        let is_dir = Files::here().try_is_dir(cwd).map_err(|e| {
            PluginError::unavailable(format!(
                "cannot tell whether {} is a folder: {e}",
                cwd.display()
            ))
        })?;
        if is_dir {
            Ok(cwd)
        } else {
            Err(PluginError::invalid_input(format!(
                "the working directory {} does not exist or is not a folder",
                cwd.display()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn request(dir: &Path, env: &[(&str, &str)], argv: &[&str]) -> RuntimeCreateRequest {
        RuntimeCreateRequest {
            session_id: "s-1".into(),
            cwd: dir.display().to_string().into(),
            launch_command: argv.iter().map(|a| (*a).into()).collect(),
            env: env.iter().map(|(k, v)| EnvVar::new(*k, *v)).collect(),
        }
    }

    /// Runs a prepared launch as a runtime would, with `outer` as the runtime's environment.
    fn run(launch: &Launch, outer: &[(&str, &str)]) -> String {
        let output = std::process::Command::new(&launch.argv[0])
            .args(&launch.argv[1..])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .envs(outer.iter().copied())
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    }

    #[test]
    fn exactly_the_given_environment_reaches_the_program() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("launch");
        let value = "two words; $(not run) \"quoted\"\nsecond line";
        let request = request(
            temp.path(),
            &[
                ("PATH", "/usr/bin:/bin"),
                ("MYKEY", value),
                ("TERM", "dumb"),
            ],
            &["env", "-0"],
        );
        let launch =
            Launch::prepare(&dir, &request, Environment::Exact, &["TERM", "TMUX"]).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let mode = std::fs::metadata(&launch.file).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(
            !launch.argv.iter().any(|a| a.contains("second line")),
            "a value on the command line: {:?}",
            launch.argv
        );
        let outer = [
            ("LEFTOVER", "old"),
            ("not-a-shell-name", "old"),
            ("TERM", "tmux-256color"),
        ];
        let out = run(&launch, &outer);
        assert!(!launch.file.exists(), "the launch file is left");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert!(left.is_empty(), "files left: {left:?}");
        let mut vars: Vec<&str> = out.split_terminator('\0').collect();
        vars.sort();
        // bash itself sets its shell depth and working folder (the process's own, so right).
        vars.retain(|v| !v.starts_with("SHLVL=") && !v.starts_with("PWD="));
        let mykey = format!("MYKEY={value}");
        assert_eq!(
            vars,
            [mykey.as_str(), "PATH=/usr/bin:/bin", "TERM=tmux-256color"]
        );
    }

    #[test]
    fn added_variables_join_the_runtime_environment() {
        let temp = tempfile::tempdir().unwrap();
        let request = request(temp.path(), &[("MYKEY", "new")], &["env"]);
        let launch = Launch::prepare(temp.path(), &request, Environment::Added, &[]).unwrap();
        let out = run(&launch, &[("LEFTOVER", "old"), ("MYKEY", "old")]);
        assert!(
            out.contains("LEFTOVER=old\n") && out.contains("MYKEY=new\n"),
            "{out}"
        );
    }

    #[test]
    fn a_launch_folder_planted_as_a_link_is_never_written_through() {
        let temp = tempfile::tempdir().unwrap();
        let elsewhere = temp.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let linked_dir = temp.path().join("dir-link");
        std::os::unix::fs::symlink(&elsewhere, &linked_dir).unwrap();
        let request = request(temp.path(), &[("MYKEY", "secret")], &["env"]);
        let error = Launch::prepare(&linked_dir, &request, Environment::Exact, &[]).unwrap_err();
        assert!(error.message().contains("symbolic link"), "{error}");
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    }
}
