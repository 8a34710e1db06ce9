"""`make bench`: the five figures of the README's "Benchmarks" section, measured on this machine
in one run.

Owns: measuring the built Lambda binary against stand-ins on 127.0.0.1 (moto for AWS, the
Databricks account API emulator, a Lambda Runtime API written here that timestamps every poll
and answer), a Python peer to compare it with, and the table and JSON that report the figures.
Must not know: how the resource converges. What it knows about the Databricks round trips each
operation needs is written down in CRITICAL_PATH, from src/resource/, and checked against the
round trips the emulator actually saw.

Every process it starts is stopped on the way out. The measured processes are started without a
pre-exec hook (that would slow every spawn); they exit by themselves when the Runtime API they
poll goes away. Exits 0 when every figure could be measured, whether or not it met its target:
a missed target is reported as MISSED in the table, not as a failed run.
"""

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "support"))
sys.path.insert(0, str(REPO / "scripts"))

import aws_fixture  # noqa: E402  (the integration tests' moto fixtures, shared, not copied)
import demo  # noqa: E402  (process plumbing and the CloudFormation event shape, shared with make demo)

REGION = demo.REGION
AWS_ACCOUNT = demo.AWS_ACCOUNT
DATABRICKS_ACCOUNT = demo.DATABRICKS_ACCOUNT
CREDENTIALS = demo.CREDENTIALS
LAMBDA_NAME = "databricks-backend-privatelink"
EMULATOR_NAME = "databricks-account-emulator"
RESULTS = REPO / "bench-results" / "latest.json"
# template.yaml gives the function 600 s; the concurrency run needs it, the others finish in 1 s.
FUNCTION_TIMEOUT_S = 600
STEP_TIMEOUT_S = 60
MB = 1_000_000  # targets are in decimal megabytes; so are the figures

TARGETS = {
    "init_speedup": 50.0,  # Python peer's median init / the binary's, at least
    "peak_rss_mb": 20.0,  # under
    "zip_mb": 5.0,  # under
    "latency_ratio": 1.2,  # measured / (critical-path round trips x L), at most
    "concurrency_ratio": 1.5,  # total time / (requests needed / rate), at most
    "big_event_s": 1.0,  # slowest answer to a 1 MB event, under
    "big_event_rss_mb": 32.0,  # peak RSS after every 1 MB event, under
    "log_line_bytes": 16 * 1024,  # longest log line, at most
}

