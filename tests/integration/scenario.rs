//! The one world every scenario and fault test runs in: moto with the customer's VPCs and the
//! credentials secret, the Databricks account emulator, and the real binary behind a Lambda
//! Runtime API stand-in. Tests play CloudFormation's request sequences against it through one
//! way of sending events ([`World::deliver`]), count account writes one way
//! ([`World::writes`]) and inspect the account through the emulator's typed snapshot
//! ([`World::account`]).

use std::time::{Duration, Instant};

use emulator::{
    AccountSnapshot, Emulator, EmulatorConfig, Network, PrivateAccessSettings, VpcEndpoint,
    Workspace,
};
use serde_json::{Value, json};

use crate::support::events::{RequestType, cfn_event, stack_id};
use crate::support::fixtures::{AwsFixture, NetworkOptions, Setup};
use crate::support::lambda::Lambda;
use crate::support::moto::Moto;
use crate::support::runtime::InvocationResult;
use crate::support::sink::{RecordedRequest, RecordingSink};

pub const REGION: &str = "us-east-1";
pub const CLIENT_ID: &str = "emulator-client";
pub const CLIENT_SECRET: &str = "emulator-secret";
/// Plenty for every scenario; the deadline tests pass their own.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The AWS side of a world, in the shared moto: customer VPCs and the credentials secret.
/// Worlds may share one (`World::on`) when creating it per test costs too much.
#[derive(Clone, Debug)]
pub struct Aws {
    /// One customer VPC per stack the test wants.
    pub networks: Vec<AwsFixture>,
    pub secret_arn: String,
}

impl Aws {
    pub async fn create(networks: usize, private_dns: bool) -> Aws {
        Aws::create_in(REGION, networks, private_dns).await
    }

    /// VPCs and the secret in `region`.
    pub async fn create_in(region: &str, networks: usize, private_dns: bool) -> Aws {
        let secret = json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}).to_string();
        let mut setup = Setup::new(region).secret(&crate::support::unique_name("sp"), &secret);
        for _ in 0..networks {
            setup = setup.network(NetworkOptions { private_dns });
        }
        let mut created = setup.run(Moto::shared()).await;
        Aws {
            networks: created.networks,
            secret_arn: created.secret_arns.remove(0),
        }
    }
}

pub struct World {
    pub moto: &'static Moto,
    pub emulator: Emulator,
    pub lambda: Lambda,
    pub account_id: String,
    pub secret_arn: String,
    /// One customer VPC per stack the scenario wants.
    pub networks: Vec<AwsFixture>,
    /// The binary's environment besides `DATABRICKS_HOST`, for further instances.
    lambda_env: Vec<(String, String)>,
}

/// One CloudFormation resource: its stack, logical id and the PhysicalResourceId it was given.
#[derive(Clone, Debug)]
pub struct Stack {
    pub stack_id: String,
    pub logical_id: String,
    pub physical_id: Option<String>,
}

/// What CloudFormation and Lambda saw of one request.
#[derive(Debug)]
pub struct Answer {
    pub invocation: InvocationResult,
    /// The last document PUT to the ResponseURL (`Null` if none arrived).
    pub response: Value,
    /// Every PUT to the ResponseURL, as it arrived.
    pub puts: Vec<RecordedRequest>,
    pub elapsed: Duration,
    /// The invocation's timeout.
    pub timeout: Duration,
}

impl Answer {
    /// An answer CloudFormation got without a PUT (printed, or returned by a direct
    /// invocation).
    pub fn delivered(invocation: InvocationResult, response: Value) -> Answer {
        Answer {
            invocation,
            response,
            puts: Vec::new(),
            elapsed: Duration::ZERO,
            timeout: TIMEOUT,
        }
    }

    pub fn status(&self) -> &str {
        self.response["Status"].as_str().unwrap_or_default()
    }

    pub fn reason(&self) -> &str {
        self.response["Reason"].as_str().unwrap_or_default()
    }

    pub fn physical_id(&self) -> &str {
        self.response["PhysicalResourceId"]
            .as_str()
            .unwrap_or_default()
    }

    pub fn data(&self, name: &str) -> &str {
        self.response["Data"][name].as_str().unwrap_or_default()
    }

    #[track_caller]
    pub fn assert_success(&self) {
        assert_eq!(
            self.status(),
            "SUCCESS",
            "expected SUCCESS, got {:#}",
            self.response
        );
        self.assert_invocation_succeeded();
    }

    /// After answering CloudFormation the function returns success, so Lambda does not retry.
    #[track_caller]
    pub fn assert_invocation_succeeded(&self) {
        assert!(
            matches!(self.invocation, InvocationResult::Response(_)),
            "the invocation must succeed once CloudFormation has its answer: {:?}",
            self.invocation
        );
    }

