//! The path every invocation takes: parse the event, run the handler under the deadline guard
//! with panics caught, and answer exactly once (PUT, SAM-local print, or the function's result for
//! a direct invocation).
//!
//! Generic over [`ResourceHandler`]; what the resource does is not known here.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use serde_json::Value;
use tokio::time::Instant;
use tracing::Instrument;

use super::guard::{Progress, guard_instant, timeout_reason};
use super::request::{CfnRequest, RequestError, parse_event, read_event, salvage_ids};
use super::response::{
    Outcome, Responder, ResponseUrlError, Status, answer_for_unreadable_event, cut_to_json_bytes,
    fallback_physical_id, redacted, response_document, validate_response_url,
};
use crate::redact;
use crate::text::shorten;

/// The PUT has to end before Lambda's own deadline so the function can still return normally.
const PUT_SLACK: Duration = Duration::from_millis(250);
/// The reason in the log line that closes a request is cut to this many bytes (JSON-escaped):
/// three times what the response has room for, and well inside a log line's bound.
const LOGGED_REASON_BYTES: usize = 12 * 1024;
/// Panic messages quoted in a FAILED reason are cut to this many characters.
const PANIC_MESSAGE_CHARS: usize = 300;

pub trait ResourceHandler: Send + Sync + 'static {
    /// The PhysicalResourceId this request must be answered with, known before any work (used by
    /// the guard and on panic).
    fn physical_resource_id(&self, req: &CfnRequest) -> String;

    /// Does the work. Must not answer CloudFormation itself. `deadline` is when the guard gives up
    /// on it ([`GUARD_MARGIN`](super::GUARD_MARGIN) before the Lambda deadline): calls that
    /// could outlast it are wasted.
    fn handle(
        &self,
        req: CfnRequest,
        progress: Progress,
        deadline: Instant,
    ) -> impl Future<Output = Outcome> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    /// Not a custom-resource event: there is nobody to answer, so the invocation itself fails.
    #[error("{0}")]
    Event(#[from] RequestError),
    /// The ResponseURL cannot be used, so CloudFormation cannot be answered.
    #[error("cannot answer CloudFormation: {0}")]
    ResponseUrl(#[from] ResponseUrlError),
    /// A direct invocation whose handler reported FAILED: the reason becomes the Lambda error
    /// message, so the calling pipeline step fails.
    #[error("{reason}")]
    Failed { reason: String },
}

impl From<InvocationError> for lambda_runtime::Diagnostic {
    fn from(error: InvocationError) -> Self {
        let error_type = match &error {
            InvocationError::Event(_) => "InvalidEvent",
            InvocationError::ResponseUrl(_) => "UnusableResponseURL",
            InvocationError::Failed { .. } => "CustomResourceFailed",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// Where the answer goes, decided before any work is done.
enum Answer {
    Put(Url),
    SamLocal,
    Direct,
}

impl Answer {
    /// The mode as logged.
    fn mode(&self) -> &'static str {
        match self {
            Answer::Put(_) => "cloudformation",
            Answer::SamLocal => "sam-local",
            Answer::Direct => "direct",
        }
    }
}

/// Runs one invocation from the event's JSON text, as the Lambda runtime hands it over. Text
/// that `serde_json` cannot hold as a value (nesting beyond its limit, a number beyond `f64`, a
/// lone surrogate escape) is still answered when it names where to: FAILED, or SUCCESS for a
/// Delete (see [`answer_unreadable`]).
pub async fn handle_raw_invocation<H: ResourceHandler>(
    handler: Arc<H>,
    responder: &Responder,
    raw: &str,
    deadline: Instant,
) -> Result<Value, InvocationError> {
    match read_event(raw) {
        Ok(event) => handle_invocation(handler, responder, event, deadline).await,
        Err(error) => answer_unreadable(responder, &salvage_ids(raw), error, deadline).await,
    }
}

/// Runs one invocation. Returns the response document, or an error when there is nothing that
/// could be answered (not an event, unusable ResponseURL) or a direct invocation failed. After a
/// PUT the result is `Ok` even if the PUT failed: a function error makes Lambda re-run the whole
/// request (`docs/cloudformation.md#delivery-and-duplicates`), which would not reach CloudFormation any better.
pub async fn handle_invocation<H: ResourceHandler>(
    handler: Arc<H>,
    responder: &Responder,
    event: Value,
    deadline: Instant,
) -> Result<Value, InvocationError> {
    let budget = deadline.saturating_duration_since(Instant::now());
    let req = match parse_event(&event) {
        Ok(req) => req,
        Err(error) => return answer_unreadable(responder, &event, error, deadline).await,
    };
    let span = tracing::info_span!(
        "custom_resource",
        stack_id = %req.stack_id,
        request_id = %req.request_id,
        logical_resource_id = %req.logical_resource_id,
        request_type = %req.request_type,
    );
    answer_request(handler, responder, req, deadline, budget)
        .instrument(span)
        .await
}

async fn answer_request<H: ResourceHandler>(
    handler: Arc<H>,
    responder: &Responder,
    req: CfnRequest,
    deadline: Instant,
    budget: Duration,
) -> Result<Value, InvocationError> {
    let answer = choose_answer(&req, responder)?;
    tracing::info!(
        mode = answer.mode(),
        budget_ms = budget.as_millis() as u64,
        "custom-resource request received"
    );

    let physical_id = physical_id_for(&*handler, &req);
    let mut outcome = run_guarded(handler, req.clone(), &physical_id, deadline, budget).await;
    if outcome.physical_resource_id.is_empty() {
        outcome.physical_resource_id = physical_id;
    }
    // Whatever produced the reason, nothing shaped like a credential leaves the function.
    outcome.reason = outcome.reason.map(|reason| redact::scrub(&reason));
    if outcome.handed_over {
        match answer {
            Answer::Put(_) => {
                tracing::info!(
                    why = outcome.reason.as_deref().unwrap_or(""),
                    "no answer from this invocation"
                );
                return Ok(serde_json::json!({"HandedOver": true}));
            }
            // Only a ResponseURL can be answered later: a direct caller or `sam local invoke`
            // reads this invocation's result, so it gets an answer now.
            Answer::Direct | Answer::SamLocal => {
                tracing::error!(
                    "the handler handed over a request that has no ResponseURL to answer later"
                );
                outcome = Outcome::failed(
                    outcome.physical_resource_id,
                    "internal error: the answer to a request without a ResponseURL was handed over",
                );
            }
        }
    }
    // The reason is logged at up to three times the room the response has for it (the response
    // points the reader here), and no more, so the line stays inside the log line bound.
    tracing::info!(
        status = outcome.status.as_str(),
        physical_resource_id = %outcome.physical_resource_id,
        reason = %cut_to_json_bytes(outcome.reason.as_deref().unwrap_or(""), LOGGED_REASON_BYTES, "…"),
        "custom-resource request handled"
    );
    let doc = response_document(&req, &outcome);
    deliver(responder, answer, doc, outcome.status, deadline).await
}

/// Where the answer goes: a PUT to the ResponseURL, printed under `sam local invoke`, or the
/// invocation's result without one. An unusable ResponseURL fails the invocation.
fn choose_answer(req: &CfnRequest, responder: &Responder) -> Result<Answer, InvocationError> {
    match &req.response_url {
        None => Ok(Answer::Direct),
        // `sam local invoke` events carry a placeholder URL that is never used
        // (`docs/cloudformation.md#sam-local-invoke`).
        Some(_) if responder.sam_local() => Ok(Answer::SamLocal),
        Some(raw) => match validate_response_url(raw, responder.allow_insecure()) {
            Ok(url) => Ok(Answer::Put(url)),
            Err(error) => {
                tracing::error!(%error, "the ResponseURL cannot be used; CloudFormation will not get an answer");
                Err(error.into())
            }
        },
    }
}

/// Sends, prints or returns the response document, as `answer` says.
async fn deliver(
    responder: &Responder,
    answer: Answer,
    doc: Value,
    status: Status,
    deadline: Instant,
) -> Result<Value, InvocationError> {
    match answer {
        Answer::SamLocal => {
            responder.print_sam_local(&doc);
            Ok(doc)
        }
        Answer::Put(url) => {
            put_answer(responder, &url, &doc, deadline).await;
            Ok(doc)
        }
        Answer::Direct => match status {
            Status::Success => Ok(doc),
            // The document's Reason, not the outcome's: that one is cut to fit 4096 bytes like
            // CloudFormation's, where the outcome's can run to megabytes (one problem per bad
            // list entry) and would all go into the invocation's error.
            Status::Failed => Err(InvocationError::Failed {
                reason: doc["Reason"]
                    .as_str()
                    .filter(|r| !r.is_empty())
                    .unwrap_or("failed without a reason; see CloudWatch logs")
                    .to_owned(),
            }),
        },
    }
}

/// An event the handler cannot run. If it still names a usable ResponseURL and the ids
/// CloudFormation matches answers by, FAILED goes there with the reason (CloudFormation itself
/// never sends such an event, but a hand-made one must not leave a stack waiting); otherwise the
/// invocation fails with the reason.
async fn answer_unreadable(
    responder: &Responder,
    event: &Value,
    error: RequestError,
    deadline: Instant,
) -> Result<Value, InvocationError> {
    // CloudFormation's Delete carries the properties of the last Create or Update that
    // succeeded, and those were readable: a Delete that is not belongs to a resource this
    // function never created (its Create was refused the same way). FAILED would only leave the
    // stack in DELETE_FAILED or ROLLBACK_FAILED with nothing to clean up.
    let unreadable_delete = matches!(
        error,
        RequestError::Unreadable { .. } | RequestError::TooLarge { .. }
    ) && event
        .get("RequestType")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("delete"));
    let (status, reason) = if unreadable_delete {
        (
            Status::Success,
            format!(
                "nothing to delete: {error}. A Create with these properties is refused the same \
                 way, so it created nothing"
            ),
        )
    } else {
        (Status::Failed, error.to_string())
    };
    let status_name = status.as_str();
    let target = answer_for_unreadable_event(event, status, &reason)
        .filter(|_| !responder.sam_local())
        .and_then(|(raw, doc)| {
            validate_response_url(&raw, responder.allow_insecure())
                .ok()
                .map(|url| (url, doc))
        });
    let Some((url, doc)) = target else {
        tracing::error!(%error, "not a CloudFormation custom-resource request; nothing to answer");
        return Err(error.into());
    };
    // The same span as a runnable request's, so every line names the stack and request.
    let id = |field: &str| doc[field].as_str().unwrap_or_default().to_owned();
    let span = tracing::info_span!(
        "custom_resource",
        stack_id = %id("StackId"),
        request_id = %id("RequestId"),
        logical_resource_id = %id("LogicalResourceId"),
    );
    async {
        tracing::error!(%error, status = status_name, "not a request this function can run; answering it");
        put_answer(responder, &url, &doc, deadline).await;
    }
    .instrument(span)
    .await;
    Ok(doc)
}

/// PUTs the answer, ending before Lambda's deadline. A failure is logged, not returned: a
/// function error makes Lambda re-run the whole request, which would not reach CloudFormation
/// any better.
async fn put_answer(responder: &Responder, url: &Url, doc: &Value, deadline: Instant) {
    let put_deadline = deadline.checked_sub(PUT_SLACK).unwrap_or(deadline);
    if let Err(error) = responder.put(url, doc, put_deadline).await {
        tracing::error!(
            %error,
            target = %redacted(url),
            "CloudFormation was not answered; the stack waits until the resource's ServiceTimeout"
        );
    }
}

/// The handler's id for this request; a panic or an empty id there must not cost the answer.
fn physical_id_for<H: ResourceHandler>(handler: &H, req: &CfnRequest) -> String {
    match std::panic::catch_unwind(AssertUnwindSafe(|| handler.physical_resource_id(req))) {
        Ok(id) if !id.is_empty() => id,
        Ok(_) => {
            tracing::error!("the handler gave an empty PhysicalResourceId; using a fallback");
            fallback_physical_id(req)
        }
        Err(_) => {
            tracing::error!(
                "the handler panicked computing the PhysicalResourceId; using a fallback"
            );
            fallback_physical_id(req)
        }
    }
}

/// Runs the handler in its own task, so that a panic is a `JoinError` rather than the end of the
/// invocation, and races it against the guard.
async fn run_guarded<H: ResourceHandler>(
    handler: Arc<H>,
    req: CfnRequest,
    physical_id: &str,
    deadline: Instant,
    budget: Duration,
) -> Outcome {
    let progress = Progress::new();
    let guard_at = guard_instant(deadline);
    let mut task = tokio::spawn({
        let progress = progress.clone();
        async move { handler.handle(req, progress, guard_at).await }
            .instrument(tracing::Span::current())
    });
    tokio::select! {
        // A result that is ready wins over a guard that is ready at the same moment.
        biased;
        joined = &mut task => match joined {
            Ok(outcome) => outcome,
            Err(error) if error.is_panic() => {
                let message = panic_message(error.into_panic());
                let step = progress.current();
                tracing::error!(%step, panic = %message, "the handler panicked");
                Outcome::failed(
                    physical_id,
                    format!("internal error while {step}: {}", shorten(&message, PANIC_MESSAGE_CHARS)),
                )
            }
            Err(_) => Outcome::failed(
                physical_id,
                format!("internal error while {}: the handler was cancelled", progress.current()),
            ),
        },
        () = tokio::time::sleep_until(guard_at) => {
            task.abort();
            let step = progress.current();
            tracing::error!(%step, "the handler ran out of time; answering FAILED");
            Outcome::failed(physical_id, timeout_reason(&step, budget))
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cfn::GUARD_MARGIN;
    use crate::cfn::response::MAX_RESPONSE_BYTES;
    use crate::test_http::TestServer;
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    enum Behaviour {
        Succeed,
        Fail(&'static str),
        Sleep {
            step: &'static str,
            for_: Duration,
        },
        Panic {
            step: &'static str,
            message: &'static str,
        },
        EmptyPhysicalId,
        PanicInPhysicalId,
        Defer,
    }

    struct TestHandler {
        behaviour: Behaviour,
        calls: AtomicUsize,
        dropped_while_running: Arc<AtomicBool>,
    }

    impl TestHandler {
        fn new(behaviour: Behaviour) -> Arc<Self> {
            Arc::new(Self {
                behaviour,
                calls: AtomicUsize::new(0),
                dropped_while_running: Arc::new(AtomicBool::new(false)),
            })
        }
    }

    /// Sets its flag when the handler's future is dropped before finishing (the guard aborted it).
    struct DropFlag(Arc<AtomicBool>, bool);
    impl Drop for DropFlag {
        fn drop(&mut self) {
            if !self.1 {
                self.0.store(true, Ordering::SeqCst);
            }
        }
    }

    impl ResourceHandler for TestHandler {
        fn physical_resource_id(&self, req: &CfnRequest) -> String {
            match self.behaviour {
                Behaviour::EmptyPhysicalId => String::new(),
                Behaviour::PanicInPhysicalId => panic!("no id today"),
                _ => format!("{}-{}-pid", req.stack_name(), req.logical_resource_id),
            }
        }

        async fn handle(&self, req: CfnRequest, progress: Progress, _deadline: Instant) -> Outcome {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let pid = self.physical_resource_id(&req);
            match self.behaviour {
                Behaviour::Succeed => Outcome::success(
                    pid,
                    BTreeMap::from([("Answer".to_owned(), "42".to_owned())]),
                ),
                Behaviour::Fail(reason) => Outcome::failed(pid, reason),
                Behaviour::Defer => Outcome::handed_over(pid, "handed on"),
                Behaviour::Sleep { step, for_ } => {
                    let mut flag = DropFlag(Arc::clone(&self.dropped_while_running), false);
                    progress.step(step);
                    tokio::time::sleep(for_).await;
                    flag.1 = true;
                    Outcome::success(pid, BTreeMap::new())
                }
                Behaviour::Panic { step, message } => {
                    progress.step(step);
                    panic!("{message}");
                }
                Behaviour::EmptyPhysicalId | Behaviour::PanicInPhysicalId => {
                    Outcome::failed("", "could not start")
                }
            }
        }
    }

    fn event(response_url: Option<&str>) -> Value {
        let mut event = json!({
            "RequestType": "Create",
            "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/my-stack/5b9e2a70-aaaa",
            "RequestId": "req-1",
            "LogicalResourceId": "Backend",
            "ResourceType": "Custom::Thing",
            "ResourceProperties": {"ServiceToken": "arn:aws:lambda:eu-west-1:1:function:f"}
        });
        if let Some(url) = response_url {
            event["ResponseURL"] = json!(url);
        }
        event
    }

    fn responder(allow_insecure: bool, sam_local: bool) -> Responder {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        Responder::new(http, allow_insecure, sam_local)
    }

    fn in_secs(secs: u64) -> Instant {
        Instant::now() + Duration::from_secs(secs)
    }

    #[tokio::test]
    async fn success_is_put_once_and_returned() {
        let server = TestServer::statuses(vec![200]).await;
        let handler = TestHandler::new(Behaviour::Succeed);
        let url = server.url_for("/bucket/key?X-Amz-Signature=s");
        let doc = handle_invocation(
            handler.clone(),
            &responder(true, false),
            event(Some(&url)),
            in_secs(30),
        )
        .await
        .unwrap();
        assert_eq!(doc["Status"], "SUCCESS");
        assert_eq!(doc["PhysicalResourceId"], "my-stack-Backend-pid");
        assert_eq!(doc["Data"]["Answer"], "42");
        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].method, "PUT");
        assert_eq!(
            serde_json::from_slice::<Value>(&requests[0].body).unwrap(),
            doc
        );
        assert_eq!(handler.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_handed_over_answer_is_not_put_and_a_direct_caller_still_gets_one() {
        let server = TestServer::statuses(vec![200]).await;
        let handler = TestHandler::new(Behaviour::Defer);
        let url = server.url_for("/bucket/key?X-Amz-Signature=s");
        let result = handle_invocation(
            handler.clone(),
            &responder(true, false),
            event(Some(&url)),
            in_secs(30),
        )
        .await
        .unwrap();
        assert_eq!(result, json!({"HandedOver": true}));
        assert!(server.requests().is_empty(), "nothing is PUT");

        let direct = handle_invocation(handler, &responder(true, false), event(None), in_secs(30))
            .await
            .unwrap_err();
        assert!(direct.to_string().contains("was handed over"), "{direct}");
    }

    #[tokio::test]
    async fn a_failed_put_still_returns_ok_so_lambda_does_not_rerun_the_request() {
        let server = TestServer::statuses(vec![403]).await;
        let handler = TestHandler::new(Behaviour::Fail("bad credentials"));
        let url = server.url_for("/bucket/key");
        let doc = handle_invocation(
            handler,
            &responder(true, false),
            event(Some(&url)),
            in_secs(30),
        )
        .await
        .unwrap();
        assert_eq!(doc["Status"], "FAILED");
        assert_eq!(doc["Reason"], "bad credentials");
        assert_eq!(server.requests().len(), 1, "a 403 is not retried");
    }

    #[tokio::test]
    async fn the_guard_answers_before_the_deadline_and_names_the_step() {
        let server = TestServer::statuses(vec![200]).await;
        let handler = TestHandler::new(Behaviour::Sleep {
            step: "waiting for the slow dependency",
            for_: Duration::from_secs(30),
        });
        let url = server.url_for("/bucket/key");
        let started = Instant::now();
        let deadline = started + Duration::from_secs(4);
        let doc = handle_invocation(
            handler.clone(),
            &responder(true, false),
            event(Some(&url)),
            deadline,
        )
        .await
        .unwrap();
        let answered = Instant::now();
        assert!(
            answered < deadline,
            "answered {:?} after start",
            answered - started
        );
        assert!(answered >= deadline - GUARD_MARGIN, "the guard fired early");
        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        let sent: Value = serde_json::from_slice(&requests[0].body).unwrap();
        assert_eq!(sent, doc);
        assert_eq!(sent["Status"], "FAILED");
        assert_eq!(sent["PhysicalResourceId"], "my-stack-Backend-pid");
        let reason = sent["Reason"].as_str().unwrap();
        assert!(
            reason.starts_with(
                "timed out while waiting for the slow dependency; the function had 3 s left"
            ),
            "{reason}"
        );
        // The aborted task's future is dropped shortly after.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(handler.dropped_while_running.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_panic_becomes_failed_naming_the_step() {
        let server = TestServer::statuses(vec![200]).await;
        let handler = TestHandler::new(Behaviour::Panic {
            step: "reading the secret",
            message: "index out of bounds: the len is 0 but the index is 3",
        });
        let url = server.url_for("/bucket/key");
        let doc = handle_invocation(
            handler,
            &responder(true, false),
            event(Some(&url)),
            in_secs(30),
        )
        .await
        .unwrap();
        assert_eq!(doc["Status"], "FAILED");
        assert_eq!(
            doc["Reason"],
            "internal error while reading the secret: index out of bounds: the len is 0 but the index is 3"
        );
        assert_eq!(doc["PhysicalResourceId"], "my-stack-Backend-pid");
        assert_eq!(server.requests().len(), 1);
    }

    #[tokio::test]
    async fn direct_invocation_success_returns_the_document() {
        let handler = TestHandler::new(Behaviour::Succeed);
        let doc = handle_invocation(handler, &responder(false, false), event(None), in_secs(30))
            .await
            .unwrap();
        assert_eq!(doc["Status"], "SUCCESS");
        assert_eq!(doc["Data"]["Answer"], "42");
    }

    #[tokio::test]
    async fn direct_invocation_failure_is_a_function_error_with_the_reason() {
        let handler = TestHandler::new(Behaviour::Fail("the workspace is not RUNNING"));
        let err = handle_invocation(handler, &responder(false, false), event(None), in_secs(30))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "the workspace is not RUNNING");
        let diagnostic = lambda_runtime::Diagnostic::from(err);
        assert_eq!(diagnostic.error_type, "CustomResourceFailed");
        assert_eq!(diagnostic.error_message, "the workspace is not RUNNING");

        let handler = TestHandler::new(Behaviour::Panic {
            step: "starting up",
            message: "oops",
        });
        let err = handle_invocation(handler, &responder(false, false), event(None), in_secs(30))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "internal error while starting up: oops");
    }

    #[tokio::test]
    async fn a_direct_failure_reason_is_cut_like_the_response_document() {
        let long: &'static str =
            Box::leak(format!("{} END", "bad entry; ".repeat(5000)).into_boxed_str());
        let handler = TestHandler::new(Behaviour::Fail(long));
        let err = handle_invocation(handler, &responder(false, false), event(None), in_secs(30))
            .await
            .unwrap_err();
        let message = lambda_runtime::Diagnostic::from(err).error_message;
        assert!(
            message.len() < MAX_RESPONSE_BYTES,
            "{} bytes",
            message.len()
        );
        assert!(message.starts_with("bad entry; bad entry;"), "{message}");
        assert!(message.ends_with("[truncated; the full text is in CloudWatch logs]"));
        assert!(!message.contains("END"));
    }

    #[tokio::test]
    async fn sam_local_prints_the_document_and_does_not_put() {
        let server = TestServer::statuses(vec![200]).await;
        let responder = responder(false, true);
        // The URL would not pass validation: under SAM local it is never used.
        let url = server.url_for("/bucket/key");
        let handler = TestHandler::new(Behaviour::Succeed);
        let doc = handle_invocation(handler, &responder, event(Some(&url)), in_secs(30))
            .await
            .unwrap();
        assert!(server.requests().is_empty());
        let printed = responder.printed.lock().unwrap().clone();
        assert_eq!(printed.len(), 1);
        let json = printed[0]
            .strip_prefix("CloudFormation response (AWS_SAM_LOCAL, not sent): ")
            .unwrap();
        assert!(!json.contains('\n'));
        assert_eq!(serde_json::from_str::<Value>(json).unwrap(), doc);
    }

    #[tokio::test]
    async fn an_unrunnable_event_that_names_its_response_url_is_answered_failed_once() {
        for (field, value, needle) in [
            (
                "RequestType",
                json!("Replace"),
                "RequestType must be Create, Update or Delete",
            ),
            (
                "ResourceProperties",
                json!("a string"),
                "ResourceProperties must be an object",
            ),
        ] {
            let server = TestServer::statuses(vec![200]).await;
            let handler = TestHandler::new(Behaviour::Succeed);
            let mut unrunnable = event(Some(&server.url_for("/bucket/key?X-Amz-Signature=s")));
            unrunnable[field] = value;
            let doc = handle_invocation(
                handler.clone(),
                &responder(true, false),
                unrunnable,
                in_secs(30),
            )
            .await
            .unwrap();
            assert_eq!(doc["Status"], "FAILED", "{field}");
            assert!(doc["Reason"].as_str().unwrap().contains(needle), "{doc}");
            assert_eq!(doc["PhysicalResourceId"], "my-stack-Backend");
            assert_eq!(doc["RequestId"], "req-1");
            assert_eq!(doc["LogicalResourceId"], "Backend");
            let requests = server.requests();
            assert_eq!(requests.len(), 1, "{field}");
            assert_eq!(
                serde_json::from_slice::<Value>(&requests[0].body).unwrap(),
                doc
            );
            assert_eq!(handler.calls.load(Ordering::SeqCst), 0);
        }
    }

    /// Valid JSON that `serde_json` cannot hold as a value: each is still answered once, at
    /// the ResponseURL the text names, FAILED for a Create and SUCCESS for a Delete.
    #[tokio::test]
    async fn json_that_cannot_be_a_value_is_still_answered_once() {
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        for (name, poison, needle) in [
            ("deep", deep.as_str(), "recursion limit exceeded"),
            ("surrogate", "\"\\ud800\"", "hex escape"),
            ("huge number", "1e400", "number out of range"),
        ] {
            for (request_type, status) in [("Create", "FAILED"), ("Delete", "SUCCESS")] {
                let server = TestServer::statuses(vec![200]).await;
                let handler = TestHandler::new(Behaviour::Succeed);
                let mut fields = event(Some(&server.url_for("/bucket/key?X-Amz-Signature=s")));
                fields["RequestType"] = json!(request_type);
                let text = fields.to_string();
                let raw = format!(
                    "{{\"ResourceProperties\":{{\"Poison\":{poison}}},{}",
                    &text[1..]
                );
                assert!(serde_json::from_str::<Value>(&raw).is_err(), "{name}");
                let doc = handle_raw_invocation(
                    handler.clone(),
                    &responder(true, false),
                    &raw,
                    in_secs(30),
                )
                .await
                .unwrap();
                assert_eq!(doc["Status"], status, "{name} {request_type}");
                let reason = doc["Reason"].as_str().unwrap();
                assert!(reason.contains(needle), "{name}: {reason}");
                assert!(reason.contains("nested at most 127 levels"), "{reason}");
                assert_eq!(doc["RequestId"], "req-1");
                assert_eq!(doc["PhysicalResourceId"], "my-stack-Backend");
                let requests = server.requests();
                assert_eq!(requests.len(), 1, "{name} {request_type}");
                assert_eq!(
                    serde_json::from_slice::<Value>(&requests[0].body).unwrap(),
                    doc
                );
                assert_eq!(handler.calls.load(Ordering::SeqCst), 0);
            }
        }
    }

    #[tokio::test]
    async fn readable_text_runs_the_handler_and_unreadable_text_without_a_url_fails() {
        let handler = TestHandler::new(Behaviour::Succeed);
        let doc = handle_raw_invocation(
            handler.clone(),
            &responder(false, false),
            &event(None).to_string(),
            in_secs(30),
        )
        .await
        .unwrap();
        assert_eq!(doc["Status"], "SUCCESS");
        assert_eq!(handler.calls.load(Ordering::SeqCst), 1);

        let raw = format!("{{\"Poison\":1e400,{}", &event(None).to_string()[1..]);
        let err =
            handle_raw_invocation(handler.clone(), &responder(false, false), &raw, in_secs(30))
                .await
                .unwrap_err();
        assert!(
            matches!(err, InvocationError::Event(RequestError::Unreadable { .. })),
            "{err}"
        );
        assert_eq!(handler.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_unrunnable_event_without_its_ids_or_a_usable_url_fails_the_invocation() {
        let server = TestServer::statuses(vec![200]).await;
        let url = server.url_for("/bucket/key");
        let mut no_request_id = event(Some(&url));
        no_request_id["RequestType"] = json!("Replace");
        no_request_id["RequestId"] = json!(7);
        let mut unusable_url = event(Some("http://example.com/not-s3"));
        unusable_url["RequestType"] = json!("Replace");
        for (unrunnable, allow_insecure) in [(no_request_id, true), (unusable_url, false)] {
            let err = handle_invocation(
                TestHandler::new(Behaviour::Succeed),
                &responder(allow_insecure, false),
                unrunnable,
                in_secs(30),
            )
            .await
            .unwrap_err();
            assert!(matches!(err, InvocationError::Event(_)), "{err}");
        }
        assert!(server.requests().is_empty());
    }

    #[tokio::test]
    async fn not_an_event_fails_the_invocation_without_running_the_handler() {
        let handler = TestHandler::new(Behaviour::Succeed);
        let err = handle_invocation(
            handler.clone(),
            &responder(false, false),
            json!({"key1": "value1"}),
            in_secs(30),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, InvocationError::Event(_)));
        assert_eq!(
            err.to_string(),
            "the event has no RequestType: this function expects a CloudFormation custom-resource event"
        );
        assert_eq!(handler.calls.load(Ordering::SeqCst), 0);
        assert_eq!(
            lambda_runtime::Diagnostic::from(err).error_type,
            "InvalidEvent"
        );
    }

    #[tokio::test]
    async fn an_unusable_response_url_is_refused_before_any_work() {
        let handler = TestHandler::new(Behaviour::Succeed);
        let event = event(Some("https://evil.example/steal?X-Amz-Signature=SECRET"));
        let err = handle_invocation(
            handler.clone(),
            &responder(false, false),
            event,
            in_secs(30),
        )
        .await
        .unwrap_err();
        assert!(matches!(
            err,
            InvocationError::ResponseUrl(ResponseUrlError::NotS3 { .. })
        ));
        assert!(!err.to_string().contains("SECRET"));
        assert_eq!(handler.calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn an_empty_physical_id_is_replaced() {
        let server = TestServer::statuses(vec![200]).await;
        let url = server.url_for("/bucket/key");
        for behaviour in [Behaviour::EmptyPhysicalId, Behaviour::PanicInPhysicalId] {
            let handler = TestHandler::new(behaviour);
            let doc = handle_invocation(
                handler,
                &responder(true, false),
                event(Some(&url)),
                in_secs(30),
            )
            .await
            .unwrap();
            assert_eq!(doc["Status"], "FAILED");
            assert_eq!(doc["PhysicalResourceId"], "my-stack-Backend");
        }
        assert_eq!(server.requests().len(), 2);
    }

    #[tokio::test]
    async fn a_deadline_already_too_close_still_gets_an_answer() {
        let server = TestServer::statuses(vec![200]).await;
        let handler = TestHandler::new(Behaviour::Sleep {
            step: "starting up",
            for_: Duration::from_secs(30),
        });
        let url = server.url_for("/bucket/key");
        let deadline = Instant::now() + Duration::from_secs(2);
        let doc = handle_invocation(
            handler,
            &responder(true, false),
            event(Some(&url)),
            deadline,
        )
        .await
        .unwrap();
        assert!(Instant::now() < deadline);
        // The guard fires at once; the handler may not even have named its first step.
        assert!(
            doc["Reason"]
                .as_str()
                .unwrap()
                .starts_with("timed out while starting")
        );
        assert_eq!(server.requests().len(), 1);
    }
}
