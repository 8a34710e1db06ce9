//! The domain: what `Custom::DatabricksBackendPrivateLink` owns and how a request converges the
//! Databricks account on it. This is the only module where the CloudFormation protocol, the AWS
//! calls and the Databricks client meet.

mod access;
mod cluster;
mod converge;
mod create;
mod delete;
mod egress;
mod endpoints;
mod error;
mod hold;
mod names;
mod networks;
mod ownership;
mod pair;
mod prepare;
mod properties;
mod readiness;
mod ready;
mod verification;
mod watch;
mod workspaces;

pub use properties::{Defaults, Identity};

/// The narrow entry the integration tests (`tests/integration/`) read the domain's decisions
/// through, so that its modules stay private to the crate: the attributes every answer carries,
/// the ownership key in object names, the properties as the handler reads them, and how a time is
/// written in an attribute. Nothing here is for the binary.
#[doc(hidden)]
pub mod testing {
    pub use super::converge::{ALWAYS_RETURNED, RETURNED_WITH_NETWORK};
    pub use super::names::OwnershipKey;
    pub use super::properties::{Defaults, Identity, parse, parse_lenient};
    pub use super::ready::iso8601;
}

use std::borrow::Cow;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::aws::{Ec2, Functions, Secrets, Stacks, VpcEndpointInfo};
use crate::cfn::request::HandOver;
use crate::cfn::{CfnRequest, Outcome, Progress, RequestType, ResourceHandler};
use crate::databricks::{AccountClient, DatabricksHttp};

use converge::{Converged, converge};
use delete::Created;
use error::ResourceError;
use names::OwnershipKey;
use pair::EndpointPair;
use properties::Properties;
use watch::{Abandoned, Waiting, still_waited_for};

/// When checking the VPC endpoints and signing in took longer than this, CloudFormation is asked
/// again whether it still waits before anything is written.
const ASK_AGAIN_AFTER: Duration = Duration::from_secs(2);

/// Everything a request needs, built once at init and shared by every invocation.
pub struct Handler {
    pub ec2: Ec2,
    pub secrets: Secrets,
    /// Asked whether CloudFormation still waits for a Create; `None` under `sam local invoke`,
    /// where no stack does.
    pub stacks: Option<Stacks>,
    pub http: DatabricksHttp,
    pub defaults: Defaults,
    /// Invokes the verifier function (`VerifyFunctionArn`), and this function itself to hand a
    /// held answer on (`WaitUntilReady`).
    pub functions: Functions,
    /// This function's name (`AWS_LAMBDA_FUNCTION_NAME`); `None` outside Lambda, where a held
    /// answer cannot be handed on, so none is held.
    pub self_function: Option<String>,
}

impl Handler {
    /// A Create or Update, one named step after the other: validated, prepared while
    /// CloudFormation is asked whether it still waits, converged, checked for abandonment, the
    /// previous account cleaned, then answered or held.
    async fn create_or_update(
        &self,
        req: &CfnRequest,
        progress: &Progress,
        deadline: Instant,
    ) -> Outcome {
        let received_ms = names::epoch_ms() as i64;
        let key = OwnershipKey::new(&req.stack_id, &req.logical_resource_id);
        let physical_id = self.physical_resource_id(req);
        let props = match self.validate(req, progress, deadline) {
            Ok(props) => props,
            Err(reason) => return Outcome::failed(physical_id, reason),
        };
        let create = req.request_type == RequestType::Create;
        let (client, endpoints) = match self
            .prepare_unless_abandoned(req, &props, progress, deadline)
            .await
        {
            Ok(prepared) => prepared,
            Err(reason) => return Outcome::failed(physical_id, reason),
        };
        let created = Created::default();
        let converged = converge(&converge::Context {
            ec2: &self.ec2,
            functions: &self.functions,
            client: &client,
            key: &key,
            props: &props,
            endpoints: &endpoints,
            progress,
            deadline,
            created: &created,
        })
        .await;
        let (vanished, waiting) = self
            .ask_whether_abandoned(req, &client, &converged, progress, deadline)
            .await;
        tracing::info!(
            retries = client.retries_spent(),
            "Databricks account API retries spent"
        );
        let result = match converged {
            Ok(c) => c,
            Err(e) => {
                if create {
                    progress.step("removing what this request created");
                    created.remove(&client).await;
                }
                return Outcome::failed(physical_id, e.to_string());
            }
        };
        if let Some(abandoned) = watch::after_converging(waiting, vanished) {
            return self
                .give_up_create(&client, &key, physical_id, abandoned, progress)
                .await;
        }
        if let Err(reason) = self
            .clean_previous_account(req, &props, &key, progress, deadline)
            .await
        {
            return Outcome::failed(physical_id, reason);
        }
        let data = result.attributes();
        let ready_after = ready_after_to_hold(create, props.wait_until_ready, &result.attached);
        let Some(ready_after_ms) = ready_after.filter(|_| props.wait_until_ready) else {
            return Outcome::success(physical_id, data);
        };
        let held = hold::Held::new(
            physical_id,
            data,
            ready_after_ms,
            received_ms,
            result.workspace_hosts,
        );
        self.hold_first_hop(req, &props, held, progress, deadline)
            .await
    }

