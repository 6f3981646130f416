//! The watcher's forges: the `scm` plugins the projects name, built by the lifecycle.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::forge::{Forge, Forges};
use crate::lifecycle::Lifecycle;

/// The `scm` plugins of a lifecycle's config.
pub struct PluginForges {
    lifecycle: Arc<Lifecycle>,
}

impl PluginForges {
    pub fn shared(lifecycle: Arc<Lifecycle>) -> Arc<dyn Forges> {
        Arc::new(Self { lifecycle })
    }
}

impl Forges for PluginForges {
    fn forge<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Arc<dyn Forge>, String>> {
        let _ = &self.lifecycle;
        Box::pin(async move {
            Err(format!(
                "scm plugin {name}: this build cannot load scm plugins yet"
            ))
        })
    }
}
