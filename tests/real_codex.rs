//! End-to-end tests of the `codex` agent plugin against the real CLI (being written).
