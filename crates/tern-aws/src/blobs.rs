//! The AWS blobs adapter.