    #[track_caller]
    pub fn assert_failed_with(&self, needle: &str) {
        assert_eq!(
            self.status(),
            "FAILED",
            "expected FAILED, got {:#}",
            self.response
        );
        assert!(
            self.reason().contains(needle),
            "reason {:?} should mention {needle:?}",
            self.reason()
        );
        self.assert_invocation_succeeded();
    }

    #[track_caller]
    pub fn assert_reason_mentions(&self, needle: &str) {
        assert!(self.reason().contains(needle), "{}", self.reason());
    }

    /// CloudFormation got exactly one accepted answer before the deadline, and the function
    /// returned normally (so Lambda does not run the request again).
    pub fn check_answered_in_time(&self) -> Result<(), String> {
        let accepted = self.puts.iter().filter(|p| p.status == 200).count();
        if accepted != 1 {
            return Err(format!(
                "expected one accepted PUT, got {} of {} ({:?})",
                accepted,
                self.puts.len(),
                self.invocation
            ));
        }
        if self.elapsed >= self.timeout {
            return Err(format!(
                "answered after {:?}, the deadline was {:?}",
                self.elapsed, self.timeout
            ));
        }
        if !matches!(self.invocation, InvocationResult::Response(_)) {
            return Err(format!(
                "the invocation must succeed once CloudFormation has its answer: {:?}",
                self.invocation
            ));
        }
        let size = self.puts.last().map_or(0, |p| p.body.len());
        if size > 4096 {
            return Err(format!("the response is {size} bytes, over 4096"));
        }
        Ok(())
    }

    pub fn check_success(&self) -> Result<(), String> {
        self.check_answered_in_time()?;
        if self.status() != "SUCCESS" {
            return Err(format!("expected SUCCESS, got {:#}", self.response));
        }
        Ok(())
    }

    /// FAILED with a reason a person can act on: it mentions one of `needles` and carries no
    /// markup, secret or token.
    pub fn check_failed(&self, needles: &[&str]) -> Result<(), String> {
        self.check_answered_in_time()?;
        let reason = self.reason();
        if self.status() != "FAILED" {
            return Err(format!("expected FAILED, got {:#}", self.response));
        }
        if !needles.iter().any(|n| reason.contains(n)) {
            return Err(format!(
                "the reason {reason:?} mentions none of {needles:?}"
            ));
        }
        for banned in ["<html", "<pre", "<body", "<script", CLIENT_SECRET, "Bearer"] {
            if reason.contains(banned) {
                return Err(format!("the reason {reason:?} contains {banned:?}"));
            }
        }
        if carries_token(reason) {
            return Err(format!("the reason {reason:?} carries an access token"));
        }
        Ok(())
    }
}

/// The emulator's access tokens are `emu` and 64 hex digits; half of one already counts.
pub fn carries_token(text: &str) -> bool {
    text.match_indices("emu").any(|(at, _)| {
        text[at + 3..]
            .chars()
            .take_while(char::is_ascii_hexdigit)
            .count()
            >= 32
    })
}

pub struct WorldOptions {
    pub networks: usize,
    pub private_dns: bool,
    pub accept_after_reads: u32,
    /// The binary's environment besides `DATABRICKS_HOST`, e.g. a service-specific AWS endpoint.
    pub lambda_env: Vec<(String, String)>,
}

impl Default for WorldOptions {
    fn default() -> Self {
        WorldOptions {
            networks: 1,
            private_dns: true,
            accept_after_reads: 1,
            lambda_env: Vec::new(),
        }
    }
}

impl World {
    pub async fn new() -> World {
        World::with(WorldOptions::default()).await
    }

    pub async fn with(options: WorldOptions) -> World {
        let aws = Aws::create(options.networks, options.private_dns).await;
        World::on(aws, options).await
    }

    /// A world on AWS fixtures made earlier (`options.networks` and `private_dns` are theirs):
    /// its own emulator, account and Lambda.
    pub async fn on(aws: Aws, options: WorldOptions) -> World {
        let emulator = Emulator::start(EmulatorConfig {
            accept_after_reads: options.accept_after_reads,
            ..EmulatorConfig::default()
        })
        .await
        .expect("the emulator starts");
        for network in &aws.networks {
            register_endpoints(&emulator, network);
        }
        let lambda = start_lambda(&emulator, &options.lambda_env).await;
        World {
            moto: Moto::shared(),
            emulator,
            lambda,
            account_id: crate::support::uuid(),
            secret_arn: aws.secret_arn,
            networks: aws.networks,
            lambda_env: options.lambda_env,
        }
    }

    /// Another instance of the function, as Lambda starts for concurrent deliveries.
    pub async fn start_lambda(&self) -> Lambda {
        start_lambda(&self.emulator, &self.lambda_env).await
    }

