//! The real Databricks `AccountClient` against the in-process account API emulator: every
//! operation end to end, the shared OAuth token, the checks made before anything is sent, and
//! the emulator's injected faults, revoked tokens and rate limit, each seen the way a caller sees
//! it (error variant, status, code, message, retries spent, time taken, requests the emulator
//! received). A dropped connection, a 401 after a fresh token, 429 and 500 as the client meets
//! them on the wire are tested once, in the client's unit tests against the test HTTP server.
//!
//! It must not know how the client is built inside (retry loop, token cache): only what goes
//! over the wire and what comes back. The Lambda binary and CloudFormation play no part here.

use std::time::Duration;

use backend_privatelink::databricks::{
    AccountClient, ClientCredentials, CreateNetwork, CreateVpcEndpoint, DatabricksError,
    DatabricksHttp, EndpointRole, HttpSettings, NetworkVpcEndpoints, PrivateAccessSettingsRequest,
    RegistrationState, RetryPolicy, VpcEndpoint, WorkspaceStatus, WorkspaceUpdate,
};
use emulator::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Emulator, EmulatorConfig, FaultBody, FaultKind,
    FaultSpec, NetworkSeed, RequestRecord, StateHandle, WorkspaceSeed,
};
use futures_util::future::join_all;
use tokio::time::Instant;

use crate::support::uuid;

const REGION: &str = "us-east-1";
/// us-east-1 service names (`docs/account-api.md#endpoint-services-ports-and-hostnames`).
const REST_SERVICE: &str = "com.amazonaws.vpce.us-east-1.vpce-svc-09143d1e626de2f04";
const RELAY_SERVICE: &str = "com.amazonaws.vpce.us-east-1.vpce-svc-00018a8c3ff62ffdf";
const REST_VPCE: &str = "vpce-0a1b2c3d4e5f60718";
const RELAY_VPCE: &str = "vpce-0f0e0d0c0b0a09080";
const WRONG_SECRET: &str = "wrong-secret-4f7a9c";

/// Short waits so the whole file stays fast; every test that needs other values says so.
fn settings() -> HttpSettings {
    HttpSettings {
        allow_insecure: true,
        request_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
            max_attempts: 4,
        },
    }
}

struct Setup {
    emulator: Emulator,
    http: DatabricksHttp,
    account_id: String,
}

impl Setup {
    async fn start() -> Self {
        Self::with_settings(settings()).await
    }

    async fn with_settings(settings: HttpSettings) -> Self {
        let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
        Self {
            emulator,
            http: DatabricksHttp::new(settings).unwrap(),
            account_id: uuid(),
        }
    }

    fn state(&self) -> StateHandle {
        self.emulator.state()
    }

    fn client(&self) -> AccountClient {
        self.client_until(Duration::from_secs(20))
    }

    fn client_until(&self, deadline: Duration) -> AccountClient {
        self.client_with(
            &self.http,
            ClientCredentials::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
            deadline,
        )
    }

    fn client_with(
        &self,
        http: &DatabricksHttp,
        credentials: ClientCredentials,
        deadline: Duration,
    ) -> AccountClient {
        AccountClient::new(
            http,
            &self.emulator.base_url(),
            &self.account_id,
            credentials,
            Instant::now() + deadline,
        )
        .unwrap()
    }

    fn token_posts(&self) -> usize {
        self.state().count_requests("POST", "/oidc/")
    }

    fn api_requests(&self) -> Vec<RequestRecord> {
        self.state()
            .request_log()
            .into_iter()
            .filter(|r| r.path.starts_with("/api/"))
            .collect()
    }

    fn count(&self, method: &str, path_contains: &str) -> usize {
        self.state().count_requests(method, path_contains)
    }

    fn inject(&self, fault: FaultSpec) {
        self.state().inject_fault(fault);
    }

    fn register_aws_endpoints(&self) {
        self.state().register_aws_endpoint(REST_VPCE, REST_SERVICE);
        self.state()
            .register_aws_endpoint(RELAY_VPCE, RELAY_SERVICE);
    }

    fn seed_workspace(&self, name: &str, subnets: [&str; 2]) -> emulator::Workspace {
        self.state()
            .seed_workspace(
                &self.account_id,
                WorkspaceSeed {
                    name: name.into(),
                    region: REGION.into(),
                    network: Some(NetworkSeed {
                        vpc_id: "vpc-0123456789abcdef0".into(),
                        subnet_ids: subnets.iter().map(|s| s.to_string()).collect(),
                        security_group_ids: vec!["sg-0123456789abcdef0".into()],
                    }),
                    ..Default::default()
                },
            )
            .unwrap()
    }
}

fn registration(vpce: &str, name: &str) -> CreateVpcEndpoint {
    CreateVpcEndpoint {
        vpc_endpoint_name: name.into(),
        aws_vpc_endpoint_id: vpce.into(),
        region: REGION.into(),
    }
}

fn network_request(name: &str, subnets: [&str; 2], rest: &str, relay: &str) -> CreateNetwork {
    CreateNetwork {
        network_name: name.into(),
        vpc_id: "vpc-0123456789abcdef0".into(),
        subnet_ids: subnets.iter().map(|s| s.to_string()).collect(),
        security_group_ids: vec!["sg-0123456789abcdef0".into()],
        vpc_endpoints: NetworkVpcEndpoints {
            rest_api: vec![rest.into()],
            dataplane_relay: vec![relay.into()],
        },
    }
}

