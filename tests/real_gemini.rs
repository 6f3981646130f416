//! End-to-end tests of the `gemini` agent plugin against the real CLI (being written).
