//! Every port's contract suite against the AWS adapters, through the moto server that `cargo xtask test`
//! starts (see `tern_contract::moto`).

mod blobs;
mod mail;
mod queue;
mod table;
mod workflows;

/// The SDK configuration pointing at moto; fails the case when moto is not reachable.
pub async fn moto_config() -> aws_config::SdkConfig {
    let endpoint = tern_contract::moto::endpoint();
    tern_aws::sdk_config_for_endpoint(&endpoint, tern_contract::moto::REGION).await
}

/// An endpoint nothing listens on (the discard port of the loopback), for the one-line `Unavailable` cases.
pub const UNREACHABLE_ENDPOINT: &str = "http://127.0.0.1:9";

/// The SDK configuration pointing at `UNREACHABLE_ENDPOINT`, with retries off so those cases fail fast.
pub async fn unreachable_config() -> aws_config::SdkConfig {
    tern_aws::sdk_config_for_endpoint(UNREACHABLE_ENDPOINT, tern_contract::moto::REGION)
        .await
        .into_builder()
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build()
}
