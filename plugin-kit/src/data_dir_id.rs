//! A data dir's identity that survives a move: `<data_dir>/.data-dir-id` holds a random id, the
//! path the data dir was last opened at and the paths it was opened at before.
//!
//! The host keeps the file (it tells a moved data dir from a copied one); plugins read it through
//! [`ContextExt::owner_aliases`](crate::config::ContextExt::owner_aliases) so that what they marked with an earlier path of this data dir (a tmux
//! session's owner, a worktree's owner record) is still this data dir's after a move. A copy takes
//! a new id and no earlier paths: it claims nothing the original made.

use std::{io::Read, path::Path};

use crate::private;

/// The file's name inside the data dir.
pub const FILE_NAME: &str = ".data-dir-id";

/// No identity is larger: an id, a path and a few earlier ones.
const MAX_BYTES: u64 = 64 * 1024;

/// What `<data_dir>/.data-dir-id` holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataDirId {
    /// Random, made when the data dir was first opened; a copy gets a new one.
    pub id: String,
    /// Where the data dir was last opened (canonical).
    pub path: String,
    /// Where it was opened before it was moved, oldest first.
    #[serde(default)]
    pub earlier_paths: Vec<String>,
}

impl DataDirId {
    /// The id file of `data_dir`; `Ok(None)` when it has none (a data dir never opened by a
    /// release that keeps one).
    pub fn read(data_dir: &Path) -> std::io::Result<Option<Self>> {
        let path = data_dir.join(FILE_NAME);
        let invalid = |why: String| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {why}", path.display()),
            )
        };
        let file = match private::open_read(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        // Anything that may write in the data dir (an agent) could make it huge.
        let mut text = String::new();
        file.take(MAX_BYTES + 1).read_to_string(&mut text)?;
        if text.len() as u64 > MAX_BYTES {
            return Err(invalid(format!("larger than {MAX_BYTES} bytes")));
        }
        serde_yaml::from_str(&text)
            .map(Some)
            .map_err(|e| invalid(e.to_string()))
    }

    /// The file's text.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use ao_plugin_api::abi_stable::std_types::RString;

    use ao_plugin_api::PluginContext;

    use super::*;
    use crate::config::ContextExt;

    fn context(data_dir: &Path) -> PluginContext {
        PluginContext {
            plugin_name: RString::from("p"),
            data_dir: RString::from(data_dir.to_str().unwrap()),
            config_yaml: RString::new(),
        }
    }

    fn write(data_dir: &Path, path: &Path) {
        let id = DataDirId {
            id: "an id".into(),
            path: path.display().to_string(),
            earlier_paths: vec!["/first".into(), "/second".into()],
        };
        private::write(&data_dir.join(FILE_NAME), id.to_yaml().as_bytes(), false).unwrap();
    }

    #[test]
    fn earlier_paths_are_owners_only_once_the_host_confirmed_this_path() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        assert!(context(&dir).owner_aliases().is_empty(), "no identity yet");
        write(&dir, &dir);
        assert_eq!(context(&dir).owner_aliases(), ["/first", "/second"]);
        // A copy the host has not opened yet still names the original's path.
        write(&dir, &temp.path().join("original"));
        assert!(context(&dir).owner_aliases().is_empty());
    }
}
