//! The scm checks: what an scm plugin must answer without reaching its forge.
//!
//! The kit has no forge to offer (no network, no token), so it asks only what needs none: a
//! plugin built with empty settings (or refusing them as a config error), rate limits before
//! any call, empty questions answered empty, and a webhook delivery that cannot verify refused
//! as an error. None of it may panic: a panic there is one the watcher would meet too.

use ao_plugin_api::{
    abi_stable::std_types::{ROption, RString},
    scm::{Fetched, PullRequestQuery, ReviewsQuery, ScmRepository, WebhookDelivery, WebhookHeader},
    ErrorKind, PluginErrorKind,
};
use ao_plugin_host::{PluginCallError, RegistryError, ScmPlugin};

use super::Kit;

/// A repository no forge has: the questions below must not need one.
fn repository(kit: &Kit<'_>) -> ScmRepository {
    ScmRepository {
        repo_path: kit.scratch.join("repo").display().to_string().into(),
        slug: ROption::RSome(RString::from("ao-kit/scratch")),
    }
}

/// A delivery no secret signed: a forge's event name and an unsigned body.
fn garbage_delivery() -> WebhookDelivery {
    let header = |name: &str, value: &str| WebhookHeader {
        name: name.into(),
        value: value.into(),
    };
    WebhookDelivery {
        headers: vec![
            header("x-github-event", "pull_request"),
            header("x-github-delivery", "ao-kit-1"),
            header("x-hub-signature-256", "sha256=00"),
            header("x-gitlab-token", "not-the-secret"),
        ]
        .into(),
        body: b"{\"action\": \"not json".to_vec().into(),
    }
}

/// A call's error as the check's detail, a panic named as one.
fn failed(error: &PluginCallError) -> String {
    if error.error_kind() == ErrorKind::Panicked {
        format!("it panicked: {error}")
    } else {
        error.to_string()
    }
}

pub(super) async fn check(kit: &mut Kit<'_>) {
    let home = kit.data_dir("data");
    let built = kit
        .registry
        .scm(&kit.plugin, &kit.context(&home), kit.timeout);
    let Some(scm) = built_or_refused(kit, built) else {
        return;
    };
    let limits = scm.rate_limits().await;
    kit.record(
        "rate limits before any call",
        match limits {
            Ok(limits) if limits.is_empty() => Ok("none known yet".into()),
            Ok(limits) => Err(format!(
                "{} known before the forge was asked anything; say none until an answer states them",
                limits.len()
            )),
            Err(e) => Err(failed(&e)),
        },
    );
    let repository = repository(kit);
    let pulls = scm
        .pull_requests(PullRequestQuery {
            repository: repository.clone(),
            branches: Vec::new().into(),
            validator: RString::new(),
        })
        .await;
    kit.record(
        "pull requests of no branch",
        match pulls {
            Ok(Fetched::Changed { value, .. }) if value.is_empty() => {
                Ok("none, without asking the forge".into())
            }
            Ok(Fetched::Unchanged) => Ok("unchanged".into()),
            Ok(Fetched::Changed { value, .. }) => Err(format!(
                "{} pull requests for no branch at all",
                value.len()
            )),
            Err(e) => Err(failed(&e)),
        },
    );
    let reviews = scm
        .reviews(ReviewsQuery {
            repository,
            numbers: Vec::new().into(),
        })
        .await;
    kit.record(
        "reviews of no pull request",
        match reviews {
            Ok(feedback) if feedback.is_empty() => Ok("none, without asking the forge".into()),
            Ok(feedback) => Err(format!(
                "{} entries for no pull request; answer one per number asked",
                feedback.len()
            )),
            Err(e) => Err(failed(&e)),
        },
    );
    let hint = scm.webhook(garbage_delivery()).await;
    kit.record(
        "an unsigned webhook delivery is refused",
        match hint {
            Ok(hint) => Err(format!(
                "accepted (delivery `{}`): a delivery that does not verify must be an error",
                hint.delivery_id
            )),
            // Refused as what it is: a delivery that does not verify (`InvalidInput`), no
            // secret to verify it with (`Config`), or no webhooks at all (`Unsupported`).
            Err(e) if is_refusal(e.error_kind()) => Ok(format!("refused: {}", e.plugin_message())),
            Err(e) => Err(format!(
                "{}; refuse a delivery that does not verify as invalid input",
                failed(&e)
            )),
        },
    );
    check_doctor(kit, &scm).await;
}

fn is_refusal(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::InvalidInput | ErrorKind::Config | ErrorKind::Unsupported
    )
}

/// Records the check `new`: built, or refused as a config error (a plugin may need a setting
/// the kit cannot give, such as a forge's address); anything else fails.
fn built_or_refused(
    kit: &mut Kit<'_>,
    built: Result<ScmPlugin, RegistryError>,
) -> Option<ScmPlugin> {
    match built {
        Ok(scm) => {
            kit.record("new", Ok("built with the configured settings".into()));
            Some(scm)
        }
        Err(RegistryError::Construct { error, .. }) if error.kind == PluginErrorKind::Config => {
            kit.record(
                "new",
                Ok(format!(
                    "refuses these settings as a config error: {}",
                    error.message
                )),
            );
            kit.skip(
                "offline questions",
                "not asked: the plugin needs settings the kit does not have (pass them with plugins.config)".into(),
            );
            None
        }
        Err(e) => {
            kit.record("new", Err(e.to_string()));
            None
        }
    }
}

async fn check_doctor(kit: &mut Kit<'_>, scm: &ScmPlugin) {
    let checks = scm.doctor().await;
    kit.record(
        "doctor",
        match checks {
            Ok(checks) => Ok(format!(
                "{} checks ({} failing, as they may without a forge)",
                checks.len(),
                checks.iter().filter(|c| !c.ok).count()
            )),
            Err(e) => Err(failed(&e)),
        },
    );
}
