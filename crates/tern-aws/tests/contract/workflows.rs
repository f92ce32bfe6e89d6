//! The workflows contract against this engine.