    /// The answer held from its first hop on, or given at once when it cannot be held.
    async fn hold_first_hop(
        &self,
        req: &CfnRequest,
        props: &Properties,
        held: hold::Held,
        progress: &Progress,
        deadline: Instant,
    ) -> Outcome {
        match self.hold_parts(req, props) {
            Some(parts) => hold::hold(&parts, req, held, 0, progress, deadline).await,
            None => Outcome::success(held.physical_resource_id, held.data),
        }
    }

    /// The properties, every problem collected into one reason; with `WaitUntilReady`, a hold
    /// this function's timeout cannot carry is the reason to fail.
    fn validate(
        &self,
        req: &CfnRequest,
        progress: &Progress,
        deadline: Instant,
    ) -> Result<Properties, String> {
        progress.step("validating properties");
        let identity = Identity {
            stack_name: req.stack_name(),
            logical_resource_id: &req.logical_resource_id,
        };
        let props = properties::parse(&properties_of(req), &self.defaults, &identity)
            .map_err(|e| e.to_string())?;
        // A hold this function's timeout cannot carry to ReadyAfter within the bounded number
        // of hand-overs is refused now, before anything is written. The deadline is the guard's,
        // `GUARD_MARGIN` before Lambda's, which is the function's timeout after the invocation
        // started.
        if props.wait_until_ready && self.why_not_held(req).is_none() {
            let timeout = deadline.saturating_duration_since(Instant::now())
                + crate::cfn::GUARD_MARGIN
                + Duration::from_millis(500);
            let timeout = Duration::from_secs(timeout.as_secs());
            hold::fits_in_hops(timeout)?;
        }
        Ok(props)
    }

    /// The endpoints checked and the account signed in to, while CloudFormation is asked whether
    /// it still waits; the reason to fail when it does not (nothing is written then) or when
    /// preparing failed.
    async fn prepare_unless_abandoned(
        &self,
        req: &CfnRequest,
        props: &Properties,
        progress: &Progress,
        deadline: Instant,
    ) -> Result<(AccountClient, EndpointPair<VpcEndpointInfo>), String> {
        let stacks = self.stacks.as_ref();
        // Whether CloudFormation still waits is asked side by side with the AWS checks, so it
        // costs no time; a Create it no longer waits for writes nothing.
        let asked = Instant::now();
        let (prepared, mut waiting) = tokio::join!(
            prepare::prepare(
                &self.ec2,
                &self.secrets,
                &self.http,
                props,
                progress,
                deadline
            ),
            still_waited_for(stacks, req, deadline),
        );
        // Retries can make `prepare` slow; the answer from its start may be stale by now.
        if waiting == Waiting::Yes && asked.elapsed() > ASK_AGAIN_AFTER {
            waiting = still_waited_for(stacks, req, deadline).await;
        }
        if let Some(reason) = watch::before_writing(&waiting) {
            return Err(reason);
        }
        prepared.map_err(|e| e.to_string())
    }

    /// For a Create that converged: whether something it reported is gone, and whether
    /// CloudFormation still waits.
    ///
    /// When the stack rolls back while this Create still runs, CloudFormation cancels it and
    /// sends a Delete at once (`docs/cloudformation.md#rollback-delete-after-a-failed-create`),
    /// which another invocation carries out. Objects made after that Delete listed the account
    /// would stay, owned by no stack, while nobody reads this answer. Two signs, asked side by
    /// side: CloudFormation reports the resource failed or deleted, or something reported here
    /// is gone (the Delete removed it).
    async fn ask_whether_abandoned(
        &self,
        req: &CfnRequest,
        client: &AccountClient,
        converged: &Result<Converged, ResourceError>,
        progress: &Progress,
        deadline: Instant,
    ) -> (Option<String>, Waiting) {
        match converged {
            Ok(c) if req.request_type == RequestType::Create => {
                progress.step("checking that CloudFormation still waits for this Create");
                tokio::join!(
                    converge::vanished(client, c),
                    still_waited_for(self.stacks.as_ref(), req, deadline)
                )
            }
            _ => (None, Waiting::Unknown),
        }
    }

