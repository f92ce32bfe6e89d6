//! The AWS workflows adapter.
