//! AWS fixtures in moto: the customer's VPC with the two Databricks endpoints, secrets,
//! and presigned S3 response URLs like those CloudFormation sends.
//! Built by `tests/support/aws_fixture.py` (boto3), one Python process per batch because
//! starting Python costs far more than the calls. It must not know about the Lambda.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::moto::{self, Moto};

/// The region of the bucket that receives responses, as for CloudFormation in us-east-1.
const RESPONSE_REGION: &str = "us-east-1";
/// A helper run normally takes about a second; past this, moto is stuck, and a test
/// failure says so instead of hanging.
const HELPER_LIMIT: Duration = Duration::from_secs(120);
/// Reading a stored response back from moto.
const FETCH_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("could not run aws_fixture.py with {python}: {source}")]
    Spawn {
        python: String,
        #[source]
        source: std::io::Error,
    },
    #[error("aws_fixture.py failed ({status}); its error output:\n{stderr}")]
    Failed { status: String, stderr: String },
    #[error("aws_fixture.py printed something other than its JSON result ({source}):\n{stdout}")]
    BadOutput {
        stdout: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("aws_fixture.py did not finish within {} s; moto's recent output:\n{moto_output}", HELPER_LIMIT.as_secs())]
    TimedOut { moto_output: String },
    #[error("reading the stored response from moto failed: {0}")]
    Fetch(#[from] reqwest::Error),
}

/// A customer VPC ready for back-end PrivateLink: DNS support and hostnames on, two
/// subnets in different availability zones, a compute-plane security group, an endpoint
/// security group open to it on 443, 6666, 2443 and 8443-8451, and Interface endpoints
/// for the region's Databricks REST API and relay services.
#[derive(Debug, Clone, Deserialize)]
pub struct AwsFixture {
    #[serde(skip)]
    pub region: String,
    pub vpc_id: String,
    pub subnet_ids: Vec<String>,
    pub cluster_sg_id: String,
    pub endpoint_sg_id: String,
    pub rest_vpce_id: String,
    pub relay_vpce_id: String,
    /// The Databricks REST API (workspace) endpoint service of the region.
    pub rest_service: String,
    /// The Databricks secure cluster connectivity relay endpoint service of the region.
    pub relay_service: String,
}

#[derive(Debug, Clone, Copy)]
pub struct NetworkOptions {
    /// `PrivateDnsEnabled` of the two Databricks endpoints.
    pub private_dns: bool,
}

impl Default for NetworkOptions {
    fn default() -> Self {
        NetworkOptions { private_dns: true }
    }
}

pub struct Network;

impl Network {
    /// A fresh VPC with both Databricks endpoints, private DNS enabled. The helper knows
    /// the services of us-east-1, eu-west-1 and us-west-2.
    pub async fn create(moto: &Moto, region: &str) -> AwsFixture {
        Self::create_with(moto, region, NetworkOptions::default()).await
    }

    pub async fn create_with(moto: &Moto, region: &str, options: NetworkOptions) -> AwsFixture {
        let mut created = Setup::new(region).network(options).run(moto).await;
        created.networks.remove(0)
    }
}

