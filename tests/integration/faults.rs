//! Faults through the real binary: Databricks answers that fail at every
//! step of Create, Update and Delete, a ResponseURL that refuses the answer, credentials secrets
//! that cannot be used, overlapping deliveries, a Create cancelled by a concurrent Delete, and an
//! invocation left with almost no time. In every case CloudFormation gets its answer before the
//! invocation's deadline, and once the request CloudFormation sends next has run, the account
//! holds no object the stack does not own.
//!
//! It owns these expectations; the harness knows nothing of them. Each case runs against its own
//! emulator, so faults, token caches and request logs never cross cases, while the moto VPC and
//! secret are shared by the whole file. The binary runs with a 2 s per-attempt timeout
//! (`DATABRICKS_HTTP_TIMEOUT_SECS`), so a hanging answer costs seconds, not the default 30 s.

use std::time::{Duration, Instant};

use backend_privatelink::resource::testing::OwnershipKey;
use emulator::{
    FaultBody, FaultKind, FaultSpec, Network, PrivateAccessLevel, StateHandle, Workspace,
    WorkspaceStatus,
};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::scenario::{
    Answer, Aws, CLIENT_ID, CLIENT_SECRET, REGION, Stack, World, WorldOptions, deliver_event,
};
use crate::support::events::RequestType;
use crate::support::fixtures::Setup;
use crate::support::lambda::Lambda;
use crate::support::moto::Moto;
use crate::support::runtime::InvocationResult;
use crate::support::sink::RecordingSink;

const LOGICAL_ID: &str = "PrivateLink";
/// A PhysicalResourceId CloudFormation makes up for the Delete of a Create it cancelled.
const GENERATED_ID: &str = "faults-PrivateLink-1XJ2KQ8Z3ABCD";
/// Per-attempt timeout of the binary's Databricks client in this file, in seconds.
const ATTEMPT_TIMEOUT_SECS: &str = "2";
/// Invocation timeout for requests expected to finish: room for retries on a busy machine.
const TIMEOUT: Duration = Duration::from_secs(25);
/// Invocation timeout for requests expected to run into their deadline.
const SHORT_TIMEOUT: Duration = Duration::from_secs(9);
/// Table cases run at once; each mostly waits on backoffs and timeouts.
const LANES: usize = 6;

// ---------------------------------------------------------------------------------------------
// The world: one moto VPC with a second relay endpoint, shared; one emulator per case.
// ---------------------------------------------------------------------------------------------

struct Lab {
    aws: Aws,
    /// Another relay endpoint in the same VPC, for Updates that move the relay.
    new_relay: String,
}

static LAB: OnceCell<Lab> = OnceCell::const_new();

async fn lab() -> &'static Lab {
    LAB.get_or_init(|| async {
        let aws = Aws::create(1, true).await;
        let net = &aws.networks[0];
        let new_relay = net
            .create_endpoint(Moto::shared(), &net.relay_service, true)
            .await;
        Lab { aws, new_relay }
    })
    .await
}

/// What a stack's properties ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// The two endpoints, no workspace.
    Plain,
    /// The two endpoints, ACCOUNT level, the seeded workspace attached through a network copy.
    Attached,
    /// `Attached`, moved to the second relay endpoint with ENDPOINT level.
    Moved,
    /// The two endpoints and a shared network configuration, no workspace.
    SharedNetwork,
}

/// One Databricks account on its own world (emulator and Lambda) over the shared moto VPC, with
/// a running customer-managed workspace in that VPC and one stack's resource.
struct Bench {
    lab: &'static Lab,
    world: World,
    workspace: i64,
    original_network: String,
    stack: Stack,
    key: OwnershipKey,
}

impl std::ops::Deref for Bench {
    type Target = World;

    fn deref(&self) -> &World {
        &self.world
    }
}

impl Bench {
    async fn new() -> Bench {
        let lab = lab().await;
        let world = World::on(
            lab.aws.clone(),
            WorldOptions {
                lambda_env: vec![(
                    "DATABRICKS_HTTP_TIMEOUT_SECS".into(),
                    ATTEMPT_TIMEOUT_SECS.into(),
                )],
                ..WorldOptions::default()
            },
        )
        .await;
        let net = &lab.aws.networks[0];
        world
            .emulator
            .state()
            .register_aws_endpoint(&lab.new_relay, &net.relay_service);
        // Its own subnets and security group: Databricks does not let a workspace share them
        // with the network the SharedNetwork shape builds.
        let workspace = world.seed_workspace(0, "analytics");
        let original_network = world.workspace(workspace).network_id.unwrap_or_default();
        let mut stack = world.stack("faults");
        let key = OwnershipKey::new(&stack.stack_id, LOGICAL_ID);
        stack.logical_id = LOGICAL_ID.into();
        stack.physical_id = Some(key.physical_resource_id());
        Bench {
            lab,
            world,
            workspace,
            original_network,
            stack,
            key,
        }
    }

    fn props(&self, shape: Shape) -> Value {
        let net = &self.lab.aws.networks[0];
        let mut props = self.world.props(0);
        match shape {
            Shape::Plain => {}
            Shape::Attached => props["WorkspaceIds"] = json!([self.workspace.to_string()]),
            Shape::Moved => {
                props["RelayVpcEndpointId"] = json!(self.lab.new_relay);
                props["WorkspaceIds"] = json!([self.workspace.to_string()]);
                props["PrivateAccessLevel"] = json!("ENDPOINT");
            }
            Shape::SharedNetwork => {
                props["Network"] = json!({
                    "SubnetIds": net.subnet_ids,
                    "SecurityGroupIds": [net.cluster_sg_id],
                });
            }
        }
        props
    }

    fn physical_id(&self) -> String {
        self.key.physical_resource_id()
    }

