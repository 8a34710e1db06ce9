//! Test-only SDK configurations whose HTTP traffic is answered by `aws-smithy-mocks` rules, plus
//! an interceptor recording where each request went and what it carried.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_ec2::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::config::{ConfigBag, Credentials, Intercept, RuntimeComponents};
use aws_sdk_ec2::error::BoxError;
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client};

use super::{Ec2, Functions};

/// One request as it left the client.
#[derive(Clone, Debug)]
pub struct SentRequest {
    pub uri: String,
    pub body: String,
}

/// Records every request attempt (retries included).
#[derive(Clone, Debug, Default)]
pub struct Recorder(Arc<Mutex<Vec<SentRequest>>>);

impl Recorder {
    pub fn requests(&self) -> Vec<SentRequest> {
        self.0.lock().unwrap().clone()
    }
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "Recorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let body = request
            .body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        self.0.lock().unwrap().push(SentRequest {
            uri: request.uri().to_owned(),
            body,
        });
        Ok(())
    }
}

fn mocks(rules: &[&Rule]) -> MockResponseInterceptor {
    rules.iter().fold(
        MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny),
        |interceptor, rule| interceptor.with_rule(rule),
    )
}

// Same attempts as production, but millisecond backoff so retry tests stay fast.
fn quick_retries() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(super::MAX_ATTEMPTS)
        .with_initial_backoff(Duration::from_millis(1))
}

fn credentials() -> Credentials {
    Credentials::new("AKIDTEST", "test-secret-key", None, None, "test")
}

/// The configuration of SDK crate `$sdk` for the Lambda's own region `us-east-1`, answered by
/// `rules` and recorded by `recorder`.
macro_rules! mocked_conf {
    ($sdk:ident, $rules:expr, $recorder:expr) => {
        $sdk::Config::builder()
            .behavior_version($sdk::config::BehaviorVersion::latest())
            .region($sdk::config::Region::new("us-east-1"))
            .credentials_provider(credentials())
            .retry_config(quick_retries())
            .http_client(create_mock_http_client())
            .interceptor(mocks($rules))
            .interceptor($recorder.clone())
    };
}

/// EC2 configuration for the Lambda's own region `us-east-1`.
pub fn ec2_conf(
    rules: &[&Rule],
    recorder: &Recorder,
    endpoint_url: Option<&str>,
) -> aws_sdk_ec2::Config {
    let mut builder = mocked_conf!(aws_sdk_ec2, rules, recorder);
    if let Some(url) = endpoint_url {
        builder = builder.endpoint_url(url);
    }
    builder.build()
}

/// Secrets Manager configuration for the Lambda's own region `us-east-1`.
pub fn secrets_conf(rules: &[&Rule], recorder: &Recorder) -> aws_sdk_secretsmanager::Config {
    mocked_conf!(aws_sdk_secretsmanager, rules, recorder).build()
}

/// Lambda configuration for the Lambda's own region `us-east-1`.
pub fn lambda_conf(rules: &[&Rule], recorder: &Recorder) -> aws_sdk_lambda::Config {
    mocked_conf!(aws_sdk_lambda, rules, recorder).build()
}

/// CloudFormation configuration for the Lambda's own region `us-east-1`.
pub fn cfn_conf(rules: &[&Rule], recorder: &Recorder) -> aws_sdk_cloudformation::Config {
    mocked_conf!(aws_sdk_cloudformation, rules, recorder).build()
}

/// A deadline far enough away never to matter.
pub fn later() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(60)
}

/// An EC2 (query protocol) error response body.
pub fn ec2_error(code: &str, message: &str) -> String {
    format!(
        "<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>\
         <RequestID>11111111-2222-3333-4444-555555555555</RequestID></Response>"
    )
}

/// EC2 for a VPC that lets clusters reach the endpoints as far as EC2 can tell (DNS support and
/// hostnames on, the Amazon-provided resolver, a route out through an internet gateway) and knows none of the workspaces' subnets or
/// security groups (the checks only warn about those). Any other EC2 call fails the test.
pub fn healthy_vpc_ec2(vpc_id: &str) -> Ec2 {
    healthy_vpc_ec2_recorded(vpc_id, &Recorder::default())
}

