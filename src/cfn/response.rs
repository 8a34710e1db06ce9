//! The answer to CloudFormation: the response document (≤ 4096 bytes,
//! `docs/cloudformation.md#response`), the check
//! that a `ResponseURL` really points at Amazon S3, and the PUT with its retries. Under SAM local
//! the document is printed instead of sent.
//!
//! Knows nothing of what the resource does; the handler's [`Outcome`] is all it gets. The
//! presigned URL's query string (its signature) never goes into logs or errors.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::request::{CfnRequest, stack_name_of};
use crate::text::shorten;

/// CloudFormation refuses larger response bodies with "Response object is too long"; the limit is
/// inclusive (`docs/cloudformation.md#response`).
pub const MAX_RESPONSE_BYTES: usize = 4096;
/// Reason space kept before `Data` is given up: a FAILED reason cut to a few words helps nobody.
const MIN_REASON_BYTES: usize = 512;
const TRUNCATION_MARKER: &str = " … [truncated; the full text is in CloudWatch logs]";
const DATA_DROPPED_NOTE: &str = "[Data omitted: the response would exceed CloudFormation's \
                                 4096-byte limit] ";
/// Reason space below which the identifying fields are cut instead (see `MAX_ID_FIELD_BYTES`).
const MIN_LAST_RESORT_REASON_BYTES: usize = 160;
/// Only reached when the identifying fields alone exceed the limit, which CloudFormation's own
/// limits rule out; the response is wrong either way, but it stays within 4096 bytes.
const MAX_ID_FIELD_BYTES: usize = 800;
const DEFAULT_FAILED_REASON: &str = "failed without a reason; see CloudWatch logs";

/// At most this many PUT attempts (crhelper makes 5 in a row too; `docs/cloudformation.md#the-response-put`).
const MAX_ATTEMPTS: usize = 5;
/// One attempt may not use up the time a retry needs: S3 answers a 4 KB PUT well within this.
const PUT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF: [Duration; MAX_ATTEMPTS - 1] = [
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];
const SAM_LOCAL_PREFIX: &str = "CloudFormation response (AWS_SAM_LOCAL, not sent): ";

#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    Success,
    Failed,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Success => "SUCCESS",
            Status::Failed => "FAILED",
        }
    }
}

/// What the handler decided. `physical_resource_id` must stay the same for the life of the
/// resource, failed Create included (`docs/cloudformation.md#physicalresourceid-and-replacement`).
#[derive(Clone, Debug)]
pub struct Outcome {
    pub status: Status,
    pub reason: Option<String>,
    pub physical_resource_id: String,
    /// Readable with `Fn::GetAtt`.
    pub data: BTreeMap<String, String>,
    /// Masks `Data` in `Fn::GetAtt` output and stack events; set it only when `Data` is secret.
    pub no_echo: bool,
    /// Nothing is answered by this invocation: the handler handed the answer on to a later
    /// invocation ([`HandOver`](super::request::HandOver)), or there is nothing left to
    /// answer. Only for requests with a ResponseURL; see [`Outcome::handed_over`].
    pub handed_over: bool,
}

impl Outcome {
    /// This invocation answers nothing; `why` is logged. The handler must be sure that another
    /// invocation answers (it handed the request on) or that nobody waits for an answer.
    pub fn handed_over(physical_id: impl Into<String>, why: impl Into<String>) -> Self {
        Self {
            handed_over: true,
            ..Self::failed(physical_id, why)
        }
    }

    pub fn success(physical_id: impl Into<String>, data: BTreeMap<String, String>) -> Self {
        Self {
            status: Status::Success,
            reason: None,
            physical_resource_id: physical_id.into(),
            data,
            no_echo: false,
            handed_over: false,
        }
    }

    pub fn failed(physical_id: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            status: Status::Failed,
            reason: Some(reason.into()),
            physical_resource_id: physical_id.into(),
            data: BTreeMap::new(),
            no_echo: false,
            handed_over: false,
        }
    }
}

/// The PhysicalResourceId used when nobody supplied one: the request's own, or one derived from
/// the stack and logical id, which stays the same across retries of the same resource.
/// CloudFormation must never see an empty id: it would invent one and show "Invalid
/// PhysicalResourceId" instead of the reason (`docs/cloudformation.md#physicalresourceid-and-replacement`).
pub(crate) fn fallback_physical_id(req: &CfnRequest) -> String {
    match &req.physical_resource_id {
        Some(id) if !id.is_empty() => id.clone(),
        _ => format!("{}-{}", req.stack_name(), req.logical_resource_id),
    }
}

/// The response body CloudFormation expects, never more than [`MAX_RESPONSE_BYTES`] serialized:
/// `Reason` is cut first (by bytes, on a character boundary, with a marker); if `Data` leaves
/// too little room for it, `Data` is dropped and `Reason` says so.
pub fn response_document(req: &CfnRequest, outcome: &Outcome) -> Value {
    let physical_id = if outcome.physical_resource_id.is_empty() {
        fallback_physical_id(req)
    } else {
        outcome.physical_resource_id.clone()
    };
    let ids = [
        physical_id,
        req.stack_id.clone(),
        req.request_id.clone(),
        req.logical_resource_id.clone(),
    ];
    document(ids, outcome)
}

/// For an event that is not a request this function can run (an unknown RequestType,
/// properties that are not an object) but still names what CloudFormation matches an answer by:
/// its ResponseURL and a FAILED document carrying `reason`, so that even such an event is
/// answered rather than left to CloudFormation's timeout. `None` when the ResponseURL, StackId,
/// RequestId or LogicalResourceId is not a non-empty string.
pub fn failure_for_unreadable_event(event: &Value, reason: &str) -> Option<(String, Value)> {
    answer_for_unreadable_event(event, Status::Failed, reason)
}

