//! The one error type of the `aws` module: what went wrong talking to EC2 or Secrets Manager,
//! phrased for the person who has to fix it. Never carries secret material or raw SDK dumps.

use aws_sdk_ec2::error::ProvideErrorMetadata;

/// Longest AWS error message kept; EC2 authorisation failures append a long encoded blob.
const MAX_MESSAGE_CHARS: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("{region:?} is not an AWS region name; use a name such as us-east-1 or us-gov-west-1")]
    InvalidRegion { region: String },

    #[error(
        "VPC endpoint {id} does not exist in the region the resource names; check the endpoint id \
         and that Region is the region the endpoint was created in"
    )]
    EndpointNotFound { id: String },

    #[error("{id:?} is not a VPC endpoint id; VPC endpoint ids look like vpce-0123456789abcdef0")]
    MalformedEndpointId { id: String },

    #[error(
        "security group {id} does not exist in the region the resource names; check the security \
         group id"
    )]
    SecurityGroupNotFound { id: String },

    #[error("subnet {id} does not exist in the region the resource names; check Network.SubnetIds")]
    SubnetNotFound { id: String },

    #[error(
        "the Lambda function's role is not allowed to call ec2:{operation}; add that action to its \
         IAM policy"
    )]
    Ec2AccessDenied { operation: &'static str },

    #[error(
        "could not enable private DNS on VPC endpoint {id}: {message}. The VPC needs both \
         \"DNS hostnames\" and \"DNS resolution\" enabled; fix that or enable private DNS on the \
         endpoint yourself"
    )]
    EnablePrivateDnsFailed { id: String, message: String },

    #[error(
        "{operation} did not finish before the invocation's deadline; AWS may be throttling or \
         unreachable, retry the stack operation"
    )]
    DeadlineExceeded { operation: &'static str },

    #[error("{}", describe_invalid_arn(arn))]
    InvalidSecretArn { arn: String },

    #[error(
        "secret {arn} does not exist or is scheduled for deletion; create it (or restore it) or \
         point the resource at the right secret ARN"
    )]
    SecretNotFound { arn: String },

    #[error(
        "the Lambda function's role may not read secret {arn}; allow secretsmanager:GetSecretValue \
         on it (and kms:Decrypt on its KMS key if it uses a customer managed key)"
    )]
    SecretAccessDenied { arn: String },

    #[error(
        "secret {arn} is not JSON; store {{\"client_id\": \"<service principal application id>\", \
         \"client_secret\": \"<OAuth secret>\"}} as its secret string"
    )]
    SecretNotJson { arn: String },

    #[error(
        "secret {arn} has no non-empty string field \"{field}\"; store {{\"client_id\": ..., \
         \"client_secret\": ...}} as its secret string"
    )]
    SecretMissingField { arn: String, field: &'static str },

    #[error(
        "secret {arn} holds binary data; store {{\"client_id\": ..., \"client_secret\": ...}} as its \
         secret string instead"
    )]
    SecretBinary { arn: String },

    #[error(
        "the Lambda function's role is not allowed to call cloudformation:{operation}; add that \
         action on the stacks it serves to its IAM policy, so that a Create cancelled by \
         CloudFormation removes what it made"
    )]
    StackAccessDenied { operation: &'static str },

    #[error(
        "the verifier function {arn} does not exist; deploy it (template parameter \
         DeployVerifier) or correct VerifyFunctionArn"
    )]
    VerifierMissing { arn: String },

    #[error(
        "the Lambda function's role may not invoke the verifier function {arn}; allow \
         lambda:InvokeFunction on it (the template does for its own verifier, and for another \
         stack's verifier named in its parameter OtherVerifierFunctionArns)"
    )]
    VerifierAccessDenied { arn: String },

    #[error(
        "the verifier function {arn} is not ready: Lambda reports it {state} ({waited_s} s of \
         tries), which happens while Lambda creates its network interfaces or rebuilds them \
         after weeks without an invocation, and it did not become Active before this \
         invocation's deadline; retry the stack operation in a few minutes (Lambda function \
         states, AWS Lambda Developer Guide)"
    )]
    VerifierNotReady {
        arn: String,
        state: String,
        waited_s: u64,
    },

    #[error(
        "the Lambda function's role may not hand a held answer on to a fresh invocation of \
         {function}; allow lambda:InvokeFunction on itself (the template does), or leave \
         WaitUntilReady off"
    )]
    SelfInvokeDenied { function: String },

    #[error("the verifier function {arn} failed instead of answering: {message}")]
    VerifierFailed { arn: String, message: String },

    #[error("AWS {operation} failed: {message}")]
    Call {
        operation: &'static str,
        message: String,
    },
}

