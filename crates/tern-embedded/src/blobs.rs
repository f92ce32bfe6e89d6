//! The embedded blobs adapter.
