//! Reading the Databricks service principal's OAuth credentials from Secrets Manager. Knows the
//! secret's JSON shape, nothing about how the credentials are used. The secret text never reaches
//! a log line or an error message.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use aws_sdk_secretsmanager::config::Region;
use aws_sdk_secretsmanager::config::retry::RetryConfig;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use tokio::time::Instant;

use super::error::{AwsError, describe_sdk_error};
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
    base: aws_sdk_secretsmanager::Config,
    clients: Arc<Mutex<HashMap<String, aws_sdk_secretsmanager::Client>>>,
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
            base,
            clients: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn client(&self, region: &str) -> aws_sdk_secretsmanager::Client {
        // A poisoned lock only means another task panicked while inserting; the map is intact.
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry(region.to_owned())
            .or_insert_with(|| {
                aws_sdk_secretsmanager::Client::from_conf(
                    self.base
                        .to_builder()
                        .region(Region::new(region.to_owned()))
                        .build(),
                )
            })
            .clone()
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
