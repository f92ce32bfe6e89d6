//! The mail contract against this engine.
