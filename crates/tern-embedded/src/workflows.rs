//! The embedded workflows adapter.