/// Like [`failure_for_unreadable_event`], with the status given.
pub fn answer_for_unreadable_event(
    event: &Value,
    status: Status,
    reason: &str,
) -> Option<(String, Value)> {
    let text = |field: &str| {
        event
            .get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let url = text("ResponseURL")?;
    let stack_id = text("StackId")?;
    let request_id = text("RequestId")?;
    let logical_id = text("LogicalResourceId")?;
    let physical_id = text("PhysicalResourceId")
        .unwrap_or_else(|| format!("{}-{logical_id}", stack_name_of(&stack_id)));
    let outcome = match status {
        Status::Failed => Outcome::failed(physical_id.clone(), reason),
        Status::Success => Outcome {
            reason: Some(reason.to_owned()),
            ..Outcome::success(physical_id.clone(), BTreeMap::new())
        },
    };
    Some((
        url,
        document([physical_id, stack_id, request_id, logical_id], &outcome),
    ))
}

/// The document for these ids (PhysicalResourceId, StackId, RequestId, LogicalResourceId).
fn document(mut ids: [String; 4], outcome: &Outcome) -> Value {
    let reason = match outcome.status {
        Status::Failed => Some(
            outcome
                .reason
                .clone()
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| DEFAULT_FAILED_REASON.to_owned()),
        ),
        Status::Success => outcome.reason.clone().filter(|r| !r.is_empty()),
    };
    let data = (!outcome.data.is_empty()).then_some(&outcome.data);

    if let Some(doc) = fit_document(
        &outcome.status,
        &ids,
        outcome.no_echo,
        reason.as_deref(),
        data,
    ) {
        return doc;
    }
    tracing::error!(
        "the StackId, RequestId, LogicalResourceId or PhysicalResourceId is too long to fit a \
         CloudFormation response; cutting them, so CloudFormation will not match this answer"
    );
    for id in &mut ids {
        *id = cut_to_json_bytes(id, MAX_ID_FIELD_BYTES, "");
    }
    fit_document(
        &outcome.status,
        &ids,
        outcome.no_echo,
        reason.as_deref(),
        data,
    )
    // Unreachable: four identifiers of MAX_ID_FIELD_BYTES leave room for a reason.
    .unwrap_or_else(|| assemble(&outcome.status, &ids, outcome.no_echo, None, None))
}

/// Tries the full document, then a cut Reason, then no Data. `None` when even the identifying
/// fields leave no room.
fn fit_document(
    status: &Status,
    ids: &[String; 4],
    no_echo: bool,
    reason: Option<&str>,
    data: Option<&BTreeMap<String, String>>,
) -> Option<Value> {
    let with_data = assemble(status, ids, no_echo, None, data);
    let used = serialized_len(&with_data);
    match reason {
        None if used <= MAX_RESPONSE_BYTES => return Some(with_data),
        Some(reason) => {
            // `,"Reason":""` is added to the object along with the text.
            let room = MAX_RESPONSE_BYTES.checked_sub(used + r#","Reason":"""#.len());
            if let Some(room) = room.filter(|room| *room >= MIN_REASON_BYTES.min(json_len(reason)))
            {
                let reason = cut_to_json_bytes(reason, room, TRUNCATION_MARKER);
                return Some(assemble(status, ids, no_echo, Some(&reason), data));
            }
        }
        None => {}
    }
    let without_data = assemble(status, ids, no_echo, None, None);
    let used = serialized_len(&without_data);
    let room = MAX_RESPONSE_BYTES.checked_sub(used + r#","Reason":"""#.len())?;
    let note = match (data.is_some(), reason) {
        (true, Some(reason)) => format!("{DATA_DROPPED_NOTE}{reason}"),
        (true, None) => DATA_DROPPED_NOTE.trim_end().to_owned(),
        (false, Some(reason)) => reason.to_owned(),
        (false, None) => return (used <= MAX_RESPONSE_BYTES).then_some(without_data),
    };
    // Long identifiers are worth more than a long reason: CloudFormation matches the answer by
    // them. Only below a readable minimum are they given up.
    if room < MIN_LAST_RESORT_REASON_BYTES.min(json_len(&note)) {
        return None;
    }
    let reason = cut_to_json_bytes(&note, room, TRUNCATION_MARKER);
    Some(assemble(status, ids, no_echo, Some(&reason), None))
}

fn assemble(
    status: &Status,
    [physical_id, stack_id, request_id, logical_id]: &[String; 4],
    no_echo: bool,
    reason: Option<&str>,
    data: Option<&BTreeMap<String, String>>,
) -> Value {
    let mut doc = Map::new();
    doc.insert("Status".into(), status.as_str().into());
    if let Some(reason) = reason {
        doc.insert("Reason".into(), reason.into());
    }
    doc.insert("PhysicalResourceId".into(), physical_id.as_str().into());
    doc.insert("StackId".into(), stack_id.as_str().into());
    // Left out rather than empty when a direct invocation sent none: nothing matches by it then.
    if !request_id.is_empty() {
        doc.insert("RequestId".into(), request_id.as_str().into());
    }
    doc.insert("LogicalResourceId".into(), logical_id.as_str().into());
    doc.insert("NoEcho".into(), no_echo.into());
    if let Some(data) = data {
        let data: Map<String, Value> = data
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        doc.insert("Data".into(), Value::Object(data));
    }
    Value::Object(doc)
}

fn serialized_len(doc: &Value) -> usize {
    doc.to_string().len()
}

/// Bytes `ch` takes inside a serde_json string literal.
fn json_char_len(ch: char) -> usize {
    match ch {
        '"' | '\\' | '\u{08}' | '\u{0c}' | '\n' | '\r' | '\t' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

fn json_len(text: &str) -> usize {
    text.chars().map(json_char_len).sum()
}

/// `text` unchanged if its JSON-escaped form fits in `max` bytes; otherwise its longest prefix
/// (whole characters) that fits together with `marker`.
pub(crate) fn cut_to_json_bytes(text: &str, max: usize, marker: &str) -> String {
    if json_len(text) <= max {
        return text.to_owned();
    }
    let marker = if json_len(marker) <= max { marker } else { "" };
    let room = max - json_len(marker);
    let mut used = 0;
    let mut out = String::new();
    for ch in text.chars() {
        used += json_char_len(ch);
        if used > room {
            break;
        }
        out.push(ch);
    }
    out.push_str(marker);
    out
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseUrlError {
    #[error("the ResponseURL is not a valid URL ({0})")]
    Unparseable(String),
    #[error(
        "the ResponseURL holds the control character {code} at character {position}: URL parsing \
         drops tabs and newlines, so the answer would go to a host the URL does not spell; \
         refusing to send the response there"
    )]
    ControlCharacter { code: String, position: usize },
    #[error(
        "the ResponseURL must use https, not {scheme}; set ALLOW_INSECURE_ENDPOINTS=true only to \
         test against a local S3 stand-in"
    )]
    NotHttps { scheme: String },
    #[error("the ResponseURL must use http or https, not {scheme}")]
    NotHttp { scheme: String },
    #[error("the ResponseURL must not carry a user name or password")]
    UserInfo,
    #[error("the ResponseURL has no host")]
    NoHost,
    #[error(
        "the ResponseURL host {host} is an IP address, not an Amazon S3 endpoint; refusing to \
         send the response there"
    )]
    IpAddress { host: String },
    #[error(
        "the ResponseURL host `{host}` is not an Amazon S3 endpoint (CloudFormation's presigned \
         URLs point at S3 in an AWS partition's domain, such as amazonaws.com); refusing to send \
         the response there"
    )]
    NotS3 { host: String },
    #[error(
        "the ResponseURL names port {port}: presigned Amazon S3 URLs use the default https port; \
         refusing to send the response there"
    )]
    Port { port: u16 },
}

