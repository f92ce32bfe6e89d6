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
