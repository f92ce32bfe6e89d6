//! The embedded mail adapter.