/// Accepts only what CloudFormation sends: an https URL on an Amazon S3 host, so a forged event
/// cannot make the function send its answer (and `Data`) elsewhere. With `allow_insecure`
/// (`ALLOW_INSECURE_ENDPOINTS=true`, for tests against a local S3 stand-in) any http(s) host is
/// accepted. User info is refused either way: a presigned URL never has any.
pub fn validate_response_url(url: &str, allow_insecure: bool) -> Result<Url, ResponseUrlError> {
    // Before parsing: the URL standard removes every tab and newline from its input, anywhere,
    // so `s3.amazonaws.com.\tevil.example` would parse as another host than the text shows.
    if let Some((position, ch)) = url.chars().enumerate().find(|(_, c)| c.is_control()) {
        return Err(ResponseUrlError::ControlCharacter {
            code: format!("U+{:04X}", u32::from(ch)),
            position,
        });
    }
    let parsed = Url::parse(url).map_err(|e| ResponseUrlError::Unparseable(e.to_string()))?;
    match (parsed.scheme(), allow_insecure) {
        ("https", _) | ("http", true) => {}
        (scheme, false) => {
            return Err(ResponseUrlError::NotHttps {
                scheme: shorten(scheme, 20),
            });
        }
        (scheme, true) => {
            return Err(ResponseUrlError::NotHttp {
                scheme: shorten(scheme, 20),
            });
        }
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(ResponseUrlError::UserInfo);
    }
    let host = parsed.host_str().ok_or(ResponseUrlError::NoHost)?;
    if allow_insecure {
        return Ok(parsed);
    }
    if host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(ResponseUrlError::IpAddress {
            host: shorten(host, 60),
        });
    }
    if !is_s3_host(host) {
        return Err(ResponseUrlError::NotS3 {
            host: shorten(host, 100),
        });
    }
    // `Url` drops a port that is the scheme's default, so `:443` written out passes here.
    if let Some(port) = parsed.port() {
        return Err(ResponseUrlError::Port { port });
    }
    Ok(parsed)
}

/// DNS suffixes of the AWS partitions in which CloudFormation and Lambda run, as the
/// `dnsSuffix` of each partition in the AWS SDKs' `partitions.json` (aws-sdk-rust,
/// `aws-inlineable/src/endpoint_lib/partitions.json`): aws and aws-us-gov, aws-cn, the
/// European Sovereign Cloud (aws-eusc), and the ISO partitions (aws-iso, aws-iso-b, aws-iso-e,
/// aws-iso-f).
const PARTITION_DNS_SUFFIXES: [&str; 7] = [
    ".amazonaws.com",
    ".amazonaws.com.cn",
    ".amazonaws.eu",
    ".c2s.ic.gov",
    ".sc2s.sgov.gov",
    ".cloud.adc-e.uk",
    ".csp.hci.ic.gov",
];

