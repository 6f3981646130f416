//! End-to-end tests of the `opencode` agent plugin against the real CLI (being written).
