//! What a confined session may see, write and reach, decided by the host: the ordered path
//! rules ([`policy`]) and the environment allow-list ([`environment`]). Both are plain values
//! built from plain values, so every rule is tested without a sandbox; the lifecycle
//! (`lifecycle::confine`) gathers the inputs from the config and the plugins, and a sandbox
//! plugin enforces the result.

pub mod environment;
pub mod policy;

pub use environment::confined_environment;
pub use policy::{build as build_policy, DataDirAccess, PolicyError, PolicyInputs, DEFAULT_HIDDEN};
