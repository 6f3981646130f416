//! Agent plugin `gemini` (being written).
