//! Reading the Databricks service principal's OAuth credentials from Secrets Manager. Knows the
//! secret's JSON shape, nothing about how the credentials are used. The secret text never reaches
//! a log line or an error message.

use std::fmt;

use aws_sdk_secretsmanager::config::retry::RetryConfig;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use tokio::time::Instant;

use super::error::{AwsError, describe_sdk_error};
use super::regional::PerRegion;
use super::services::{Partition, is_valid_region_name, partition_of};
use super::{MAX_ATTEMPTS, within_deadline};

/// OAuth machine-to-machine credentials of a Databricks service principal.
#[derive(Clone, PartialEq, Eq)]
pub struct ServicePrincipalSecret {
    pub client_id: String,
    pub client_secret: String,
}

impl fmt::Debug for ServicePrincipalSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServicePrincipalSecret")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// Secrets Manager access. The secret may live in another region than the Lambda, so a client
/// per region is built lazily from the same base configuration.
#[derive(Clone)]
pub struct Secrets {
    clients: PerRegion<aws_sdk_secretsmanager::Client>,
}

impl Secrets {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        let base = aws_sdk_secretsmanager::config::Builder::from(sdk)
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .build();
        Self::from_conf(base)
    }

    /// Uses `base` as it is (only the region is replaced per secret); for tests and for callers
    /// that need their own retry or endpoint settings.
    pub fn from_conf(base: aws_sdk_secretsmanager::Config) -> Self {
        Self {
            clients: PerRegion::new(move |region| {
                aws_sdk_secretsmanager::Client::from_conf(base.to_builder().region(region).build())
            }),
        }
    }

    fn client(&self, region: &str) -> aws_sdk_secretsmanager::Client {
        self.clients.get(region)
    }

    /// Reads and parses the secret `{"client_id": ..., "client_secret": ...}`.
    pub async fn service_principal(
        &self,
        secret_arn: &str,
        deadline: Instant,
    ) -> Result<ServicePrincipalSecret, AwsError> {
        const OPERATION: &str = "GetSecretValue";
        let region = secret_region(secret_arn).ok_or_else(|| AwsError::InvalidSecretArn {
            arn: secret_arn.to_owned(),
        })?;
        let arn = || secret_arn.to_owned();
        let output = within_deadline(
            OPERATION,
            deadline,
            self.client(region)
                .get_secret_value()
                .secret_id(secret_arn)
                .send(),
        )
        .await?
        .map_err(|err| {
            match err.as_service_error() {
                Some(GetSecretValueError::ResourceNotFoundException(_)) => {
                    return AwsError::SecretNotFound { arn: arn() };
                }
                // KMS refusing to decrypt is, in practice, the role lacking kms:Decrypt.
                Some(GetSecretValueError::DecryptionFailure(_)) => {
                    return AwsError::SecretAccessDenied { arn: arn() };
                }
                // "You can't perform this operation on the secret because it was marked for
                // deletion": as unusable as a missing secret.
                Some(GetSecretValueError::InvalidRequestException(e))
                    if e.message()
                        .is_some_and(|m| m.to_ascii_lowercase().contains("deletion")) =>
                {
                    return AwsError::SecretNotFound { arn: arn() };
                }
                _ => {}
            }
            match err.code() {
                Some("AccessDeniedException" | "AccessDenied") => {
                    AwsError::SecretAccessDenied { arn: arn() }
                }
                _ => AwsError::Call {
                    operation: OPERATION,
                    message: describe_sdk_error(&err),
                },
            }
        })?;

        match (output.secret_string(), output.secret_binary()) {
            (Some(text), _) => parse_service_principal(secret_arn, text),
            (None, Some(_)) => Err(AwsError::SecretBinary { arn: arn() }),
            (None, None) => Err(AwsError::SecretNotJson { arn: arn() }),
        }
    }
}

/// Region of a Secrets Manager secret ARN
/// (`arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME`), or None when it is not one.
pub fn secret_region(arn: &str) -> Option<&str> {
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    let [
        "arn",
        partition,
        "secretsmanager",
        region,
        account,
        "secret",
        name,
    ] = parts[..]
    else {
        return None;
    };
    let expected_partition = match partition_of(region) {
        Partition::Aws => "aws",
        Partition::AwsUsGov => "aws-us-gov",
        Partition::AwsCn => "aws-cn",
    };
    let valid = partition == expected_partition
        && is_valid_region_name(region)
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty()
        && !name.chars().any(char::is_whitespace);
    valid.then_some(region)
}

