//! The workflows contract against Step Functions (moto's interpreter), whose SQS tasks deliver to moto's
//! SQS.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tern_aws::queue::SqsQueue;
use tern_aws::workflows::SfnWorkflows;
use tern_contract::workflows::WorkflowHarness;
use tern_ports::{PortError, Queue, StateMachineSpec, Workflows};

/// moto checks that a role ARN is given, not what it grants.
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/tern-workflows";

struct AwsHarness {
    workflows: SfnWorkflows,
    queue: SqsQueue,
    sqs: aws_sdk_sqs::Client,
}

#[async_trait]
impl WorkflowHarness for AwsHarness {
    fn workflows(&self) -> &dyn Workflows {
        &self.workflows
    }

    fn queue(&self) -> &dyn Queue {
        &self.queue
    }

    async fn queue_url(&self, name: &str) -> String {
        let found = self
            .sqs
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .expect("GetQueueUrl of a declared queue");
        found
            .queue_url()
            .expect("GetQueueUrl returns a URL")
            .to_string()
    }

    async fn settle(&self) {
        // Step Functions runs executions by itself.
    }

    async fn advance(&self, seconds: u64) {
        tokio::time::sleep(Duration::from_secs(seconds)).await;
    }

    fn role_arn(&self) -> Option<String> {
        Some(ROLE_ARN.to_string())
    }

    fn starts_versions(&self) -> bool {
        // moto fails StartExecution on a version ARN with an internal error.
        false
    }
}

/// Switches moto's Step Functions interpreter on (idempotent); without it executions never run.
async fn enable_interpreter(endpoint: &str) {
    let response = reqwest::Client::new()
        .post(format!("{endpoint}/moto-api/config"))
        .json(&json!({"stepfunctions": {"execute_state_machine": true}}))
        .send()
        .await
        .expect("reach moto's configuration API");
    assert!(
        response.status().is_success(),
        "moto refused the configuration: {}",
        response.status()
    );
}

async fn aws_harness() -> Box<AwsHarness> {
    enable_interpreter(&tern_contract::moto::endpoint()).await;
    let config = crate::moto_config().await;
    Box::new(AwsHarness {
        workflows: SfnWorkflows::new(&config, Some(ROLE_ARN.to_string())),
        queue: SqsQueue::new(&config, HashMap::new()),
        sqs: aws_sdk_sqs::Client::new(&config),
    })
}

tern_contract::workflows_contract!(aws_harness());

fn spec(name: &str, role_arn: Option<String>) -> StateMachineSpec {
    StateMachineSpec {
        name: name.to_string(),
        definition: json!({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        role_arn,
    }
}

#[tokio::test]
async fn publishing_without_a_role_is_invalid() {
    let config = crate::moto_config().await;
    let workflows = SfnWorkflows::new(&config, None);
    let error = workflows
        .publish(&spec(&tern_contract::unique_name("wf-no-role"), None))
        .await
        .expect_err("no role");
    assert_eq!(
        error,
        PortError::Invalid("a Step Functions role ARN is required".into())
    );
}

/// Nothing listens on the discard port: the adapter reports Step Functions as unavailable, on one line.
#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable() {
    let config = crate::unreachable_config().await;
    let workflows = SfnWorkflows::new(&config, Some(ROLE_ARN.to_string()));
    let error = workflows
        .publish(&spec("wf-unreachable", None))
        .await
        .expect_err("nothing listens there");
    let PortError::Unavailable(message) = &error else {
        panic!("expected Unavailable, got {error:?}")
    };
    assert!(
        !message.contains('\n'),
        "the message is one line: {message}"
    );
}
