//! The AWS adapters of every port, assembled once at cold start from the function's environment.

use std::sync::Arc;

use aws_config::SdkConfig;
use tern_aws::{
    blobs::S3Blobs, mail::SesMail, queue::SqsQueue, table::DynamoTable, workflows::SfnWorkflows,
};
use tern_ports::{Ports, SystemClock};

use crate::config::{AwsSettings, ConfigError, Env};

/// The ports over AWS, from `TERN_TABLE_NAME`, `TERN_BUCKET`, `TERN_QUEUE_URLS` and the optional
/// `TERN_SFN_ROLE_ARN`. The settings are checked before the SDK configuration is loaded, so a missing
/// one fails at once.
pub async fn aws_ports_from_env() -> Result<Ports, ConfigError> {
    aws_ports(&Env::process()).await
}

/// [`aws_ports_from_env`] over any settings source.
pub async fn aws_ports(env: &Env) -> Result<Ports, ConfigError> {
    let settings = AwsSettings::from_env(env)?;
    let sdk_config = tern_aws::sdk_config_from_env().await;
    Ok(ports_with(&sdk_config, settings))
}

/// The ports for already validated settings and an SDK configuration (a moto endpoint in tests).
pub fn ports_with(sdk_config: &SdkConfig, settings: AwsSettings) -> Ports {
    Ports {
        table: Arc::new(DynamoTable::new(sdk_config, settings.table_name)),
        queue: Arc::new(SqsQueue::new(sdk_config, settings.queue_urls)),
        blobs: Arc::new(S3Blobs::new(sdk_config, settings.bucket)),
        mail: Arc::new(SesMail::new(sdk_config)),
        workflows: Arc::new(SfnWorkflows::new(sdk_config, settings.sfn_role_arn)),
        clock: Arc::new(SystemClock),
    }
}
