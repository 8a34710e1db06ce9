//! CloudFormation's own view of a stack resource: the status of the resource a request is for.
//! A Create asks it whether CloudFormation still waits for the answer
//! (`docs/cloudformation.md#rollback-delete-after-a-failed-create`: a
//! cancelled Create keeps running while its Delete is carried out by another invocation).
//! Read-only; knows nothing of Databricks or of what the status means for the resource.

use aws_sdk_cloudformation::config::retry::RetryConfig;
use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use tokio::time::Instant;

use super::error::{AwsError, describe_sdk_error};
use super::regional::PerRegion;
use super::services::is_valid_region_name;
use super::{MAX_ATTEMPTS, within_deadline};

/// A stack resource as CloudFormation reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceStatus {
    /// `CREATE_IN_PROGRESS`, `DELETE_COMPLETE`, ...
    pub status: String,
    /// When the status last changed (epoch ms): for a request in progress, when CloudFormation
    /// started it.
    pub last_updated_ms: Option<i64>,
}

/// CloudFormation access, one client per region (a stack's resources are served by a function
/// in the stack's region, but the region is taken from the stack id rather than assumed).
#[derive(Clone)]
pub struct Stacks {
    clients: PerRegion<aws_sdk_cloudformation::Client>,
}

impl Stacks {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        let base = aws_sdk_cloudformation::config::Builder::from(sdk)
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .build();
        Self::from_conf(base)
    }

    /// Uses `base` as it is (only the region is replaced per stack); for tests.
    pub fn from_conf(base: aws_sdk_cloudformation::Config) -> Self {
        Self {
            clients: PerRegion::new(move |region| {
                aws_sdk_cloudformation::Client::from_conf(base.to_builder().region(region).build())
            }),
        }
    }

    /// The resource's status as CloudFormation reports it, or `None` when CloudFormation knows no
    /// such stack or resource,
    /// which is the case for events written by hand: then nothing is asked when `stack_id` is
    /// not a stack ARN.
    pub async fn resource_status(
        &self,
        stack_id: &str,
        logical_resource_id: &str,
        deadline: Instant,
    ) -> Result<Option<ResourceStatus>, AwsError> {
        const OPERATION: &str = "DescribeStackResource";
        let Some(region) = stack_region(stack_id) else {
            return Ok(None);
        };
        let output = within_deadline(
            OPERATION,
            deadline,
            self.clients
                .get(region)
                .describe_stack_resource()
                .stack_name(stack_id)
                .logical_resource_id(logical_resource_id)
                .send(),
        )
        .await?;
        match output {
            Ok(out) => Ok(out.stack_resource_detail().and_then(|d| {
                Some(ResourceStatus {
                    status: d.resource_status()?.as_str().to_owned(),
                    last_updated_ms: d.last_updated_timestamp().and_then(|t| t.to_millis().ok()),
                })
            })),
            // "Stack with id ... does not exist" / "Resource ... does not exist for stack ...".
            Err(err)
                if err.code() == Some("ValidationError")
                    && err.message().is_some_and(|m| m.contains("does not exist")) =>
            {
                Ok(None)
            }
            Err(err) => Err(match err.code() {
                Some("AccessDenied" | "AccessDeniedException") => AwsError::StackAccessDenied {
                    operation: OPERATION,
                },
                _ => AwsError::Call {
                    operation: OPERATION,
                    message: describe_sdk_error(&err),
                },
            }),
        }
    }
}

