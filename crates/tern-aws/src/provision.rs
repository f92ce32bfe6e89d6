//! Creating the AWS resources the SAM template declares, for tests against moto and for local development.

use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType,
    Projection, ProjectionType, ScalarAttributeType, TableDescription, TableStatus,
    TimeToLiveSpecification, TimeToLiveStatus,
};
use tern_ports::table::{GSI1_NAME, GSI1_PK, GSI1_SK, PK, SK, TTL};
use tern_ports::{PortError, PortResult};

/// How long a new table may take to become ACTIVE.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Creates the single Tern table as the SAM template declares it: `pk`/`sk` string keys, on-demand billing,
/// the `gsi1` index on `gsi1pk`/`gsi1sk` projecting every attribute, and TTL on `ttl`. An existing table of
/// that shape is fine; one with other keys is `AlreadyExists`. Returns once the table and its index are
/// ACTIVE.
pub async fn create_table(config: &SdkConfig, table_name: &str) -> PortResult<()> {
    let client = Client::new(config);
    let created = client
        .create_table()
        .table_name(table_name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(vec![
            string_attribute(PK)?,
            string_attribute(SK)?,
            string_attribute(GSI1_PK)?,
            string_attribute(GSI1_SK)?,
        ]))
        .set_key_schema(Some(key_schema(PK, SK)?))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(GSI1_NAME)
                .set_key_schema(Some(key_schema(GSI1_PK, GSI1_SK)?))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .map_err(build_error)?,
        )
        .send()
        .await;
    if let Err(error) = created {
        // An existing table is checked below rather than trusted.
        if error.code() != Some("ResourceInUseException") {
            return Err(sdk_error(table_name, "create", &error));
        }
    }
    let description = wait_until_active(&client, table_name).await?;
    check_shape(table_name, &description)?;
    enable_ttl(&client, table_name).await
}

fn string_attribute(name: &str) -> PortResult<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(build_error)
}

fn key_schema(hash: &str, range: &str) -> PortResult<Vec<KeySchemaElement>> {
    Ok(vec![
        KeySchemaElement::builder()
            .attribute_name(hash)
            .key_type(KeyType::Hash)
            .build()
            .map_err(build_error)?,
        KeySchemaElement::builder()
            .attribute_name(range)
            .key_type(KeyType::Range)
            .build()
            .map_err(build_error)?,
    ])
}

async fn wait_until_active(client: &Client, table_name: &str) -> PortResult<TableDescription> {
    let deadline = Instant::now() + ACTIVE_TIMEOUT;
    loop {
        let output = client
            .describe_table()
            .table_name(table_name)
            .send()
            .await
            .map_err(|e| sdk_error(table_name, "describe", &e))?;
        if let Some(table) = output.table {
            let indexes_active = table.global_secondary_indexes().iter().all(|index| {
                index
                    .index_status()
                    .is_none_or(|status| *status == IndexStatus::Active)
            });
            if table.table_status() == Some(&TableStatus::Active) && indexes_active {
                return Ok(table);
            }
        }
        if Instant::now() >= deadline {
            return Err(PortError::Unavailable(format!(
                "DynamoDB table {table_name} did not become ACTIVE within {}s",
                ACTIVE_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// An existing table must have the keys and index the adapter relies on.
fn check_shape(table_name: &str, table: &TableDescription) -> PortResult<()> {
    let keys = |schema: &[KeySchemaElement]| {
        schema
            .iter()
            .map(|element| element.attribute_name().to_string())
            .collect::<Vec<_>>()
    };
    let table_keys = keys(table.key_schema());
    let gsi1_keys = table
        .global_secondary_indexes()
        .iter()
        .find(|index| index.index_name() == Some(GSI1_NAME))
        .map(|index| keys(index.key_schema()));
    if table_keys != [PK, SK]
        || gsi1_keys.as_deref() != Some(&[GSI1_PK.to_string(), GSI1_SK.to_string()][..])
    {
        return Err(PortError::AlreadyExists(format!(
            "DynamoDB table {table_name} exists with keys {table_keys:?} and gsi1 keys {gsi1_keys:?}, \
             not ({PK}, {SK}) and ({GSI1_PK}, {GSI1_SK})"
        )));
    }
    Ok(())
}

async fn enable_ttl(client: &Client, table_name: &str) -> PortResult<()> {
    let current = client
        .describe_time_to_live()
        .table_name(table_name)
        .send()
        .await
        .map_err(|e| sdk_error(table_name, "describe TTL of", &e))?;
    let status = current
        .time_to_live_description()
        .and_then(|ttl| ttl.time_to_live_status());
    if matches!(
        status,
        Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
    ) {
        return Ok(());
    }
    let specification = TimeToLiveSpecification::builder()
        .attribute_name(TTL)
        .enabled(true)
        .build()
        .map_err(build_error)?;
    client
        .update_time_to_live()
        .table_name(table_name)
        .time_to_live_specification(specification)
        .send()
        .await
        .map_err(|e| sdk_error(table_name, "enable TTL on", &e))?;
    Ok(())
}

fn build_error(error: aws_smithy_types::error::operation::BuildError) -> PortError {
    PortError::Invalid(format!(
        "cannot build the DynamoDB table definition: {error}"
    ))
}

fn sdk_error<E, R>(
    table_name: &str,
    action: &str,
    error: &aws_sdk_dynamodb::error::SdkError<E, R>,
) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    use aws_sdk_dynamodb::error::SdkError;
    let detail = crate::error::error_chain(error);
    match error {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => PortError::Unavailable(
            format!("DynamoDB is unreachable, cannot {action} table {table_name}: {detail}"),
        ),
        _ => PortError::Other(format!(
            "cannot {action} DynamoDB table {table_name}: {detail}"
        )),
    }
}
