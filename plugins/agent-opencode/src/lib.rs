//! Agent plugin `opencode` (being written).
