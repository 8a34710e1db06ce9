//! The two VPC endpoint registrations: adopt the registration of each `vpce-…` id (owned or
//! not) or create it, and wait until Databricks accepts it in the role it is meant for.

use std::time::Duration;

use crate::databricks::{
    AccountClient, CreateVpcEndpoint, DatabricksError, EndpointRole, RegistrationState, VpcEndpoint,
};

use super::create::create_once;
use super::delete::Created;
use super::error::ResourceError;
use super::names::{OwnershipKey, Role};
use super::ownership::owns_registration;
use super::properties::Properties;

/// One endpoint in its role, as this resource uses it.
pub struct Endpoint<'a> {
    pub vpce: &'a str,
    pub role: Role,
}

impl Endpoint<'_> {
    fn api_role(&self) -> EndpointRole {
        match self.role {
            Role::Relay => EndpointRole::Relay,
            _ => EndpointRole::RestApi,
        }
    }

    fn describe(&self) -> &'static str {
        match self.role {
            Role::Relay => "SCC relay",
            _ => "workspace (REST API)",
        }
    }
}

/// Registrations are keyed by `aws_vpc_endpoint_id` (one per endpoint per account): adopt an
/// existing one, owned or not, before creating; a foreign one is used but never deleted.
pub async fn ensure_registration(
    client: &AccountClient,
    key: &OwnershipKey,
    props: &Properties,
    endpoint: &Endpoint<'_>,
    known: &[VpcEndpoint],
    created: &Created,
) -> Result<VpcEndpoint, ResourceError> {
    if let Some(existing) = pick_registration(key, endpoint.vpce, known) {
        return Ok(existing.clone());
    }
    let request = CreateVpcEndpoint {
        vpc_endpoint_name: key.object_name(&props.name_prefix, endpoint.role),
        aws_vpc_endpoint_id: endpoint.vpce.to_string(),
        region: props.region.clone(),
    };
    let created_here = create_once(
        client,
        "create VPC endpoint registration",
        || client.create_vpc_endpoint(&request),
        || async {
            // Registrations are unique per endpoint; ours carries the name this request sent.
            Ok(client.list_vpc_endpoints().await?.into_iter().find(|r| {
                r.aws_vpc_endpoint_id.as_deref() == Some(request.aws_vpc_endpoint_id.as_str())
                    && r.vpc_endpoint_name.as_deref() == Some(request.vpc_endpoint_name.as_str())
            }))
        },
    )
    .await;
    match created_here {
        Ok(registration) => {
            tracing::info!(vpce = endpoint.vpce, registration = %registration.vpc_endpoint_id, "registered VPC endpoint");
            created.registration(&registration.vpc_endpoint_id);
            Ok(registration)
        }
        // Another delivery of the same event (or another stack) registered it meanwhile.
        Err(e) if is_already_registered(&e) => {
            let again = client.list_vpc_endpoints().await?;
            pick_registration(key, endpoint.vpce, &again)
                .cloned()
                .ok_or(ResourceError::Databricks(e))
        }
        Err(e) => Err(e.into()),
    }
}

fn is_already_registered(e: &DatabricksError) -> bool {
    e.status() == Some(409) || e.error_code().is_some_and(|c| c.contains("ALREADY_EXISTS"))
}

/// The registration of `vpce` to use: ours first, then any other (deterministic by id).
fn pick_registration<'a>(
    key: &OwnershipKey,
    vpce: &str,
    known: &'a [VpcEndpoint],
) -> Option<&'a VpcEndpoint> {
    let mut matching: Vec<&VpcEndpoint> = known
        .iter()
        .filter(|r| r.aws_vpc_endpoint_id.as_deref() == Some(vpce))
        .collect();
    matching.sort_by(|a, b| {
        owns_registration(key, b)
            .cmp(&owns_registration(key, a))
            .then(a.vpc_endpoint_id.cmp(&b.vpc_endpoint_id))
    });
    matching.first().copied()
}

/// Databricks accepts a registered endpoint on its own; poll without sleeping first (it is often
/// already available), then back off, bounded by the invocation's deadline through the client.
pub async fn wait_accepted(
    client: &AccountClient,
    endpoint: &Endpoint<'_>,
    known: VpcEndpoint,
) -> Result<(), ResourceError> {
    // The registration in hand (listed or just created) is the first read: an endpoint already
    // accepted costs no round trip. The next two reads follow at once, then the polls back off.
    let mut registration = known;
    let mut reads = 0u32;
    loop {
        if let Some(actual) = registration.use_case_role()
            && actual != endpoint.api_role()
        {
            return Err(ResourceError::WrongUseCase {
                vpce: endpoint.vpce.to_string(),
                expected: endpoint.describe(),
                actual: registration.use_case.clone().unwrap_or_default(),
            });
        }
        match registration.registration_state() {
            RegistrationState::Available => return Ok(()),
            // Terraform waits only on the pending states; anything else is final, so it fails
            // now instead of at the deadline.
            RegistrationState::Failed(state) | RegistrationState::Unknown(state) => {
                return Err(ResourceError::RegistrationFailed {
                    vpce: endpoint.vpce.to_string(),
                    role: endpoint.describe(),
                    state,
                });
            }
            RegistrationState::Pending => {}
        }
        if reads >= 2 {
            let backoff = Duration::from_millis(100) * 2u32.pow((reads - 2).min(6));
            tokio::time::sleep(backoff.min(Duration::from_secs(5))).await;
        }
        reads += 1;
        registration = client
            .get_vpc_endpoint(&registration.vpc_endpoint_id)
            .await?;
    }
}
