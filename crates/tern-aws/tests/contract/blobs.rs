//! The blobs contract against this engine.