impl AwsError {
    /// True when the credentials secret cannot be used and retrying will not change that (the
    /// Delete path then gives up on the Databricks side and succeeds with a warning).
    pub fn is_permanent_credentials_problem(&self) -> bool {
        matches!(
            self,
            AwsError::InvalidSecretArn { .. }
                | AwsError::SecretNotFound { .. }
                | AwsError::SecretAccessDenied { .. }
                | AwsError::SecretNotJson { .. }
                | AwsError::SecretMissingField { .. }
                | AwsError::SecretBinary { .. }
        )
    }
}

// A value that does not even start like an ARN may be something pasted by mistake (even the
// secret itself), so it is not echoed.
fn describe_invalid_arn(arn: &str) -> String {
    let expected = "expected a Secrets Manager secret ARN like arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME";
    if arn.starts_with("arn:") && arn.len() <= 2048 {
        format!("{arn:?} is not a valid secret ARN; {expected}")
    } else {
        format!("the secret ARN is not an ARN; {expected}")
    }
}

/// Whether an AWS error code says the role lacks the permission.
pub(super) fn is_access_denied(code: Option<&str>) -> bool {
    matches!(
        code,
        Some("UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException")
    )
}

/// An EC2 error with no meaning of its own to the caller: the role's missing permission, or the
/// call's failure as the SDK describes it.
pub(super) fn ec2_call_error<E: ProvideErrorMetadata + std::error::Error + 'static>(
    operation: &'static str,
    err: &aws_sdk_ec2::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> AwsError {
    if is_access_denied(err.code()) {
        AwsError::Ec2AccessDenied { operation }
    } else {
        AwsError::Call {
            operation,
            message: describe_sdk_error(err),
        }
    }
}

/// "Code: message" of an SDK error from its error metadata, shortened. Never a Debug dump.
pub(crate) fn describe_sdk_error<E, R>(err: &aws_sdk_ec2::error::SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    use aws_sdk_ec2::error::{DisplayErrorContext, SdkError};
    let text = match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        (None, Some(message)) => message.to_owned(),
        // Never reached AWS (no credentials, DNS, connection, timeout): the error chain's text
        // names the cause and holds no request or response body.
        (None, None) => match err {
            SdkError::TimeoutError(_) => "the request timed out".to_owned(),
            _ => DisplayErrorContext(err).to_string(),
        },
    };
    crate::text::shorten(&text, MAX_MESSAGE_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut() {
        use aws_sdk_ec2::error::{ErrorMetadata, SdkError};
        use aws_sdk_ec2::operation::describe_vpcs::DescribeVpcsError;
        let describe = |message: &str| {
            let error = DescribeVpcsError::generic(
                ErrorMetadata::builder()
                    .code("Throttling")
                    .message(message)
                    .build(),
            );
            describe_sdk_error::<_, ()>(&SdkError::service_error(error, ()))
        };
        let short = describe(&"x".repeat(1000));
        assert_eq!(short.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(short.ends_with('…'));
        assert_eq!(describe("short"), "Throttling: short");
    }

    #[test]
    fn invalid_arn_is_echoed_only_when_it_looks_like_an_arn() {
        let shown = AwsError::InvalidSecretArn {
            arn: "arn:aws:s3:::bucket".into(),
        }
        .to_string();
        assert!(shown.contains("arn:aws:s3:::bucket"), "{shown}");

        let pasted = r#"{"client_id":"abc","client_secret":"dose-topsecret"}"#;
        let shown = AwsError::InvalidSecretArn { arn: pasted.into() }.to_string();
        assert!(!shown.contains("topsecret"), "{shown}");
    }

    #[test]
    fn only_unusable_secrets_count_as_permanent_credentials_problems() {
        let arn = || "arn:aws:secretsmanager:us-east-1:123456789012:secret:sp".to_owned();
        assert!(AwsError::SecretNotFound { arn: arn() }.is_permanent_credentials_problem());
        assert!(AwsError::SecretAccessDenied { arn: arn() }.is_permanent_credentials_problem());
        assert!(AwsError::SecretNotJson { arn: arn() }.is_permanent_credentials_problem());
        assert!(AwsError::SecretBinary { arn: arn() }.is_permanent_credentials_problem());
        assert!(
            AwsError::SecretMissingField {
                arn: arn(),
                field: "client_id"
            }
            .is_permanent_credentials_problem()
        );
        assert!(
            !AwsError::DeadlineExceeded {
                operation: "GetSecretValue"
            }
            .is_permanent_credentials_problem()
        );
        assert!(
            !AwsError::Call {
                operation: "GetSecretValue",
                message: "InternalServiceError: try again".into()
            }
            .is_permanent_credentials_problem()
        );
    }
}
