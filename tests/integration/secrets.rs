//! Secrets never leave (placeholder, filled below).