    /// The same world, but the resource belongs to a moto stack that waits for its Create
    /// (instead of a made-up StackId CloudFormation knows nothing of).
    async fn in_moto_stack(mut self) -> Self {
        self.stack.stack_id =
            crate::support::fixtures::stack(Moto::shared(), REGION, LOGICAL_ID).await;
        self.key = OwnershipKey::new(&self.stack.stack_id, LOGICAL_ID);
        self.stack.physical_id = Some(self.key.physical_resource_id());
        self
    }

    /// The Delete CloudFormation sends for a Create it cancelled: with an id of its own making,
    /// through `lambda` (another instance than the one still running the Create).
    async fn send_cancelling_delete(&self, lambda: &Lambda, props: Value) -> Answer {
        let stack = Stack {
            physical_id: Some(GENERATED_ID.into()),
            ..self.stack.clone()
        };
        self.world
            .deliver(lambda, RequestType::Delete, &stack, props, None, TIMEOUT)
            .await
    }

    /// CloudFormation gives up on the Create: the stack's resource is deleted. Returns the
    /// resource's status afterwards.
    async fn cancel_in_moto(&self) -> String {
        crate::support::fixtures::delete_stack(
            Moto::shared(),
            REGION,
            &self.stack.stack_id,
            LOGICAL_ID,
        )
        .await
    }

    async fn send(
        &self,
        request_type: RequestType,
        props: Value,
        old: Option<Value>,
        timeout: Duration,
    ) -> Answer {
        self.send_via(&self.world.lambda, request_type, props, old, timeout)
            .await
    }

    async fn send_via(
        &self,
        lambda: &Lambda,
        request_type: RequestType,
        props: Value,
        old: Option<Value>,
        timeout: Duration,
    ) -> Answer {
        self.world
            .deliver(lambda, request_type, &self.stack, props, old, timeout)
            .await
    }

    /// The event CloudFormation sends for this stack's resource, answered to `sink`.
    fn event(
        &self,
        request_type: RequestType,
        props: Value,
        old: Option<Value>,
        sink: &RecordingSink,
    ) -> Value {
        self.world
            .event(request_type, &self.stack, props, old, sink)
    }

    fn owned(&self, name: &str) -> bool {
        name.contains(&format!("cfn{}", self.key.as_str()))
    }

    fn workspace_now(&self) -> Workspace {
        self.world.workspace(self.workspace)
    }

    /// A Delete of `shape` (`what` names it) succeeds and leaves nothing of the stack.
    async fn delete_leaves_nothing(&self, shape: Shape, what: &str) -> Result<(), String> {
        self.send(RequestType::Delete, self.props(shape), None, TIMEOUT)
            .await
            .check_success()
            .map_err(|e| format!("{what}: {e}"))?;
        self.check_nothing_owned()
    }

    /// The account holds nothing of the stack: no registration, no private access settings, only
    /// the workspace's own network, and the workspace as it was seeded.
    fn check_nothing_owned(&self) -> Result<(), String> {
        let account = self.account();
        let regs = &account.vpc_endpoints;
        let pas = &account.private_access_settings;
        let networks: Vec<&Network> = account
            .networks
            .iter()
            .filter(|n| n.network_id != self.original_network)
            .collect();
        let ws = self.workspace_now();
        if !regs.is_empty() || !pas.is_empty() || !networks.is_empty() {
            return Err(format!(
                "objects remain: registrations {regs:#?}, private access settings {pas:#?}, networks {networks:#?}"
            ));
        }
        if ws.network_id.as_deref() != Some(self.original_network.as_str())
            || ws.private_access_settings_id.is_some()
        {
            return Err(format!("the workspace was changed: {ws:#?}"));
        }
        Ok(())
    }

    /// The account holds exactly the stack's objects for `shape` (`Attached` or `Moved`), as
    /// `reply` reports them, besides the workspace's own network.
    fn check_attached(&self, shape: Shape, reply: &Answer) -> Result<(), String> {
        let net = &self.lab.aws.networks[0];
        let (relay, level) = match shape {
            Shape::Moved => (&self.lab.new_relay, PrivateAccessLevel::Endpoint),
            _ => (&net.relay_vpce_id, PrivateAccessLevel::Account),
        };
        let account = self.account();
        let fail = |what: &str| Err(format!("{what}; account: {account}"));
        let regs = &account.vpc_endpoints;
        let mut want = vec![net.rest_vpce_id.clone(), relay.clone()];
        want.sort();
        if account.registered_vpces() != want
            || !regs.iter().all(|r| self.owned(&r.vpc_endpoint_name))
        {
            return fail(&format!("expected owned registrations of {want:?}"));
        }
        let reg_id = |vpce: &str| {
            account
                .registration_of(vpce)
                .map(|r| r.vpc_endpoint_id.clone())
                .unwrap_or_default()
        };
        let (rest_id, relay_id) = (reg_id(&net.rest_vpce_id), reg_id(relay));
        if reply.data("RestApiVpcEndpointRegistrationId") != rest_id
            || reply.data("RelayVpcEndpointRegistrationId") != relay_id
        {
            return fail(&format!(
                "the answer reports other registrations: {:#}",
                reply.response
            ));
        }
        let pas = &account.private_access_settings;
        if pas.len() != 1
            || !self.owned(&pas[0].private_access_settings_name)
            || pas[0].private_access_level != level
            || pas[0].private_access_settings_id != reply.data("PrivateAccessSettingsId")
        {
            return fail(&format!(
                "expected one owned {level:?} private access settings, the answer's"
            ));
        }
        let networks = &account.networks;
        let ours: Vec<&Network> = networks
            .iter()
            .filter(|n| n.network_id != self.original_network)
            .collect();
        let endpoints = ours
            .first()
            .and_then(|n| n.vpc_endpoints.clone())
            .unwrap_or_default();
        if networks.len() != 2
            || ours.len() != 1
            || !self.owned(&ours[0].network_name)
            || endpoints.rest_api != [rest_id]
            || endpoints.dataplane_relay != [relay_id]
        {
            return fail(
                "expected the workspace's own network and one owned copy with both endpoints",
            );
        }
        let ws = self.workspace_now();
        if ws.network_id.as_deref() != Some(ours[0].network_id.as_str())
            || ws.private_access_settings_id.as_deref()
                != Some(pas[0].private_access_settings_id.as_str())
            || ws.workspace_status != WorkspaceStatus::Running
            || reply.data("AttachedWorkspaceIds") != self.workspace.to_string()
        {
            return fail("the workspace does not use the owned network and settings");
        }
        Ok(())
    }
}

