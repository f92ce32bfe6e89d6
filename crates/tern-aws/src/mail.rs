//! The AWS mail adapter.