/// Amazon S3 hosts: `[bucket.]s3[-suffix][.dualstack][.region].<partition suffix>`, e.g.
/// `s3.amazonaws.com`, `bucket.s3.us-east-1.amazonaws.com`, `s3-fips.us-gov-west-1.amazonaws.com`,
/// `bucket.s3.eusc-de-east-1.amazonaws.eu`, `s3.us-iso-east-1.c2s.ic.gov`.
/// Labels after the `s3` label must be `dualstack` or region-shaped: that keeps out other
/// amazonaws.com names with customer-chosen labels, such as a load balancer called `s3-…`
/// (`s3-x-1.us-east-1.elb.amazonaws.com`).
fn is_s3_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let Some(prefix) = PARTITION_DNS_SUFFIXES
        .iter()
        .find_map(|suffix| host.strip_suffix(suffix))
    else {
        return false;
    };
    let labels: Vec<&str> = prefix.split('.').collect();
    if labels.iter().any(|l| l.is_empty()) {
        return false;
    }
    labels.iter().enumerate().any(|(i, label)| {
        is_s3_label(label)
            && labels[i + 1..]
                .iter()
                .all(|l| *l == "dualstack" || is_region_label(l))
    })
}

fn is_s3_label(label: &str) -> bool {
    label == "s3"
        || label.strip_prefix("s3-").is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

/// `us-east-1`, `us-gov-west-1`, `cn-north-1`, `ap-southeast-2`, `eusc-de-east-1`,
/// `us-isob-east-1`.
fn is_region_label(label: &str) -> bool {
    let parts: Vec<&str> = label.split('-').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return false;
    };
    parts.len() >= 3
        && (2..=4).contains(&first.len())
        && first.chars().all(|c| c.is_ascii_lowercase())
        && middle
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && !last.is_empty()
        && last.chars().all(|c| c.is_ascii_digit())
}

/// Scheme, host and path of a presigned URL: enough to tell which bucket and object, without
/// the query string that carries the signature.
pub(crate) fn redacted(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!(
        "{}://{host}{port}{}",
        url.scheme(),
        shorten(url.path(), 300)
    )
}

#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error("cannot answer CloudFormation: {0}")]
    ResponseUrl(#[from] ResponseUrlError),
    #[error(
        "S3 refused the CloudFormation response at {target} with HTTP {status}; a 403 usually \
         means the presigned ResponseURL expired (the request is older than the resource's \
         ServiceTimeout) or was altered"
    )]
    Rejected { target: String, status: u16 },
    #[error(
        "could not deliver the CloudFormation response to {target} after {attempts} attempt(s): \
         {last}; if the function runs in a VPC, it needs a route to Amazon S3"
    )]
    GaveUp {
        target: String,
        attempts: usize,
        last: String,
    },
}

/// Sends answers to CloudFormation. Built once in `main`; holds the shared HTTP client.
#[derive(Clone)]
pub struct Responder {
    http: reqwest::Client,
    allow_insecure: bool,
    sam_local: bool,
    #[cfg(test)]
    pub(crate) printed: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Responder {
    /// `allow_insecure`: accept any http(s) ResponseURL (local S3 stand-ins only).
    /// `sam_local`: print the response instead of sending it (`sam local invoke` events carry an
    /// unreachable ResponseURL, `docs/cloudformation.md#sam-local-invoke`).
    pub fn new(http: reqwest::Client, allow_insecure: bool, sam_local: bool) -> Self {
        Self {
            http,
            allow_insecure,
            sam_local,
            #[cfg(test)]
            printed: Default::default(),
        }
    }

    /// Reads `ALLOW_INSECURE_ENDPOINTS=true` and `AWS_SAM_LOCAL=true` (set by `sam local`).
    pub fn from_env(http: reqwest::Client) -> Self {
        let flag = |name: &str| {
            std::env::var(name).is_ok_and(|value| value.trim().eq_ignore_ascii_case("true"))
        };
        Self::new(
            http,
            flag("ALLOW_INSECURE_ENDPOINTS"),
            flag("AWS_SAM_LOCAL"),
        )
    }

    pub fn allow_insecure(&self) -> bool {
        self.allow_insecure
    }

    pub fn sam_local(&self) -> bool {
        self.sam_local
    }

    pub(crate) fn print_sam_local(&self, doc: &Value) {
        let line = format!("{SAM_LOCAL_PREFIX}{doc}");
        println!("{line}");
        #[cfg(test)]
        self.printed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(line);
    }

    /// PUTs the document the way cfn-response, crhelper and CDK do: an empty content-type (the
    /// presigned signature may not cover any other) and an explicit content-length
    /// (`docs/cloudformation.md#the-response-put`).
    pub(crate) async fn put(
        &self,
        url: &Url,
        doc: &Value,
        deadline: Instant,
    ) -> Result<(), ResponseError> {
        let body = doc.to_string();
        let target = redacted(url);
        let mut last = String::new();
        for attempt in 1..=MAX_ATTEMPTS {
            let request = self
                .http
                .put(url.clone())
                .header(CONTENT_TYPE, "")
                .header(CONTENT_LENGTH, body.len())
                .timeout(PUT_ATTEMPT_TIMEOUT)
                .body(body.clone());
            last = match tokio::time::timeout_at(deadline, request.send()).await {
                Err(_) => "the invocation deadline was reached".to_owned(),
                Ok(Ok(response)) => {
                    let status = response.status();
                    if status.is_success() {
                        tracing::info!(%target, attempt, status = status.as_u16(), "CloudFormation response delivered");
                        return Ok(());
                    }
                    if !(status.is_server_error() || status.as_u16() == 429) {
                        return Err(ResponseError::Rejected {
                            target,
                            status: status.as_u16(),
                        });
                    }
                    format!("HTTP {}", status.as_u16())
                }
                Ok(Err(error)) => {
                    let error = error.without_url();
                    if error.is_builder() {
                        return Err(ResponseError::GaveUp {
                            target,
                            attempts: attempt,
                            last: error_chain(&error),
                        });
                    }
                    error_chain(&error)
                }
            };
            let Some(wait) = BACKOFF.get(attempt - 1) else {
                return Err(ResponseError::GaveUp {
                    target,
                    attempts: attempt,
                    last,
                });
            };
            if Instant::now() + *wait >= deadline {
                return Err(ResponseError::GaveUp {
                    target,
                    attempts: attempt,
                    last: format!("{last}; no time left to retry before the invocation deadline"),
                });
            }
            tracing::warn!(%target, attempt, error = %last, "CloudFormation response not delivered; retrying");
            tokio::time::sleep(*wait).await;
        }
        Err(ResponseError::GaveUp {
            target,
            attempts: MAX_ATTEMPTS,
            last,
        })
    }
}

/// The error and its causes on one line ("error sending request: connection refused"); reqwest's
/// own message stops at the first level. The URL has been stripped by the caller.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    shorten(&text, 300)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cfn::request::parse_event;
    use crate::test_http::TestServer;
    use serde_json::json;

