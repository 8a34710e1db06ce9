//! Verification from inside the VPC before the switch (`VerifyFunctionArn`): the names cluster
//! nodes use and the endpoints' interface addresses, read from EC2, go to the verifier function
//! (`src/bin/verifier.rs`, README "Verifying from inside the VPC"), invoked synchronously under
//! the invocation's deadline. A failing report, a missing verifier or one that does not answer
//! in time means no workspace is switched.

use tokio::time::Instant;

use crate::aws::{AwsError, Ec2, Functions};
use crate::databricks::Workspace;
use crate::verify::{
    EndpointAddresses, EndpointDnsNames, RELAY_PORT, VerifyReport, VerifyRequest, name_checks,
    workspace_host,
};

use super::properties::Properties;

/// Longest part of a failure reason given to the verifier's problems; the whole reason must fit
/// CloudFormation's limit with the rest of the message.
const MAX_SUMMARY_CHARS: usize = 1500;

/// The one error of this module.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "the verification from inside the VPC failed, so no workspace was switched (a switch cannot be undone): {0}"
    )]
    Failed(String),

    #[error(
        "the verifier function {0} did not answer before this invocation's deadline, so no workspace was switched: check that it runs in the cluster subnets, that its timeout is under a minute, and retry the stack operation"
    )]
    TimedOut(String),

    #[error(
        "the verifier function {arn} answered something that is not a report ({detail}), so no workspace was switched: deploy the verifier of this package's version"
    )]
    NotAReport { arn: String, detail: String },

    #[error("{0}. No workspace was switched")]
    Aws(#[from] AwsError),
}

/// Runs the verifier when `VerifyFunctionArn` is given and workspaces are to be switched;
/// returns the short report for the `VerificationReport` attribute.
pub async fn before_switch(
    ec2: &Ec2,
    functions: &Functions,
    props: &Properties,
    workspaces: &[Workspace],
    deadline: Instant,
) -> Result<Option<String>, VerifyError> {
    let Some(arn) = props.verify_function_arn.as_deref() else {
        return Ok(None);
    };
    if props.workspace_ids.is_empty() {
        return Ok(None);
    }
    let report = run(
        ec2,
        functions,
        arn,
        props,
        &hosts(props, workspaces),
        deadline,
    )
    .await?;
    judge(&report)
}

/// The workspaces' own host names (`<deployment>.cloud.databricks.com`), which their cluster
/// nodes call besides the regional names.
pub fn hosts(props: &Properties, workspaces: &[Workspace]) -> Vec<String> {
    props
        .workspace_ids
        .iter()
        .filter_map(|id| workspaces.iter().find(|w| w.workspace_id == *id))
        .filter_map(|w| w.deployment_name.as_deref())
        .map(|d| workspace_host(d, &props.region))
        .collect()
}

/// Invokes the verifier `arn` with the names cluster nodes use (the regional ones and `hosts`)
/// and the endpoints' interface addresses as EC2 reports them now; its report, passed or not.
pub async fn run(
    ec2: &Ec2,
    functions: &Functions,
    arn: &str,
    props: &Properties,
    hosts: &[String],
    deadline: Instant,
) -> Result<VerifyReport, VerifyError> {
    let ids = [
        props.endpoints.rest_api.clone(),
        props.endpoints.relay.clone(),
    ];
    let found = ec2.endpoint_networks(&props.region, &ids, deadline).await?;
    let of = |id: &str| found.iter().find(|e| e.id == id);
    let (rest, relay) = (of(&ids[0]), of(&ids[1]));
    let empty = Vec::new();
    let request = VerifyRequest {
        names: name_checks(
            &props.region,
            hosts,
            EndpointDnsNames {
                dns_entries: rest.map_or(&empty, |e| &e.dns_names),
                service_private_dns_names: &[],
            },
            EndpointDnsNames {
                dns_entries: relay.map_or(&empty, |e| &e.dns_names),
                service_private_dns_names: &[],
            },
            RELAY_PORT,
        ),
        endpoint_addresses: EndpointAddresses {
            rest_api: rest.map(|e| e.private_ips.clone()).unwrap_or_default(),
            relay: relay.map(|e| e.private_ips.clone()).unwrap_or_default(),
        },
        connect_timeout_ms: None,
    };
    let payload = serde_json::to_vec(&request).map_err(|e| VerifyError::NotAReport {
        arn: arn.to_owned(),
        detail: e.to_string(),
    })?;
    let answer = match functions.invoke(arn, payload, deadline).await {
        Err(AwsError::DeadlineExceeded { .. }) => return Err(VerifyError::TimedOut(arn.into())),
        other => other?,
    };
    serde_json::from_slice(&answer).map_err(|e| VerifyError::NotAReport {
        arn: arn.to_owned(),
        detail: crate::cfn::shorten(&e.to_string(), 200),
    })
}

impl VerifyError {
    /// What went wrong, without what it means for the switch: for a verification after it.
    pub fn detail(&self) -> String {
        match self {
            VerifyError::Failed(problems) => problems.clone(),
            VerifyError::TimedOut(arn) => {
                format!("the verifier function {arn} did not answer in time")
            }
            VerifyError::NotAReport { arn, detail } => {
                format!(
                    "the verifier function {arn} answered something that is not a report ({detail})"
                )
            }
            VerifyError::Aws(e) => e.to_string(),
        }
    }
}

/// The `VerificationReport` text of a passing report.
pub fn passed_text(report: &VerifyReport) -> String {
    format!(
        "passed: {} names and {} endpoint addresses checked from inside the VPC in {} ms",
        report.names.len(),
        report.endpoint_addresses.len(),
        report.elapsed_ms
    )
}

/// The problems of a failing report, shortened to fit a reason.
pub fn problems_text(report: &VerifyReport) -> String {
    crate::cfn::shorten(&report.summary().join("; "), MAX_SUMMARY_CHARS)
}

/// A passing report gives the attribute; a failing one the reason, shortened.
pub fn judge(report: &VerifyReport) -> Result<Option<String>, VerifyError> {
    if !report.passed {
        let problems = problems_text(report);
        tracing::warn!(%problems, "verification from inside the VPC failed");
        return Err(VerifyError::Failed(problems));
    }
    let text = passed_text(report);
    tracing::info!(report = %text, "verification from inside the VPC passed");
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(passed: bool) -> VerifyReport {
        VerifyReport {
            passed,
            elapsed_ms: 42,
            deadline_reached: !passed,
            names: Vec::new(),
            endpoint_addresses: Vec::new(),
        }
    }

    #[test]
    fn a_passing_report_is_the_attribute_and_a_failing_one_the_reason() {
        let passed = judge(&report(true)).unwrap().unwrap();
        assert_eq!(
            passed,
            "passed: 0 names and 0 endpoint addresses checked from inside the VPC in 42 ms"
        );
        let failed = judge(&report(false)).unwrap_err().to_string();
        assert!(
            failed.starts_with(
                "the verification from inside the VPC failed, so no workspace was switched"
            ),
            "{failed}"
        );
    }
}