fn pas_request(
    name: &str,
    public: bool,
    level: &str,
    allowed: &[&str],
) -> PrivateAccessSettingsRequest {
    PrivateAccessSettingsRequest {
        private_access_settings_name: name.into(),
        region: REGION.into(),
        public_access_enabled: public,
        private_access_level: level.into(),
        allowed_vpc_endpoint_ids: allowed.iter().map(|s| s.to_string()).collect(),
    }
}

/// Reads a registration until the emulator reports it accepted, as a caller polling would.
async fn wait_available(client: &AccountClient, id: &str) -> VpcEndpoint {
    for _ in 0..5 {
        let endpoint = client.get_vpc_endpoint(id).await.unwrap();
        if endpoint.registration_state() == RegistrationState::Available {
            return endpoint;
        }
    }
    panic!("registration {id} never became available");
}

/// What every error a caller may log or put into a CloudFormation reason must satisfy.
fn assert_presentable(error: &DatabricksError) {
    for text in [error.to_string(), format!("{error:?}")] {
        assert!(!text.contains("Bearer"), "authorization leaked: {text}");
        assert!(
            !text.contains(DEFAULT_CLIENT_SECRET),
            "secret leaked: {text}"
        );
        assert!(!text.contains(WRONG_SECRET), "secret leaked: {text}");
        assert!(
            !crate::scenario::carries_token(&text),
            "token leaked: {text}"
        );
        assert!(text.len() < 800, "error is not short: {} bytes", text.len());
    }
}

fn api_error(error: &DatabricksError) -> (&'static str, u16, Option<&str>, &str) {
    match error {
        DatabricksError::Api {
            operation,
            status,
            code,
            message,
        } => (*operation, *status, code.as_deref(), message.as_str()),
        other => panic!("expected an Api error, got {other:?}"),
    }
}

// --- every operation, end to end ---

#[tokio::test]
async fn vpc_endpoint_registrations_round_trip_with_use_case_and_acceptance() {
    let setup = Setup::start().await;
    setup.register_aws_endpoints();
    let client = setup.client();

    let rest = client
        .create_vpc_endpoint(&registration(REST_VPCE, "backend-rest"))
        .await
        .unwrap();
    let relay = client
        .create_vpc_endpoint(&registration(RELAY_VPCE, "backend-relay"))
        .await
        .unwrap();
    assert_eq!(rest.use_case_role(), Some(EndpointRole::RestApi));
    assert_eq!(relay.use_case_role(), Some(EndpointRole::Relay));
    assert_eq!(rest.aws_endpoint_service_id.as_deref(), Some(REST_SERVICE));
    assert_eq!(
        relay.aws_endpoint_service_id.as_deref(),
        Some(RELAY_SERVICE)
    );
    assert_eq!(rest.aws_vpc_endpoint_id.as_deref(), Some(REST_VPCE));
    assert_eq!(rest.region.as_deref(), Some(REGION));
    assert_eq!(rest.registration_state(), RegistrationState::Pending);

    // The emulator answers one read with pendingAcceptance, then "available".
    let first_read = client
        .get_vpc_endpoint(&rest.vpc_endpoint_id)
        .await
        .unwrap();
    assert_eq!(first_read.registration_state(), RegistrationState::Pending);
    let accepted = client
        .get_vpc_endpoint(&rest.vpc_endpoint_id)
        .await
        .unwrap();
    assert_eq!(accepted.state.as_deref(), Some("available"));
    assert_eq!(accepted.registration_state(), RegistrationState::Available);

    // Databricks spells states in several cases; what the client concludes must not depend on it.
    setup
        .state()
        .set_endpoint_state(RELAY_VPCE, Some("AVAILABLE"));
    let relay_read = client
        .get_vpc_endpoint(&relay.vpc_endpoint_id)
        .await
        .unwrap();
    assert_eq!(
        relay_read.registration_state(),
        RegistrationState::Available
    );
    setup
        .state()
        .set_endpoint_state(RELAY_VPCE, Some("Rejected"));
    let rejected = client
        .get_vpc_endpoint(&relay.vpc_endpoint_id)
        .await
        .unwrap();
    assert_eq!(
        rejected.registration_state(),
        RegistrationState::Failed("Rejected".into())
    );

    let mut listed: Vec<String> = client
        .list_vpc_endpoints()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.vpc_endpoint_id)
        .collect();
    listed.sort();
    let mut expected = vec![rest.vpc_endpoint_id.clone(), relay.vpc_endpoint_id.clone()];
    expected.sort();
    assert_eq!(listed, expected);

    client
        .delete_vpc_endpoint(&rest.vpc_endpoint_id)
        .await
        .unwrap();
    client
        .delete_vpc_endpoint(&relay.vpc_endpoint_id)
        .await
        .unwrap();
    let gone = client
        .get_vpc_endpoint(&rest.vpc_endpoint_id)
        .await
        .unwrap_err();
    assert!(gone.is_not_found(), "{gone:?}");
    assert_eq!(gone.error_code(), Some("RESOURCE_DOES_NOT_EXIST"));
    assert!(client.list_vpc_endpoints().await.unwrap().is_empty());
    assert_eq!(client.retries_spent(), 0);
    assert_eq!(setup.count("POST", "/vpc-endpoints"), 2);
}

#[tokio::test]
async fn duplicate_registration_is_409_resource_already_exists_and_not_retried() {
    let setup = Setup::start().await;
    setup.register_aws_endpoints();
    let client = setup.client();
    client
        .create_vpc_endpoint(&registration(REST_VPCE, "backend-rest"))
        .await
        .unwrap();
    let error = client
        .create_vpc_endpoint(&registration(REST_VPCE, "backend-rest-again"))
        .await
        .unwrap_err();
    let (operation, status, code, message) = api_error(&error);
    assert_eq!(operation, "create VPC endpoint registration");
    assert_eq!(status, 409);
    assert_eq!(code, Some("RESOURCE_ALREADY_EXISTS"));
    assert!(message.contains(REST_VPCE), "{message}");
    assert!(
        error.to_string().contains("(409 RESOURCE_ALREADY_EXISTS)"),
        "{error}"
    );
    assert_presentable(&error);
    assert_eq!(setup.count("POST", "/vpc-endpoints"), 2);
    assert_eq!(client.retries_spent(), 0);
}