    /// What `handle_invocation` does with a request that names a ResponseURL: print it under
    /// SAM local, otherwise check the URL and PUT.
    async fn send(
        responder: &Responder,
        req: &CfnRequest,
        outcome: &Outcome,
        deadline: Instant,
    ) -> Result<(), ResponseError> {
        let doc = response_document(req, outcome);
        if responder.sam_local() {
            responder.print_sam_local(&doc);
            return Ok(());
        }
        let url = req.response_url.as_deref().unwrap_or_default();
        let url = validate_response_url(url, responder.allow_insecure())?;
        responder.put(&url, &doc, deadline).await
    }

    pub(crate) fn request(response_url: Option<&str>) -> CfnRequest {
        let mut event = json!({
            "RequestType": "Create",
            "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/my-stack/5b9e2a70-aaaa",
            "RequestId": "req-1",
            "LogicalResourceId": "Backend",
            "ResourceType": "Custom::Thing",
            "ResourceProperties": {}
        });
        if let Some(url) = response_url {
            event["ResponseURL"] = json!(url);
        }
        parse_event(&event).unwrap()
    }

    fn len(doc: &Value) -> usize {
        serde_json::to_vec(doc).unwrap().len()
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder().no_proxy().build().unwrap()
    }

    #[test]
    fn document_copies_the_identifiers_verbatim() {
        let req = request(None);
        let data = BTreeMap::from([("VpcEndpointId".to_owned(), "vpce-1".to_owned())]);
        let doc = response_document(&req, &Outcome::success("pid-1", data));
        assert_eq!(
            doc,
            json!({
                "Status": "SUCCESS",
                "PhysicalResourceId": "pid-1",
                "StackId": req.stack_id,
                "RequestId": "req-1",
                "LogicalResourceId": "Backend",
                "NoEcho": false,
                "Data": {"VpcEndpointId": "vpce-1"}
            })
        );

        // A direct invocation without a RequestId gets a document without one, not an empty one.
        let mut anonymous = request(None);
        anonymous.request_id = String::new();
        let doc = response_document(&anonymous, &Outcome::success("pid-1", BTreeMap::new()));
        assert!(doc.get("RequestId").is_none(), "{doc}");
    }

    #[test]
    fn failed_always_has_a_reason_and_success_may_carry_one() {
        let req = request(None);
        let doc = response_document(&req, &Outcome::failed("pid", "no access"));
        assert_eq!(doc["Status"], "FAILED");
        assert_eq!(doc["Reason"], "no access");
        assert!(doc.get("Data").is_none());

        let mut outcome = Outcome::failed("pid", "");
        let doc = response_document(&req, &outcome);
        assert_eq!(doc["Reason"], DEFAULT_FAILED_REASON);
        outcome.reason = None;
        assert_eq!(
            response_document(&req, &outcome)["Reason"],
            DEFAULT_FAILED_REASON
        );

        let mut outcome = Outcome::success("pid", BTreeMap::new());
        outcome.reason = Some("already registered".into());
        outcome.no_echo = true;
        let doc = response_document(&req, &outcome);
        assert_eq!(doc["Reason"], "already registered");
        assert_eq!(doc["NoEcho"], true);
    }

    #[test]
    fn empty_physical_id_is_never_sent() {
        let mut req = request(None);
        let doc = response_document(&req, &Outcome::failed("", "boom"));
        assert_eq!(doc["PhysicalResourceId"], "my-stack-Backend");
        req.physical_resource_id = Some("existing-id".into());
        let doc = response_document(&req, &Outcome::failed("", "boom"));
        assert_eq!(doc["PhysicalResourceId"], "existing-id");
    }

    #[test]
    fn long_multibyte_reason_is_cut_on_a_character_boundary() {
        let req = request(None);
        let reason = "é€😀".repeat(1200); // 2+3+4 bytes, ~10.8 KB
        let doc = response_document(&req, &Outcome::failed("pid", reason.clone()));
        let size = len(&doc);
        assert!(size <= MAX_RESPONSE_BYTES, "{size}");
        assert!(size > MAX_RESPONSE_BYTES - 16, "the room is used, {size}");
        let sent = doc["Reason"].as_str().unwrap();
        assert!(sent.ends_with(TRUNCATION_MARKER));
        assert!(reason.starts_with(sent.strip_suffix(TRUNCATION_MARKER).unwrap()));
    }

