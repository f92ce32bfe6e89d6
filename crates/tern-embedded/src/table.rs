//! The embedded table adapter.