/// The region of a stack id `arn:<partition>:cloudformation:<region>:<account>:stack/<name>/<id>`.
pub fn stack_region(stack_id: &str) -> Option<&str> {
    let mut parts = stack_id.splitn(6, ':');
    let (Some("arn"), Some(_partition), Some("cloudformation"), Some(region), Some(_), Some(rest)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    (rest.starts_with("stack/") && is_valid_region_name(region)).then_some(region)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::test_support::{Recorder, cfn_conf, later};
    use aws_sdk_cloudformation::Client;
    use aws_smithy_mocks::mock;

    const STACK: &str = "arn:aws:cloudformation:eu-west-1:123456789012:stack/platform/1c2b3a40-0000-4000-8000-000000000001";

    /// DescribeStackResource's answer as CloudFormation sends it (query protocol, XML).
    fn described(status: &str) -> String {
        format!(
            r#"<DescribeStackResourceResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/">
  <DescribeStackResourceResult>
    <StackResourceDetail>
      <StackId>{STACK}</StackId>
      <StackName>platform</StackName>
      <LogicalResourceId>PrivateLink</LogicalResourceId>
      <PhysicalResourceId>platform-PrivateLink-1K7HFKV7MYVR</PhysicalResourceId>
      <ResourceType>Custom::DatabricksBackendPrivateLink</ResourceType>
      <LastUpdatedTimestamp>2026-11-26T10:00:00Z</LastUpdatedTimestamp>
      <ResourceStatus>{status}</ResourceStatus>
    </StackResourceDetail>
  </DescribeStackResourceResult>
  <ResponseMetadata><RequestId>11111111-2222-3333-4444-555555555555</RequestId></ResponseMetadata>
</DescribeStackResourceResponse>"#
        )
    }

    /// A CloudFormation (query protocol) error response.
    fn error(code: &str, message: &str) -> String {
        format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message>\
             </Error><RequestId>11111111-2222-3333-4444-555555555555</RequestId></ErrorResponse>"
        )
    }

    /// Asks about STACK's `PrivateLink` with CloudFormation answering by `rule`; returns the
    /// answer and every request attempt.
    async fn ask(rule: aws_smithy_mocks::Rule) -> (Result<Option<String>, AwsError>, Recorder) {
        let recorder = Recorder::default();
        let stacks = Stacks::from_conf(cfn_conf(&[&rule], &recorder));
        let status = stacks.resource_status(STACK, "PrivateLink", later()).await;
        (status.map(|s| s.map(|s| s.status)), recorder)
    }

    #[test]
    fn the_region_comes_from_the_stack_arn() {
        assert_eq!(stack_region(STACK), Some("eu-west-1"));
        assert_eq!(
            stack_region("arn:aws-us-gov:cloudformation:us-gov-west-1:1:stack/s/x"),
            Some("us-gov-west-1")
        );
        for not_a_stack in [
            "my-stack",
            "",
            "arn:aws:s3:::bucket",
            "arn:aws:cloudformation:eu-west-1:1:stackset/s:x",
            "arn:aws:cloudformation:EU_WEST:1:stack/s/x",
        ] {
            assert_eq!(stack_region(not_a_stack), None, "{not_a_stack}");
        }
    }

    #[tokio::test]
    async fn reports_the_status_asking_the_stacks_region() {
        let rule = mock!(Client::describe_stack_resource)
            .sequence()
            .http_status(200, Some(described("DELETE_COMPLETE")))
            .build();
        let recorder = Recorder::default();
        let stacks = Stacks::from_conf(cfn_conf(&[&rule], &recorder));
        let status = stacks.resource_status(STACK, "PrivateLink", later()).await;
        assert_eq!(
            status.unwrap(),
            Some(ResourceStatus {
                status: "DELETE_COMPLETE".into(),
                // 2026-11-26T10:00:00Z
                last_updated_ms: Some(1_795_687_200_000),
            })
        );
        let sent = recorder.requests();
        assert_eq!(sent.len(), 1);
        assert!(sent[0].uri.contains("eu-west-1"), "{}", sent[0].uri);
        assert!(sent[0].body.contains("Action=DescribeStackResource"));
        assert!(sent[0].body.contains("LogicalResourceId=PrivateLink"));
    }

    #[tokio::test]
    async fn unknown_stacks_are_none_and_hand_written_ids_are_not_asked() {
        let rule = mock!(Client::describe_stack_resource)
            .sequence()
            .http_status(
                400,
                Some(error(
                    "ValidationError",
                    "Stack with id arn:aws:cloudformation:eu-west-1:123456789012:stack/gone/x does not exist",
                )),
            )
            .build();
        let recorder = Recorder::default();
        let stacks = Stacks::from_conf(cfn_conf(&[&rule], &recorder));
        let status = stacks.resource_status(STACK, "PrivateLink", later()).await;
        assert_eq!(status.unwrap(), None);
        let status = stacks
            .resource_status("my-stack", "PrivateLink", later())
            .await;
        assert_eq!(status.unwrap(), None);
        assert_eq!(recorder.requests().len(), 1);
    }

    #[tokio::test]
    async fn access_denied_names_the_missing_permission() {
        let rule = mock!(Client::describe_stack_resource)
            .sequence()
            .http_status(
                403,
                Some(error(
                    "AccessDenied",
                    "User: arn:aws:sts::1:assumed-role/x is not authorized",
                )),
            )
            .build();
        let err = ask(rule).await.0.unwrap_err();
        assert!(matches!(err, AwsError::StackAccessDenied { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("cloudformation:DescribeStackResource"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn throttling_is_retried() {
        let rule = mock!(Client::describe_stack_resource)
            .sequence()
            .http_status(400, Some(error("Throttling", "Rate exceeded")))
            .times(2)
            .http_status(200, Some(described("CREATE_IN_PROGRESS")))
            .build();
        let (status, recorder) = ask(rule).await;
        assert_eq!(status.unwrap().as_deref(), Some("CREATE_IN_PROGRESS"));
        assert_eq!(recorder.requests().len(), 3);
    }
}
