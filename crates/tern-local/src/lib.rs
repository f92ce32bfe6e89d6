//! The local host: the embedded engine assembled, the HTTP routes served on loopback, and the queue workers.
//!
//! [`Engine::open`] builds every port on one data directory; [`serve`] (or [`Server`]) runs Tern's routes,
//! the queue consumers and the workflow timer on it until Ctrl-C or SIGTERM.

pub mod engine;
pub mod error;
mod secret;
pub mod server;
mod tasks;
pub mod worker;

pub use engine::{Engine, EngineOptions};
pub use error::LocalError;
pub use server::{DEFAULT_ADDR, ServeOptions, Server, serve, shutdown_signal};
pub use tern_app::queues::QUEUES;
