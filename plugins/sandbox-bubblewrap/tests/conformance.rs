//! The conformance kit on this crate's own library: `cargo test` builds it and runs every
//! check `ao-host plugins test` runs.

ao_plugin_test::conformance_test!();
