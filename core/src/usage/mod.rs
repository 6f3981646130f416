//! What sessions cost: the figures their agent plugins read from the agents' own records
//! ([`ao_plugin_api::Agent::usage`]), kept per session ([`store`]), priced ([`prices`]), shown
//! per session ([`figures`]) and summed over sessions, projects, days and models
//! ([`summary`]). `Lifecycle::session_usage` reads on through the plugin;
//! everything here works on figures already read.

pub mod figures;
pub mod prices;
pub mod store;
pub mod summary;

pub use self::{
    figures::{Cost, HourUsage, ModelTotals, SessionUsage, Tokens, UsageState},
    prices::{Price, PriceSection, Prices},
    store::{StoredUsage, UsageDir},
};