    #[test]
    fn control_characters_and_quotes_stay_valid_json_within_the_limit() {
        let req = request(None);
        let reason = "\u{1}\"\\\n".repeat(3000);
        let doc = response_document(&req, &Outcome::failed("pid", reason.clone()));
        let bytes = serde_json::to_vec(&doc).unwrap();
        assert!(bytes.len() <= MAX_RESPONSE_BYTES, "{}", bytes.len());
        let back: Value = serde_json::from_slice(&bytes).unwrap();
        let sent = back["Reason"].as_str().unwrap();
        assert!(reason.starts_with(sent.strip_suffix(TRUNCATION_MARKER).unwrap()));
    }

    #[test]
    fn huge_data_is_dropped_with_a_note_rather_than_losing_the_reason() {
        let req = request(None);
        let data: BTreeMap<String, String> = (0..100)
            .map(|i| (format!("Key{i}"), "v".repeat(100)))
            .collect();
        let mut outcome = Outcome::success("pid", data.clone());
        let doc = response_document(&req, &outcome);
        assert!(len(&doc) <= MAX_RESPONSE_BYTES);
        assert!(doc.get("Data").is_none());
        assert!(doc["Reason"].as_str().unwrap().starts_with("[Data omitted"));
        assert_eq!(doc["Status"], "SUCCESS");

        outcome.status = Status::Failed;
        outcome.reason = Some("ü".repeat(5000));
        let doc = response_document(&req, &outcome);
        assert!(len(&doc) <= MAX_RESPONSE_BYTES);
        assert!(doc.get("Data").is_none());
        let reason = doc["Reason"].as_str().unwrap();
        assert!(reason.starts_with(
            "[Data omitted: the response would exceed CloudFormation's 4096-byte limit] üü"
        ));
        assert!(reason.ends_with(TRUNCATION_MARKER));
    }

    #[test]
    fn data_that_fits_is_kept_and_the_reason_is_cut_instead() {
        let req = request(None);
        let data: BTreeMap<String, String> = (0..10)
            .map(|i| (format!("Key{i}"), "v".repeat(100)))
            .collect();
        let mut outcome = Outcome::failed("pid", "x".repeat(10_000));
        outcome.data = data;
        let doc = response_document(&req, &outcome);
        assert!(len(&doc) <= MAX_RESPONSE_BYTES);
        assert_eq!(doc["Data"].as_object().unwrap().len(), 10);
        assert!(doc["Reason"].as_str().unwrap().len() >= MIN_REASON_BYTES);
    }

    #[test]
    fn a_long_stack_id_stays_verbatim() {
        let mut req = request(None);
        req.stack_id = format!(
            "arn:aws:cloudformation:eu-west-1:1:stack/{}/u",
            "s".repeat(2000)
        );
        let doc = response_document(&req, &Outcome::failed("pid", "ö".repeat(5000)));
        assert!(len(&doc) <= MAX_RESPONSE_BYTES);
        assert_eq!(doc["StackId"], req.stack_id);
    }

    #[test]
    fn identifiers_near_the_limit_stay_verbatim_at_the_cost_of_the_reason() {
        let mut req = request(None);
        req.stack_id = "s".repeat(3500);
        let mut outcome = Outcome::failed("pid", "r".repeat(5000));
        outcome.data = BTreeMap::from([("K".to_owned(), "v".repeat(100))]);
        let doc = response_document(&req, &outcome);
        assert!(len(&doc) <= MAX_RESPONSE_BYTES, "{}", len(&doc));
        assert_eq!(doc["StackId"], req.stack_id);
        assert!(doc.get("Data").is_none());
        let reason = doc["Reason"].as_str().unwrap();
        assert!(reason.starts_with("[Data omitted"), "{reason}");
        assert!(reason.ends_with(TRUNCATION_MARKER), "{reason}");
    }

    #[test]
    fn absurd_identifiers_still_give_a_document_within_the_limit() {
        let mut req = request(None);
        req.stack_id = "数".repeat(4000);
        req.request_id = "r".repeat(10_000);
        req.logical_resource_id = "\u{2}".repeat(3000);
        let data: BTreeMap<String, String> = (0..500)
            .map(|i| (format!("K{i}"), "é".repeat(50)))
            .collect();
        let mut outcome = Outcome::failed("p".repeat(9000), "😀".repeat(3000));
        outcome.data = data;
        let doc = response_document(&req, &outcome);
        assert!(len(&doc) <= MAX_RESPONSE_BYTES, "{}", len(&doc));
        assert_eq!(doc["Status"], "FAILED");
        assert!(!doc["Reason"].as_str().unwrap().is_empty());
        assert!(!doc["PhysicalResourceId"].as_str().unwrap().is_empty());

        let success = Outcome::success("p".repeat(9000), BTreeMap::new());
        let doc = response_document(&req, &success);
        assert!(len(&doc) <= MAX_RESPONSE_BYTES, "{}", len(&doc));
        assert_eq!(doc["Status"], "SUCCESS");
    }