/// The last lines of a Lambda's output, for failure messages.
fn tail(lambda: &Lambda, lines: usize) -> String {
    let logs = lambda.logs();
    let all: Vec<&str> = logs.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Part 1: Databricks faults at every step of Create, Update and Delete.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Create,
    Update,
    Delete,
}

/// One step of an operation, as the requests that carry it: method and a path fragment.
#[derive(Clone, Copy, Debug)]
struct Step {
    name: &'static str,
    method: &'static str,
    path: &'static str,
}

const TOKEN: Step = Step {
    name: "token endpoint",
    method: "POST",
    path: "/v1/token",
};
/// The first GET of `/vpc-endpoints` is always the list.
const LIST: Step = Step {
    name: "list registrations",
    method: "GET",
    path: "/vpc-endpoints",
};
const REGISTER: Step = Step {
    name: "create registration",
    method: "POST",
    path: "/vpc-endpoints",
};
const ACCEPTANCE: Step = Step {
    name: "get registration (acceptance)",
    method: "GET",
    path: "/vpc-endpoints/",
};
const CREATE_PAS: Step = Step {
    name: "create private access settings",
    method: "POST",
    path: "/private-access-settings",
};
const REPLACE_PAS: Step = Step {
    name: "replace private access settings",
    method: "PUT",
    path: "/private-access-settings/",
};
const CREATE_NETWORK: Step = Step {
    name: "create network",
    method: "POST",
    path: "/networks",
};
const PATCH_WORKSPACE: Step = Step {
    name: "PATCH workspace",
    method: "PATCH",
    path: "/workspaces/",
};
const DELETE_NETWORK: Step = Step {
    name: "delete network",
    method: "DELETE",
    path: "/networks/",
};
const DELETE_PAS: Step = Step {
    name: "delete private access settings",
    method: "DELETE",
    path: "/private-access-settings/",
};
const DELETE_REGISTRATION: Step = Step {
    name: "delete registration",
    method: "DELETE",
    path: "/vpc-endpoints/",
};

const CREATE_STEPS: [Step; 7] = [
    TOKEN,
    LIST,
    REGISTER,
    ACCEPTANCE,
    CREATE_PAS,
    CREATE_NETWORK,
    PATCH_WORKSPACE,
];
/// An Update that moves the relay and the access level: it registers the new relay, replaces
/// the settings, copies the network again, re-points the workspace and removes what it replaced.
const UPDATE_STEPS: [Step; 9] = [
    TOKEN,
    LIST,
    REGISTER,
    ACCEPTANCE,
    REPLACE_PAS,
    CREATE_NETWORK,
    PATCH_WORKSPACE,
    DELETE_NETWORK,
    DELETE_REGISTRATION,
];
const DELETE_STEPS: [Step; 5] = [TOKEN, LIST, DELETE_NETWORK, DELETE_PAS, DELETE_REGISTRATION];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// 429 with `Retry-After: 1`, once.
    Throttled429RetryAfter,
    /// 429 without `Retry-After`, twice.
    Throttled429,
    /// 503 with a JSON body, twice.
    Unavailable503,
    /// 500 with an empty body (not retried, as the SDKs do not).
    Internal500Empty,
    /// 400 with a plain-text `CODE: message` body.
    PlainText400,
    /// 502 with an HTML page, on every attempt: only the deadline ends it.
    Html502Always,
    /// The connection closes without an answer, twice.
    Dropped,
    /// No answer at all, once: the attempt times out and is retried.
    Hang,
    /// The relay registration never leaves `pendingAcceptance`.
    PendingForever,
    /// AWS rejects the relay endpoint's connection.
    Rejected,
    /// Token endpoint only: 401 `invalid_client` on every attempt, as for a deleted or rotated
    /// OAuth secret.
    CredentialsRevoked,
}

const KINDS: [Fault; 8] = [
    Fault::Throttled429RetryAfter,
    Fault::Throttled429,
    Fault::Unavailable503,
    Fault::Internal500Empty,
    Fault::PlainText400,
    Fault::Html502Always,
    Fault::Dropped,
    Fault::Hang,
];

const HTML_PAGE: &str = "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1><pre>upstream connect error or disconnect/reset before headers</pre><script>var tracking = 1;</script></body></html>";