    /// On an Update that moved the resource to another account or host: the objects there
    /// removed with the old properties' credentials. The reason to fail when they could not be.
    async fn clean_previous_account(
        &self,
        req: &CfnRequest,
        props: &Properties,
        key: &OwnershipKey,
        progress: &Progress,
        deadline: Instant,
    ) -> Result<(), String> {
        let (RequestType::Update, Some(old)) = (&req.request_type, &req.old_resource_properties)
        else {
            return Ok(());
        };
        let old_target = properties::parse_lenient(old, &self.defaults);
        let moved = old_target.account_id.as_deref() != Some(props.target.account_id.as_str())
            || old_target.account_host.as_deref() != Some(props.target.account_host.as_str());
        if !moved || old_target.account_id.is_none() {
            return Ok(());
        }
        progress.step("removing the objects from the previous account");
        delete::delete_all(
            &self.secrets,
            &self.http,
            key,
            &old_target,
            progress,
            deadline,
        )
        .await
        .map_err(|e| {
            format!(
                "the new account is set up, but the objects in the previous account could not be removed: {e}"
            )
        })
    }

    /// What holding the answer needs, when it can be held: only a CloudFormation request (a
    /// direct caller reads the invocation's result, `sam local invoke` has no stack) in Lambda
    /// (which names this function, to hand the waiting on to).
    fn hold_parts<'a>(
        &'a self,
        req: &CfnRequest,
        props: &'a Properties,
    ) -> Option<hold::HoldParts<'a>> {
        if let Some(why_not) = self.why_not_held(req) {
            tracing::warn!(why_not, "WaitUntilReady is set, but the answer is not held");
            return None;
        }
        match (&self.stacks, &self.self_function) {
            (Some(stacks), Some(name)) => Some(hold::HoldParts {
                ec2: &self.ec2,
                functions: &self.functions,
                stacks: Some(stacks),
                self_function: name,
                props,
            }),
            _ => None,
        }
    }

    /// Why an answer to `req` cannot be held, if it cannot.
    fn why_not_held(&self, req: &CfnRequest) -> Option<&'static str> {
        if req.response_url.is_none() {
            Some("the request has no ResponseURL: the caller reads ReadyAfter and waits itself")
        } else if self.stacks.is_none() {
            Some("under sam local invoke no stack waits")
        } else if self.self_function.is_none() {
            Some("AWS_LAMBDA_FUNCTION_NAME is not set, so the waiting cannot be handed on")
        } else {
            None
        }
    }

    /// A later hop of a held answer: holds it further, or answers.
    async fn resume(
        &self,
        req: &CfnRequest,
        hand_over: &HandOver,
        progress: &Progress,
        deadline: Instant,
    ) -> Outcome {
        let physical_id = self.physical_resource_id(req);
        let identity = Identity {
            stack_name: req.stack_name(),
            logical_resource_id: &req.logical_resource_id,
        };
        let held = hold::held_of(hand_over);
        let props = properties::parse(&properties_of(req), &self.defaults, &identity);
        let (Some(held), Ok(props)) = (held, props) else {
            return Outcome::failed(
                physical_id,
                "internal error: a held answer handed on from an earlier invocation could not be read",
            );
        };
        if req.request_type == RequestType::Delete {
            return Outcome::failed(physical_id, "internal error: a Delete is never held");
        }
        tracing::info!(hop = hand_over.hop, "holding the answer, handed on");
        match self.hold_parts(req, &props) {
            Some(parts) => hold::hold(&parts, req, held, hand_over.hop, progress, deadline).await,
            None => Outcome::success(physical_id, held.data),
        }
    }

    /// Answers a Create nobody waits for: removes what it owns, unless CloudFormation keeps the
    /// resource. Whatever may remain is logged at error level with the ownership key.
    async fn give_up_create(
        &self,
        client: &AccountClient,
        key: &OwnershipKey,
        physical_id: String,
        abandoned: Abandoned,
        progress: &Progress,
    ) -> Outcome {
        let why = abandoned.why;
        let remains = format!("objects whose names contain cfn{} may remain", key.as_str());
        if !abandoned.remove {
            tracing::error!(%why, ownership_key = key.as_str(), "CloudFormation retains the resource, so what this Create made stays; {remains}");
            return Outcome::failed(
                physical_id,
                format!(
                    "{why}; CloudFormation retains the resource, so what this Create made stays ({remains})"
                ),
            );
        }
        tracing::warn!(%why, ownership_key = key.as_str(), "nobody waits for this Create; removing what it made");
        progress.step("removing what this Create made, as nobody waits for it");
        let outcome = match delete::remove_owned(client, key, progress).await {
            Ok(()) => "everything it made was removed again".to_string(),
            Err(e) => {
                tracing::error!(error = %e, ownership_key = key.as_str(), "removing what a Create nobody waits for made failed; {remains}");
                format!("removing what it made failed ({e}); {remains}")
            }
        };
        Outcome::failed(physical_id, format!("{why}; {outcome}"))
    }

    async fn delete(&self, req: &CfnRequest, progress: &Progress, deadline: Instant) -> Outcome {
        let key = OwnershipKey::new(&req.stack_id, &req.logical_resource_id);
        let physical_id = self.physical_resource_id(req);
        let target = properties::parse_lenient(&req.resource_properties, &self.defaults);
        match delete::delete_all(&self.secrets, &self.http, &key, &target, progress, deadline).await
        {
            Ok(()) => Outcome::success(physical_id, Default::default()),
            Err(e) => Outcome::failed(physical_id, e.to_string()),
        }
    }
}

