//! The table contract against this engine.