impl Fault {
    fn spec(self, step: Step) -> Option<FaultSpec> {
        let (kind, times) = match self {
            Fault::Throttled429RetryAfter => (
                FaultKind::Status {
                    status: 429,
                    retry_after: Some(1),
                    body: FaultBody::Json {
                        error_code: "REQUEST_LIMIT_EXCEEDED".into(),
                        message: "Too many requests, retry later".into(),
                    },
                },
                1,
            ),
            Fault::Throttled429 => (
                FaultKind::status_json(429, "REQUEST_LIMIT_EXCEEDED", "Too many requests"),
                2,
            ),
            Fault::Unavailable503 => (
                FaultKind::status_json(503, "TEMPORARILY_UNAVAILABLE", "The service is busy"),
                2,
            ),
            Fault::Internal500Empty => (
                FaultKind::Status {
                    status: 500,
                    retry_after: None,
                    body: FaultBody::Empty,
                },
                1,
            ),
            Fault::PlainText400 => (
                FaultKind::Status {
                    status: 400,
                    retry_after: None,
                    body: FaultBody::PlainText(
                        "MALFORMED_REQUEST: Could not parse request object".into(),
                    ),
                },
                1,
            ),
            Fault::Html502Always => (
                FaultKind::Status {
                    status: 502,
                    retry_after: None,
                    body: FaultBody::Html(HTML_PAGE.into()),
                },
                LASTING,
            ),
            Fault::CredentialsRevoked => (
                FaultKind::Status {
                    status: 401,
                    retry_after: None,
                    // The OAuth error shape (RFC 6749 §5.2), not the account API's.
                    body: FaultBody::PlainText(
                        r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#
                            .into(),
                    ),
                },
                LASTING,
            ),
            Fault::Dropped => (FaultKind::Drop, 2),
            Fault::Hang => (FaultKind::Hang, 1),
            Fault::PendingForever | Fault::Rejected => return None,
        };
        Some(
            FaultSpec::new(kind)
                .method(step.method)
                .path_contains(step.path)
                .times(times),
        )
    }

    fn timeout(self) -> Duration {
        match self {
            Fault::Html502Always | Fault::PendingForever => SHORT_TIMEOUT,
            _ => TIMEOUT,
        }
    }
}

/// How often a fault that lasts is armed: more than any deadline lets the client try.
const LASTING: u32 = 10_000;

/// The fault was met as armed, every time for a passing one, at least once for one that lasts;
/// otherwise the case would show nothing.
fn check_met(state: &StateHandle, step: Step, spec: &FaultSpec) -> Result<(), String> {
    let status = match &spec.kind {
        FaultKind::Status { status, .. } => *status,
        // Drop and Hang are logged without a status.
        _ => 0,
    };
    let hits = state
        .request_log()
        .iter()
        .filter(|r| r.method == step.method && r.path.contains(step.path) && r.status == status)
        .count();
    let met = if spec.times >= LASTING {
        hits >= 1
    } else {
        hits == spec.times as usize
    };
    if met {
        Ok(())
    } else {
        Err(format!(
            "the fault was met {hits} times, armed {}: {:?}",
            spec.times,
            state.request_counts()
        ))
    }
}

/// What CloudFormation must be told.
#[derive(Debug)]
enum Expect {
    Success,
    /// FAILED, with a reason mentioning one of these.
    Failed(&'static [&'static str]),
    /// Delete only: the credentials count as unusable, so nothing could be checked; SUCCESS
    /// with an error-level log naming the ownership key, and the objects stay.
    GivesUpWithErrorLog,
}

const DEADLINE_NEEDLES: &[&str] = &["before the invocation deadline", "timed out while"];