impl AwsFixture {
    /// Another Interface endpoint in this VPC's subnets, e.g. for a wrong service.
    pub async fn create_endpoint(&self, moto: &Moto, service: &str, private_dns: bool) -> String {
        let spec = EndpointSpec::interface(self, service).private_dns(private_dns);
        create_endpoint(moto, &self.region, &spec).await
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointType {
    Interface,
    Gateway,
}

/// An extra VPC endpoint for tests of endpoints the Lambda must refuse.
#[derive(Debug, Clone)]
pub struct EndpointSpec {
    pub vpc_id: String,
    pub service_name: String,
    pub endpoint_type: EndpointType,
    pub private_dns: bool,
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
}

impl EndpointSpec {
    /// An Interface endpoint in the network's subnets and endpoint security group.
    pub fn interface(network: &AwsFixture, service: &str) -> Self {
        EndpointSpec {
            vpc_id: network.vpc_id.clone(),
            service_name: service.to_owned(),
            endpoint_type: EndpointType::Interface,
            private_dns: true,
            subnet_ids: network.subnet_ids.clone(),
            security_group_ids: vec![network.endpoint_sg_id.clone()],
        }
    }

    /// A Gateway endpoint (no subnets, no private DNS), e.g. `com.amazonaws.us-east-1.s3`.
    pub fn gateway(vpc_id: &str, service: &str) -> Self {
        EndpointSpec {
            vpc_id: vpc_id.to_owned(),
            service_name: service.to_owned(),
            endpoint_type: EndpointType::Gateway,
            private_dns: false,
            subnet_ids: Vec::new(),
            security_group_ids: Vec::new(),
        }
    }

    pub fn private_dns(mut self, enabled: bool) -> Self {
        self.private_dns = enabled;
        self
    }

    fn operation(&self) -> Value {
        json!({
            "op": "endpoint",
            "vpc_id": self.vpc_id,
            "service_name": self.service_name,
            "endpoint_type": match self.endpoint_type {
                EndpointType::Interface => "Interface",
                EndpointType::Gateway => "Gateway",
            },
            "private_dns": self.private_dns,
            "subnet_ids": self.subnet_ids,
            "security_group_ids": self.security_group_ids,
        })
    }
}

/// Creates the endpoint and returns its `vpce-...` ID.
pub async fn create_endpoint(moto: &Moto, region: &str, spec: &EndpointSpec) -> String {
    string_field(&one(moto, region, spec.operation()).await, "vpce_id")
}

/// Creates a Secrets Manager secret and returns its ARN. Names must be unique in the
/// process (see `support::unique_name`): all tests share one moto.
pub async fn secret(moto: &Moto, region: &str, name: &str, secret_string: &str) -> String {
    let mut created = Setup::new(region)
        .secret(name, secret_string)
        .run(moto)
        .await;
    created.secret_arns.remove(0)
}

/// A presigned S3 PUT URL for a fresh object, shaped like a CloudFormation `ResponseURL`,
/// and the handle that reads back what was PUT there.
pub async fn response_url(moto: &Moto) -> (String, ResponseSink) {
    let mut created = Setup::new(RESPONSE_REGION).response_url().run(moto).await;
    let sink = created.response_sinks.remove(0);
    (sink.url().to_owned(), sink)
}

/// A CloudFormation stack in moto whose only resource, `logical_id`, is a custom resource
/// waiting for its Create's answer; returns the stack id. The resource stays
/// `CREATE_IN_PROGRESS` until [`answer_stack`] hands moto an answer or [`delete_stack`] runs.
pub async fn stack(moto: &Moto, region: &str, logical_id: &str) -> String {
    let result = one(
        moto,
        region,
        json!({"op": "stack", "logical_id": logical_id}),
    )
    .await;
    assert_eq!(
        string_field(&result, "status"),
        "CREATE_IN_PROGRESS",
        "moto's custom resource waits for an answer"
    );
    string_field(&result, "stack_id")
}

/// Deletes the stack, as CloudFormation does with a resource whose Create it cancelled;
/// returns the resource's status afterwards.
pub async fn delete_stack(moto: &Moto, region: &str, stack_id: &str, logical_id: &str) -> String {
    let operation = json!({"op": "delete_stack", "stack_id": stack_id, "logical_id": logical_id});
    string_field(&one(moto, region, operation).await, "status")
}

/// Hands `response` (a custom-resource response document) to moto's CloudFormation, as the
/// ResponseURL's bucket does to CloudFormation; returns the resource's status afterwards.
pub async fn answer_stack(
    moto: &Moto,
    region: &str,
    stack_id: &str,
    logical_id: &str,
    response: &Value,
) -> String {
    let operation = json!({
        "op": "answer_stack", "stack_id": stack_id, "logical_id": logical_id, "response": response,
    });
    string_field(&one(moto, region, operation).await, "status")
}

/// Runs `operations` of `aws_fixture.py` in one Python process (starting Python costs far more
/// than the calls); their results, in order.
pub async fn batch(moto: &Moto, region: &str, operations: Vec<Value>) -> Vec<Value> {
    run_helper(moto, region, operations)
        .await
        .unwrap_or_else(|error| panic!("{error}"))
}

async fn one(moto: &Moto, region: &str, operation: Value) -> Value {
    batch(moto, region, vec![operation]).await.remove(0)
}

/// Several fixtures created by one Python process.
pub struct Setup {
    region: String,
    operations: Vec<Value>,
}

/// What a [`Setup`] created, each list in the order it was asked for.
#[derive(Debug)]
pub struct Created {
    pub networks: Vec<AwsFixture>,
    pub secret_arns: Vec<String>,
    pub response_sinks: Vec<ResponseSink>,
}

impl Setup {
    pub fn new(region: &str) -> Self {
        Setup {
            region: region.to_owned(),
            operations: Vec::new(),
        }
    }

    pub fn network(mut self, options: NetworkOptions) -> Self {
        self.operations.push(json!({
            "op": "network",
            "private_dns": options.private_dns,
            "name": super::unique_name("harness"),
        }));
        self
    }

    pub fn secret(mut self, name: &str, secret_string: &str) -> Self {
        self.operations.push(json!({
            "op": "secret",
            "name": name,
            "secret_string": secret_string,
        }));
        self
    }

    /// A response URL; its object is always in the us-east-1 bucket, whatever the region.
    pub fn response_url(mut self) -> Self {
        // CloudFormation's object keys are "<StackId>|<LogicalResourceId>|<RequestId>", so
        // the URL path carries percent-encoded ':' and '|' that a client must not re-encode.
        let stack = super::events::stack_id("harness");
        let key = format!("{stack}|Resource|{}", super::uuid());
        self.operations
            .push(json!({"op": "response_url", "key": key}));
        self
    }

    pub async fn run(self, moto: &Moto) -> Created {
        let kinds: Vec<String> = self
            .operations
            .iter()
            .map(|operation| operation["op"].as_str().unwrap_or_default().to_owned())
            .collect();
        let results = run_helper(moto, &self.region, self.operations)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        let mut created = Created {
            networks: Vec::new(),
            secret_arns: Vec::new(),
            response_sinks: Vec::new(),
        };
        for (kind, result) in kinds.iter().zip(results) {
            match kind.as_str() {
                "network" => {
                    let mut network: AwsFixture = serde_json::from_value(result)
                        .unwrap_or_else(|error| panic!("aws_fixture.py network result: {error}"));
                    network.region = self.region.clone();
                    created.networks.push(network);
                }
                "secret" => created.secret_arns.push(string_field(&result, "arn")),
                "response_url" => created.response_sinks.push(ResponseSink {
                    put_url: string_field(&result, "put_url"),
                    get_url: string_field(&result, "get_url"),
                }),
                other => unreachable!("Setup never queues {other}"),
            }
        }
        created
    }
}

/// Reads back what the Lambda PUT to its response URL.
#[derive(Debug, Clone)]
pub struct ResponseSink {
    put_url: String,
    get_url: String,
}

/// The stored response object, for checks on size and headers.
#[derive(Debug, Clone)]
pub struct StoredObject {
    pub body: Vec<u8>,
    pub content_type: Option<String>,
}

impl ResponseSink {
    /// The presigned PUT URL to put into the event as `ResponseURL`.
    pub fn url(&self) -> &str {
        &self.put_url
    }

    /// The response as JSON, or `None` while nothing was PUT. Panics if the object is not
    /// JSON, since CloudFormation would reject it.
    pub async fn fetch(&self) -> Option<Value> {
        let object = self.fetch_object().await?;
        let value = serde_json::from_slice(&object.body).unwrap_or_else(|error| {
            panic!(
                "the response object is not JSON ({error}): {}",
                String::from_utf8_lossy(&object.body)
            )
        });
        Some(value)
    }

    /// Polls until a response is stored; `None` after `timeout`.
    pub async fn wait(&self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(value) = self.fetch().await {
                return Some(value);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn fetch_object(&self) -> Option<StoredObject> {
        self.try_fetch_object()
            .await
            .unwrap_or_else(|error| panic!("{error}"))
    }

    pub async fn try_fetch_object(&self) -> Result<Option<StoredObject>, FixtureError> {
        let response = reqwest::Client::new()
            .get(&self.get_url)
            .timeout(FETCH_LIMIT)
            .send()
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = response.error_for_status()?;
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await?.to_vec();
        Ok(Some(StoredObject { body, content_type }))
    }
}

fn string_field(result: &Value, name: &str) -> String {
    result[name]
        .as_str()
        .unwrap_or_else(|| panic!("aws_fixture.py result has no string {name:?}: {result}"))
        .to_owned()
}

async fn run_helper(
    moto: &Moto,
    region: &str,
    operations: Vec<Value>,
) -> Result<Vec<Value>, FixtureError> {
    // Dropping the unfinished run kills the helper (`kill_on_drop`).
    tokio::time::timeout(HELPER_LIMIT, run_helper_once(moto, region, operations))
        .await
        .unwrap_or_else(|_elapsed| {
            Err(FixtureError::TimedOut {
                moto_output: moto.recent_output(),
            })
        })
}

async fn run_helper_once(
    moto: &Moto,
    region: &str,
    operations: Vec<Value>,
) -> Result<Vec<Value>, FixtureError> {
    let python = moto::python();
    let request = json!({
        "endpoint": moto.endpoint(),
        "region": region,
        "operations": operations,
    });
    let mut child = tokio::process::Command::new(&python)
        .arg(moto::support_script("aws_fixture.py"))
        .env_clear()
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| FixtureError::Spawn {
            python: python.display().to_string(),
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A failed write shows up as the helper's own error below.
        let _ = stdin.write_all(request.to_string().as_bytes()).await;
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|source| FixtureError::Spawn {
            python: python.display().to_string(),
            source,
        })?;
    if !output.status.success() {
        return Err(FixtureError::Failed {
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    #[derive(Deserialize)]
    struct HelperOutput {
        results: Vec<Value>,
    }
    let parsed: HelperOutput =
        serde_json::from_slice(&output.stdout).map_err(|source| FixtureError::BadOutput {
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            source,
        })?;
    Ok(parsed.results)
}
