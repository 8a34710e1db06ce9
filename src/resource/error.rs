//! Why converging the resource failed, phrased for the person reading the stack events: each
//! message says what is wrong and what to change.

use crate::aws::AwsError;
use crate::databricks::DatabricksError;

#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// The properties' problems, as `properties::InvalidProperties` says them.
    #[error("{0}")]
    Properties(String),

    /// The endpoints' problems, each named by the property that sets the endpoint.
    #[error("{}", .0.join("; "))]
    Endpoints(Vec<String>),

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
        "Databricks reports the registration of {vpce} as {state}, which waiting will not change: {}",
        registration_advice(.state, .vpce, .role)
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

    #[error(
        "{}. No workspace was switched: correct the subnets and security groups Databricks names (a network configuration cannot be changed, so the next update builds a new one), then update the stack",
        .0.join("; ")
    )]
    NetworkBroken(Vec<String>),

    #[error("{}", .0.join("; "))]
    Several(Vec<String>),

    /// What `readiness` found that makes the VPC unfit for the switch.
    #[error("{0}")]
    NotReady(String),

    /// Why `verification` switched nothing.
    #[error("{0}")]
    NotVerified(String),

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

/// What to check for a registration state that will not become `available` by waiting.
fn registration_advice(state: &str, vpce: &str, role: &str) -> String {
    match state.trim().to_ascii_lowercase().as_str() {
        "rejected" => format!(
            "check that the endpoint points at the Databricks {role} service of its region and that the account is on a plan with PrivateLink (Enterprise)"
        ),
        "expired" => format!(
            "the connection request of {vpce} expired before it was accepted; delete and recreate the VPC endpoint, then update the stack"
        ),
        "deleted" | "deleting" => format!(
            "{vpce} is deleted or being deleted in AWS; check that the endpoint still exists and give the one that replaces it"
        ),
        "failed" | "partial" => format!(
            "AWS could not set up {vpce}; check the endpoint in the VPC console (subnets, security groups) and recreate it"
        ),
        _ => format!(
            "this is none of the states Databricks documents for a registration waiting to be accepted (pending, pendingAcceptance); check {vpce} in the VPC console and its registration in the account console"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(state: &str) -> String {
        ResourceError::RegistrationFailed {
            vpce: "vpce-0a1b2c3d4e5f60718".into(),
            role: "SCC relay",
            state: state.into(),
        }
        .to_string()
    }

    #[test]
    fn a_settled_registration_state_is_named_with_what_to_check() {
        let rejected = reason("Rejected");
        assert!(
            rejected.contains("as Rejected, which waiting will not change"),
            "{rejected}"
        );
        assert!(
            rejected.contains("Databricks SCC relay service"),
            "{rejected}"
        );
        assert!(reason("expired").contains("delete and recreate the VPC endpoint"));
        assert!(reason("Deleting").contains("deleted or being deleted in AWS"));
        assert!(reason("failed").contains("AWS could not set up vpce-0a1b2c3d4e5f60718"));
        let unknown = reason("blocked");
        assert!(unknown.contains("as blocked"), "{unknown}");
        assert!(
            unknown.contains("none of the states Databricks documents"),
            "{unknown}"
        );
    }
}