#[tokio::test]
async fn private_access_settings_round_trip_sends_public_access_explicitly() {
    let setup = Setup::start().await;
    setup.register_aws_endpoints();
    let client = setup.client();
    let rest = client
        .create_vpc_endpoint(&registration(REST_VPCE, "backend-rest"))
        .await
        .unwrap();

    let created = client
        .create_private_access_settings(&pas_request("pas-backend", false, "ACCOUNT", &[]))
        .await
        .unwrap();
    assert_eq!(created.public_access_enabled, Some(false));
    assert_eq!(created.private_access_level.as_deref(), Some("ACCOUNT"));
    let id = created.private_access_settings_id.clone();

    // The emulator, like AWS, takes an omitted public_access_enabled as false: reading true back
    // proves the client sent it.
    client
        .replace_private_access_settings(
            &id,
            &pas_request("pas-backend-2", true, "ENDPOINT", &[&rest.vpc_endpoint_id]),
        )
        .await
        .unwrap();
    let replaced = client.get_private_access_settings(&id).await.unwrap();
    assert_eq!(replaced.public_access_enabled, Some(true));
    assert_eq!(replaced.private_access_level.as_deref(), Some("ENDPOINT"));
    assert_eq!(
        replaced.private_access_settings_name.as_deref(),
        Some("pas-backend-2")
    );
    assert_eq!(
        replaced.allowed_vpc_endpoint_ids,
        Some(vec![rest.vpc_endpoint_id.clone()])
    );

    let listed = client.list_private_access_settings().await.unwrap();
    assert_eq!(listed, vec![replaced]);

    // PUT overwrites the whole object: the allow list goes away when not sent.
    client
        .replace_private_access_settings(&id, &pas_request("pas-backend-3", false, "ACCOUNT", &[]))
        .await
        .unwrap();
    let overwritten = client.get_private_access_settings(&id).await.unwrap();
    assert_eq!(overwritten.public_access_enabled, Some(false));
    assert!(
        overwritten
            .allowed_vpc_endpoint_ids
            .unwrap_or_default()
            .is_empty()
    );

    client.delete_private_access_settings(&id).await.unwrap();
    let gone = client.get_private_access_settings(&id).await.unwrap_err();
    assert!(gone.is_not_found(), "{gone:?}");
    assert!(
        client
            .list_private_access_settings()
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(client.retries_spent(), 0);
}

#[tokio::test]
async fn networks_round_trip_and_an_attached_network_is_in_use() {
    let setup = Setup::start().await;
    setup.register_aws_endpoints();
    let client = setup.client();
    let rest = client
        .create_vpc_endpoint(&registration(REST_VPCE, "backend-rest"))
        .await
        .unwrap();
    let relay = client
        .create_vpc_endpoint(&registration(RELAY_VPCE, "backend-relay"))
        .await
        .unwrap();

    let created = client
        .create_network(&network_request(
            "backend-network",
            ["subnet-0a", "subnet-0b"],
            &rest.vpc_endpoint_id,
            &relay.vpc_endpoint_id,
        ))
        .await
        .unwrap();
    let read = client.get_network(&created.network_id).await.unwrap();
    assert_eq!(read, created);
    assert_eq!(read.subnet_ids, vec!["subnet-0a", "subnet-0b"]);
    let endpoints = read.vpc_endpoints.clone().unwrap();
    assert_eq!(endpoints.rest_api, vec![rest.vpc_endpoint_id.clone()]);
    assert_eq!(
        endpoints.dataplane_relay,
        vec![relay.vpc_endpoint_id.clone()]
    );
    assert_eq!(read.workspace_id, None);
    assert_eq!(client.list_networks().await.unwrap(), vec![read]);

    // A relay registration in the REST slot is refused with a message naming the use cases.
    let swapped = client
        .create_network(&network_request(
            "swapped-network",
            ["subnet-0c", "subnet-0d"],
            &relay.vpc_endpoint_id,
            &rest.vpc_endpoint_id,
        ))
        .await
        .unwrap_err();
    let (_, status, code, message) = api_error(&swapped);
    assert_eq!((status, code), (400, Some("INVALID_PARAMETER_VALUE")));
    assert!(message.contains("DATAPLANE_RELAY_ACCESS"), "{message}");

    client.delete_network(&created.network_id).await.unwrap();
    // Deletion is asynchronous: the network answers a few more reads, then 404.
    let mut reads = 0;
    let gone = loop {
        match client.get_network(&created.network_id).await {
            Ok(_) if reads < 5 => reads += 1,
            Ok(network) => panic!("the deleted network is still there: {network:?}"),
            Err(e) => break e,
        }
    };
    assert!(gone.is_not_found(), "{gone:?}");

    let workspace = setup.seed_workspace("ws-network-in-use", ["subnet-1a", "subnet-1b"]);
    let attached = workspace.network_id.clone().unwrap();
    let in_use = client.delete_network(&attached).await.unwrap_err();
    assert!(in_use.is_in_use(), "{in_use:?}");
    assert!(!in_use.is_not_found());
    let (operation, status, code, message) = api_error(&in_use);
    assert_eq!(operation, "delete network");
    assert_eq!((status, code), (400, Some("INVALID_STATE")));
    assert_eq!(
        message,
        format!(
            "Unable to delete, Network is being used by active workspace {}",
            workspace.workspace_id
        )
    );
    assert_presentable(&in_use);
    assert_eq!(setup.count("DELETE", &attached), 1, "in-use is not retried");
    assert!(client.get_network(&attached).await.is_ok());
}

#[tokio::test]
async fn workspaces_are_read_and_switched_to_the_network_and_private_access_settings() {
    let setup = Setup::start().await;
    setup.register_aws_endpoints();
    let client = setup.client();
    let seeded = setup.seed_workspace("ws-switch", ["subnet-1a", "subnet-1b"]);
    let workspace_id = seeded.workspace_id;
    let old_network = seeded.network_id.clone().unwrap();

    let workspace = client.get_workspace(workspace_id).await.unwrap();
    assert_eq!(workspace.status(), WorkspaceStatus::Running);
    assert_eq!(workspace.network_id.as_deref(), Some(old_network.as_str()));
    assert_eq!(workspace.private_access_settings_id, None);
    assert_eq!(workspace.aws_region.as_deref(), Some(REGION));
    assert_eq!(client.list_workspaces().await.unwrap(), vec![workspace]);

    let rest = client
        .create_vpc_endpoint(&registration(REST_VPCE, "backend-rest"))
        .await
        .unwrap();
    let relay = client
        .create_vpc_endpoint(&registration(RELAY_VPCE, "backend-relay"))
        .await
        .unwrap();
    let network = client
        .create_network(&network_request(
            "backend-network",
            ["subnet-2a", "subnet-2b"],
            &rest.vpc_endpoint_id,
            &relay.vpc_endpoint_id,
        ))
        .await
        .unwrap();
    let pas = client
        .create_private_access_settings(&pas_request("pas-backend", true, "ACCOUNT", &[]))
        .await
        .unwrap();
    let update = WorkspaceUpdate {
        network_id: Some(network.network_id.clone()),
        private_access_settings_id: Some(pas.private_access_settings_id.clone()),
    };

    // Registrations still pending acceptance: a clear error, not retried.
    let early = client
        .update_workspace(workspace_id, &update)
        .await
        .unwrap_err();
    let (_, status, code, message) = api_error(&early);
    assert_eq!((status, code), (400, Some("INVALID_STATE")));
    assert!(message.contains("wait until it is available"), "{message}");
    assert_eq!(setup.count("PATCH", "/workspaces/"), 1);

    wait_available(&client, &rest.vpc_endpoint_id).await;
    wait_available(&client, &relay.vpc_endpoint_id).await;
    client
        .update_workspace(workspace_id, &update)
        .await
        .unwrap();
    assert_eq!(setup.count("PATCH", "/workspaces/"), 2);

    let switched = client.get_workspace(workspace_id).await.unwrap();
    assert_eq!(switched.network_id, update.network_id);
    assert_eq!(
        switched.private_access_settings_id,
        update.private_access_settings_id
    );
    let attached = client.get_network(&network.network_id).await.unwrap();
    assert_eq!(attached.workspace_id, Some(workspace_id));
    let released = client.get_network(&old_network).await.unwrap();
    assert_eq!(released.workspace_id, None);
    client.delete_network(&old_network).await.unwrap();

    let pas_in_use = client
        .delete_private_access_settings(&pas.private_access_settings_id)
        .await
        .unwrap_err();
    assert!(pas_in_use.is_in_use(), "{pas_in_use:?}");

    // An update without fields changes nothing, so nothing is sent.
    client
        .update_workspace(workspace_id, &WorkspaceUpdate::default())
        .await
        .unwrap();
    assert_eq!(setup.count("PATCH", "/workspaces/"), 2);
    assert_eq!(client.retries_spent(), 0);
}

#[tokio::test]
async fn workspace_update_with_running_clusters_is_a_clear_400_not_retried() {
    let setup = Setup::start().await;
    let client = setup.client();
    let seeded = setup.seed_workspace("ws-busy", ["subnet-1a", "subnet-1b"]);
    let pas = client
        .create_private_access_settings(&pas_request("pas-backend", true, "ACCOUNT", &[]))
        .await
        .unwrap();
    setup
        .state()
        .set_workspace_clusters_running(seeded.workspace_id, true)
        .unwrap();
    let update = WorkspaceUpdate {
        private_access_settings_id: Some(pas.private_access_settings_id.clone()),
        ..Default::default()
    };
    let error = client
        .update_workspace(seeded.workspace_id, &update)
        .await
        .unwrap_err();
    let (operation, status, code, message) = api_error(&error);
    assert_eq!(operation, "update workspace");
    assert_eq!((status, code), (400, Some("INVALID_STATE")));
    assert!(
        message.contains("terminate all running compute"),
        "{message}"
    );
    assert!(
        error.to_string().starts_with(
            "Databricks account API update workspace failed (400 INVALID_STATE): Unable to update workspace"
        ),
        "{error}"
    );
    assert_presentable(&error);
    assert_eq!(setup.count("PATCH", "/workspaces/"), 1);
    assert_eq!(client.retries_spent(), 0);
    let unchanged = client.get_workspace(seeded.workspace_id).await.unwrap();
    assert_eq!(unchanged.private_access_settings_id, None);
}

#[tokio::test]
async fn missing_objects_are_not_found_and_not_retried() {
    let setup = Setup::start().await;
    let client = setup.client();
    let missing = uuid();
    let errors = [
        client.get_vpc_endpoint(&missing).await.unwrap_err(),
        client.delete_vpc_endpoint(&missing).await.unwrap_err(),
        client
            .get_private_access_settings(&missing)
            .await
            .unwrap_err(),
        client
            .replace_private_access_settings(&missing, &pas_request("pas-x", true, "ACCOUNT", &[]))
            .await
            .unwrap_err(),
        client
            .delete_private_access_settings(&missing)
            .await
            .unwrap_err(),
        client.get_network(&missing).await.unwrap_err(),
        client.delete_network(&missing).await.unwrap_err(),
        client
            .get_workspace(1_234_567_890_123_456)
            .await
            .unwrap_err(),
    ];
    for error in &errors {
        assert!(error.is_not_found(), "{error:?}");
        assert!(!error.is_in_use(), "{error:?}");
        assert_eq!(error.status(), Some(404));
        assert_presentable(error);
    }
    assert_eq!(setup.api_requests().len(), errors.len());
    assert_eq!(client.retries_spent(), 0);
}

// --- the OAuth token ---

#[tokio::test]
async fn concurrent_calls_of_one_client_share_one_token() {
    let setup = Setup::start().await;
    let client = setup.client();
    let calls = (0..20).map(|_| {
        let client = client.clone();
        async move { client.list_networks().await }
    });
    for result in join_all(calls).await {
        assert!(result.unwrap().is_empty());
    }
    assert_eq!(setup.token_posts(), 1);
    assert_eq!(setup.count("GET", "/networks"), 20);
}

#[tokio::test]
async fn clients_built_from_one_http_reuse_the_token_of_their_account() {
    let setup = Setup::start().await;
    setup.client().list_networks().await.unwrap();
    setup.client().list_workspaces().await.unwrap();
    assert_eq!(
        setup.token_posts(),
        1,
        "second client fetched its own token"
    );

    // Tokens are per account: another account on the same HTTP client needs its own.
    let other_account = AccountClient::new(
        &setup.http,
        &setup.emulator.base_url(),
        &uuid(),
        ClientCredentials::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
        Instant::now() + Duration::from_secs(20),
    )
    .unwrap();
    other_account.list_networks().await.unwrap();
    assert_eq!(setup.token_posts(), 2);

    // A separate DatabricksHttp (another process, in effect) has its own cache.
    let separate = DatabricksHttp::new(settings()).unwrap();
    setup
        .client_with(
            &separate,
            ClientCredentials::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
            Duration::from_secs(20),
        )
        .list_networks()
        .await
        .unwrap();
    assert_eq!(setup.token_posts(), 3);
    assert!(setup.api_requests().iter().all(|r| r.status == 200));
}

#[tokio::test]
async fn a_revoked_token_is_replaced_once_and_the_call_succeeds() {
    let setup = Setup::start().await;
    let client = setup.client();
    client.list_networks().await.unwrap();
    setup.state().revoke_tokens();
    setup.state().clear_request_log();

    client.list_networks().await.unwrap();
    let seen: Vec<(String, u16)> = setup
        .state()
        .request_log()
        .iter()
        .map(|r| (r.pattern(), r.status))
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                "GET /api/2.0/accounts/{account_id}/networks".to_string(),
                401
            ),
            ("POST /oidc/accounts/{account_id}/v1/token".to_string(), 200),
            (
                "GET /api/2.0/accounts/{account_id}/networks".to_string(),
                200
            ),
        ]
    );
    // The new token is shared too: another client needs no fetch.
    setup.client().list_workspaces().await.unwrap();
    assert_eq!(setup.token_posts(), 1);
}