/// The `ReadyAfter` to hold the answer until, if any. Held only when this request switched a
/// workspace, or is another delivery of a Create that did moments ago (everything switched,
/// ReadyAfter still ahead). An Update that switched nothing, such as the rollback of a failed
/// held Update, answers at once: its workspaces were switched by an earlier request, whose
/// answer waited for them.
fn ready_after_to_hold(
    create: bool,
    wait_until_ready: bool,
    attached: &workspaces::Attached,
) -> Option<i64> {
    attached.ready_after_ms.filter(|ready_after_ms| {
        let held = attached.switched_now || (create && *ready_after_ms > names::epoch_ms() as i64);
        if wait_until_ready && !held {
            tracing::info!(
                "WaitUntilReady is set, but this request switched no workspace, so its answer is not held"
            );
        }
        held
    })
}

/// The properties to read: `ResourceProperties`, with `ServiceTimeout` taken from the event's
/// top level when it is there (`docs/cloudformation.md#request`). Logs which one is used.
fn properties_of(req: &CfnRequest) -> Cow<'_, Map<String, Value>> {
    let props = &req.resource_properties;
    let Some(top) = &req.service_timeout else {
        let source = if props.contains_key(properties::SERVICE_TIMEOUT) {
            "ResourceProperties"
        } else {
            "none sent: CloudFormation's default of 3600 s"
        };
        tracing::info!(source, "ServiceTimeout");
        return Cow::Borrowed(props);
    };
    let value = match top {
        Value::Number(n) => Value::String(n.to_string()),
        other => other.clone(),
    };
    if let Some(inner) = props.get(properties::SERVICE_TIMEOUT)
        && inner != &value
    {
        tracing::warn!(
            top_level = %crate::text::shorten(&top.to_string(), 20),
            in_properties = %crate::text::shorten(&inner.to_string(), 20),
            "the event's top level and ResourceProperties name different ServiceTimeouts; the top level's is used"
        );
    }
    tracing::info!(source = "the event's top level", "ServiceTimeout");
    let mut merged = props.clone();
    merged.insert(properties::SERVICE_TIMEOUT.to_owned(), value);
    Cow::Owned(merged)
}

impl ResourceHandler for Handler {
    fn physical_resource_id(&self, req: &CfnRequest) -> String {
        let derived =
            || OwnershipKey::new(&req.stack_id, &req.logical_resource_id).physical_resource_id();
        match req.request_type {
            RequestType::Create => derived(),
            // Update and Delete answer with the id they were sent, whatever it is: a different
            // id on Update would make CloudFormation treat it as a replacement.
            RequestType::Update | RequestType::Delete => req
                .physical_resource_id
                .clone()
                .filter(|id| !id.is_empty())
                .unwrap_or_else(derived),
        }
    }

    async fn handle(&self, req: CfnRequest, progress: Progress, deadline: Instant) -> Outcome {
        if let Some(hand_over) = &req.hand_over {
            return self.resume(&req, hand_over, &progress, deadline).await;
        }
        match req.request_type {
            RequestType::Create | RequestType::Update => {
                self.create_or_update(&req, &progress, deadline).await
            }
            RequestType::Delete => self.delete(&req, &progress, deadline).await,
        }
    }
}

#[cfg(test)]
mod tests;
