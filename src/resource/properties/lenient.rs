//! What a Delete reads of the properties: only the target account, leniently, since a rollback
//! Delete carries the same bad properties as the failed Create.

use super::*;

/// What a Delete needs to find and remove the owned objects; every field may be missing.
#[derive(Clone, Debug, Default)]
pub struct LenientTarget {
    pub account_id: Option<String>,
    pub account_host: Option<String>,
    pub credentials_secret_arn: Option<String>,
}

/// Reads only what a Delete needs, ignoring anything malformed.
pub fn parse_lenient(props: &Map<String, Value>, defaults: &Defaults) -> LenientTarget {
    let text = |name: &str| {
        props.get(name).and_then(|v| match v {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            _ => None,
        })
    };
    let region = text(REGION)
        .filter(|r| services::is_valid_region_name(r))
        .or_else(|| defaults.aws_region.clone());
    LenientTarget {
        account_id: text(ACCOUNT_ID)
            .or_else(|| defaults.account_id.clone())
            .filter(|id| databricks::is_uuid(id)),
        account_host: text(ACCOUNT_HOST)
            .or_else(|| defaults.databricks_host.clone())
            .map(|h| normalised_host(&h))
            .or_else(|| {
                region
                    .as_deref()
                    .map(|r| services::default_accounts_host(r).to_string())
            }),
        credentials_secret_arn: text(CREDENTIALS_SECRET_ARN)
            .or_else(|| defaults.credentials_secret_arn.clone()),
    }
}