/// [`healthy_vpc_ec2`], its requests recorded by `recorder`.
pub fn healthy_vpc_ec2_recorded(vpc_id: &str, recorder: &Recorder) -> Ec2 {
    use aws_sdk_ec2::Client;
    use aws_sdk_ec2::types::VpcAttributeName;
    use aws_smithy_mocks::mock;

    let attribute = |name: &'static str, attribute: VpcAttributeName| {
        mock!(Client::describe_vpc_attribute)
            .match_requests(move |r| r.attribute() == Some(&attribute))
            .sequence()
            .http_status(
                200,
                Some(format!(
                    "<DescribeVpcAttributeResponse><vpcId>{vpc_id}</vpcId><{name}><value>true</value></{name}></DescribeVpcAttributeResponse>"
                )),
            )
            .repeatedly()
            .build()
    };
    let support = attribute("enableDnsSupport", VpcAttributeName::EnableDnsSupport);
    let hostnames = attribute("enableDnsHostnames", VpcAttributeName::EnableDnsHostnames);
    let answer = |body: String| Some(body);
    let vpcs = mock!(Client::describe_vpcs)
        .sequence()
        .http_status(200, answer(format!(
            "<DescribeVpcsResponse><vpcSet><item><vpcId>{vpc_id}</vpcId><dhcpOptionsId>dopt-1</dhcpOptionsId></item></vpcSet></DescribeVpcsResponse>"
        )))
        .repeatedly()
        .build();
    let dhcp = mock!(Client::describe_dhcp_options)
        .sequence()
        .http_status(200, answer("<DescribeDhcpOptionsResponse><dhcpOptionsSet><item><dhcpOptionsId>dopt-1</dhcpOptionsId><dhcpConfigurationSet>\
            <item><key>domain-name-servers</key><valueSet><item><value>AmazonProvidedDNS</value></item></valueSet></item>\
            </dhcpConfigurationSet></item></dhcpOptionsSet></DescribeDhcpOptionsResponse>".into()))
        .repeatedly()
        .build();
    let subnets = mock!(Client::describe_subnets)
        .sequence()
        .http_status(
            200,
            answer("<DescribeSubnetsResponse><subnetSet/></DescribeSubnetsResponse>".into()),
        )
        .repeatedly()
        .build();
    let groups = mock!(Client::describe_security_groups)
        .sequence()
        .http_status(200, answer("<DescribeSecurityGroupsResponse><securityGroupInfo/></DescribeSecurityGroupsResponse>".into()))
        .repeatedly()
        .build();
    // A way out through an internet gateway, so the checks for S3, STS and Kinesis pass too.
    let routes = mock!(Client::describe_route_tables)
        .sequence()
        .http_status(200, answer("<DescribeRouteTablesResponse><routeTableSet><item><routeTableId>rtb-1</routeTableId>\
            <associationSet><item><routeTableAssociationId>rtbassoc-1</routeTableAssociationId><main>true</main></item></associationSet>\
            <routeSet><item><destinationCidrBlock>0.0.0.0/0</destinationCidrBlock><gatewayId>igw-1</gatewayId><state>active</state></item></routeSet>\
            </item></routeTableSet></DescribeRouteTablesResponse>".into()))
        .repeatedly()
        .build();
    let endpoints = mock!(Client::describe_vpc_endpoints)
        .sequence()
        .http_status(
            200,
            answer(
                "<DescribeVpcEndpointsResponse><vpcEndpointSet/></DescribeVpcEndpointsResponse>"
                    .into(),
            ),
        )
        .repeatedly()
        .build();
    Ec2::from_conf(ec2_conf(
        &[
            &support, &hostnames, &vpcs, &dhcp, &subnets, &groups, &routes, &endpoints,
        ],
        recorder,
        None,
    ))
}

/// An unused Lambda client: no verifier is named in these tests.
pub fn unused_functions() -> Functions {
    Functions::from_conf(lambda_conf(&[], &Recorder::default()))
}