    #[test]
    fn any_mix_of_sizes_fits_and_failed_keeps_a_reason() {
        let alphabet = ['a', 'é', '€', '😀', '"', '\\', '\n', '\u{1}'];
        let mut rng = fastrand::Rng::with_seed(4096);
        let mut text = |max: usize| -> String {
            let n = rng.usize(0..=max);
            (0..n)
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect()
        };
        for _ in 0..300 {
            let mut req = request(None);
            req.stack_id = text(3000);
            req.request_id = text(200);
            req.logical_resource_id = text(300);
            let data: BTreeMap<String, String> =
                (0..4).map(|i| (format!("K{i}"), text(800))).collect();
            let mut outcome = Outcome::failed(text(1500), text(6000));
            outcome.data = data;
            let doc = response_document(&req, &outcome);
            assert!(len(&doc) <= MAX_RESPONSE_BYTES, "{}", len(&doc));
            assert!(!doc["Reason"].as_str().unwrap().is_empty());
            assert!(!doc["PhysicalResourceId"].as_str().unwrap().is_empty());
            outcome.status = Status::Success;
            outcome.reason = None;
            assert!(len(&response_document(&req, &outcome)) <= MAX_RESPONSE_BYTES);
        }
    }

    #[test]
    fn response_url_table() {
        let accepted = [
            "https://s3.amazonaws.com/bucket/key?X-Amz-Signature=abc",
            "https://bucket.s3.amazonaws.com/key?Signature=x",
            "https://s3.us-east-1.amazonaws.com/bucket/key",
            "https://bucket.s3.dualstack.eu-west-1.amazonaws.com/key",
            "https://s3-fips.us-gov-west-1.amazonaws.com/bucket/key",
            "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/arn%3Aaws%3Acloudformation%3Aus-east-1%3A1%3Astack/s/u%7CRes%7Creq?AWSAccessKeyId=A&Expires=1&Signature=s",
            "https://s3.cn-north-1.amazonaws.com.cn/bucket/key",
            "https://cloudformation-custom-resource-response-euwest1.s3-eu-west-1.amazonaws.com/k",
            "https://s3-external-1.amazonaws.com/bucket/key",
            "https://my.dotted.bucket.s3.ap-southeast-2.amazonaws.com/key",
            "https://S3.AMAZONAWS.COM/bucket/key",
            "https://s3.amazonaws.com./bucket/key",
            "https://s3.amazonaws.com:443/bucket/key",
            "https://bucket.s3.eusc-de-east-1.amazonaws.eu/key",
            "https://s3.us-iso-east-1.c2s.ic.gov/bucket/key",
            "https://bucket.s3.us-isob-east-1.sc2s.sgov.gov/key",
            "https://s3.eu-isoe-west-1.cloud.adc-e.uk/bucket/key",
            "https://s3.us-isof-south-1.csp.hci.ic.gov/bucket/key",
        ];
        for url in accepted {
            let parsed = validate_response_url(url, false)
                .unwrap_or_else(|e| panic!("{url} should be accepted: {e}"));
            assert_eq!(parsed.scheme(), "https");
        }
        let refused = [
            ("https://evil.com/key", "not an Amazon S3 endpoint"),
            (
                "https://s3.amazonaws.com.evil.com/key",
                "not an Amazon S3 endpoint",
            ),
            (
                "https://amazonaws.com.evil.net/key",
                "not an Amazon S3 endpoint",
            ),
            ("https://amazonaws.com/key", "not an Amazon S3 endpoint"),
            (
                "https://ec2.us-east-1.amazonaws.com/",
                "not an Amazon S3 endpoint",
            ),
            (
                "https://s3-attacker-1.us-east-1.elb.amazonaws.com/",
                "not an Amazon S3 endpoint",
            ),
            (
                "https://s3abc.execute-api.us-east-1.amazonaws.com/",
                "not an Amazon S3 endpoint",
            ),
            ("https://evils3.amazonaws.com/", "not an Amazon S3 endpoint"),
            ("https://s3.amazonaws.co/key", "not an Amazon S3 endpoint"),
            ("https://s3.amazonaws.com:444/key", "names port 444"),
            ("https://s3.amazonaws.com:80/key", "names port 80"),
            ("https://s3.ic.gov/key", "not an Amazon S3 endpoint"),
            (
                "https://s3.evil.amazonaws.eu/key",
                "not an Amazon S3 endpoint",
            ),
            (
                "http://s3.amazonaws.com/bucket/key",
                "must use https, not http",
            ),
            ("http://pre-signed-S3-url-for-response", "must use https"),
            ("ftp://s3.amazonaws.com/bucket", "must use https"),
            ("https://user@s3.amazonaws.com/", "user name or password"),
            ("https://user:pw@s3.amazonaws.com/", "user name or password"),
            ("https://52.216.0.1/bucket/key", "is an IP address"),
            ("https://[2600:1f18::1]/bucket/key", "is an IP address"),
            ("not a url", "not a valid URL"),
            ("", "not a valid URL"),
            // Parsing would drop these and answer the host the rest spells.
            (
                "https://bucket.s3.amazonaws.com\t.evil.example/key",
                "control character U+0009",
            ),
            ("https://s3.amazon\naws.com/key", "control character U+000A"),
            ("https://s3.amazonaws.com/key\r", "control character U+000D"),
        ];
        for (url, expected) in refused {
            let err = validate_response_url(url, false)
                .err()
                .unwrap_or_else(|| panic!("{url} should be refused"))
                .to_string();
            assert!(err.contains(expected), "{url}: {err}");
        }
    }