fn expect(op: Op, step: Step, fault: Fault) -> Expect {
    let token = step.path == TOKEN.path;
    match fault {
        Fault::Throttled429RetryAfter
        | Fault::Throttled429
        | Fault::Unavailable503
        | Fault::Dropped
        | Fault::Hang => Expect::Success,
        Fault::Internal500Empty if token => Expect::Failed(&["OAuth token request failed (500)"]),
        Fault::Internal500Empty => Expect::Failed(&["failed (500): Internal Server Error"]),
        // A 400 without an OAuth credentials error says nothing about the credentials: even a
        // Delete fails (and the Delete CloudFormation sends next cleans up) rather than give up.
        Fault::PlainText400 if token => {
            Expect::Failed(&["OAuth token request failed (400 MALFORMED_REQUEST)"])
        }
        Fault::PlainText400 => {
            Expect::Failed(&["failed (400 MALFORMED_REQUEST): Could not parse request object"])
        }
        Fault::Html502Always => Expect::Failed(DEADLINE_NEEDLES),
        Fault::PendingForever => Expect::Failed(&[
            "pendingAcceptance",
            "timed out while waiting for Databricks to accept",
        ]),
        Fault::Rejected => Expect::Failed(&["rejected"]),
        // Credentials that will never work: a Delete cannot check anything and gives up.
        Fault::CredentialsRevoked if op == Op::Delete => Expect::GivesUpWithErrorLog,
        Fault::CredentialsRevoked => {
            Expect::Failed(&["rejected the service principal credentials (401 invalid_client)"])
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Case {
    op: Op,
    step: Step,
    fault: Fault,
}

fn table(op: Op, steps: &[Step]) -> Vec<Case> {
    let mut cases: Vec<Case> = steps
        .iter()
        .flat_map(|&step| KINDS.iter().map(move |&fault| Case { op, step, fault }))
        .collect();
    cases.push(Case {
        op,
        step: TOKEN,
        fault: Fault::CredentialsRevoked,
    });
    if op != Op::Delete {
        for fault in [Fault::PendingForever, Fault::Rejected] {
            cases.push(Case {
                op,
                step: ACCEPTANCE,
                fault,
            });
        }
    }
    cases
}

/// Plays one case: the setup CloudFormation would have done, the faulted request, the request
/// CloudFormation sends next, and the checks on the account after each.
async fn play(case: Case) -> Result<(), String> {
    let bench = Bench::new().await;
    let result = play_on(&bench, case).await;
    result.map_err(|e| {
        format!(
            "{e}\n--- last Lambda output ---\n{}",
            tail(&bench.lambda, 25)
        )
    })
}

async fn play_on(bench: &Bench, case: Case) -> Result<(), String> {
    use RequestType::{Create, Delete, Update};
    let state = bench.emulator.state();
    let (shape, old) = match case.op {
        Op::Create => (Shape::Attached, None),
        Op::Update => (Shape::Moved, Some(Shape::Attached)),
        Op::Delete => (Shape::SharedNetwork, None),
    };
    if case.op != Op::Create {
        let setup_shape = old.unwrap_or(shape);
        let created = bench
            .send(Create, bench.props(setup_shape), None, TIMEOUT)
            .await;
        created
            .check_success()
            .map_err(|e| format!("setup Create: {e}"))?;
        // The next request must fetch a token again, as a cold container or an expired token
        // would, so the token endpoint's faults are met.
        state.revoke_tokens();
    }
    let target = match case.fault {
        Fault::PendingForever | Fault::Rejected if case.op == Op::Update => &bench.lab.new_relay,
        _ => &bench.lab.aws.networks[0].relay_vpce_id,
    };
    match case.fault {
        Fault::PendingForever => state.set_endpoint_state(target, Some("pendingAcceptance")),
        Fault::Rejected => state.set_endpoint_state(target, Some("rejected")),
        _ => {}
    }
    let spec = case.fault.spec(case.step);
    if let Some(spec) = &spec {
        state.inject_fault(spec.clone());
    }

    let request_type = match case.op {
        Op::Create => Create,
        Op::Update => Update,
        Op::Delete => Delete,
    };
    let reply = bench
        .send(
            request_type,
            bench.props(shape),
            old.map(|s| bench.props(s)),
            case.fault.timeout(),
        )
        .await;
    let expected = expect(case.op, case.step, case.fault);
    match &expected {
        Expect::Success | Expect::GivesUpWithErrorLog => reply.check_success(),
        Expect::Failed(needles) => reply.check_failed(needles),
    }
    .map_err(|e| format!("the faulted {:?}: {e}", case.op))?;
    if let Some(spec) = &spec {
        check_met(&state, case.step, spec)?;
    }
    if reply.physical_id() != bench.physical_id() {
        return Err(format!(
            "PhysicalResourceId {:?}, expected {:?}",
            reply.physical_id(),
            bench.physical_id()
        ));
    }
    // Faults are over by the time CloudFormation sends its next request.
    state.clear_faults();

    match (case.op, &expected) {
        (Op::Create, Expect::Success) => bench.check_attached(Shape::Attached, &reply),
        (Op::Create, _) => {
            bench
                .delete_leaves_nothing(shape, "the rollback Delete")
                .await
        }
        (Op::Update, Expect::Success) => bench.check_attached(Shape::Moved, &reply),
        (Op::Update, _) => {
            let rolled_back = bench
                .send(
                    Update,
                    bench.props(Shape::Attached),
                    Some(bench.props(Shape::Moved)),
                    TIMEOUT,
                )
                .await;
            rolled_back
                .check_success()
                .map_err(|e| format!("the rollback Update: {e}"))?;
            bench.check_attached(Shape::Attached, &rolled_back)
        }
        (Op::Delete, Expect::Success) => bench.check_nothing_owned(),
        (Op::Delete, Expect::GivesUpWithErrorLog) => {
            let key = bench.key.as_str();
            let logged = bench.lambda.logs().lines().any(|l| {
                l.contains(r#""level":"ERROR""#) && l.contains(key) && l.contains("unusable")
            });
            if !logged {
                return Err(format!(
                    "no error-level log line names the ownership key {key}"
                ));
            }
            if bench.registrations().len() != 2 {
                return Err("the objects were expected to stay".into());
            }
            Ok(())
        }
        // CloudFormation reports DELETE_FAILED; the user retries the Delete.
        (Op::Delete, _) => {
            bench
                .delete_leaves_nothing(shape, "the retried Delete")
                .await
        }
    }
}

/// Runs the cases a few at a time and reports every failure at once.
async fn run_table(cases: Vec<Case>) {
    let count = cases.len();
    let started = Instant::now();
    let failures: Vec<String> = futures_util::stream::iter(cases)
        .map(|case| async move {
            play(case)
                .await
                .err()
                .map(|e| format!("{:?} / {} / {:?}: {e}", case.op, case.step.name, case.fault))
        })
        .buffer_unordered(LANES)
        .filter_map(|f| async move { f })
        .collect()
        .await;
    eprintln!("{count} cases in {:?}", started.elapsed());
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databricks_faults_at_every_step_of_create() {
    run_table(table(Op::Create, &CREATE_STEPS)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databricks_faults_at_every_step_of_update() {
    run_table(table(Op::Update, &UPDATE_STEPS)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databricks_faults_at_every_step_of_delete() {
    run_table(table(Op::Delete, &DELETE_STEPS)).await;
}

// ---------------------------------------------------------------------------------------------
// Part 2: faults on the AWS side.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_answer_is_put_again_and_a_forbidden_one_is_logged_without_a_crash() {
    use RequestType::{Create, Delete};
    let bench = Bench::new().await;

    // S3 refuses twice with 503: the same document is PUT again until it is accepted.
    let sink = RecordingSink::start().await;
    sink.fail_next(2, 503);
    let event = bench.event(Create, bench.props(Shape::Attached), None, &sink);
    let created = deliver_event(&bench.lambda, &sink, event, TIMEOUT).await;
    let statuses: Vec<u16> = created.puts.iter().map(|p| p.status).collect();
    assert_eq!(statuses, [503, 503, 200], "{created:?}");
    assert!(
        created.puts.iter().all(|p| p.body == created.puts[2].body),
        "every attempt carries the same document"
    );
    created.check_success().unwrap();
    bench.check_attached(Shape::Attached, &created).unwrap();

    // A 403 (an expired presigned URL) is final: one attempt, an error in the log, and the
    // invocation still returns normally so Lambda does not run the Delete again.
    let sink = RecordingSink::start().await;
    sink.fail_next(1, 403);
    let event = bench.event(Delete, bench.props(Shape::Plain), None, &sink);
    let refused = deliver_event(&bench.lambda, &sink, event, TIMEOUT).await;
    assert_eq!(
        refused.puts.iter().map(|p| p.status).collect::<Vec<_>>(),
        [403],
        "a 403 is not retried"
    );
    assert_eq!(refused.status(), "SUCCESS", "{:#}", refused.response);
    assert!(
        matches!(refused.invocation, InvocationResult::Response(_)),
        "{:?}",
        refused.invocation
    );
    assert!(
        bench
            .lambda
            .wait_for_log("CloudFormation was not answered", Duration::from_secs(5))
            .await,
        "{}",
        bench.lambda.logs()
    );
    let logs = bench.lambda.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("CloudFormation was not answered"))
        .unwrap_or_default();
    assert!(line.contains(r#""level":"ERROR""#), "{line}");
    assert!(
        !line.contains("X-Amz-Signature="),
        "the presigned query string stays out of the log: {line}"
    );

    // The process is still there and answers the next request.
    let again = bench
        .send(Delete, bench.props(Shape::Plain), None, TIMEOUT)
        .await;
    again.check_success().unwrap();
    assert!(bench.lambda.process.exit_status().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_secrets_fail_a_create_without_quoting_them_and_let_a_delete_go() {
    use RequestType::{Create, Delete};
    const MARKER: &str = "Zq7-not-for-your-eyes-Zq7";
    let bench = Bench::new().await;
    let moto = Moto::shared();
    let created = Setup::new(REGION)
        .secret(
            &crate::support::unique_name("faults-not-json"),
            &format!("client_id=emulator-client client_secret={MARKER}"),
        )
        .secret(
            &crate::support::unique_name("faults-no-field"),
            &json!({"client_id": CLIENT_ID, "clientSecret": MARKER}).to_string(),
        )
        .run(moto)
        .await;
    let missing = format!(
        "arn:aws:secretsmanager:{REGION}:123456789012:secret:{}-AbCdEf",
        crate::support::unique_name("faults-missing")
    );
    let secrets = [
        (missing.as_str(), "does not exist"),
        (created.secret_arns[0].as_str(), "is not JSON"),
        (
            created.secret_arns[1].as_str(),
            "has no non-empty string field \"client_secret\"",
        ),
    ];

    // The stack's objects exist (made with the good secret) when the secret goes bad.
    let good = bench
        .send(Create, bench.props(Shape::Plain), None, TIMEOUT)
        .await;
    good.check_success().unwrap();
    let writes = bench.writes();

    for (arn, needle) in secrets {
        let mut props = bench.props(Shape::Plain);
        props["CredentialsSecretArn"] = json!(arn);
        let failed = bench.send(Create, props.clone(), None, TIMEOUT).await;
        failed.check_failed(&[needle]).unwrap();
        assert!(failed.reason().contains(arn), "{}", failed.reason());
        assert!(!failed.reason().contains(MARKER), "{}", failed.reason());

        // Nothing can be checked without credentials: the Delete succeeds, so the stack is not
        // stuck, and an error names the ownership key so a person can find the objects.
        let deleted = bench.send(Delete, props, None, TIMEOUT).await;
        deleted.check_success().unwrap();
    }
    assert_eq!(
        bench.writes(),
        writes,
        "nothing was written with a bad secret"
    );
    let key = bench.key.as_str();
    let logs = bench.lambda.logs();
    let errors = logs
        .lines()
        .filter(|l| l.contains(r#""level":"ERROR""#) && l.contains(key) && l.contains("unusable"))
        .count();
    assert_eq!(
        errors, 3,
        "one error naming the ownership key per Delete:\n{logs}"
    );
    assert!(!logs.contains(MARKER), "the secret text reached the log");
    assert!(
        !logs.contains(CLIENT_SECRET),
        "the secret text reached the log"
    );
    assert_eq!(
        bench.registrations().len(),
        2,
        "the objects stay until a Delete can see them"
    );

    // With the secret fixed, the next Delete removes them.
    bench
        .delete_leaves_nothing(Shape::Plain, "the Delete")
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Part 3: delivery faults.
// ---------------------------------------------------------------------------------------------

/// Successful deletes the emulator answered, by path.
fn deletes_done(bench: &Bench) -> Vec<String> {
    let mut done: Vec<String> = bench
        .emulator
        .state()
        .request_log()
        .iter()
        .filter(|r| r.method == "DELETE" && r.status == 200)
        .map(|r| r.path.clone())
        .collect();
    done.sort();
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_delete_delivered_twice_at_once_and_again_in_a_row_removes_everything_once() {
    use RequestType::{Create, Delete};
    let bench = Bench::new().await;
    let second = bench.start_lambda().await;
    let props = bench.props(Shape::SharedNetwork);
    bench
        .send(Create, props.clone(), None, TIMEOUT)
        .await
        .check_success()
        .unwrap();
    let owned =
        bench.registrations().len() + bench.access_settings().len() + bench.networks().len() - 1;
    assert_eq!(owned, 4, "two registrations, settings, a network");

    let (a, b) = tokio::join!(
        bench.send(Delete, props.clone(), None, TIMEOUT),
        bench.send_via(&second, Delete, props.clone(), None, TIMEOUT),
    );
    a.check_success().unwrap();
    b.check_success().unwrap();
    bench.check_nothing_owned().unwrap();
    let done = deletes_done(&bench);
    assert_eq!(done.len(), owned, "each object deleted once: {done:?}");
    let mut distinct = done.clone();
    distinct.dedup();
    assert_eq!(distinct, done);

    let again = bench.send(Delete, props, None, TIMEOUT).await;
    again.check_success().unwrap();
    assert_eq!(deletes_done(&bench), done, "nothing left to delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_update_delivered_twice_at_once_and_again_in_a_row_converges_on_one_state() {
    use RequestType::{Create, Update};
    let bench = Bench::new().await;
    let second = bench.start_lambda().await;
    bench
        .send(Create, bench.props(Shape::Attached), None, TIMEOUT)
        .await
        .check_success()
        .unwrap();

    let update = || {
        (
            bench.props(Shape::Moved),
            Some(bench.props(Shape::Attached)),
        )
    };
    let ((new_a, old_a), (new_b, old_b)) = (update(), update());
    let (a, b) = tokio::join!(
        bench.send(Update, new_a, old_a, TIMEOUT),
        bench.send_via(&second, Update, new_b, old_b, TIMEOUT),
    );
    a.check_success().unwrap();
    b.check_success().unwrap();
    // Both deliveries switch the workspace, each at its own moment, and ReadyAfter is 20 minutes
    // after the switch each one made: equal but for those moments.
    let (mut data_a, mut data_b) = (a.response["Data"].clone(), b.response["Data"].clone());
    let ready = |data: &mut Value| data["ReadyAfter"].take();
    let (ready_a, ready_b) = (ready(&mut data_a), ready(&mut data_b));
    assert_eq!(data_a, data_b, "both answer the same");
    let apart = crate::scenario::seconds_apart(
        ready_a.as_str().unwrap_or_default(),
        ready_b.as_str().unwrap_or_default(),
    );
    assert!(
        apart <= 10,
        "ReadyAfter {ready_a} and {ready_b} are {apart} s apart"
    );
    bench.check_attached(Shape::Moved, &a).unwrap();

    let writes = bench.writes();
    let (new, old) = update();
    let again = bench.send(Update, new, old, TIMEOUT).await;
    again.check_success().unwrap();
    assert_eq!(
        again.response["Data"]["PrivateAccessSettingsId"],
        a.response["Data"]["PrivateAccessSettingsId"]
    );
    assert_eq!(bench.writes(), writes, "a repeated Update writes nothing");
    bench.check_attached(Shape::Moved, &again).unwrap();
}

/// Where the Create is when CloudFormation gives up on it and sends the Delete.
#[derive(Clone, Copy, Debug)]
enum CancelledAt {
    /// Waiting for Databricks to accept the endpoints: the registrations exist.
    WaitingForAcceptance,
    /// Creating the private access settings, which land after the Delete listed the account.
    CreatingAccessSettings,
}

/// CloudFormation gives up on a Create still running (the stack rolls back) and sends a Delete
/// with an id it made up; the Delete runs in another Lambda process at the same time. Once both
/// have finished, nothing of the Create is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_cancelled_by_a_concurrent_delete_leaves_nothing_behind() {
    use RequestType::Create;
    for at in [
        CancelledAt::WaitingForAcceptance,
        CancelledAt::CreatingAccessSettings,
    ] {
        let bench = Bench::new().await;
        let second = bench.start_lambda().await;
        let state = bench.emulator.state();
        let step = match at {
            CancelledAt::WaitingForAcceptance => {
                state.set_endpoint_state(
                    &bench.lab.aws.networks[0].relay_vpce_id,
                    Some("pendingAcceptance"),
                );
                "waiting for Databricks to accept the VPC endpoints"
            }
            CancelledAt::CreatingAccessSettings => {
                state.inject_fault(
                    FaultSpec::new(FaultKind::Latency(Duration::from_secs(3)))
                        .method("POST")
                        .path_contains("/private-access-settings"),
                );
                "creating or updating the private access settings"
            }
        };
        let props = bench.props(Shape::Plain);
        let create = bench.send(Create, props.clone(), None, TIMEOUT);
        let cancel = async {
            assert!(
                bench.lambda.wait_for_log(step, TIMEOUT).await,
                "{at:?}: the Create never got to {step:?}"
            );
            bench.send_cancelling_delete(&second, props.clone()).await
        };
        let (created, deleted) = tokio::join!(create, cancel);
        deleted
            .check_success()
            .unwrap_or_else(|e| panic!("{at:?}: the Delete: {e}"));
        assert_eq!(deleted.physical_id(), GENERATED_ID);
        // Nobody waits for the Create's answer any more; it still comes in time, and says the
        // Create did not stand.
        let needle = match at {
            CancelledAt::WaitingForAcceptance => "get VPC endpoint registration failed (404",
            CancelledAt::CreatingAccessSettings => {
                "the resource was deleted while this Create was still running"
            }
        };
        created
            .check_failed(&[needle])
            .unwrap_or_else(|e| panic!("{at:?}: the Create: {e}"));
        bench.check_nothing_owned().unwrap_or_else(|e| {
            panic!(
                "{at:?}: the Create answered {:#}\n{e}\n{}",
                created.response,
                tail(&bench.lambda, 30)
            )
        });
    }
}

/// Where a Create is held up when CloudFormation cancels it and its Delete runs to the end.
#[derive(Clone, Copy, Debug)]
enum HeldUp {
    /// Signing in (the token comes 6 s late): the Create asks again before writing, as checking
    /// and signing in took long, and writes nothing.
    SigningIn,
    /// Listing the account (the list comes 6 s late): no second question before writing, so
    /// the Create builds everything, then asks before answering and removes it all.
    Listing,
}

/// A Delete that runs entirely before the Create's first write finds nothing to remove. Only
/// CloudFormation knows that nobody waits for that Create any more: moto's stack here holds the
/// custom resource `CREATE_IN_PROGRESS` until CloudFormation cancels it (deletes the stack), as
/// the real service does. Either way nothing is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_cancelled_before_its_first_write_leaves_nothing() {
    for held_up in [HeldUp::SigningIn, HeldUp::Listing] {
        cancelled_before_first_write(held_up).await;
    }
}

async fn cancelled_before_first_write(held_up: HeldUp) {
    use RequestType::Create;
    let bench = Bench::new().await.in_moto_stack().await;
    let second = bench.start_lambda().await;
    // Only the Create's request is held up; the Delete's comes at once.
    let (method, path, step, needle) = match held_up {
        HeldUp::SigningIn => (
            "POST",
            "/v1/token",
            "signing in to the Databricks account",
            "nothing was made",
        ),
        HeldUp::Listing => (
            "GET",
            "/vpc-endpoints",
            "listing the account's VPC endpoint registrations",
            "everything it made was removed again",
        ),
    };
    bench.emulator.state().inject_fault(
        FaultSpec::new(FaultKind::Latency(Duration::from_secs(6)))
            .method(method)
            .path_contains(path),
    );
    let props = bench.props(Shape::Plain);
    let create = bench.send(Create, props.clone(), None, TIMEOUT);
    let cancel = async {
        assert!(
            bench.lambda.wait_for_log(step, TIMEOUT).await,
            "{held_up:?}"
        );
        // CloudFormation marks the resource for deletion, then sends the Delete with an id of
        // its own making.
        assert_eq!(bench.cancel_in_moto().await, "DELETE_COMPLETE");
        let deleted = bench.send_cancelling_delete(&second, props.clone()).await;
        (deleted, bench.writes())
    };
    let (created, (deleted, writes_when_deleted)) = tokio::join!(create, cancel);
    deleted.check_success().unwrap();
    assert_eq!(writes_when_deleted, 0, "{held_up:?}: the Delete ran first");
    let reason = created.reason();
    assert!(
        created.status() == "FAILED"
            && reason.contains(
                "CloudFormation no longer waits for this Create (its resource is DELETE_COMPLETE"
            )
            && reason.contains(needle),
        "{held_up:?}: {:#}",
        created.response
    );
    created.check_answered_in_time().unwrap();
    match held_up {
        HeldUp::SigningIn => assert_eq!(bench.writes(), 0, "nothing was written"),
        HeldUp::Listing => assert!(bench.writes() > 0, "the Create built, then removed"),
    }
    bench.check_nothing_owned().unwrap_or_else(|e| {
        panic!("{held_up:?}: {e}\n{}", tail(&bench.lambda, 30));
    });
    assert!(bench.registrations().is_empty());
    assert!(bench.access_settings().is_empty());
}

/// A Create delivered after CloudFormation gave up on it (its Delete already done) writes
/// nothing at all: the question is asked side by side with the AWS checks, before any write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_cloudformation_gave_up_on_before_it_started_writes_nothing() {
    use RequestType::Create;
    let bench = Bench::new().await.in_moto_stack().await;
    assert_eq!(bench.cancel_in_moto().await, "DELETE_COMPLETE");
    let created = bench
        .send(Create, bench.props(Shape::Attached), None, TIMEOUT)
        .await;
    created
        .check_failed(&[
            "CloudFormation no longer waits for this Create (its resource is DELETE_COMPLETE",
            "nothing was made",
        ])
        .unwrap();
    assert_eq!(bench.writes(), 0);
    assert_eq!(
        bench.workspace_now().network_id,
        Some(bench.original_network.clone())
    );
}

/// The question never turns an answer CloudFormation waits for into a failure: a Create of a
/// resource moto holds `CREATE_IN_PROGRESS` succeeds. Once moto has that answer the resource is
/// `CREATE_COMPLETE`, and a late duplicate of the same Create writes nothing and removes nothing
/// (converging on the Create's properties could undo a later Update); its answer, which nobody
/// reads, says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_cloudformation_waits_for_stands_and_its_late_duplicate_changes_nothing() {
    use RequestType::{Create, Delete};
    let bench = Bench::new().await.in_moto_stack().await;
    let props = bench.props(Shape::Attached);
    let first = bench.send(Create, props.clone(), None, TIMEOUT).await;
    first.check_success().unwrap();
    assert!(
        bench
            .lambda
            .logs()
            .contains("checking that CloudFormation still waits for this Create"),
        "the Create asked before answering"
    );
    let status = crate::support::fixtures::answer_stack(
        Moto::shared(),
        REGION,
        &bench.stack.stack_id,
        LOGICAL_ID,
        &first.response,
    )
    .await;
    assert_eq!(status, "CREATE_COMPLETE");

    let writes = bench.writes();
    let again = bench.send(Create, props.clone(), None, TIMEOUT).await;
    again
        .check_failed(&[
            "CloudFormation already has an answer for this Create (its resource is CREATE_COMPLETE)",
            "changed nothing",
        ])
        .unwrap();
    assert_eq!(bench.writes(), writes, "the duplicate changed nothing");
    assert_eq!(bench.registrations().len(), 2);
    assert_eq!(bench.access_settings().len(), 1);

    bench
        .send(Delete, props, None, TIMEOUT)
        .await
        .check_success()
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Part 4: the deadline.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invocation_with_five_seconds_answers_failed_in_time_naming_the_step() {
    use RequestType::Create;
    let bench = Bench::new().await;
    bench.emulator.state().inject_fault(
        FaultSpec::new(FaultKind::Hang)
            .method("GET")
            .path_contains("/vpc-endpoints")
            .times(1_000),
    );
    let failed = bench
        .send(
            Create,
            bench.props(Shape::Plain),
            None,
            Duration::from_secs(5),
        )
        .await;
    failed
        .check_failed(&[
            "timed out while listing the account's VPC endpoint registrations",
            "list VPC endpoint registrations did not succeed before the invocation deadline",
        ])
        .unwrap();
    assert!(
        failed.elapsed < Duration::from_secs(5),
        "{:?}",
        failed.elapsed
    );

    bench.emulator.state().clear_faults();
    bench
        .delete_leaves_nothing(Shape::Plain, "the Delete")
        .await
        .unwrap();
}
