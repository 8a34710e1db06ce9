//! The convergence core against the in-process emulator: registrations, private access settings,
//! networks, workspace switches and Delete, without the binary, moto or CloudFormation. EC2 is a
//! client that is never reached: the endpoints are handed in as EC2 would describe them, with no
//! security groups to read and private DNS already on.

use std::time::Duration;

use emulator::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Emulator, EmulatorConfig};
use tokio::time::Instant;

use crate::aws::VpcEndpointInfo;
use crate::aws::test_support::{healthy_vpc_ec2, unused_functions};
use crate::cfn::Progress;
use crate::databricks::{
    AccountClient, ClientCredentials, DatabricksHttp, HttpSettings, RetryPolicy,
};

use super::converge::{ALWAYS_RETURNED, Context, Converged, RETURNED_WITH_NETWORK, converge};
use super::delete::{Created, remove_owned};
use super::names::{OwnershipKey, Role};
use super::networks::ensure_networks;
use super::pair::EndpointPair;
use super::properties::{AccessLevel, NetworkSpec, Properties, Target};
use super::workspaces::switch_and_clean;

const ACCOUNT: &str = "0d3f7c1e-2b4a-4c5d-9e8f-1a2b3c4d5e6f";
const REGION: &str = "us-east-1";
const VPC: &str = "vpc-0123456789abcdef0";
const REST: &str = "vpce-0a1b2c3d4e5f60718";
const RELAY: &str = "vpce-1a1b2c3d4e5f60718";

/// One account in a fresh emulator, and a signed-in client for it.
struct Account {
    emulator: Emulator,
    http: DatabricksHttp,
    client: AccountClient,
    key: OwnershipKey,
}

impl Account {
    async fn start() -> Self {
        let emulator = Emulator::start(EmulatorConfig {
            accept_after_reads: 0,
            ..EmulatorConfig::default()
        })
        .await
        .expect("emulator starts");
        let services = crate::aws::endpoint_services(REGION);
        let (_, service) = services.first().expect("us-east-1 has Databricks services");
        emulator
            .state()
            .register_aws_endpoint(REST, &service.rest_api);
        emulator
            .state()
            .register_aws_endpoint(RELAY, &service.relay);
        let http = DatabricksHttp::new(HttpSettings {
            allow_insecure: true,
            request_timeout: Duration::from_secs(5),
            retry: RetryPolicy {
                base_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(50),
                max_attempts: 3,
            },
        })
        .expect("HTTP client builds");
        let client = AccountClient::new(
            &http,
            &emulator.base_url(),
            ACCOUNT,
            ClientCredentials::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
            Instant::now() + Duration::from_secs(30),
        )
        .expect("client builds");
        Self {
            emulator,
            http,
            client,
            key: OwnershipKey::new(
                "arn:aws:cloudformation:us-east-1:1:stack/s/1",
                "PrivateLink",
            ),
        }
    }

    fn props(&self) -> Properties {
        properties(ACCOUNT, &self.emulator.base_url(), [REST, RELAY], REGION)
    }

    async fn converge(&self, props: &Properties) -> Result<Converged, String> {
        let endpoints = props.endpoints.map(|id| VpcEndpointInfo {
            id: id.clone(),
            vpc_id: VPC.into(),
            service_name: String::new(),
            endpoint_type: "Interface".into(),
            state: "available".into(),
            private_dns_enabled: true,
            subnet_ids: Vec::new(),
            security_group_ids: Vec::new(),
            dns_names: Vec::new(),
            network_interface_ids: Vec::new(),
        });
        let (ec2, functions, created) =
            (healthy_vpc_ec2(VPC), unused_functions(), Created::default());
        converge(&Context {
            ec2: &ec2,
            functions: &functions,
            client: &self.client,
            key: &self.key,
            props,
            endpoints: &endpoints,
            progress: &Progress::new(),
            deadline: self.client.deadline(),
            created: &created,
        })
        .await
        .map_err(|e| e.to_string())
    }

