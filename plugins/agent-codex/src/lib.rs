//! Agent plugin `codex` (being written).