/// Parses the secret string. Errors name the secret and the field, never any of its text: even
/// the JSON parser's message is dropped because it quotes the input.
pub fn parse_service_principal(
    arn: &str,
    secret_string: &str,
) -> Result<ServicePrincipalSecret, AwsError> {
    let not_json = || AwsError::SecretNotJson {
        arn: arn.to_owned(),
    };
    let value: serde_json::Value = serde_json::from_str(secret_string).map_err(|_| not_json())?;
    let object = value.as_object().ok_or_else(not_json)?;
    // Surrounding whitespace is a copy-and-paste accident, never part of an id or OAuth secret.
    let field = |field: &'static str| {
        object
            .get(field)
            .and_then(serde_json::Value::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| AwsError::SecretMissingField {
                arn: arn.to_owned(),
                field,
            })
    };
    Ok(ServicePrincipalSecret {
        client_id: field("client_id")?,
        client_secret: field("client_secret")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::test_support::{Recorder, later, secrets_conf};
    use aws_sdk_secretsmanager::Client;
    use aws_smithy_mocks::mock;

    const ARN: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:databricks-sp-AbCdEf";
    const SECRET: &str = "dose0123456789abcdefTOPSECRET";

    fn assert_no_secret(err: &AwsError) {
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("TOPSECRET"), "{shown}");
        assert!(!shown.contains("dose0123"), "{shown}");
    }

    #[test]
    fn a_complete_secret_parses_and_extra_fields_are_ignored() {
        let parsed = parse_service_principal(
            ARN,
            &format!(
                r#"{{"client_id": " 8a1c-app-id\n", "client_secret": "{SECRET}", "note": 7}}"#
            ),
        )
        .unwrap();
        assert_eq!(parsed.client_id, "8a1c-app-id");
        assert_eq!(parsed.client_secret, SECRET);
    }

    #[test]
    fn text_that_is_not_json_is_refused_without_echoing_it() {
        for text in [
            SECRET.to_owned(),
            format!("client_id=abc client_secret={SECRET}"),
            format!(r#"{{"client_id": "abc", "client_secret": "{SECRET}""#),
            format!(r#""{SECRET}""#),
            format!(r#"["abc", "{SECRET}"]"#),
        ] {
            let err = parse_service_principal(ARN, &text).unwrap_err();
            assert!(matches!(err, AwsError::SecretNotJson { .. }), "{err:?}");
            assert_no_secret(&err);
            assert!(
                err.to_string().contains("client_secret"),
                "says what to store"
            );
        }
    }

    #[test]
    fn missing_empty_or_non_string_fields_are_named() {
        let cases = [
            (format!(r#"{{"client_secret": "{SECRET}"}}"#), "client_id"),
            (
                format!(r#"{{"client_id": "", "client_secret": "{SECRET}"}}"#),
                "client_id",
            ),
            (
                format!(r#"{{"client_id": 42, "client_secret": "{SECRET}"}}"#),
                "client_id",
            ),
            (r#"{"client_id": "abc"}"#.to_owned(), "client_secret"),
            (
                r#"{"client_id": "abc", "client_secret": "   "}"#.to_owned(),
                "client_secret",
            ),
            (
                format!(r#"{{"client_id": "abc", "clientSecret": "{SECRET}"}}"#),
                "client_secret",
            ),
        ];
        for (text, missing) in cases {
            let err = parse_service_principal(ARN, &text).unwrap_err();
            assert!(
                matches!(&err, AwsError::SecretMissingField { field, .. } if *field == missing),
                "{text}: {err:?}"
            );
            assert_no_secret(&err);
            assert!(err.to_string().contains(ARN));
        }
    }

    #[test]
    fn debug_output_hides_the_client_secret() {
        let sp = ServicePrincipalSecret {
            client_id: "app-id".into(),
            client_secret: SECRET.into(),
        };
        let shown = format!("{sp:?}");
        assert!(shown.contains("app-id"));
        assert!(!shown.contains("TOPSECRET"), "{shown}");
    }

    #[test]
    fn secret_arns() {
        assert_eq!(secret_region(ARN), Some("eu-west-1"));
        assert_eq!(
            secret_region("arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:sp-1"),
            Some("us-gov-west-1")
        );
        for bad in [
            "",
            "databricks-sp",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:",
            "arn:aws:secretsmanager:eu-west-1:1234:secret:sp",
            "arn:aws:ssm:eu-west-1:123456789012:parameter/sp",
            "arn:aws:secretsmanager:eu-west-1:123456789012:key:sp",
            "arn:aws:secretsmanager:not a region:123456789012:secret:sp",
            "arn:aws:secretsmanager:us-gov-west-1:123456789012:secret:sp",
            "arn:aws-us-gov:secretsmanager:us-east-1:123456789012:secret:sp",
        ] {
            assert_eq!(secret_region(bad), None, "{bad}");
        }
    }

    fn get_secret_rule(status: u16, body: &str) -> aws_smithy_mocks::Rule {
        mock!(Client::get_secret_value)
            .sequence()
            .http_status(status, Some(body.to_owned()))
            .build()
    }

    #[tokio::test]
    async fn the_secret_is_read_in_its_own_region() {
        let body = serde_json::json!({
            "ARN": ARN,
            "Name": "databricks-sp",
            "SecretString": format!(r#"{{"client_id":"app-id","client_secret":"{SECRET}"}}"#),
        })
        .to_string();
        let rule = get_secret_rule(200, &body);
        let recorder = Recorder::default();
        let secrets = Secrets::from_conf(secrets_conf(&[&rule], &recorder));

        let sp = secrets.service_principal(ARN, later()).await.unwrap();

        assert_eq!(sp.client_id, "app-id");
        assert_eq!(sp.client_secret, SECRET);
        let sent = recorder.requests();
        assert_eq!(sent.len(), 1);
        assert!(
            sent[0]
                .uri
                .starts_with("https://secretsmanager.eu-west-1.amazonaws.com"),
            "{}",
            sent[0].uri
        );
        assert!(sent[0].body.contains(ARN), "{}", sent[0].body);
    }

    #[tokio::test]
    async fn a_missing_secret_is_not_found() {
        let rule = get_secret_rule(
            400,
            r#"{"__type":"ResourceNotFoundException","Message":"Secrets Manager can't find the specified secret."}"#,
        );
        let secrets = Secrets::from_conf(secrets_conf(&[&rule], &Recorder::default()));
        let err = secrets.service_principal(ARN, later()).await.unwrap_err();
        assert!(
            matches!(&err, AwsError::SecretNotFound { arn } if arn == ARN),
            "{err:?}"
        );
        assert!(err.is_permanent_credentials_problem());
    }

    #[tokio::test]
    async fn a_secret_marked_for_deletion_is_not_found() {
        let rule = get_secret_rule(
            400,
            r#"{"__type":"InvalidRequestException","Message":"You can't perform this operation on the secret because it was marked for deletion."}"#,
        );
        let secrets = Secrets::from_conf(secrets_conf(&[&rule], &Recorder::default()));
        let err = secrets.service_principal(ARN, later()).await.unwrap_err();
        assert!(matches!(err, AwsError::SecretNotFound { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_refused_read_asks_for_the_permission() {
        let rule = get_secret_rule(
            400,
            r#"{"__type":"AccessDeniedException","Message":"User: arn:aws:sts::123456789012:assumed-role/fn is not authorized to perform: secretsmanager:GetSecretValue"}"#,
        );
        let secrets = Secrets::from_conf(secrets_conf(&[&rule], &Recorder::default()));
        let err = secrets.service_principal(ARN, later()).await.unwrap_err();
        assert!(
            matches!(err, AwsError::SecretAccessDenied { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("secretsmanager:GetSecretValue"));
        assert!(err.is_permanent_credentials_problem());
    }

    #[tokio::test]
    async fn a_binary_secret_is_refused() {
        let body = serde_json::json!({"ARN": ARN, "Name": "databricks-sp", "SecretBinary": "AAEC"})
            .to_string();
        let rule = get_secret_rule(200, &body);
        let secrets = Secrets::from_conf(secrets_conf(&[&rule], &Recorder::default()));
        let err = secrets.service_principal(ARN, later()).await.unwrap_err();
        assert!(matches!(err, AwsError::SecretBinary { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_service_fault_is_retried_then_reported_briefly() {
        let rule = mock!(Client::get_secret_value)
            .sequence()
            .http_status(
                500,
                Some(r#"{"__type":"InternalServiceError","Message":"An error occurred on the server side."}"#.into()),
            )
            .repeatedly()
            .build();
        let secrets = Secrets::from_conf(secrets_conf(&[&rule], &Recorder::default()));
        let err = secrets.service_principal(ARN, later()).await.unwrap_err();
        assert_eq!(rule.num_calls(), 5);
        assert_eq!(
            err.to_string(),
            "AWS GetSecretValue failed: InternalServiceError: An error occurred on the server side."
        );
        assert!(!err.is_permanent_credentials_problem());
    }

    #[tokio::test]
    async fn an_invalid_arn_makes_no_call() {
        let rule = get_secret_rule(200, "{}");
        let secrets = Secrets::from_conf(secrets_conf(&[&rule], &Recorder::default()));
        let err = secrets
            .service_principal("databricks-sp", later())
            .await
            .unwrap_err();
        assert!(matches!(err, AwsError::InvalidSecretArn { .. }));
        assert!(err.is_permanent_credentials_problem());
        assert_eq!(rule.num_calls(), 0);
    }
}
