//! Invoking Lambda functions: the verifier synchronously (the request goes out as JSON, the answer
//! comes back as the function's JSON result), and this function itself asynchronously, to hand a
//! held answer on to a fresh invocation. Knows nothing of what the payloads mean.

use std::time::Duration;

use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lambda::operation::invoke::{InvokeError, InvokeOutput};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use tokio::time::Instant;

use super::error::{AwsError, describe_sdk_error};
use super::within_deadline;

/// Largest answer read back; a verifier report is a few kilobytes.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// Pauses between tries of a function that is not ready yet: short at first (a function that
/// was `Pending` a moment ago may be `Active` now), then one every few seconds while Lambda
/// rebuilds a VPC function's network interfaces.
const NOT_READY_PAUSES: [Duration; 5] = [
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];

type InvokeResult =
    Result<InvokeOutput, SdkError<InvokeError, aws_smithy_runtime_api::http::Response>>;

/// Lambda access; each call goes to the region its function's ARN names (the verifier runs in
/// the VPC's region, which need not be this function's).
#[derive(Clone)]
pub struct Functions {
    base: aws_sdk_lambda::Config,
}

impl Functions {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self::from_conf(aws_sdk_lambda::config::Builder::from(sdk).build())
    }

    pub fn from_conf(base: aws_sdk_lambda::Config) -> Self {
        Self { base }
    }

    /// A client for the region `function` names when it is an ARN, else this function's own.
    fn client_for(&self, function: &str) -> aws_sdk_lambda::Client {
        let mut conf = self.base.to_builder();
        if let Some(region) = function.split(':').nth(3).filter(|r| !r.is_empty()) {
            conf = conf.region(aws_sdk_lambda::config::Region::new(region.to_owned()));
        }
        aws_sdk_lambda::Client::from_conf(conf.build())
    }

    /// Invokes `function_arn` with `payload` and waits for its answer (`RequestResponse`).
    ///
    /// A function that is not ready is waited for, not failed: Lambda refuses to invoke a
    /// function while it is `Pending` (creating or rebuilding its resources) and fails the first
    /// invocation of an `Inactive` one, a VPC function idle for weeks whose network interfaces
    /// it reclaimed ("Lambda function states", AWS Lambda Developer Guide). Both are tried again
    /// until `deadline`; the error then names the state.
    pub async fn invoke(
        &self,
        function_arn: &str,
        payload: Vec<u8>,
        deadline: Instant,
    ) -> Result<Vec<u8>, AwsError> {
        const OPERATION: &str = "Invoke";
        let client = self.client_for(function_arn);
        let started = Instant::now();
        let mut not_ready: Option<String> = None;
        let mut pauses = NOT_READY_PAUSES.iter().copied();
        loop {
            let tried = within_deadline(
                OPERATION,
                deadline,
                client
                    .invoke()
                    .function_name(function_arn)
                    .invocation_type(InvocationType::RequestResponse)
                    .payload(Blob::new(payload.clone()))
                    .send(),
            )
            .await;
            let output = match (tried, &not_ready) {
                (Ok(output), _) => output,
                (Err(AwsError::DeadlineExceeded { .. }), Some(state)) => {
                    return Err(not_ready_error(function_arn, state, started));
                }
                (Err(e), _) => return Err(e),
            };
            let Some(state) = not_ready_state(&output) else {
                return answer(function_arn, output);
            };
            let pause = pauses
                .next()
                .unwrap_or(NOT_READY_PAUSES[NOT_READY_PAUSES.len() - 1]);
            tracing::info!(
                function = function_arn,
                %state,
                retry_in_ms = pause.as_millis() as u64,
                "the verifier function is not ready yet; trying again"
            );
            if Instant::now() + pause >= deadline {
                return Err(not_ready_error(function_arn, &state, started));
            }
            not_ready = Some(state);
            tokio::time::sleep(pause).await;
        }
    }
}

/// The state Lambda reports for a function it cannot invoke yet, when that is why it refused:
/// `ResourceNotReadyException` for an `Inactive` function whose VPC connection is being
/// re-established, `ResourceConflictException` ("... is currently in the following state:
/// 'Pending'") while it is being created or updated. `None` for every other outcome.
fn not_ready_state(output: &InvokeResult) -> Option<String> {
    let err = output.as_ref().err()?;
    match err.code()? {
        "ResourceNotReadyException" => Some("Inactive".to_owned()),
        "ResourceConflictException" => Some(
            err.message()
                .and_then(state_named)
                .unwrap_or_else(|| "busy with an update (ResourceConflictException)".to_owned()),
        ),
        _ => None,
    }
}