#[tokio::test]
async fn wrong_credentials_are_rejected_with_what_to_fix_and_no_api_call() {
    let setup = Setup::start().await;
    let client = setup.client_with(
        &setup.http,
        ClientCredentials::new(DEFAULT_CLIENT_ID, WRONG_SECRET),
        Duration::from_secs(20),
    );
    let error = client.list_networks().await.unwrap_err();
    assert!(error.is_permanent_credentials(), "{error:?}");
    match &error {
        DatabricksError::CredentialsRejected { status, code, .. } => {
            assert_eq!(*status, 401);
            assert_eq!(code.as_deref(), Some("invalid_client"));
        }
        other => panic!("expected CredentialsRejected, got {other:?}"),
    }
    let shown = error.to_string();
    assert!(
        shown.contains("Check client_id/client_secret in the credentials secret"),
        "{shown}"
    );
    assert!(!error.is_not_found());
    assert_presentable(&error);
    let log = setup.state().request_log();
    assert_eq!(log.len(), 1, "the refusal is not retried: {log:?}");
    assert_eq!(log[0].status, 401);
    assert!(setup.api_requests().is_empty());
    assert_eq!(client.retries_spent(), 0);

    // The corrected secret is checked afresh, not answered from the failed attempt.
    setup.client().list_networks().await.unwrap();
    assert_eq!(setup.token_posts(), 2);
}

