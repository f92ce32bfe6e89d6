//! The AWS table adapter.