/// `Pending` from "... is currently in the following state: 'Pending'. StateReasonCode: ...".
fn state_named(message: &str) -> Option<String> {
    let after = message.split("following state:").nth(1)?;
    let state: String = after
        .trim_start()
        .trim_start_matches(['\'', '"'])
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .take(40)
        .collect();
    (!state.is_empty()).then_some(state)
}

fn not_ready_error(function_arn: &str, state: &str, started: Instant) -> AwsError {
    AwsError::VerifierNotReady {
        arn: function_arn.to_owned(),
        state: state.to_owned(),
        waited_s: started.elapsed().as_secs(),
    }
}

impl Functions {
    /// Queues `payload` for `function` (a name or ARN) as an asynchronous invocation (`Event`):
    /// Lambda accepts it with 202 and runs it on its own. Lambda delivers such an event at least
    /// once, so the function must expect a duplicate.
    pub async fn invoke_async(
        &self,
        function: &str,
        payload: Vec<u8>,
        deadline: Instant,
    ) -> Result<(), AwsError> {
        const OPERATION: &str = "Invoke";
        let client = self.client_for(function);
        let output = within_deadline(
            OPERATION,
            deadline,
            client
                .invoke()
                .function_name(function)
                .invocation_type(InvocationType::Event)
                .payload(Blob::new(payload))
                .send(),
        )
        .await?;
        output.map(|_| ()).map_err(|err| match err.code() {
            Some("AccessDeniedException" | "AccessDenied") => AwsError::SelfInvokeDenied {
                function: function.to_owned(),
            },
            _ => AwsError::Call {
                operation: OPERATION,
                message: describe_sdk_error(&err),
            },
        })
    }
}