// --- checks made before anything is sent ---

#[tokio::test]
async fn disallowed_hosts_are_refused_before_any_request() {
    let setup = Setup::start().await;
    let strict = DatabricksHttp::new(HttpSettings::default()).unwrap();
    let credentials = || ClientCredentials::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET);
    let deadline = Instant::now() + Duration::from_secs(20);
    let cases = [
        (&strict, "https://evil.example.com".to_string()),
        (&strict, setup.emulator.base_url()),
        (&strict, "http://accounts.cloud.databricks.com".to_string()),
        (
            &setup.http,
            format!("{}/api/2.0", setup.emulator.base_url()),
        ),
    ];
    for (http, host) in cases {
        let error = AccountClient::new(http, &host, &setup.account_id, credentials(), deadline)
            .unwrap_err();
        match &error {
            DatabricksError::HostNotAllowed { host: shown } => assert_eq!(shown, &host),
            other => panic!("expected HostNotAllowed for {host}, got {other:?}"),
        }
        assert!(
            error
                .to_string()
                .contains("https://accounts.cloud.databricks.com"),
            "{error}"
        );
        assert_presentable(&error);
    }
    assert!(setup.state().request_log().is_empty());
}

#[tokio::test]
async fn malformed_account_and_path_ids_are_refused_before_any_request() {
    let setup = Setup::start().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    for account_id in [
        "",
        "not-a-uuid",
        "0d26daa6-5e44-4c97-a497-ef015f91254a/../x",
        "0d26daa65e444c97a497ef015f91254a",
    ] {
        let error = AccountClient::new(
            &setup.http,
            &setup.emulator.base_url(),
            account_id,
            ClientCredentials::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
            deadline,
        )
        .unwrap_err();
        assert!(
            matches!(&error, DatabricksError::InvalidAccountId { .. }),
            "{account_id}: {error:?}"
        );
        assert!(error.to_string().contains("expected a UUID"), "{error}");
    }

    let client = setup.client();
    let pas = pas_request("pas-x", true, "ACCOUNT", &[]);
    let errors = [
        client.get_vpc_endpoint("../networks").await.unwrap_err(),
        client.delete_vpc_endpoint("%2e%2e").await.unwrap_err(),
        client.get_private_access_settings("a/b").await.unwrap_err(),
        client
            .replace_private_access_settings("#fragment", &pas)
            .await
            .unwrap_err(),
        client
            .delete_private_access_settings("x y")
            .await
            .unwrap_err(),
        client.get_network("x?y=1").await.unwrap_err(),
        client.delete_network("").await.unwrap_err(),
        client.get_workspace(0).await.unwrap_err(),
        client
            .update_workspace(-5, &WorkspaceUpdate::default())
            .await
            .unwrap_err(),
    ];
    for error in &errors {
        assert!(
            matches!(error, DatabricksError::InvalidId { .. }),
            "{error:?}"
        );
        assert!(
            error.to_string().contains("is not a valid Databricks id"),
            "{error}"
        );
    }
    assert!(setup.state().request_log().is_empty());
}

