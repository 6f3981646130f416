//! `clear_env:` and `hosts.<name>.pass_env:`: which of this machine's environment variables a
//! session's agent does not get, or gets on another host too.

/// The dashboard's token in the environment. Never passed on to an agent by itself: a
/// prompt-injected agent could drive the dashboard with it.
pub const DASHBOARD_TOKEN_ENV: &str = "AO_DASHBOARD_TOKEN";

/// Variable names as the config lists them: a name, or a prefix ending in `*` (`AWS_*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VariableNames(Vec<String>);

impl VariableNames {
    /// Checks the list at `at` (for messages): each entry a variable name or a `PREFIX*`.
    pub(crate) fn from_list(at: &str, names: Vec<String>) -> Result<Self, String> {
        for name in &names {
            let stem = name.strip_suffix('*').unwrap_or(name);
            let plain = |c: char| c.is_ascii_alphanumeric() || c == '_';
            if (stem.is_empty() && name != "*") || !stem.chars().all(plain) {
                return Err(format!(
                    "{at}: {name:?} is not a variable name; write a name (`HTTPS_PROXY`) or a \
                     prefix ending in `*` (`AWS_*`)"
                ));
            }
        }
        Ok(Self(names))
    }

    /// Whether `name` is one of these, or starts with one of their prefixes.
    pub fn matches(&self, name: &str) -> bool {
        self.0.iter().any(|entry| match entry.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == entry,
        })
    }

    /// Whether `name` is listed by its full name (not only through a prefix).
    pub fn names(&self, name: &str) -> bool {
        self.0.iter().any(|entry| entry == name)
    }
}

#[cfg(test)]
mod tests {
    use super::VariableNames;

    #[test]
    fn names_and_prefixes_match_and_anything_else_is_refused() {
        let names =
            VariableNames::from_list("clear_env", vec!["HTTPS_PROXY".into(), "AWS_*".into()])
                .unwrap();
        assert!(names.matches("HTTPS_PROXY") && names.matches("AWS_SECRET_ACCESS_KEY"));
        assert!(!names.matches("HTTPS_PROXY2") && !names.matches("PATH"));
        for bad in ["", "A=B", "A B", "*X", "A*B"] {
            let error = VariableNames::from_list("clear_env", vec![bad.into()]).unwrap_err();
            assert!(error.starts_with("clear_env: "), "{error}");
        }
    }
}
