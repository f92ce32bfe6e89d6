//! The queue contract against this engine.