    /// The template's properties for the stack using `networks[n]`.
    pub fn props(&self, n: usize) -> Value {
        let network = &self.networks[n];
        json!({
            "AccountId": self.account_id,
            "CredentialsSecretArn": self.secret_arn,
            "RestApiVpcEndpointId": network.rest_vpce_id,
            "RelayVpcEndpointId": network.relay_vpce_id,
        })
    }

    pub fn stack(&self, name: &str) -> Stack {
        Stack {
            stack_id: stack_id(name),
            logical_id: "PrivateLink".into(),
            physical_id: None,
        }
    }

    /// Sends one CloudFormation request and returns its answer; panics if none was PUT.
    pub async fn send(
        &self,
        request_type: RequestType,
        stack: &Stack,
        props: Value,
        old: Option<Value>,
    ) -> Answer {
        let lambda = &self.lambda;
        let answer = self
            .deliver(lambda, request_type, stack, props, old, TIMEOUT)
            .await;
        if answer.response.is_null() {
            panic!(
                "no response was PUT for {request_type:?} ({:?}); logs:\n{}",
                answer.invocation,
                lambda.logs()
            );
        }
        answer
    }

    /// The event CloudFormation sends for `stack`'s resource, answered to `sink`. Update and
    /// Delete carry the stack's PhysicalResourceId.
    pub fn event(
        &self,
        request_type: RequestType,
        stack: &Stack,
        props: Value,
        old: Option<Value>,
        sink: &RecordingSink,
    ) -> Value {
        let physical = match request_type {
            RequestType::Create => None,
            _ => stack.physical_id.as_deref(),
        };
        cfn_event(
            request_type,
            &stack.stack_id,
            &stack.logical_id,
            physical,
            props,
            old,
            Some(&sink.url()),
        )
    }

    /// Sends one CloudFormation request through `lambda` with `timeout` and returns what
    /// CloudFormation and Lambda saw of it, whatever it was.
    pub async fn deliver(
        &self,
        lambda: &Lambda,
        request_type: RequestType,
        stack: &Stack,
        props: Value,
        old: Option<Value>,
        timeout: Duration,
    ) -> Answer {
        let sink = RecordingSink::start().await;
        let event = self.event(request_type, stack, props, old, &sink);
        deliver_event(lambda, &sink, event, timeout).await
    }

    /// Create, remembering the PhysicalResourceId CloudFormation would keep.
    pub async fn create(&self, stack: &mut Stack, props: Value) -> Answer {
        let answer = self.send(RequestType::Create, stack, props, None).await;
        stack.physical_id = Some(answer.physical_id().to_string());
        answer
    }

    /// The account's objects as the API shows them, read without side effects.
    pub fn account(&self) -> AccountSnapshot {
        self.emulator.state().snapshot(&self.account_id)
    }

    pub fn registrations(&self) -> Vec<VpcEndpoint> {
        self.account().vpc_endpoints
    }

    pub fn access_settings(&self) -> Vec<PrivateAccessSettings> {
        self.account().private_access_settings
    }

    /// The `vpce-` ids registered in the account, sorted.
    pub fn registered_vpces(&self) -> Vec<String> {
        self.account().registered_vpces()
    }

    /// Account API requests that changed something (not GET, not the token endpoint).
    pub fn writes(&self) -> usize {
        self.emulator
            .state()
            .request_log()
            .iter()
            .filter(|r| r.method != "GET" && r.path.starts_with("/api/"))
            .count()
    }

    /// Asserts the account holds exactly the objects of one stack's current state.
    #[track_caller]
    pub fn assert_exactly(&self, vpces: &[&str], answer: &Answer) {
        let account = self.account();
        let mut want: Vec<String> = vpces.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(
            account.registered_vpces(),
            want,
            "registrations: {account:#?}"
        );
        let pas = &account.private_access_settings;
        assert_eq!(pas.len(), 1, "private access settings: {account:#?}");
        assert_eq!(
            pas[0].private_access_settings_id,
            answer.data("PrivateAccessSettingsId")
        );
        let reg_ids: Vec<&str> = account
            .vpc_endpoints
            .iter()
            .map(|r| r.vpc_endpoint_id.as_str())
            .collect();
        for attribute in [
            "RestApiVpcEndpointRegistrationId",
            "RelayVpcEndpointRegistrationId",
        ] {
            assert!(
                reg_ids.contains(&answer.data(attribute)),
                "{attribute} {:?} not in {reg_ids:?}",
                answer.data(attribute)
            );
        }
    }
}

/// Tells the emulator which Databricks services `network`'s two endpoints connect to.
pub fn register_endpoints(emulator: &Emulator, network: &AwsFixture) {
    let state = emulator.state();
    state.register_aws_endpoint(&network.rest_vpce_id, &network.rest_service);
    state.register_aws_endpoint(&network.relay_vpce_id, &network.relay_service);
}