#[tokio::test]
async fn a_deadline_already_passed_sends_nothing() {
    let setup = Setup::start().await;
    let client = setup.client_until(Duration::ZERO);
    let error = client.list_networks().await.unwrap_err();
    match &error {
        DatabricksError::DeadlineExceeded { last_error, .. } => {
            assert!(
                last_error.contains("no attempt could be made"),
                "{last_error}"
            )
        }
        other => panic!("expected DeadlineExceeded, got {other:?}"),
    }
    assert!(setup.state().request_log().is_empty());
}

// --- injected faults ---

#[tokio::test]
async fn the_emulator_rate_limit_is_ridden_out() {
    let setup = Setup::start().await;
    let client = setup.client();
    client.ensure_token().await.unwrap();
    setup.state().set_rate_limit(Some(4));
    let calls = (0..8).map(|_| {
        let client = client.clone();
        async move { client.list_networks().await }
    });
    for result in join_all(calls).await {
        result.unwrap();
    }
    let throttled = setup
        .api_requests()
        .iter()
        .filter(|r| r.status == 429)
        .count();
    assert!(throttled >= 4, "{throttled}");
    assert_eq!(client.retries_spent(), throttled as u64);
    assert_eq!(setup.count("GET", "/networks"), 8 + throttled);
}

#[tokio::test]
async fn unavailable_503_is_retried_until_success() {
    let setup = Setup::start().await;
    setup.register_aws_endpoints();
    let client = setup.client();
    setup.inject(
        FaultSpec::new(FaultKind::status_json(
            503,
            "TEMPORARILY_UNAVAILABLE",
            "try again",
        ))
        .method("POST")
        .path_contains("/vpc-endpoints")
        .times(2),
    );
    let created = client
        .create_vpc_endpoint(&registration(REST_VPCE, "backend-rest"))
        .await
        .unwrap();
    assert_eq!(created.aws_vpc_endpoint_id.as_deref(), Some(REST_VPCE));
    assert_eq!(client.retries_spent(), 2);
    assert_eq!(setup.count("POST", "/vpc-endpoints"), 3);
    assert_eq!(client.list_vpc_endpoints().await.unwrap().len(), 1);
}

#[tokio::test]
async fn gateway_502_and_504_are_retried() {
    let setup = Setup::start().await;
    let client = setup.client();
    for status in [502, 504] {
        setup.inject(
            FaultSpec::new(FaultKind::Status {
                status,
                retry_after: None,
                body: FaultBody::Html(format!("<html><body><h1>{status}</h1></body></html>")),
            })
            .method("GET")
            .path_contains("/private-access-settings"),
        );
    }
    assert!(
        client
            .list_private_access_settings()
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(client.retries_spent(), 2);
    let statuses: Vec<u16> = setup.api_requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![502, 504, 200]);
}

