//! The AWS adapters of every port: DynamoDB, SQS, S3, SES v2 and Step Functions. Endpoints honour
//! `AWS_ENDPOINT_URL` (the SDK's own setting), which is how local development and the contract tests reach
//! moto.

pub mod blobs;
mod error;
pub mod mail;
pub mod provision;
pub mod queue;
pub mod table;
pub mod workflows;

use aws_config::{BehaviorVersion, SdkConfig};

/// The SDK configuration from the environment (region, credentials, `AWS_ENDPOINT_URL`), as a Lambda
/// function loads it once at cold start.
pub async fn sdk_config_from_env() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// The SDK configuration for an explicit endpoint (moto) with static test credentials.
pub async fn sdk_config_for_endpoint(endpoint: &str, region: &str) -> SdkConfig {
    let credentials =
        aws_sdk_dynamodb::config::Credentials::new("testing", "testing", None, None, "tern-static");
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(region.to_string()))
        .credentials_provider(credentials)
        .load()
        .await
}
