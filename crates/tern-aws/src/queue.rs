//! The AWS queue adapter.