#[tokio::test]
async fn client_errors_400_403_404_are_not_retried() {
    let setup = Setup::start().await;
    let client = setup.client();
    let cases = [
        (400, "INVALID_PARAMETER_VALUE", "region is required"),
        (403, "PERMISSION_DENIED", "not an account admin"),
        (404, "RESOURCE_DOES_NOT_EXIST", "Network x does not exist"),
    ];
    for (status, code, message) in cases {
        setup.state().clear_request_log();
        setup.inject(
            FaultSpec::new(FaultKind::status_json(status, code, message))
                .path_contains("/networks")
                .times(3),
        );
        let error = client.list_networks().await.unwrap_err();
        assert_eq!(
            api_error(&error),
            ("list networks", status, Some(code), message)
        );
        assert_eq!(error.is_not_found(), status == 404);
        assert_eq!(setup.api_requests().len(), 1, "{status} was retried");
        assert_presentable(&error);
        if status == 403 {
            assert!(
                error
                    .to_string()
                    .ends_with("The service principal must be an account admin."),
                "{error}"
            );
        }
        setup.state().clear_faults();
    }
    assert_eq!(client.retries_spent(), 0);
}

#[tokio::test]
async fn a_persistently_dropped_connection_is_a_transport_error_after_max_attempts() {
    let setup = Setup::start().await;
    let client = setup.client();
    client.ensure_token().await.unwrap();
    setup.inject(
        FaultSpec::new(FaultKind::Drop)
            .path_contains("/workspaces")
            .times(100),
    );
    let error = client.list_workspaces().await.unwrap_err();
    match &error {
        DatabricksError::Transport { operation, message } => {
            assert_eq!(*operation, "list workspaces");
            assert!(message.starts_with("the connection failed"), "{message}");
        }
        other => panic!("expected Transport, got {other:?}"),
    }
    assert!(!error.to_string().contains("http://"), "{error}");
    assert_presentable(&error);
    assert_eq!(setup.count("GET", "/workspaces"), 4);
    assert_eq!(client.retries_spent(), 3);
}

#[tokio::test]
async fn a_hang_past_the_request_timeout_is_cut_off_and_retried() {
    let setup = Setup::with_settings(HttpSettings {
        request_timeout: Duration::from_secs(1),
        ..settings()
    })
    .await;
    let client = setup.client();
    client.ensure_token().await.unwrap();
    setup.inject(
        FaultSpec::new(FaultKind::Hang)
            .method("GET")
            .path_contains("/networks"),
    );
    let started = Instant::now();
    client.list_networks().await.unwrap();
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(client.retries_spent(), 1);
    assert_eq!(setup.count("GET", "/networks"), 2);
}

#[tokio::test]
async fn latency_within_the_request_timeout_is_waited_out_without_a_retry() {
    let setup = Setup::start().await;
    let client = setup.client();
    client.ensure_token().await.unwrap();
    setup.inject(
        FaultSpec::new(FaultKind::Latency(Duration::from_millis(300)))
            .method("GET")
            .path_contains("/networks"),
    );
    let started = Instant::now();
    client.list_networks().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(client.retries_spent(), 0);
    assert_eq!(setup.count("GET", "/networks"), 1);
}

#[tokio::test]
async fn a_plain_text_error_is_split_into_code_and_message() {
    let setup = Setup::start().await;
    let client = setup.client();
    setup.inject(
        FaultSpec::new(FaultKind::Status {
            status: 400,
            retry_after: None,
            body: FaultBody::PlainText("MALFORMED_REQUEST: Cannot parse request body\n".into()),
        })
        .method("POST")
        .path_contains("/networks"),
    );
    let error = client
        .create_network(&network_request(
            "n-plain",
            ["subnet-a", "subnet-b"],
            "r",
            "d",
        ))
        .await
        .unwrap_err();
    assert_eq!(
        api_error(&error),
        (
            "create network",
            400,
            Some("MALFORMED_REQUEST"),
            "Cannot parse request body"
        )
    );
    assert_eq!(setup.api_requests().len(), 1);
}

#[tokio::test]
async fn an_html_error_gives_the_pre_text_or_the_reason_phrase() {
    let setup = Setup::start().await;
    let client = setup.client();
    setup.inject(
        FaultSpec::new(FaultKind::Status {
            status: 500,
            retry_after: None,
            body: FaultBody::Html(
                "<html><head><title>Error 500</title></head><body><h2>HTTP ERROR 500</h2>\
                 <pre>Server Error: upstream &quot;accounts&quot; failed</pre></body></html>"
                    .into(),
            ),
        })
        .path_contains("/networks"),
    );
    let with_pre = client.list_networks().await.unwrap_err();
    assert_eq!(
        api_error(&with_pre),
        (
            "list networks",
            500,
            None,
            "Server Error: upstream \"accounts\" failed"
        )
    );
    assert!(!with_pre.to_string().contains('<'), "{with_pre}");

    setup.inject(
        FaultSpec::new(FaultKind::Status {
            status: 403,
            retry_after: None,
            body: FaultBody::Html(
                "<!DOCTYPE html><html><body><h1>Access denied</h1><p>request id 42</p></body></html>"
                    .into(),
            ),
        })
        .path_contains("/networks"),
    );
    let without_pre = client.list_networks().await.unwrap_err();
    assert_eq!(
        api_error(&without_pre),
        ("list networks", 403, None, "Forbidden")
    );
    assert_eq!(setup.api_requests().len(), 2);
}

#[tokio::test]
async fn an_empty_409_on_delete_reads_as_in_use() {
    let setup = Setup::start().await;
    let client = setup.client();
    let network = client
        .create_network(&CreateNetwork {
            vpc_endpoints: NetworkVpcEndpoints::default(),
            ..network_request("plain-network", ["subnet-a", "subnet-b"], "", "")
        })
        .await
        .unwrap();
    setup.inject(
        FaultSpec::new(FaultKind::Status {
            status: 409,
            retry_after: None,
            body: FaultBody::Empty,
        })
        .method("DELETE"),
    );
    let error = client
        .delete_network(&network.network_id)
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(409));
    assert!(error.is_in_use(), "{error:?}");
    assert_eq!(api_error(&error), ("delete network", 409, None, "Conflict"));
    assert_eq!(setup.count("DELETE", "/networks/"), 1);
    // The fault is spent: the next attempt deletes.
    client.delete_network(&network.network_id).await.unwrap();
}