    /// Registrations of our two endpoints, as `(aws id, registration id, name)`.
    async fn registrations(&self) -> Vec<(String, String, String)> {
        let mut all: Vec<_> = self
            .client
            .list_vpc_endpoints()
            .await
            .expect("list registrations")
            .into_iter()
            .map(|r| {
                (
                    r.aws_vpc_endpoint_id.unwrap_or_default(),
                    r.vpc_endpoint_id,
                    r.vpc_endpoint_name.unwrap_or_default(),
                )
            })
            .collect();
        all.sort();
        all
    }

    fn seed_registration(&self, vpce: &str, name: &str) -> String {
        self.emulator
            .state()
            .seed_vpc_endpoint(
                ACCOUNT,
                emulator::CreateVpcEndpoint {
                    vpc_endpoint_name: Some(name.into()),
                    aws_vpc_endpoint_id: Some(vpce.into()),
                    region: Some(REGION.into()),
                    gcp_vpc_endpoint_info: None,
                },
            )
            .expect("seeded registration")
            .vpc_endpoint_id
    }
}

/// EC2 on a port nothing listens on, so a call the test did not expect fails instead of reaching
/// AWS.
#[tokio::test]
async fn registrations_are_adopted_by_endpoint_and_a_foreign_one_is_never_deleted() {
    let account = Account::start().await;
    let foreign = account.seed_registration(REST, "made-by-someone-else");
    let converged = account.converge(&account.props()).await.expect("converges");
    assert_eq!(converged.registrations.rest_api, foreign);
    let after = account.registrations().await;
    assert_eq!(after.len(), 2, "one registration per endpoint: {after:?}");
    let relay = after
        .iter()
        .find(|r| r.0 == RELAY)
        .expect("relay registered");
    assert_eq!(converged.registrations.relay, relay.1);
    assert!(account.key.owns(Some(&relay.2), Role::Relay), "{relay:?}");
    // Register only, without a verifier: every attribute an output may read is there.
    let data = converged.attributes();
    let keys: Vec<&str> = data.keys().map(String::as_str).collect();
    let mut always = ALWAYS_RETURNED.to_vec();
    always.sort();
    assert_eq!(keys, always);
    assert_eq!(data["VerificationReport"], "not run: no VerifyFunctionArn");
    assert_eq!(data["ReadyAfter"], "");

    // Converging again changes nothing.
    let again = account.converge(&account.props()).await.expect("converges");
    assert_eq!(account.registrations().await, after);
    assert_eq!(
        again.private_access_settings_id,
        converged.private_access_settings_id
    );

    remove_owned(&account.client, &account.key, &Progress::new())
        .await
        .expect("deletes");
    let left = account.registrations().await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].1, foreign, "the foreign registration stays");
}

#[tokio::test]
async fn endpoint_access_allows_the_own_endpoints_and_is_replaced_in_place() {
    let account = Account::start().await;
    let first = account.converge(&account.props()).await.expect("converges");
    let mut props = account.props();
    props.private_access_level = AccessLevel::Endpoint;
    props.public_access_enabled = false;
    let second = account.converge(&props).await.expect("converges");
    assert_eq!(
        first.private_access_settings_id, second.private_access_settings_id,
        "replaced in place, not made anew"
    );
    let settings = account
        .client
        .get_private_access_settings(&second.private_access_settings_id)
        .await
        .expect("settings exist");
    assert_eq!(settings.private_access_level.as_deref(), Some("ENDPOINT"));
    assert_eq!(settings.public_access_enabled, Some(false));
    let mut allowed = settings.allowed_vpc_endpoint_ids.unwrap_or_default();
    allowed.sort();
    let mut own: Vec<String> = second.registrations.iter().cloned().collect();
    own.sort();
    assert_eq!(
        allowed, own,
        "the resource's own endpoints are always allowed"
    );
}

