//! Tern's handlers, written once: HTTP routes (an axum Router) and queue/task handlers, over the ports.