#[tokio::test]
async fn a_persistent_503_ends_with_deadline_exceeded_before_the_deadline() {
    let setup = Setup::with_settings(HttpSettings {
        retry: RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(400),
            max_attempts: 100,
        },
        ..settings()
    })
    .await;
    let deadline = Duration::from_secs(2);
    let client = setup.client_until(deadline);
    let started = Instant::now();
    setup.inject(
        FaultSpec::new(FaultKind::status_json(
            503,
            "TEMPORARILY_UNAVAILABLE",
            "maintenance",
        ))
        .path_contains("/networks")
        .times(1000),
    );
    let error = client.list_networks().await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        elapsed < deadline + Duration::from_millis(200),
        "the deadline was overrun: {elapsed:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(1000),
        "gave up early: {elapsed:?}"
    );
    match &error {
        DatabricksError::DeadlineExceeded {
            operation,
            last_error,
        } => {
            assert_eq!(*operation, "list networks");
            assert!(
                last_error.contains("503 TEMPORARILY_UNAVAILABLE")
                    && last_error.contains("maintenance"),
                "{last_error}"
            );
        }
        other => panic!("expected DeadlineExceeded, got {other:?}"),
    }
    assert_presentable(&error);
    let attempts = setup.count("GET", "/networks");
    assert!(attempts >= 3, "{attempts}");
    assert_eq!(client.retries_spent(), attempts as u64 - 1);
}

#[tokio::test]
async fn a_persistent_503_stops_after_max_attempts_with_the_last_error() {
    let setup = Setup::start().await;
    let client = setup.client();
    setup.inject(
        FaultSpec::new(FaultKind::status_json(
            503,
            "TEMPORARILY_UNAVAILABLE",
            "maintenance",
        ))
        .path_contains("/workspaces")
        .times(100),
    );
    let error = client.list_workspaces().await.unwrap_err();
    assert_eq!(
        api_error(&error),
        (
            "list workspaces",
            503,
            Some("TEMPORARILY_UNAVAILABLE"),
            "maintenance"
        )
    );
    assert_eq!(setup.count("GET", "/workspaces"), 4);
    assert_eq!(client.retries_spent(), 3);
}

#[tokio::test]
async fn a_token_endpoint_503_is_retried() {
    let setup = Setup::start().await;
    let client = setup.client();
    setup.inject(
        FaultSpec::new(FaultKind::status_json(
            503,
            "TEMPORARILY_UNAVAILABLE",
            "try again",
        ))
        .path_contains("/oidc/"),
    );
    client.list_networks().await.unwrap();
    assert_eq!(setup.token_posts(), 2);
    assert_eq!(client.retries_spent(), 1);
    assert_eq!(setup.count("GET", "/networks"), 1);
}

#[tokio::test]
async fn a_failing_token_endpoint_is_a_clear_error_and_no_api_call() {
    let setup = Setup::start().await;
    let client = setup.client();
    setup.inject(
        FaultSpec::new(FaultKind::status_json(
            500,
            "INTERNAL_ERROR",
            "token service down",
        ))
        .path_contains("/oidc/")
        .times(100),
    );
    let error = client.list_networks().await.unwrap_err();
    assert_eq!(
        api_error(&error),
        (
            "OAuth token request",
            500,
            Some("INTERNAL_ERROR"),
            "token service down"
        )
    );
    assert!(!error.is_permanent_credentials());
    assert_eq!(
        error.to_string(),
        "Databricks account API OAuth token request failed (500 INTERNAL_ERROR): token service down"
    );
    assert_presentable(&error);
    assert_eq!(setup.token_posts(), 1);
    assert!(setup.api_requests().is_empty());

    // A 404 from the token endpoint means a wrong account or host, never a missing object.
    setup.state().clear_faults();
    setup.inject(
        FaultSpec::new(FaultKind::Status {
            status: 404,
            retry_after: None,
            body: FaultBody::Empty,
        })
        .path_contains("/oidc/"),
    );
    let not_found = client.list_networks().await.unwrap_err();
    assert!(not_found.is_permanent_credentials(), "{not_found:?}");
    assert!(!not_found.is_not_found());
    assert!(
        not_found
            .to_string()
            .contains("Check the account id and account host"),
        "{not_found}"
    );
    assert!(setup.api_requests().is_empty());
}

#[tokio::test]
async fn a_huge_error_message_is_shortened_and_nothing_secret_is_shown() {
    let setup = Setup::start().await;
    let client = setup.client();
    let huge = format!("bad value: {}", "x".repeat(5 * 1024));
    setup.inject(
        FaultSpec::new(FaultKind::status_json(
            400,
            "INVALID_PARAMETER_VALUE",
            &huge,
        ))
        .method("POST")
        .path_contains("/private-access-settings"),
    );
    let error = client
        .create_private_access_settings(&pas_request("pas-huge", true, "ACCOUNT", &[]))
        .await
        .unwrap_err();
    let (_, status, code, message) = api_error(&error);
    assert_eq!((status, code), (400, Some("INVALID_PARAMETER_VALUE")));
    assert!(message.starts_with("bad value: xxx"), "{message}");
    assert!(message.ends_with('…'), "{message}");
    let shown = error.to_string();
    assert!(shown.len() < 500, "{} bytes: {shown}", shown.len());
    assert_presentable(&error);
}