#[tokio::test]
async fn duplicate_access_settings_give_way_to_the_oldest() {
    let account = Account::start().await;
    let seed = |stamp: u64| {
        account
            .emulator
            .state()
            .seed_private_access_settings(
                ACCOUNT,
                emulator::PrivateAccessSettingsBody {
                    private_access_settings_name: Some(account.key.stamped_name(
                        "unit",
                        Role::AccessSettings,
                        stamp,
                    )),
                    region: Some(REGION.into()),
                    public_access_enabled: Some(true),
                    ..Default::default()
                },
            )
            .expect("seeded settings")
            .private_access_settings_id
    };
    let newer = seed(2000);
    let oldest = seed(1000);
    let converged = account.converge(&account.props()).await.expect("converges");
    assert_eq!(converged.private_access_settings_id, oldest);
    let ids: Vec<String> = account
        .client
        .list_private_access_settings()
        .await
        .expect("list")
        .into_iter()
        .map(|p| p.private_access_settings_id)
        .collect();
    assert_eq!(ids, vec![oldest], "the newer duplicate {newer} is removed");
}

#[tokio::test]
async fn a_workspace_is_switched_to_a_copy_of_its_network_and_delete_keeps_what_it_uses() {
    let account = Account::start().await;
    let state = account.emulator.state();
    state.describe_aws_subnet("subnet-a", VPC, "us-east-1a");
    state.describe_aws_subnet("subnet-b", VPC, "us-east-1b");
    state.describe_aws_security_group("sg-1", VPC);
    let workspace = state
        .seed_workspace(
            ACCOUNT,
            emulator::WorkspaceSeed {
                network: Some(emulator::NetworkSeed {
                    vpc_id: VPC.into(),
                    subnet_ids: vec!["subnet-a".into(), "subnet-b".into()],
                    security_group_ids: vec!["sg-1".into()],
                }),
                ..Default::default()
            },
        )
        .expect("seeded workspace");
    let mut props = account.props();
    props.workspace_ids = vec![workspace.workspace_id];
    let converged = account.converge(&props).await.expect("converges");
    assert_eq!(
        converged.attached.workspace_ids,
        vec![workspace.workspace_id]
    );
    assert!(converged.attached.ready_after_ms.is_some());
    let now = account
        .client
        .get_workspace(workspace.workspace_id)
        .await
        .expect("workspace");
    assert_eq!(
        now.private_access_settings_id.as_deref(),
        Some(converged.private_access_settings_id.as_str())
    );
    let network = account
        .client
        .get_network(now.network_id.as_deref().unwrap_or_default())
        .await
        .expect("network");
    assert!(
        account.key.owns(
            network.network_name.as_deref(),
            Role::WorkspaceNetwork(workspace.workspace_id)
        ),
        "{network:?}"
    );
    let endpoints = network.vpc_endpoints.unwrap_or_default();
    assert_eq!(endpoints.rest_api, vec![converged.registrations.rest_api]);
    assert_eq!(
        endpoints.dataplane_relay,
        vec![converged.registrations.relay]
    );

    // A workspace cannot be switched back: Delete keeps its network, the settings and the
    // registrations they use, and succeeds. A refusal while our networks may still be going away
    // is asked again only while more than ten seconds of the deadline are left: a deadline just
    // past that keeps the test short.
    let delete_client = AccountClient::new(
        &account.http,
        &account.emulator.base_url(),
        ACCOUNT,
        ClientCredentials::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
        Instant::now() + Duration::from_millis(10_500),
    )
    .expect("client builds");
    remove_owned(&delete_client, &account.key, &Progress::new())
        .await
        .expect("deletes");
    assert_eq!(account.registrations().await.len(), 2);
    account
        .client
        .get_network(&network.network_id)
        .await
        .expect("the network in use is kept");
}