fn answer(function_arn: &str, output: InvokeResult) -> Result<Vec<u8>, AwsError> {
    let output = output.map_err(|err| match err.code() {
        Some("ResourceNotFoundException") => AwsError::VerifierMissing {
            arn: function_arn.to_owned(),
        },
        Some("AccessDeniedException" | "AccessDenied") => AwsError::VerifierAccessDenied {
            arn: function_arn.to_owned(),
        },
        _ => AwsError::Call {
            operation: "Invoke",
            message: describe_sdk_error(&err),
        },
    })?;
    let payload = output
        .payload()
        .map(|b| b.as_ref().to_vec())
        .unwrap_or_default();
    if let Some(kind) = output.function_error() {
        let text = String::from_utf8_lossy(&payload[..payload.len().min(600)]).into_owned();
        return Err(AwsError::VerifierFailed {
            arn: function_arn.to_owned(),
            message: format!("{kind}: {text}"),
        });
    }
    if payload.len() > MAX_ANSWER_BYTES {
        return Err(AwsError::VerifierFailed {
            arn: function_arn.to_owned(),
            message: format!("its answer is {} bytes, more than expected", payload.len()),
        });
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::test_support::{Recorder, lambda_conf, later};
    use aws_sdk_lambda::Client;
    use aws_smithy_mocks::mock;

    const ARN: &str = "arn:aws:lambda:eu-west-1:123456789012:function:verifier";

    #[tokio::test]
    async fn the_answer_comes_back_and_the_call_goes_to_the_functions_region() {
        let rule = mock!(Client::invoke)
            .match_requests(|r| {
                r.function_name() == Some(ARN)
                    && r.invocation_type() == Some(&InvocationType::RequestResponse)
            })
            .sequence()
            .http_status(200, Some(r#"{"passed":true}"#.into()))
            .build();
        let recorder = Recorder::default();
        let lambda = Functions::from_conf(lambda_conf(&[&rule], &recorder));
        let answer = lambda.invoke(ARN, b"{}".to_vec(), later()).await.unwrap();
        assert_eq!(answer, br#"{"passed":true}"#);
        let uri = &recorder.requests()[0].uri;
        assert!(uri.contains("lambda.eu-west-1."), "{uri}");
    }

    #[tokio::test]
    async fn a_missing_function_or_one_that_failed_is_named() {
        let missing = mock!(Client::invoke)
            .sequence()
            .http_status(
                404,
                Some(
                    r#"{"__type":"ResourceNotFoundException","Message":"Function not found"}"#
                        .into(),
                ),
            )
            .build();
        let lambda = Functions::from_conf(lambda_conf(&[&missing], &Recorder::default()));
        let err = lambda
            .invoke(ARN, b"{}".to_vec(), later())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, AwsError::VerifierMissing { arn } if arn == ARN),
            "{err}"
        );

        let failed = mock!(Client::invoke)
            .sequence()
            .output(|| {
                aws_sdk_lambda::operation::invoke::InvokeOutput::builder()
                    .status_code(200)
                    .function_error("Unhandled")
                    .payload(Blob::new(
                        r#"{"errorMessage":"Task timed out after 10.00 seconds"}"#,
                    ))
                    .build()
            })
            .build();
        let lambda = Functions::from_conf(lambda_conf(&[&failed], &Recorder::default()));
        let err = lambda
            .invoke(ARN, b"{}".to_vec(), later())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("Task timed out"), "{err}");
    }

    fn not_ready(code: &str, message: &str) -> String {
        format!(r#"{{"__type":"{code}","Message":"{message}"}}"#)
    }

    #[tokio::test]
    async fn a_function_that_is_not_ready_is_tried_again_until_it_answers() {
        let rule = mock!(Client::invoke)
            .sequence()
            .http_status(
                502,
                Some(not_ready("ResourceNotReadyException", "The function is inactive and its VPC connection is no longer available.")),
            )
            .http_status(
                409,
                Some(not_ready("ResourceConflictException", "The operation cannot be performed at this time. The function is currently in the following state: Pending")),
            )
            .http_status(200, Some(r#"{"passed":true}"#.into()))
            .build();
        let recorder = Recorder::default();
        let lambda = Functions::from_conf(lambda_conf(&[&rule], &recorder));
        let answer = lambda.invoke(ARN, b"{}".to_vec(), later()).await.unwrap();
        assert_eq!(answer, br#"{"passed":true}"#);
        assert_eq!(recorder.requests().len(), 3);
    }

    #[tokio::test]
    async fn a_function_still_pending_at_the_deadline_is_named_with_its_state() {
        let pending = not_ready(
            "ResourceConflictException",
            "The operation cannot be performed at this time. The resource arn is currently in the following state: 'Pending'. StateReasonCode: 'Restoring'",
        );
        let rule = mock!(Client::invoke)
            .sequence()
            .http_status(409, Some(pending))
            .repeatedly()
            .build();
        let lambda = Functions::from_conf(lambda_conf(&[&rule], &Recorder::default()));
        // Tries after 0.25, 0.5 and 1 s; the next pause of 2 s would end past the deadline.
        let deadline = Instant::now() + Duration::from_secs(3);
        let err = lambda
            .invoke(ARN, b"{}".to_vec(), deadline)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, AwsError::VerifierNotReady { state, .. } if state == "Pending"),
            "{err}"
        );
        assert!(err.to_string().contains("reports it Pending"), "{err}");
        assert!(Instant::now() <= deadline);
    }

    #[test]
    fn the_state_is_read_from_lambdas_message() {
        assert_eq!(
            state_named("The function is currently in the following state: Pending").as_deref(),
            Some("Pending")
        );
        assert_eq!(
            state_named(
                "... is currently in the following state: 'Inactive'. StateReasonCode: 'Idle'"
            )
            .as_deref(),
            Some("Inactive")
        );
        assert_eq!(
            state_named("An update is in progress for resource: arn"),
            None
        );
    }

    #[tokio::test]
    async fn a_hand_over_is_queued_as_an_event_and_a_denied_one_is_named() {
        let queued = mock!(Client::invoke)
            .match_requests(|r| {
                r.function_name() == Some("self")
                    && r.invocation_type() == Some(&InvocationType::Event)
                    && r.payload().map(|p| p.as_ref()) == Some(&b"{\"Hop\":1}"[..])
            })
            .sequence()
            .http_status(202, None)
            .build();
        let lambda = Functions::from_conf(lambda_conf(&[&queued], &Recorder::default()));
        lambda
            .invoke_async("self", br#"{"Hop":1}"#.to_vec(), later())
            .await
            .unwrap();

        let denied = mock!(Client::invoke)
            .sequence()
            .http_status(
                403,
                Some(r#"{"__type":"AccessDeniedException","Message":"not authorized"}"#.into()),
            )
            .build();
        let lambda = Functions::from_conf(lambda_conf(&[&denied], &Recorder::default()));
        let err = lambda
            .invoke_async("self", b"{}".to_vec(), later())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("lambda:InvokeFunction on itself"),
            "{err}"
        );
    }
}