# 1 MB events in the shapes that used to cost memory, time or log volume in proportion to their
# entries (name -> ResourceProperties as JSON text), and JSON that no parsed value can hold.
MEGABYTE = 1024 * 1024
BIG_EVENTS = {
    "comma-separated WorkspaceIds": json.dumps({"WorkspaceIds": "x," * (MEGABYTE // 2 - 1024)}),
    "a list of 200k workspace ids": json.dumps({"WorkspaceIds": ["1"] * (MEGABYTE // 5)}),
    "40k unknown property names": json.dumps({f"Unknown{i:08}": "x" for i in range(MEGABYTE // 25)}),
    "3800 values nested 130 deep": "[" + ",".join(["[" * 130 + "1" + "]" * 130] * 3800) + "]",
    "1 MB of padding and 1e400": '{"Pad":"' + "a" * (MEGABYTE - 1024) + '","Poison":1e400}',
}

# Databricks round trips per operation, read from the code (src/resource/mod.rs, converge.rs and
# the steps it calls, delete.rs) for the scenarios below: (step, round trips the code makes one after the other,
# round trips the data dependencies force). "critical" is the second sum, the denominator of the
# latency figure; "code" is what the code does in sequence, checked against the waves of requests
# the emulator logs (the table flags a difference: the code changed, so update this). The emulator
# reports a new registration pendingAcceptance on its first read (as Databricks accepts
# asynchronously), so acceptance takes two reads; workspaces stay RUNNING through a PATCH, so one
# read confirms the switch.
CRITICAL_PATH = {
    ("endpoints", "Create"): [
        ("OAuth token", 1, 1),
        ("list registrations, PAS, networks (parallel)", 1, 1),
        ("register both endpoints (parallel)", 1, 1),
        ("acceptance reads: pending, then available (parallel)", 2, 2),
        ("create PAS", 1, 1),
        ("list PAS again (concurrent deliveries agree on the oldest)", 1, 1),
        ("read back what it made (parallel): did a Delete run meanwhile?", 1, 1),
    ],
    ("endpoints", "Update"): [
        ("OAuth token", 1, 1),
        ("lists (parallel)", 1, 1),
        ("replace PAS (PUT); the listed registrations are already available: no acceptance read", 1, 1),
    ],
    ("endpoints", "Delete"): [
        ("OAuth token", 1, 1),
        ("list registrations, PAS, networks (parallel)", 1, 1),
        ("delete PAS (with any networks, in parallel)", 1, 1),
        ("delete both registrations (parallel)", 1, 1),
    ],
    ("workspace", "Create"): [
        ("OAuth token", 1, 1),
        ("list registrations, PAS, networks, workspaces (parallel)", 1, 1),
        ("register both endpoints (parallel)", 1, 1),
        ("acceptance reads: pending, then available (parallel)", 2, 2),
        ("create PAS and the workspace's network copy with both registrations (parallel)", 1, 1),
        ("list PAS and networks again (parallel)", 1, 1),
        ("read the network copy: BROKEN refuses the switch, WARNED is passed on", 1, 1),
        ("PATCH the workspace (network + PAS)", 1, 1),
        ("read the workspace back (RUNNING, both ids took)", 1, 1),
        ("read back what it made (parallel): did a Delete run meanwhile?", 1, 1),
    ],
    ("workspace", "Update"): [
        ("OAuth token", 1, 1),
        ("lists (parallel)", 1, 1),
        ("replace PAS (PUT); network and workspace already right, registrations available", 1, 1),
    ],
    ("workspace", "Delete"): [
        ("OAuth token", 1, 1),
        ("list registrations, PAS, networks (parallel)", 1, 1),
        ("delete the network and PAS together (both kept: the workspace uses them)", 1, 1),
        ("delete both registrations (kept: in use)", 1, 1),
    ],
}

# The Python peer: the usual shape of a Python custom resource (module-level boto3 clients,
# a handler that sends the cfn-response document), polling the Runtime API itself with requests
# as a stand-in for the Python runtime's loop. Written to a temporary file at run time.
PYTHON_PEER = r'''
"""A Python custom resource as commonly written, for comparison only. Init: import boto3 and
requests, build an EC2 and a Secrets Manager client. Per event (Create, Update or Delete alike):
DescribeVpcEndpoints of the two endpoints, GetSecretValue of the credentials, one OAuth token
request to the account API, then the cfn-response PUT of the answer to the ResponseURL. It does
not register anything with Databricks."""
import json
import os
import sys

import boto3
import requests

ec2 = boto3.client("ec2")
secrets = boto3.client("secretsmanager")
http = requests.Session()
RUNTIME = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"


def send(event, status, data, reason=""):
    # What the cfn-response module sends: a JSON document PUT with an empty content type.
    body = json.dumps({
        "Status": status,
        "Reason": reason or "See the logs",
        "PhysicalResourceId": event.get("PhysicalResourceId") or event["LogicalResourceId"],
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "Data": data,
    })
    requests.put(event["ResponseURL"], data=body,
                 headers={"content-type": "", "content-length": str(len(body))}, timeout=10)


def handler(event):
    props = event["ResourceProperties"]
    ids = [props["RestApiVpcEndpointId"], props["RelayVpcEndpointId"]]
    found = ec2.describe_vpc_endpoints(VpcEndpointIds=ids)["VpcEndpoints"]
    principal = json.loads(secrets.get_secret_value(SecretId=props["CredentialsSecretArn"])["SecretString"])
    token = http.post(
        f"{os.environ['DATABRICKS_HOST']}/oidc/accounts/{props['AccountId']}/v1/token",
        data={"grant_type": "client_credentials", "scope": "all-apis"},
        auth=(principal["client_id"], principal["client_secret"]),
        timeout=10,
    )
    token.raise_for_status()
    send(event, "SUCCESS", {"Endpoints": ",".join(e["VpcEndpointId"] for e in found)})


while True:
    try:
        nxt = http.get(RUNTIME + "/invocation/next", timeout=None)
    except requests.RequestException:
        sys.exit(0)  # the Runtime API is gone: the benchmark has finished with this process
    request_id = nxt.headers["Lambda-Runtime-Aws-Request-Id"]
    event = nxt.json()
    try:
        handler(event)
        http.post(f"{RUNTIME}/invocation/{request_id}/response", data=b"{}")
    except Exception as error:  # noqa: BLE001 (a custom resource must always answer)
        send(event, "FAILED", {}, f"{type(error).__name__}: {error}")
        http.post(f"{RUNTIME}/invocation/{request_id}/error", json={"errorMessage": str(error)})
'''


class BenchError(Exception):
    """A figure could not be measured; the message says which and why."""


# ---------------------------------------------------------------------------------------------
# The world the processes run in


class World:
    """moto, the fixtures in it, emulators, and the environment of the measured processes."""

    def __init__(self, stack, args, log_dir):
        self.stack = stack
        self.args = args
        self.log_dir = log_dir
        self.side_log = open(log_dir / "moto-and-emulators.log", "wb")
        stack.callback(self.side_log.close)
        self.moto = demo.start_moto(stack, self.side_log)
        self.fixtures = aws_fixture.Fixtures(self.moto, REGION)
        self.fixtures.s3.create_bucket(Bucket=aws_fixture.RESPONSE_BUCKET)
        self.network = self.fixtures.op_network(private_dns=True, name="bench")
        self.secret_arn = self.fixtures.op_secret("databricks/bench", json.dumps(CREDENTIALS))["arn"]
        self.fixtures.warm_cloudformation()
        self.subnet_count = len(self.network["subnet_ids"])

    def endpoint_pairs(self, count):
        """`count` fresh (rest vpce, relay vpce) pairs in the benchmark VPC, created in moto."""
        pairs = []
        for i in range(count):
            pair = tuple(
                self.fixtures.create_interface_endpoint(
                    self.network["vpc_id"],
                    self.network["subnet_ids"],
                    [self.network["endpoint_sg_id"]],
                    self.network[f"{role}_service"],
                    True,
                    f"bench-{role}-{uuid.uuid4().hex[:6]}",
                )
                for role in ("rest", "relay")
            )
            pairs.append(pair)
        return pairs

    def workspace_network(self):
        """Two fresh subnets and a fresh cluster security group in the VPC, which the endpoints'
        group admits: Databricks (and the emulator) let a subnet or a security group serve one
        workspace's network only."""
        ids = []
        for _ in range(2):
            index = self.subnet_count
            self.subnet_count += 1
            ids.append(
                self.fixtures.ec2.create_subnet(
                    VpcId=self.network["vpc_id"], CidrBlock=f"10.0.{index}.0/24"
                )["Subnet"]["SubnetId"]
            )
        group = self.fixtures.ec2.create_security_group(
            GroupName=f"bench-cluster-{uuid.uuid4().hex[:8]}",
            Description="Databricks compute plane",
            VpcId=self.network["vpc_id"],
        )["GroupId"]
        self.fixtures.op_endpoint_ingress(
            self.network["endpoint_sg_id"], group, aws_fixture.ENDPOINT_INGRESS_PORTS
        )
        return {
            "vpc_id": self.network["vpc_id"],
            "subnet_ids": ids,
            "security_group_ids": [group],
        }

    def emulator(self, *flags):
        binary = self.args.bin_dir / EMULATOR_NAME
        proc = demo.spawn(
            [binary, "--port", "0", *flags], self.side_log, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
        )
        self.stack.callback(demo.stop_process, proc, "emulator")
        url = demo.read_first_line(proc, "listening on", 30, "the Databricks account emulator").rstrip("/")
        demo.drain(proc.stdout, self.side_log)
        return Emulator(url)

    def describe_to(self, emulator, pairs):
        for pair in pairs:
            for role, vpce in zip(("rest", "relay"), pair):
                emulator.call(
                    "POST",
                    "/_emulator/aws-endpoints",
                    {
                        "vpc_endpoint_id": vpce,
                        "service_name": self.network[f"{role}_service"],
                        "aws_account_id": AWS_ACCOUNT,
                    },
                )

    def env(self, runtime, emulator):
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.log_dir),
            "AWS_LAMBDA_RUNTIME_API": runtime.address,
            "AWS_LAMBDA_FUNCTION_NAME": demo.FUNCTION_NAME,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_ENDPOINT_URL": self.moto,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.environ["AWS_CONFIG_FILE"],
            "AWS_SHARED_CREDENTIALS_FILE": os.environ["AWS_SHARED_CREDENTIALS_FILE"],
            "DATABRICKS_HOST": emulator.url,
            "ALLOW_INSECURE_ENDPOINTS": "true",
            "NO_PROXY": "127.0.0.1,localhost",
            "RUST_LOG": "info",
        }

    def event(self, request_type, stack_id, props, physical_id=None, old_props=None):
        """A CloudFormation event and the S3 key its answer lands on."""
        request_id = str(uuid.uuid4())
        key = f"bench/{request_id}"
        put_url = self.fixtures.s3.generate_presigned_url(
            "put_object", Params={"Bucket": aws_fixture.RESPONSE_BUCKET, "Key": key}, ExpiresIn=7200
        )
        return demo.cfn_event(request_type, request_id, stack_id, put_url, props, physical_id, old_props), key

    def answer(self, key):
        """The response document the process PUT to the ResponseURL, or None."""
        try:
            body = self.fixtures.s3.get_object(Bucket=aws_fixture.RESPONSE_BUCKET, Key=key)["Body"].read()
            return json.loads(body)
        except Exception:  # noqa: BLE001 (missing or unreadable: both mean no answer)
            return None

    def props(self, pair, **extra):
        return {
            "AccountId": DATABRICKS_ACCOUNT,
            "CredentialsSecretArn": self.secret_arn,
            "RestApiVpcEndpointId": pair[0],
            "RelayVpcEndpointId": pair[1],
            **extra,
        }


class Emulator:
    def __init__(self, url):
        self.url = url

    def call(self, method, path, body=None):
        return demo.http_json(method, self.url + path, body)

    def seed_workspace(self, network, name):
        return self.call(
            "POST",
            "/_emulator/workspaces",
            {"account_id": DATABRICKS_ACCOUNT, "name": name, "region": REGION, "network": network},
        )["workspace_id"]

    def requests(self):
        return self.call("GET", "/_emulator/requests")["requests"]

    def clear_requests(self):
        self.call("DELETE", "/_emulator/requests")


def new_stack_id(name):
    return f"arn:aws:cloudformation:{REGION}:{AWS_ACCOUNT}:stack/{name}/{uuid.uuid4()}"


def start_measured(command, env, log):
    """Starts a measured process; returns (process, monotonic time just before the spawn)."""
    began = time.monotonic()
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
    return proc, began


def finish(proc):
    demo.stop_process(proc, "a measured process", timeout=5)


def peak_rss_bytes(pid):
    """VmHWM of a live process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise BenchError(f"/proc/{pid}/status has no VmHWM line")


def require_success(world, key, what):
    answer = world.answer(key)
    if answer is None or answer.get("Status") != "SUCCESS":
        reason = "no response document" if answer is None else f"{answer.get('Status')}: {answer.get('Reason')}"
        raise BenchError(f"{what} did not succeed ({reason}); see the logs")
    return answer


# ---------------------------------------------------------------------------------------------
# 1. Cold start


def cold_start(world, peers, emulator, log):
    pair = world.endpoint_pairs(1)[0]
    world.describe_to(emulator, [pair])
    props = world.props(pair)
    # init_ms: spawn to the accepted connection of the first poll (the process is done with init
    # when it connects); init_handled_ms: to the stand-in's handler, which adds its own latency.
    results = {name: {"init_ms": [], "init_handled_ms": [], "create_ms": []} for name in peers}
    for i in range(world.args.starts):
        # Alternating which peer goes first spreads any drift of the machine over both.
        order = list(peers) if i % 2 == 0 else list(reversed(peers))
        for name in order:
            command = peers[name]
            runtime = demo.RuntimeApi()
            try:
                stack_id = new_stack_id(f"bench-cold-{i}")
                event, key = world.event("Create", stack_id, props)
                request_id = runtime.queue_event(event, STEP_TIMEOUT_S)
                proc, began = start_measured(command, world.env(runtime, emulator), log)
                try:
                    first_poll = runtime.wait_polls(1, 30, [proc.poll])
                    _, _, answered = runtime.wait_answer(request_id, STEP_TIMEOUT_S, [proc.poll])
                    created = require_success(world, key, f"the {name} Create of start {i + 1}")
                    if name == "rust":
                        # Back to an empty account, so every start's Create does the same work.
                        delete, delete_key = world.event("Delete", stack_id, props, created["PhysicalResourceId"])
                        runtime.wait_answer(runtime.queue_event(delete, STEP_TIMEOUT_S), STEP_TIMEOUT_S, [proc.poll])
                        require_success(world, delete_key, f"the cleanup Delete of start {i + 1}")
                finally:
                    finish(proc)
            finally:
                runtime.stop()
            results[name]["init_ms"].append((runtime.first_connection() - began) * 1000)
            results[name]["init_handled_ms"].append((first_poll - began) * 1000)
            results[name]["create_ms"].append((answered - began) * 1000)
    return results


# ---------------------------------------------------------------------------------------------
# 2. Memory over a whole Create / Update / Delete cycle


def memory(world, peers, emulator, log):
    results = {}
    for name, command in peers.items():
        pair = world.endpoint_pairs(1)[0]
        world.describe_to(emulator, [pair])
        workspace = emulator.seed_workspace(world.workspace_network(), f"bench-mem-{name}")
        create_props = world.props(pair, WorkspaceIds=[str(workspace)])
        update_props = {**create_props, "PrivateAccessLevel": "ENDPOINT"}
        stack_id = new_stack_id(f"bench-mem-{name}")
        runtime = demo.RuntimeApi()
        proc, _ = start_measured(command, world.env(runtime, emulator), log)
        try:
            runtime.wait_polls(1, 30, [proc.poll])
            physical_id = None
            for request_type, props, old in (
                ("Create", create_props, None),
                ("Update", update_props, create_props),
                ("Delete", update_props, None),
            ):
                event, key = world.event(request_type, stack_id, props, physical_id, old)
                runtime.wait_answer(runtime.queue_event(event, STEP_TIMEOUT_S), STEP_TIMEOUT_S, [proc.poll])
                physical_id = require_success(world, key, f"the {name} {request_type}")["PhysicalResourceId"]
            # The process is back in its poll: everything the cycle needed has been touched.
            results[name] = peak_rss_bytes(proc.pid)
        finally:
            finish(proc)
            runtime.stop()
    return results


# ---------------------------------------------------------------------------------------------
# 2b. 1 MB events


def big_events(world, rust, emulator, log_dir):
    """One process answers a 1 MB event of each shape in BIG_EVENTS: the time from the event's
    delivery to its answer, VmHWM after all of them, and the longest line the process logged."""
    log_path = log_dir / "big-events.log"
    runtime = demo.RuntimeApi()
    with open(log_path, "wb") as log:
        proc, _ = start_measured(rust, world.env(runtime, emulator), log)
        try:
            runtime.wait_polls(1, 30, [proc.poll])
            answers = {}
            for name, properties in BIG_EVENTS.items():
                event, key = world.event("Create", new_stack_id("bench-big"), {})
                event["ResourceProperties"] = "@PROPERTIES@"
                text = json.dumps(event).replace('"@PROPERTIES@"', properties)
                request_id = runtime.queue_event(text, STEP_TIMEOUT_S)
                _, _, answered_at = runtime.wait_answer(request_id, STEP_TIMEOUT_S, [proc.poll])
                doc = world.answer(key)
                if doc is None or doc.get("Status") != "FAILED":
                    raise BenchError(f"the 1 MB event ({name}) was not answered FAILED: {doc}")
                answers[name] = {
                    "event_bytes": len(text),
                    "answer_ms": (answered_at - runtime.delivered_at[request_id]) * 1000,
                    "reason": doc.get("Reason", "")[:200],
                }
            peak = peak_rss_bytes(proc.pid)
        finally:
            finish(proc)
            runtime.stop()
    longest = max((len(line) for line in log_path.read_bytes().splitlines()), default=0)
    return {"events": answers, "peak_rss_bytes": peak, "longest_log_line_bytes": longest}


# ---------------------------------------------------------------------------------------------
# 3. Package size


def elf_has_symtab(data):
    """Whether a 64-bit little-endian ELF still carries a .symtab section (that is, not stripped)."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise BenchError("the binary is not a 64-bit little-endian ELF file")
    shoff = int.from_bytes(data[0x28:0x30], "little")
    shentsize = int.from_bytes(data[0x3A:0x3C], "little")
    shnum = int.from_bytes(data[0x3C:0x3E], "little")
    shstrndx = int.from_bytes(data[0x3E:0x40], "little")
    if shoff == 0 or shnum == 0:
        return False

    def section(index):
        """(offset of its name in the name table, offset of its contents in the file)"""
        base = shoff + index * shentsize
        return int.from_bytes(data[base:base + 4], "little"), int.from_bytes(data[base + 0x18:base + 0x20], "little")

    names_at = section(shstrndx)[1]
    for i in range(shnum):
        name, _ = section(i)
        end = data.index(b"\0", names_at + name)
        if data[names_at + name:end] == b".symtab":
            return True
    return False


def package(binary, work_dir):
    """Sizes of `binary` as a Lambda `bootstrap`, stripped, and of its deflated zip."""
    bootstrap = work_dir / "bootstrap"
    shutil.copy2(binary, bootstrap)
    stripped_here = False
    if elf_has_symtab(bootstrap.read_bytes()):
        strip = shutil.which("strip")
        if strip is None:
            raise BenchError(f"{binary} is not stripped and no `strip` is on PATH")
        subprocess.run([strip, str(bootstrap)], check=True)
        stripped_here = True
    archive = work_dir / "bootstrap.zip"
    info = zipfile.ZipInfo("bootstrap", date_time=(2026, 1, 1, 0, 0, 0))
    info.external_attr = 0o100755 << 16  # a regular executable file, as Lambda needs it
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(info, bootstrap.read_bytes())
    return {
        "bootstrap_bytes": bootstrap.stat().st_size,
        "zip_bytes": archive.stat().st_size,
        "stripped_by_bench": stripped_here,
        "built_at": datetime.datetime.fromtimestamp(binary.stat().st_mtime, datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
    }


def release_binary_state(release):
    """Whether target/release holds a binary built from the current sources."""
    if not release.exists():
        return "missing"
    newest = max(
        p.stat().st_mtime
        for p in [REPO / "Cargo.lock", *(REPO / "src").rglob("*.rs")]
        if p.exists()
    )
    return "current" if release.stat().st_mtime >= newest else "stale"


# ---------------------------------------------------------------------------------------------
# 4. End-to-end latency against the critical path


def waves(records, latency_ms):
    """Requests grouped by arrival: a request more than L/2 after the first of the current group
    starts a new group. With a fixed latency L, each group is one round trip the code waited for."""
    count, start = 0, None
    for at in sorted(r["at_ms"] for r in records):
        if start is None or at - start > latency_ms / 2:
            count, start = count + 1, at
    return count


def latency(world, rust, emulator, log):
    latency_ms = world.args.latency_ms
    results = []
    for scenario in ("endpoints", "workspace"):
        runs = {"Create": [], "Update": [], "Delete": []}
        for rep in range(world.args.latency_reps):
            pair = world.endpoint_pairs(1)[0]
            world.describe_to(emulator, [pair])
            extra = {}
            if scenario == "workspace":
                workspace = emulator.seed_workspace(world.workspace_network(), f"bench-lat-{rep}")
                extra = {"WorkspaceIds": [str(workspace)]}
            create_props = world.props(pair, **extra)
            update_props = {**create_props, "PrivateAccessLevel": "ENDPOINT"}
            stack_id = new_stack_id(f"bench-lat-{scenario}-{rep}")
            physical_id = None
            for request_type, props, old in (
                ("Create", create_props, None),
                ("Update", update_props, create_props),
                ("Delete", update_props, None),
            ):
                # A fresh process per operation, as CloudFormation's requests usually meet a cold
                # container: each one fetches its own token. Timing starts when the polling
                # process is handed the event, so its start-up is not counted here.
                runtime = demo.RuntimeApi()
                proc, _ = start_measured(rust, world.env(runtime, emulator), log)
                try:
                    runtime.wait_polls(1, 30, [proc.poll])
                    emulator.clear_requests()
                    event, key = world.event(request_type, stack_id, props, physical_id, old)
                    request_id = runtime.queue_event(event, STEP_TIMEOUT_S)
                    _, _, answered = runtime.wait_answer(request_id, STEP_TIMEOUT_S, [proc.poll])
                    elapsed_ms = (answered - runtime.delivered_at[request_id]) * 1000
                    answer = require_success(world, key, f"the {scenario} {request_type}")
                    physical_id = answer["PhysicalResourceId"]
                finally:
                    finish(proc)
                    runtime.stop()
                records = emulator.requests()
                first = min(r["at_ms"] for r in records)
                last = max(r["at_ms"] for r in records)
                runs[request_type].append(
                    {
                        "elapsed_ms": elapsed_ms,
                        "requests": len(records),
                        "token_requests": sum("/oidc/" in r["path"] for r in records),
                        "waves": waves(records, latency_ms),
                        # From the first Databricks request's arrival to the last one's answer.
                        "databricks_span_ms": last - first + latency_ms,
                    }
                )
        for request_type, reps in runs.items():
            steps = CRITICAL_PATH[(scenario, request_type)]
            critical = sum(s[2] for s in steps)
            code = sum(s[1] for s in steps)
            median = statistics.median(r["elapsed_ms"] for r in reps)
            results.append(
                {
                    "scenario": scenario,
                    "operation": request_type,
                    "elapsed_ms": [r["elapsed_ms"] for r in reps],
                    "median_ms": median,
                    "critical_round_trips": critical,
                    "code_round_trips": code,
                    "observed_waves": sorted({r["waves"] for r in reps}),
                    "token_requests": sorted({r["token_requests"] for r in reps}),
                    "requests": sorted({r["requests"] for r in reps}),
                    "outside_databricks_ms": statistics.median(r["elapsed_ms"] - r["databricks_span_ms"] for r in reps),
                    "ratio": median / (critical * latency_ms),
                    "steps": [{"step": s, "code": c, "critical": k} for s, c, k in steps],
                }
            )
    return results


# ---------------------------------------------------------------------------------------------
# 5. Concurrency under the account API's rate limit


def concurrency(world, rust, emulator, log_dir, solo_requests):
    """`solo_requests`: what one Create of the same shape needed alone (figure 4)."""
    stacks = world.args.stacks
    pairs = world.endpoint_pairs(stacks)
    world.describe_to(emulator, pairs)
    runtime = demo.RuntimeApi()
    procs = []
    logs = []
    try:
        env = world.env(runtime, emulator)
        for i in range(stacks):
            log = open(log_dir / f"concurrency-{i:03d}.log", "wb")
            logs.append(log)
            procs.append(start_measured(rust, env, log)[0])
        runtime.wait_polls(stacks, 60, [p.poll for p in procs])
        emulator.clear_requests()
        # Built first: the processes are polling, so each queued event starts at once.
        prepared = [
            world.event("Create", new_stack_id(f"bench-conc-{i}"), world.props(pair))
            for i, pair in enumerate(pairs)
        ]
        began = time.monotonic()
        events = [(runtime.queue_event(event, FUNCTION_TIMEOUT_S), key) for event, key in prepared]
        last = began
        for request_id, _ in events:
            _, _, answered = runtime.wait_answer(request_id, FUNCTION_TIMEOUT_S + 10, [p.poll for p in procs])
            last = max(last, answered)
        total_s = last - began
    finally:
        for proc in procs:
            finish(proc)
        runtime.stop()
        for log in logs:
            log.close()
    outcomes = [world.answer(key) for _, key in events]
    failures = [a for a in outcomes if a is None or a.get("Status") != "SUCCESS"]
    records = emulator.requests()
    throttled = sum(r["status"] == 429 for r in records)
    admitted = len(records) - throttled
    # The emulator's token bucket starts full (one second's worth), so that many requests need
    # no waiting; every further one needs 1/rate seconds.
    rate = world.args.rate_limit
    # A failed stack stops early and leaves requests undone, so then the work is estimated as
    # every stack doing what one Create did alone.
    needed = admitted if not failures else max(admitted, stacks * solo_requests)
    lower_bound_s = max(needed - rate, 1) / rate
    retries_logged = 0
    for path in log_dir.glob("concurrency-*.log"):
        for line in path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError, AttributeError):
                fields = json.loads(line).get("fields") or {}
                if fields.get("message") == "Databricks account API retries spent":
                    retries_logged += int(fields.get("retries", 0))
    return {
        "stacks": stacks,
        "processes": stacks,
        "rate_limit_per_s": world.args.rate_limit,
        "total_s": total_s,
        "admitted_requests": admitted,
        "needed_requests": needed,
        "needed_is_estimate": needed != admitted,
        "throttled_429": throttled,
        "retries_logged_by_the_binaries": retries_logged,
        "lower_bound_s": lower_bound_s,
        "ratio": total_s / lower_bound_s,
        "failures": len(failures),
        "failure_reasons": sorted({(a or {}).get("Reason", "no response document")[:200] for a in failures}),
    }


# ---------------------------------------------------------------------------------------------
# The table


def verdict(ok):
    return "met" if ok else "MISSED"


def ms(v):
    return f"{v:.1f} ms" if v < 100 else f"{v:.0f} ms"


def spread(values):
    return f"{ms(min(values))} / {ms(statistics.median(values))} / {ms(max(values))}"


def render(r):
    t = TARGETS
    rows = []
    cold = r["cold_start"]
    rust_init = statistics.median(cold["rust"]["init_ms"])
    py_init = statistics.median(cold["python"]["init_ms"])
    speedup = py_init / rust_init
    n = len(cold["rust"]["init_ms"])
    rows.append(("1", f"Cold start, spawn → first runtime poll connects, min / median / max (n={n})",
                 f"binary {spread(cold['rust']['init_ms'])}; Python peer {spread(cold['python']['init_ms'])}",
                 "", ""))
    rows.append(("1", "Cold start, median init: Python peer ÷ binary", f"{speedup:.0f}×",
                 f"≥ {t['init_speedup']:.0f}×", verdict(speedup >= t["init_speedup"])))
    handled = {name: statistics.median(cold[name]["init_handled_ms"]) for name in ("rust", "python")}
    rows.append(("1", "Same, timed when the stand-in's handler sees the poll (adds its own latency), medians",
                 f"binary {ms(handled['rust'])}; Python peer {ms(handled['python'])}; "
                 f"{handled['python'] / handled['rust']:.0f}×", "", ""))
    rows.append(("1", "Spawn → Create answered (binary: full Create; peer: 2 AWS calls + token)",
                 f"binary {spread(cold['rust']['create_ms'])}; Python peer {spread(cold['python']['create_ms'])}",
                 "", ""))
    mem = r["memory"]
    rows.append(("2", "Peak RSS (VmHWM) over Create / Update / Delete with a workspace",
                 f"binary {mem['rust'] / MB:.1f} MB; Python peer {mem['python'] / MB:.1f} MB",
                 f"< {t['peak_rss_mb']:.0f} MB", verdict(mem["rust"] / MB < t["peak_rss_mb"])))
    big = r["big_events"]
    slowest = max(e["answer_ms"] for e in big["events"].values())
    rows.append(("2", f"{len(big['events'])} events of 1 MB (malformed lists, 40k properties, deep nesting, "
                 "1e400), one process: slowest answer / VmHWM after all / longest log line",
                 f"{slowest:.1f} ms / {big['peak_rss_bytes'] / MB:.1f} MB / {big['longest_log_line_bytes']} bytes",
                 f"< {t['big_event_s']:.0f} s / < {t['big_event_rss_mb']:.0f} MB / ≤ {t['log_line_bytes']} bytes",
                 verdict(slowest / 1000 < t["big_event_s"] and big["peak_rss_bytes"] / MB < t["big_event_rss_mb"]
                         and big["longest_log_line_bytes"] <= t["log_line_bytes"])))
    for profile, pkg in r["package"].items():
        # Only the shipped profile is held to the target; another profile's size is for reference.
        shipped = profile == "release"
        if pkg.get("state", "current") != "current":
            rows.append(("3", f"Package, profile `{profile}`", f"binary {pkg['state']}",
                         f"zip < {t['zip_mb']:.0f} MB", "not measured"))
            continue
        rows.append(("3", f"Package, profile `{profile}`{'' if shipped else ' (not shipped)'}: "
                     "stripped `bootstrap` / zip (deflate)",
                     f"{pkg['bootstrap_bytes'] / MB:.2f} MB / {pkg['zip_bytes'] / MB:.2f} MB",
                     f"zip < {t['zip_mb']:.0f} MB" if shipped else "",
                     verdict(pkg["zip_bytes"] / MB < t["zip_mb"]) if shipped else ""))
    latency_ms = r["settings"]["latency_ms"]
    for row in r["latency"]:
        label = {"endpoints": "endpoints + PAS", "workspace": "+ workspace switch"}[row["scenario"]]
        waves_seen = "/".join(str(w) for w in row["observed_waves"])
        if row["observed_waves"] != [row["code_round_trips"]]:
            waves_seen += ", so CRITICAL_PATH in scripts/bench.py is out of date"
        rows.append(("4", f"{row['operation']} ({label}), L = {latency_ms} ms: median of {len(row['elapsed_ms'])}",
                     f"{row['median_ms']:.0f} ms = {row['ratio']:.2f} × {row['critical_round_trips']} critical RTs "
                     f"(code waits {row['code_round_trips']}, emulator saw {waves_seen}; "
                     f"{'/'.join(str(n) for n in row['token_requests'])} token request; "
                     f"{row['outside_databricks_ms']:.0f} ms outside Databricks)",
                     f"≤ {t['latency_ratio']}×", verdict(row["ratio"] <= t["latency_ratio"])))
    c = r["concurrency"]
    rows.append(("5", f"{c['stacks']} simultaneous Creates ({c['processes']} processes), "
                 f"{c['rate_limit_per_s']} req/s limit",
                 f"{c['total_s']:.1f} s = {c['ratio']:.2f} × lower bound {c['lower_bound_s']:.1f} s "
                 f"({c['needed_requests']} requests"
                 f"{' (estimated: failed stacks stopped early)' if c['needed_is_estimate'] else ''}"
                 f" at {c['rate_limit_per_s']}/s); "
                 f"{c['throttled_429']} answered 429, {c['retries_logged_by_the_binaries']} retries logged; "
                 f"{c['failures']} failed",
                 f"≤ {t['concurrency_ratio']}×, 0 failed",
                 verdict(c["ratio"] <= t["concurrency_ratio"] and c["failures"] == 0)))
    head = ("#", "Figure", "Measured", "Target", "Result")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    s = r["settings"]
    lines.append("")
    lines.append(
        f"Measured {s['date']} on {s['machine']}, load average {s['load_average_1min'][0]} before and "
        f"{s['load_average_1min'][1]} after; runtime figures from profile `{s['profile']}` "
        f"({s['profile_note']}). MB = 10^6 bytes."
    )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="bench-fast", help="Cargo profile whose binaries to measure")
    parser.add_argument("--starts", type=int, default=20, help="cold starts per peer")
    parser.add_argument("--latency-ms", type=int, default=50, help="emulator latency L for figure 4")
    parser.add_argument("--latency-reps", type=int, default=3, help="repetitions of each figure-4 cycle")
    parser.add_argument("--stacks", type=int, default=100, help="simultaneous stacks for figure 5")
    parser.add_argument("--rate-limit", type=int, default=15, help="emulator requests per second for figure 5")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args()
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    args.target_dir = target_dir if target_dir.is_absolute() else REPO / target_dir
    args.bin_dir = args.target_dir / args.profile
    return args


PROFILE_NOTES = {
    "bench-fast": "release settings but no cross-crate LTO, 16 codegen units and aws-sdk-ec2 unoptimized, "
    "so that it builds in minutes; release has fat LTO and 1 codegen unit",
    "release": "opt-level s, fat LTO, 1 codegen unit, stripped: what ships",
}


def run(stack, args, log_dir):
    for name in (LAMBDA_NAME, EMULATOR_NAME):
        if not (args.bin_dir / name).exists():
            raise BenchError(f"{args.bin_dir / name} is missing; run `make bench` (it builds profile {args.profile})")
    rust = [str(args.bin_dir / LAMBDA_NAME)]
    peer = log_dir / "python_peer.py"
    peer.write_text(PYTHON_PEER)
    peers = {"rust": rust, "python": [sys.executable, str(peer)]}
    measured_log = open(log_dir / "measured-processes.log", "wb")
    stack.callback(measured_log.close)

    def phase(text):
        print(f"-- {text} [{time.monotonic() - started:.0f} s]", flush=True)

    started = time.monotonic()
    phase("starting moto and creating the VPC, endpoints and secret")
    world = World(stack, args, log_dir)
    plain = world.emulator()
    results = {}

    phase(f"1. cold start: {args.starts} starts of the binary and of the Python peer")
    results["cold_start"] = cold_start(world, peers, plain, measured_log)
    phase("2. peak RSS over Create / Update / Delete")
    results["memory"] = memory(world, peers, plain, measured_log)

    phase("2b. 1 MB events")
    results["big_events"] = big_events(world, rust, plain, log_dir)

    phase("3. package size")
    work = Path(tempfile.mkdtemp(prefix="bench-package-", dir=log_dir))
    results["package"] = {args.profile: package(args.bin_dir / LAMBDA_NAME, work)}
    if args.profile != "release":
        release = args.target_dir / "release" / LAMBDA_NAME
        state = release_binary_state(release)
        if state == "current":
            shutil.rmtree(work)
            work.mkdir()
            results["package"]["release"] = package(release, work)
        else:
            results["package"]["release"] = {
                "state": f"{state} (build it with `cargo build --release`, about 16 min here)"
            }

    phase(f"4. latency with L = {args.latency_ms} ms")
    slow = world.emulator("--latency-ms", str(args.latency_ms))
    results["latency"] = latency(world, rust, slow, measured_log)

    phase(f"5. {args.stacks} simultaneous stacks against {args.rate_limit} requests/s")
    limited = world.emulator("--rate-limit", str(args.rate_limit))
    solo = max(
        max(r["requests"]) for r in results["latency"] if (r["scenario"], r["operation"]) == ("endpoints", "Create")
    )
    results["concurrency"] = concurrency(world, rust, limited, log_dir, solo)
    phase("done")
    return results


def main():
    args = parse_args()
    started = time.monotonic()
    log_dir = demo.isolated_log_dir("databricks-privatelink-bench-")

    def on_sigterm(signum, frame):
        raise demo.Stopped()

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    print(f"logs in {log_dir}", flush=True)
    # Other work on the machine moves the figures (start-up most); the table says how busy it was.
    load_before = os.getloadavg()[0]
    try:
        with contextlib.ExitStack() as stack:
            try:
                results = run(stack, args, log_dir)
            finally:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except KeyboardInterrupt:
        print("\ninterrupted; everything the benchmark started is stopped", file=sys.stderr)
        return 130
    except demo.Stopped:
        print("\nstopped by SIGTERM; everything the benchmark started is stopped", file=sys.stderr)
        return 143
    except (BenchError, demo.DemoError) as error:
        print(f"\nBENCHMARK FAILED: {error}\nlogs in {log_dir}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    results["settings"] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
        f"Python {platform.python_version()}",
        "profile": args.profile,
        "profile_note": PROFILE_NOTES.get(args.profile, "see Cargo.toml"),
        "latency_ms": args.latency_ms,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "targets": TARGETS,
        "python_peer": PYTHON_PEER.split('"""')[1].replace("\n", " "),
    }
    results["runtime_s"] = time.monotonic() - started
    table = render(results)
    results["table"] = table
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(table)
    print()
    print(f"written to {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}; "
          f"measuring took {results['runtime_s']:.0f} s; logs in {log_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