#[tokio::test]
async fn a_changed_network_is_a_new_one_the_old_is_removed_and_delete_leaves_nothing() {
    let account = Account::start().await;
    let converged = account.converge(&account.props()).await.expect("converges");
    let registered = &converged.registrations;
    // Converge's own path through here first describes the subnets in EC2; these steps take the
    // account client alone.
    let converge_network = |groups: &[&str]| {
        let mut props = account.props();
        props.network = Some(NetworkSpec {
            vpc_id: None,
            subnet_ids: vec!["subnet-a".into(), "subnet-b".into()],
            security_group_ids: groups.iter().map(|g| (*g).to_owned()).collect(),
        });
        let client = &account.client;
        let key = &account.key;
        let pas = converged.private_access_settings_id.clone();
        async move {
            let networks = client.list_networks().await.expect("list networks");
            let targets = ensure_networks(
                client,
                key,
                &props,
                VPC,
                registered,
                &[],
                &networks,
                &Created::default(),
            )
            .await
            .expect("networks");
            switch_and_clean(client, key, &pas, &[], &networks, targets)
                .await
                .expect("cleaned")
        }
    };
    let first = converge_network(&["sg-1"]).await;
    // With `Network`, its id is answered besides every attribute answered always.
    let with_network = Converged {
        attached: first.clone(),
        ..converged.clone()
    };
    let keys: Vec<String> = with_network.attributes().into_keys().collect();
    let mut expected: Vec<&str> = ALWAYS_RETURNED
        .iter()
        .chain(&RETURNED_WITH_NETWORK)
        .copied()
        .collect();
    expected.sort();
    assert_eq!(keys, expected);
    let first_id = first.network_id.expect("the Network property's network");
    let same = converge_network(&["sg-1"]).await;
    assert_eq!(same.network_id.as_deref(), Some(first_id.as_str()));
    account
        .client
        .get_network(&first_id)
        .await
        .expect("the network in use stays");

    let second = converge_network(&["sg-2"]).await;
    let second_id = second.network_id.expect("the Network property's network");
    assert_ne!(
        second_id, first_id,
        "networks are immutable: a change is a new one"
    );
    let ids: Vec<String> = account
        .client
        .list_networks()
        .await
        .expect("list networks")
        .into_iter()
        .map(|n| n.network_id)
        .collect();
    assert_eq!(ids, vec![second_id], "the superseded network is removed");

    remove_owned(&account.client, &account.key, &Progress::new())
        .await
        .expect("deletes");
    assert!(account.registrations().await.is_empty());
    assert!(
        account
            .client
            .list_networks()
            .await
            .expect("list")
            .is_empty()
    );
    assert!(
        account
            .client
            .list_private_access_settings()
            .await
            .expect("list")
            .is_empty()
    );
}

/// A network configuration as the account API returns it: `value`'s fields and `id`.
pub(super) fn network(id: &str, value: serde_json::Value) -> crate::databricks::Network {
    let mut v = value;
    v["network_id"] = serde_json::json!(id);
    serde_json::from_value(v).unwrap()
}

/// Properties as `parse` returns them for a resource with nothing optional set.
pub(super) fn properties(
    account_id: &str,
    account_host: &str,
    [rest_api, relay]: [&str; 2],
    region: &str,
) -> Properties {
    Properties {
        target: Target {
            account_id: account_id.into(),
            account_host: account_host.into(),
            credentials_secret_arn: "arn:aws:secretsmanager:us-east-1:1:secret:sp".into(),
        },
        endpoints: EndpointPair {
            rest_api: rest_api.into(),
            relay: relay.into(),
        },
        region: region.into(),
        name_prefix: "unit".into(),
        public_access_enabled: true,
        private_access_level: AccessLevel::Account,
        allowed_vpc_endpoint_ids: Vec::new(),
        enable_private_dns: false,
        network: None,
        workspace_ids: Vec::new(),
        verify_function_arn: None,
        wait_until_ready: false,
        service_timeout: crate::resource::properties::MAX_SERVICE_TIMEOUT,
    }
}
