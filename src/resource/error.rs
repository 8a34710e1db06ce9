//! Why converging the resource failed, phrased for the person reading the stack events: each
//! message says what is wrong and what to change.

use crate::aws::{AwsError, EndpointProblem};
use crate::databricks::DatabricksError;

use super::properties::InvalidProperties;

#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("{0}")]
    Properties(#[from] InvalidProperties),

    #[error("{}", join_problems(.0))]
    Endpoints(Vec<EndpointProblem>),

    #[error(
        "Private DNS is disabled on {}: without it the Databricks hostnames keep resolving to public IPs and clusters keep failing with BOOTSTRAP_TIMEOUT. Enable private DNS on the endpoint (PrivateDnsEnabled: true) or set EnablePrivateDns to true",
        .0.join(" and ")
    )]
    PrivateDnsDisabled(Vec<String>),

    #[error("Private DNS could not be enabled on {id}: {detail}")]
    PrivateDnsNotEnabled { id: String, detail: String },

    #[error("{0}")]
    Aws(#[from] AwsError),

    #[error("{0}")]
    Databricks(#[from] DatabricksError),

    #[error(
        "Databricks reports the registration of {vpce} as {state}: check that the endpoint points at the Databricks {role} service of its region and that the account is on a plan with PrivateLink (Enterprise)"
    )]
    RegistrationFailed {
        vpce: String,
        role: &'static str,
        state: String,
    },

    #[error(
        "{vpce} is registered with Databricks for {actual}, but it was given as the {expected} endpoint: check that RestApiVpcEndpointId and RelayVpcEndpointId are not swapped"
    )]
    WrongUseCase {
        vpce: String,
        expected: &'static str,
        actual: String,
    },

    #[error(
        "AllowedVpcEndpointIds: {0} is not registered in the Databricks account. Register it first (for example as a front-end endpoint) or remove it from the list"
    )]
    AllowedEndpointNotRegistered(String),

    #[error("{}", .0.join("; "))]
    Workspaces(Vec<String>),

    #[error("{}", .0.join("; "))]
    Several(Vec<String>),

    #[error(
        "switching workspaces to back-end PrivateLink failed for {}; {}. Switched workspaces stay switched: PrivateLink cannot be removed from a workspace",
        .failed.join("; "),
        if .switched.is_empty() { "no workspace was switched".to_string() } else { format!("switched: {}", .switched.join(", ")) }
    )]
    SwitchFailed {
        switched: Vec<String>,
        failed: Vec<String>,
    },
}

fn join_problems(problems: &[EndpointProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