async fn start_lambda(emulator: &Emulator, env: &[(String, String)]) -> Lambda {
    let host = emulator.base_url();
    let mut all = vec![("DATABRICKS_HOST", host.as_str())];
    all.extend(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    Lambda::start(&all).await
}

/// Delivers `event` to `lambda` and collects what reached `sink` by the time it returned.
pub async fn deliver_event(
    lambda: &Lambda,
    sink: &RecordingSink,
    event: Value,
    timeout: Duration,
) -> Answer {
    let started = Instant::now();
    let invocation = lambda.invoke(event, timeout).await;
    let elapsed = started.elapsed();
    let puts = sink.requests();
    let response = puts
        .last()
        .and_then(|p| serde_json::from_slice(&p.body).ok())
        .unwrap_or(Value::Null);
    Answer {
        invocation,
        response,
        puts,
        elapsed,
        timeout,
    }
}

impl World {
    /// A running, customer-managed workspace in `networks[n]`'s VPC, on its own two subnets and
    /// security group (Databricks refuses subnets or security groups shared by two workspaces).
    pub fn seed_workspace(&self, n: usize, name: &str) -> i64 {
        let net = &self.networks[n];
        let hex = || crate::support::uuid().replace('-', "")[..17].to_string();
        self.seed_workspace_with(emulator::WorkspaceSeed {
            name: name.to_string(),
            network: Some(emulator::NetworkSeed {
                vpc_id: net.vpc_id.clone(),
                subnet_ids: vec![format!("subnet-{}", hex()), format!("subnet-{}", hex())],
                security_group_ids: vec![format!("sg-{}", hex())],
            }),
            ..emulator::WorkspaceSeed::default()
        })
    }

    /// A running workspace whose clusters run in `networks[n]`'s real subnets and cluster
    /// security group, so that the checks of the VPC find them in EC2.
    /// `created` succeeded with a passing verification before the switch, and workspace `ws`
    /// now has the private access settings it names.
    #[track_caller]
    pub fn assert_verified_and_switched(&self, created: &Answer, ws: i64) {
        created.assert_success();
        assert!(
            created.data("VerificationReport").starts_with("passed: "),
            "{:#}",
            created.response
        );
        assert_eq!(
            self.workspace(ws).private_access_settings_id.as_deref(),
            Some(created.data("PrivateAccessSettingsId"))
        );
    }

    pub fn seed_workspace_in_fixture(&self, n: usize, name: &str) -> i64 {
        let net = &self.networks[n];
        self.seed_workspace_with(emulator::WorkspaceSeed {
            name: name.to_string(),
            network: Some(emulator::NetworkSeed {
                vpc_id: net.vpc_id.clone(),
                subnet_ids: net.subnet_ids.clone(),
                security_group_ids: vec![net.cluster_sg_id.clone()],
            }),
            ..emulator::WorkspaceSeed::default()
        })
    }

    pub fn seed_workspace_with(&self, seed: emulator::WorkspaceSeed) -> i64 {
        self.emulator
            .state()
            .seed_workspace(&self.account_id, seed)
            .expect("seeding a workspace")
            .workspace_id
    }

    /// A second endpoint to the relay service in `networks[n]`'s VPC, known to both sides.
    pub async fn new_relay_endpoint(&self, n: usize) -> String {
        let net = &self.networks[n];
        let id = net
            .create_endpoint(self.moto, &net.relay_service, true)
            .await;
        self.emulator
            .state()
            .register_aws_endpoint(&id, &net.relay_service);
        id
    }

    /// The workspace `id`; panics if the account has none such.
    #[track_caller]
    pub fn workspace(&self, id: i64) -> Workspace {
        let account = self.account();
        account
            .workspace(id)
            .cloned()
            .unwrap_or_else(|| panic!("no workspace {id}: {account:#?}"))
    }

    pub fn networks(&self) -> Vec<Network> {
        self.account().networks
    }

    pub fn network(&self, id: &str) -> Option<Network> {
        self.account().network(id).cloned()
    }
}

/// How many seconds apart two `ReadyAfter` times (`YYYY-MM-DDTHH:MM:SSZ`) are, by their time of
/// day: enough for answers made seconds apart, across midnight too. `i64::MAX` for anything else.
pub fn seconds_apart(a: &str, b: &str) -> i64 {
    let of_day = |iso: &str| -> Option<i64> {
        let time = iso.strip_suffix('Z')?.split_once('T')?.1;
        let mut parts = time.split(':').map(|p| p.parse::<i64>().ok());
        let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
        Some(h * 3600 + m * 60 + s)
    };
    match (of_day(a), of_day(b)) {
        (Some(a), Some(b)) => {
            let d = (a - b).rem_euclid(86_400);
            d.min(86_400 - d)
        }
        _ => i64::MAX,
    }
}
