//! Which GitHub repository a project is: the configured slug, else its clone's `origin` URL.

use std::path::Path;

use ao_plugin_api::{scm::ScmRepository, ErrorKind, PluginFailure};
use ao_plugin_kit::program::Program;

/// A repository's `owner/name`, checked: it goes into URL paths.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Slug {
    pub owner: String,
    pub name: String,
}

impl std::fmt::Display for Slug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

impl Slug {
    /// `owner/name` as GitHub allows them: an owner of letters, digits and `-` (at most 39), a
    /// name of letters, digits, `.`, `_`, `-` (at most 100, not `.` or `..`).
    pub fn parse(text: &str) -> Option<Slug> {
        let (owner, name) = text.split_once('/')?;
        let owner_ok = (1..=39).contains(&owner.len())
            && owner
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let name_ok = (1..=100).contains(&name.len())
            && name != "."
            && name != ".."
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        (owner_ok && name_ok).then(|| Slug {
            owner: owner.to_string(),
            name: name.to_string(),
        })
    }

    /// The slug a clone URL names: `https://HOST/o/r(.git)`, `git@HOST:o/r.git`,
    /// `ssh://git@HOST(:PORT)/o/r.git`, `git://HOST/o/r.git`.
    pub fn from_remote_url(url: &str) -> Option<Slug> {
        let url = url.trim();
        let path = match url.split_once("://") {
            Some((_, rest)) => rest.split_once('/')?.1,
            // scp-like `user@host:path`.
            None => url.split_once(':')?.1,
        };
        let path = path.trim_matches('/');
        let path = path.strip_suffix(".git").unwrap_or(path);
        Slug::parse(path)
    }
}

/// Where the repository is: `repository.slug` when the project sets it, else the `origin` of
/// its clone, as written in the clone's config (not rewritten by `url.*.insteadOf`).
pub fn resolve(repository: &ScmRepository) -> Result<Slug, PluginFailure> {
    if let Some(slug) = repository.slug.as_ref().into_option() {
        return Slug::parse(slug.as_str()).ok_or_else(|| {
            PluginFailure::new(
                ErrorKind::Config,
                format!(
                    "scm_repository `{slug}` is not a GitHub `owner/name`; fix the project's \
                     scm_repository in ao-rs.yaml"
                ),
            )
        });
    }
    let clone = Path::new(repository.repo_path.as_str());
    let git = Program::new("git", "install git (apt-get install git)");
    let url = git
        .run(Some(clone), ["config", "--get", "remote.origin.url"])
        .map_err(|error| {
            PluginFailure::new(
                ErrorKind::Config,
                format!(
                    "{} has no `origin` remote to tell its GitHub repository ({}); add one \
                     (git remote add origin …) or set the project's scm_repository: owner/name \
                     in ao-rs.yaml",
                    clone.display(),
                    error.message.as_str().trim()
                ),
            )
        })?;
    Slug::from_remote_url(&url).ok_or_else(|| {
        PluginFailure::new(
            ErrorKind::Config,
            format!(
                "the origin of {} (`{}`) does not name a GitHub owner/name; set the project's \
                 scm_repository: owner/name in ao-rs.yaml",
                clone.display(),
                url.trim()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_clone_url_form_gives_owner_and_name() {
        for url in [
            "https://github.com/o-1/r.s_x.git",
            "https://github.com/o-1/r.s_x",
            "https://user@github.com/o-1/r.s_x.git/",
            "git@github.com:o-1/r.s_x.git",
            "ssh://git@ghe.example.com:2222/o-1/r.s_x.git",
            "git://github.com/o-1/r.s_x.git",
        ] {
            assert_eq!(
                Slug::from_remote_url(url).map(|s| s.to_string()).as_deref(),
                Some("o-1/r.s_x"),
                "{url}"
            );
        }
    }

    #[test]
    fn hostile_or_nested_paths_are_no_slug() {
        for url in [
            "https://github.com/o/r/extra",
            "https://github.com/../r",
            "https://github.com/o/..",
            "https://github.com/o/r%2f",
            "https://github.com/o/r?x=1",
            "/srv/git/repo.git",
            "https://github.com/o",
        ] {
            assert_eq!(Slug::from_remote_url(url), None, "{url}");
        }
    }
}