    #[test]
    fn insecure_mode_accepts_local_stand_ins_only_over_http_s() {
        for url in [
            "http://127.0.0.1:5000/bucket/key?X-Amz-Signature=s",
            "http://localhost:4566/bucket/key",
            "https://evil.com/ok-in-tests",
        ] {
            validate_response_url(url, true).unwrap();
        }
        assert!(validate_response_url("ftp://127.0.0.1/x", true).is_err());
        assert!(validate_response_url("http://u:p@127.0.0.1/x", true).is_err());
        // Control characters are refused in tests too: the stand-in is no excuse.
        assert!(validate_response_url("http://127.0.0.\t1:5000/bucket/key", true).is_err());
    }

    #[test]
    fn url_errors_never_carry_the_query_string() {
        let err = validate_response_url("https://evil.com/path?X-Amz-Signature=SECRET", false)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("SECRET"));
        let url = Url::parse("https://b.s3.amazonaws.com/a%7Cb?X-Amz-Signature=SECRET").unwrap();
        assert_eq!(redacted(&url), "https://b.s3.amazonaws.com/a%7Cb");
    }

    #[tokio::test]
    async fn put_sends_the_document_with_an_empty_content_type() {
        let server = TestServer::statuses(vec![200]).await;
        let path_and_query = "/arn%3Aaws%3Acloudformation%3Aeu-west-1%3A1%3Astack/s/u%7CBackend%7Creq-1?AWSAccessKeyId=AK&Expires=1&Signature=ab%2Bc%3D";
        let req = request(Some(&server.url_for(path_and_query)));
        let responder = Responder::new(client(), true, false);
        let outcome = Outcome::success("pid-1", BTreeMap::from([("A".into(), "1".into())]));
        let deadline = Instant::now() + Duration::from_secs(10);
        send(&responder, &req, &outcome, deadline).await.unwrap();

        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        let put = &requests[0];
        assert_eq!(put.method, "PUT");
        assert_eq!(
            put.target, path_and_query,
            "the presigned query must not be re-encoded"
        );
        assert_eq!(put.header_values("content-type"), vec![""]);
        assert_eq!(
            put.header_values("content-length"),
            vec![put.body.len().to_string()]
        );
        let body: Value = serde_json::from_slice(&put.body).unwrap();
        assert_eq!(body, response_document(&req, &outcome));
        assert!(put.body.len() <= MAX_RESPONSE_BYTES);
    }

    #[tokio::test]
    async fn transient_failures_are_retried() {
        for transient in [503, 500, 429] {
            let server = TestServer::statuses(vec![transient, 200]).await;
            let req = request(Some(&server.url_for("/bucket/key?sig=1")));
            let responder = Responder::new(client(), true, false);
            let deadline = Instant::now() + Duration::from_secs(10);
            send(&responder, &req, &Outcome::failed("pid", "x"), deadline)
                .await
                .unwrap();
            let requests = server.requests();
            assert_eq!(requests.len(), 2, "after HTTP {transient}");
            assert_eq!(requests[0].body, requests[1].body);
        }
    }

    #[tokio::test]
    async fn a_403_is_permanent() {
        let server = TestServer::statuses(vec![403, 200]).await;
        let req = request(Some(&server.url_for("/bucket/key?X-Amz-Signature=SECRET")));
        let responder = Responder::new(client(), true, false);
        let deadline = Instant::now() + Duration::from_secs(10);
        let err = send(&responder, &req, &Outcome::failed("pid", "x"), deadline)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ResponseError::Rejected { status: 403, .. }),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("expired"), "{text}");
        assert!(text.contains("/bucket/key"), "{text}");
        assert!(!text.contains("SECRET"), "{text}");
        assert_eq!(server.requests().len(), 1);
    }

    #[tokio::test]
    async fn gives_up_after_five_attempts() {
        let server = TestServer::statuses(vec![502]).await;
        let req = request(Some(&server.url_for("/bucket/key")));
        let responder = Responder::new(client(), true, false);
        let deadline = Instant::now() + Duration::from_secs(30);
        let err = send(&responder, &req, &Outcome::failed("pid", "x"), deadline)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ResponseError::GaveUp { attempts: 5, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("HTTP 502"), "{err}");
        assert_eq!(server.requests().len(), 5);
    }

    #[tokio::test]
    async fn retries_stop_at_the_deadline() {
        // A port nobody listens on: every connect is refused.
        let port = {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap().port()
        };
        let req = request(Some(&format!(
            "http://127.0.0.1:{port}/bucket/key?X-Amz-Signature=SECRET"
        )));
        let responder = Responder::new(client(), true, false);
        let started = Instant::now();
        let deadline = started + Duration::from_millis(1200);
        let err = send(&responder, &req, &Outcome::failed("pid", "x"), deadline)
            .await
            .unwrap_err();
        assert!(Instant::now() <= deadline + Duration::from_millis(100));
        match &err {
            ResponseError::GaveUp { attempts, .. } => assert!((2..5).contains(attempts), "{err:?}"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(!err.to_string().contains("SECRET"), "{err}");
    }

    #[tokio::test]
    async fn sam_local_prints_instead_of_sending() {
        let server = TestServer::statuses(vec![200]).await;
        let req = request(Some(&server.url_for("/bucket/key")));
        let responder = Responder::new(client(), false, true);
        let outcome = Outcome::success("pid", BTreeMap::new());
        send(
            &responder,
            &req,
            &outcome,
            Instant::now() + Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert!(server.requests().is_empty());
        let printed = responder.printed.lock().unwrap().clone();
        assert_eq!(printed.len(), 1);
        let json = printed[0].strip_prefix(SAM_LOCAL_PREFIX).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(json).unwrap(),
            response_document(&req, &outcome)
        );
    }
}
