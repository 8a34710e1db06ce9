//! A stack's world for scenario tests: moto with the customer's VPC and the credentials secret,
//! the Databricks account emulator, and the real binary behind a Lambda Runtime API stand-in.
//! Scenarios play CloudFormation's request sequences against it and inspect the account.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use emulator::{Emulator, EmulatorConfig};
use serde_json::{Value, json};

use crate::support::events::{RequestType, cfn_event, stack_id};
use crate::support::fixtures::{AwsFixture, NetworkOptions, ResponseSink, Setup};
use crate::support::lambda::Lambda;
use crate::support::moto::Moto;
use crate::support::runtime::InvocationResult;

pub const REGION: &str = "us-east-1";
pub const CLIENT_ID: &str = "emulator-client";
pub const CLIENT_SECRET: &str = "emulator-secret";
/// Plenty for every scenario; the deadline tests pass their own.
pub const TIMEOUT: Duration = Duration::from_secs(60);

pub struct World {
    pub moto: &'static Moto,
    pub emulator: Emulator,
    pub lambda: Lambda,
    pub account_id: String,
    pub secret_arn: String,
    /// One customer VPC per stack the scenario wants.
    pub networks: Vec<AwsFixture>,
    sinks: Mutex<VecDeque<ResponseSink>>,
}

/// One CloudFormation resource: its stack, logical id and the PhysicalResourceId it was given.
#[derive(Clone, Debug)]
pub struct Stack {
    pub stack_id: String,
    pub logical_id: String,
    pub physical_id: Option<String>,
}

/// What CloudFormation received for one request.
#[derive(Debug)]
pub struct Answer {
    pub invocation: InvocationResult,
    /// The document PUT to the ResponseURL.
    pub response: Value,
}

impl Answer {
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
}

pub struct WorldOptions {
    pub networks: usize,
    pub private_dns: bool,
    pub responses: usize,
    pub accept_after_reads: u32,
    /// More environment of the function, e.g. a service-specific AWS endpoint.
    pub lambda_env: Vec<(String, String)>,
}

impl Default for WorldOptions {
    fn default() -> Self {
        WorldOptions {
            networks: 1,
            private_dns: true,
            responses: 6,
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
        let moto = Moto::shared();
        let secret = json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}).to_string();
        let mut setup = Setup::new(REGION).secret(&crate::support::unique_name("sp"), &secret);
        for _ in 0..options.networks {
            setup = setup.network(NetworkOptions {
                private_dns: options.private_dns,
            });
        }
        for _ in 0..options.responses {
            setup = setup.response_url();
        }
        let created = setup.run(moto).await;
        let emulator = Emulator::start(EmulatorConfig {
            accept_after_reads: options.accept_after_reads,
            ..EmulatorConfig::default()
        })
        .await
        .expect("the emulator starts");
        for network in &created.networks {
            emulator
                .state()
                .register_aws_endpoint(&network.rest_vpce_id, &network.rest_service);
            emulator
                .state()
                .register_aws_endpoint(&network.relay_vpce_id, &network.relay_service);
        }
        let host = emulator.base_url();
        let mut env = vec![("DATABRICKS_HOST", host.as_str())];
        env.extend(
            options
                .lambda_env
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let lambda = Lambda::start(&env).await;
        World {
            moto,
            emulator,
            lambda,
            account_id: crate::support::uuid(),
            secret_arn: created.secret_arns[0].clone(),
            networks: created.networks,
            sinks: Mutex::new(created.response_sinks.into()),
        }
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

    fn next_sink(&self) -> ResponseSink {
        self.sinks
            .lock()
            .ok()
            .and_then(|mut s| s.pop_front())
            .expect("the world was built with enough response URLs")
    }

    /// Sends one CloudFormation request and waits for the answer PUT to its ResponseURL.
    pub async fn send(
        &self,
        request_type: RequestType,
        stack: &Stack,
        props: Value,
        old: Option<Value>,
    ) -> Answer {
        self.send_via(&self.lambda, request_type, stack, props, old)
            .await
    }

    pub async fn send_via(
        &self,
        lambda: &Lambda,
        request_type: RequestType,
        stack: &Stack,
        props: Value,
        old: Option<Value>,
    ) -> Answer {
        let sink = self.next_sink();
        let physical = match request_type {
            RequestType::Create => None,
            _ => stack.physical_id.as_deref(),
        };
        let event = cfn_event(
            request_type,
            &stack.stack_id,
            &stack.logical_id,
            physical,
            props,
            old,
            Some(sink.url()),
        );
        let invocation = lambda.invoke(event, TIMEOUT).await;
        let response = sink.wait(Duration::from_secs(5)).await.unwrap_or_else(|| {
            panic!(
                "no response was PUT for {request_type:?} ({invocation:?}); logs:\n{}",
                lambda.logs()
            )
        });
        Answer {
            invocation,
            response,
        }
    }

    /// Create, remembering the PhysicalResourceId CloudFormation would keep.
    pub async fn create(&self, stack: &mut Stack, props: Value) -> Answer {
        let answer = self.send(RequestType::Create, stack, props, None).await;
        stack.physical_id = Some(answer.physical_id().to_string());
        answer
    }

    pub fn account(&self) -> Value {
        self.emulator.state().dump(&self.account_id)
    }

    pub fn registrations(&self) -> Vec<Value> {
        self.account()["vpc_endpoints"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn access_settings(&self) -> Vec<Value> {
        self.account()["private_access_settings"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The `vpce-` ids registered in the account, sorted.
    pub fn registered_vpces(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .registrations()
            .iter()
            .filter_map(|r| r["aws_vpc_endpoint_id"].as_str().map(str::to_string))
            .collect();
        v.sort();
        v
    }

    /// Requests that changed the account (anything but GET and the token endpoint).
    pub fn writes(&self) -> usize {
        self.emulator
            .state()
            .request_log()
            .iter()
            .filter(|r| {
                r.method != "GET"
                    && !r.path.contains("/oidc/")
                    && r.path.contains("/api/2.0/accounts/")
            })
            .count()
    }

    /// Asserts the account holds exactly the objects of one stack's current state.
    #[track_caller]
    pub fn assert_exactly(&self, vpces: &[&str], answer: &Answer) {
        let mut want: Vec<String> = vpces.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(
            self.registered_vpces(),
            want,
            "registrations: {:#}",
            self.account()
        );
        let pas = self.access_settings();
        assert_eq!(
            pas.len(),
            1,
            "private access settings: {:#}",
            self.account()
        );
        assert_eq!(
            pas[0]["private_access_settings_id"].as_str(),
            Some(answer.data("PrivateAccessSettingsId"))
        );
        let regs = self.registrations();
        let reg_ids: Vec<&str> = regs
            .iter()
            .filter_map(|r| r["vpc_endpoint_id"].as_str())
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

    pub fn workspace(&self, id: i64) -> Value {
        self.account()["workspaces"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|w| w["workspace_id"].as_i64() == Some(id))
            .cloned()
            .unwrap_or(Value::Null)
    }

    pub fn networks(&self) -> Vec<Value> {
        self.account()["networks"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn network(&self, id: &str) -> Value {
        self.networks()
            .into_iter()
            .find(|n| n["network_id"].as_str() == Some(id))
            .unwrap_or(Value::Null)
    }
}
