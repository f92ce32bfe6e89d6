use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use tern_ports::PortError;
use thiserror::Error;

/// Why the local host could not start or keep serving. Each message names the path or address involved;
/// the cause is the error's `source`, so that a caller prints the whole chain once.
#[derive(Debug, Error)]
pub enum LocalError {
    #[error("cannot open data directory {}", path.display())]
    DataDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot use the signing secret {}", path.display())]
    Secret {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the signing secret {} is malformed ({reason}); delete it to generate a new one", path.display())]
    SecretMalformed { path: PathBuf, reason: String },
    #[error("cannot start the embedded {part}")]
    Engine {
        part: &'static str,
        #[source]
        source: PortError,
    },
    #[error(
        "refusing to listen on {addr}: it is not a loopback address, and the local server has no TLS; \
         allow non-loopback addresses explicitly to listen there anyway"
    )]
    NonLoopback { addr: SocketAddr },
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("the HTTP server failed")]
    Serve(#[source] io::Error),
}

impl LocalError {
    pub(crate) fn engine(part: &'static str) -> impl FnOnce(PortError) -> LocalError {
        move |source| LocalError::Engine { part, source }
    }
}
