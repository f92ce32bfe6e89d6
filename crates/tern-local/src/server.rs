//! The local server: Tern's HTTP routes on a loopback address, the blob upload endpoint, the queue consumers
//! and the workflow timer, all in one process that stops cleanly on Ctrl-C or SIGTERM.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::routing::put;
use futures::TryStreamExt;
use http::StatusCode;
use tern_app::{ApiError, QueueHandler};
use tern_embedded::blobs::DirBlobs;
use tern_ports::PortError;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::engine::Engine;
use crate::error::LocalError;
use crate::worker;

/// The address `tern up` listens on unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:3000";

pub struct ServeOptions {
    /// Listen on an address other than loopback. Off by default: the local server speaks plain HTTP and
    /// is meant for one machine; on a network interface its keys and data would cross the wire in clear
    /// text and the upload endpoint would be open to anyone on that network.
    pub allow_non_loopback: bool,
    /// The queue handlers to run, one consumer each.
    pub handlers: Vec<Arc<dyn QueueHandler>>,
    /// How long a consumer waits for messages in one receive (long polling); also bounds how long
    /// shutdown waits for an idle consumer.
    pub receive_wait: Duration,
    /// How often due workflow steps (expired waits, retries) are run.
    pub workflow_tick: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            allow_non_loopback: false,
            handlers: tern_app::queue_handlers(),
            receive_wait: Duration::from_secs(1),
            workflow_tick: Duration::from_millis(250),
        }
    }
}

/// A bound listener, not yet serving: binding first lets a caller learn the address (port 0 picks one) and
/// report a busy port before opening anything else.
pub struct Server {
    listener: TcpListener,
    options: ServeOptions,
}

impl Server {
    pub async fn bind(addr: SocketAddr, options: ServeOptions) -> Result<Server, LocalError> {
        if !addr.ip().is_loopback() && !options.allow_non_loopback {
            return Err(LocalError::NonLoopback { addr });
        }
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| LocalError::Bind { addr, source })?;
        Ok(Server { listener, options })
    }

    pub fn local_addr(&self) -> Result<SocketAddr, LocalError> {
        self.listener.local_addr().map_err(LocalError::Serve)
    }

    /// Serves `engine` until `shutdown` completes, then stops accepting connections, lets requests in
    /// progress finish, has each queue consumer hand over the batch it is gathering (the lake writer's
    /// may be holding up to its window's worth of events), stops the background loops and flushes the
    /// database.
    pub async fn run(
        self,
        engine: Engine,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), LocalError> {
        let Server { listener, options } = self;
        let (stop_sender, stop) = watch::channel(false);
        let mut background = JoinSet::new();
        for handler in options.handlers {
            background.spawn(worker::run_consumer(
                engine.app_state(),
                handler,
                options.receive_wait,
                stop.clone(),
            ));
        }
        background.spawn(worker::run_segment_timer(
            engine.app_state(),
            worker::SEGMENT_TICK,
            stop.clone(),
        ));
        background.spawn(worker::run_workflow_timer(
            engine.workflows().clone(),
            options.workflow_tick,
            stop,
        ));

        // The peer address reaches the handlers (tracking fills `context.ip` from it when no proxy header says otherwise).
        let service = routes(&engine).into_make_service_with_connect_info::<SocketAddr>();
        let served = axum::serve(listener, service)
            .with_graceful_shutdown(shutdown)
            .await;
        tracing::info!("stopping: finishing background work");
        stop_sender.send_replace(true);
        while let Some(joined) = background.join_next().await {
            if let Err(error) = joined {
                tracing::error!(%error, "a background task failed");
            }
        }
        engine.flush().await?;
        tracing::info!("stopped");
        served.map_err(LocalError::Serve)
    }
}

/// Binds `addr` and serves `engine` until Ctrl-C or SIGTERM.
pub async fn serve(
    engine: Engine,
    addr: SocketAddr,
    options: ServeOptions,
) -> Result<(), LocalError> {
    let server = Server::bind(addr, options).await?;
    tracing::info!(addr = %server.local_addr()?, "listening");
    server.run(engine, shutdown_signal()).await
}

/// Every route the local server answers: the application's, plus the upload endpoint that stands in for
/// presigned S3 URLs.
pub fn routes(engine: &Engine) -> Router {
    let uploads = Router::new()
        .route("/_uploads/{token}", put(accept_upload))
        .with_state(engine.blobs().clone());
    tern_app::router(engine.app_state()).merge(uploads)
}

async fn accept_upload(
    State(blobs): State<Arc<DirBlobs>>,
    Path(token): Path<String>,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let stream = body.into_data_stream().map_err(io::Error::other);
    match blobs.accept_upload(&token, Box::pin(stream)).await {
        Ok(size) => {
            tracing::debug!(size, "upload accepted");
            Ok(StatusCode::OK)
        }
        // As S3 answers a bad or expired presigned URL.
        Err(PortError::Rejected(message)) => Err(ApiError::forbidden(message)),
        Err(error) => Err(error.into()),
    }
}

/// Completes on Ctrl-C, or on SIGTERM where there is one (what `kill` and container runtimes send).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
