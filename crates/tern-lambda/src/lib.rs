//! Hosting glue for Lambda: tracing, configuration from the environment, AWS ports, and the SQS batch contract.
//!
//! A function's `main` stays small: [`init_tracing`], settings and ports from the environment
//! ([`aws_ports_from_env`]), then [`run_http`] for a router or `lambda_runtime::run` with
//! [`handle_sqs_event`] for a queue.

pub mod config;
pub mod function;
pub mod http;
pub mod logging;
pub mod ports;
pub mod scheduled;
pub mod sqs;

// The runtime crates, so that a function depends on this crate alone and every function uses the same versions.
pub use aws_lambda_events;
pub use lambda_http;
pub use lambda_runtime;

pub use config::{AwsSettings, ConfigError, Env};
pub use function::{FunctionError, handle_queue_event, serve_api, serve_queue};
pub use http::run_http;
pub use logging::init_tracing;
pub use ports::{aws_ports, aws_ports_from_env, ports_with};
pub use sqs::{
    RecordError, SqsBatch, SqsEventError, UnreadableRecord, handle_sqs_event, received_messages,
    sqs_batch_response,
};
