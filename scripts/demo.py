"""`make demo`: one CloudFormation lifecycle of Custom::DatabricksBackendPrivateLink, locally.

Owns: wiring the real Lambda binary and the real verifier binary to stand-ins on 127.0.0.1 (moto
for AWS, the Databricks account API emulator, a minimal Lambda Runtime API per binary, Lambda's
Invoke API, the DNS world of the VPC for the verifier), playing a Create the verifier refuses
because the VPC's DNS servers do not see the endpoints' private zone, a Create the verifier lets
through that holds its answer until ReadyAfter and a final verification, an in-place Update and
Delete as CloudFormation would, and
printing what each side holds after every step.
Must not know: how the resource converges or deletes; it only reads what the binary answered
(the response document in S3) and what exists afterwards (EC2 and the emulator's state dump).

Every process it starts is stopped on the way out, on Ctrl-C and on SIGTERM; on Linux the
children also get SIGTERM from the kernel if this script is killed outright. Exits 0 only when
every step answered as it should (FAILED for the refused Create, SUCCESS for the rest) and left
the state the step promises.
"""

import argparse
import contextlib
import ctypes
import json
import os
import queue
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "support"))

import aws_fixture  # noqa: E402  (lives with the integration tests; shared, not copied)
import dns_world  # noqa: E402  (the same DNS world the integration tests use)

LAMBDA_BIN = REPO / "target" / "debug" / "databricks-backend-privatelink"
VERIFIER_BIN = REPO / "target" / "debug" / "verifier"
EMULATOR_BIN = REPO / "target" / "debug" / "databricks-account-emulator"
MOTO_RUNNER = REPO / "tests" / "support" / "moto_runner.py"

REGION = "us-east-1"
# The AWS account moto uses for the `testing` credentials, so ARNs match moto's resources.
AWS_ACCOUNT = "123456789012"
# Fixed so repeated runs read the same; any UUID works against the emulator.
DATABRICKS_ACCOUNT = "0d3f7c1e-2b4a-4c5d-9e8f-1a2b3c4d5e6f"
# The emulator's default service principal (emulator/src/main.rs, --client).
CREDENTIALS = {"client_id": "emulator-client", "client_secret": "emulator-secret"}
FUNCTION_NAME = "databricks-backend-privatelink-demo"
STACK_NAME = "databricks-demo"
LOGICAL_ID = "PrivateLink"
RESOURCE_TYPE = "Custom::DatabricksBackendPrivateLink"
# What the demo function is configured with; the binary's guard answers FAILED 3 s before it.
FUNCTION_TIMEOUT_S = 60
# The Create that holds its answer runs with a short timeout, so that the waiting is handed on
# to a fresh invocation at least once; each hand-over gets the same.
HELD_TIMEOUT_S = 25
# The test-only stand-in for the 20 minutes between a switch and ReadyAfter.
PROPAGATION_S = 20
VERIFIER_NAME = "databricks-backend-privatelink-demo-verifier"
VERIFIER_ARN = f"arn:aws:lambda:us-east-1:123456789012:function:{VERIFIER_NAME}"
VERIFIER_TIMEOUT_S = 30
# DNS servers a DHCP option set hands out in step 0: servers that do not forward to the VPC
# resolver, so the endpoints' private zone is out of their sight.
CUSTOM_DNS_SERVERS = ["10.0.0.53"]
RELAY_PRIVATELINK = "tunnel.privatelink.us-east-1.cloud.databricks.com"
# How long past the deadline to wait for an answer before calling the step lost.
ANSWER_GRACE_S = 5
STARTUP_TIMEOUT_S = 30


class DemoError(Exception):
    """A stand-in could not start or the binary did not answer; the message says what to do."""


class Stopped(BaseException):
    """SIGTERM arrived; unwinds like Ctrl-C so the cleanup runs. A BaseException, like
    KeyboardInterrupt, because botocore retries a call that raised any Exception."""


# ---------------------------------------------------------------------------------------------
# Child processes


def _parent_death_signal():
    """A preexec_fn that makes Linux SIGTERM the child when this script dies, even by SIGKILL,
    so a killed demo cannot leave the emulator or the Lambda running. None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        # Loaded here, before fork: the child must only make the one call.
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def arm():
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return arm


PDEATHSIG = _parent_death_signal()


def spawn(args, log, **kwargs):
    """Starts a child in its own session (a terminal Ctrl-C reaches only this script, which then
    stops the children in order) with stderr into `log`."""
    return subprocess.Popen(
        [str(a) for a in args],
        stderr=log,
        start_new_session=True,
        preexec_fn=PDEATHSIG,
        **kwargs,
    )


def read_first_line(proc, prefix, timeout, what):
    """The first stdout line of `proc` that starts with `prefix`, or DemoError."""
    deadline = time.monotonic() + timeout
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    buffered = b""
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DemoError(f"{what} did not start within {timeout} s")
            if not selector.select(timeout=min(left, 0.5)):
                if proc.poll() is not None:
                    raise DemoError(f"{what} exited with status {proc.returncode} while starting")
                continue
            # os.read, not readline: a buffered reader would hide bytes from select.
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                proc.wait(timeout=5)
                raise DemoError(f"{what} exited with status {proc.returncode} while starting")
            buffered += chunk
            while b"\n" in buffered:
                line, buffered = buffered.split(b"\n", 1)
                text = line.decode(errors="replace").strip()
                if text.startswith(prefix):
                    return text[len(prefix):].strip()
    finally:
        selector.close()


def drain(stream, sink):
    """Copies what a child still writes to stdout into `sink`, so a full pipe never blocks it."""

    def run():
        for chunk in iter(lambda: stream.read1(4096), b""):
            sink.write(chunk)
            sink.flush()

    threading.Thread(target=run, daemon=True).start()


def stop_process(proc, name, graceful=None, timeout=5):
    """Asks `proc` to stop (graceful(), else SIGTERM), then kills it; always reaps it."""
    if proc.poll() is not None:
        return
    try:
        if graceful is not None:
            graceful()
        else:
            proc.terminate()
        proc.wait(timeout=timeout)
    except (subprocess.TimeoutExpired, OSError):
        proc.kill()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            print(f"warning: {name} (pid {proc.pid}) did not stop after SIGKILL", file=sys.stderr)


def start_moto(stack, log):
    # moto_runner serves until its stdin closes: if this script dies, moto goes with it.
    proc = spawn(
        [sys.executable, MOTO_RUNNER], log, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )

    def close_stdin():
        with contextlib.suppress(OSError):
            proc.stdin.close()

    stack.callback(stop_process, proc, "moto", graceful=close_stdin)
    port = read_first_line(proc, "PORT", STARTUP_TIMEOUT_S, "moto")
    drain(proc.stdout, log)
    return f"http://127.0.0.1:{int(port)}"


def start_emulator(stack, log):
    if not EMULATOR_BIN.exists():
        raise DemoError(f"{EMULATOR_BIN.relative_to(REPO)} is missing; run `cargo build --workspace --bins`")
    # Port 0: the emulator binds a free port itself and reports it, so no port can be taken
    # between choosing and binding it.
    proc = spawn([EMULATOR_BIN, "--port", "0"], log, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    stack.callback(stop_process, proc, "emulator")
    url = read_first_line(proc, "listening on", STARTUP_TIMEOUT_S, "the Databricks account emulator")
    drain(proc.stdout, log)
    return url.rstrip("/")


# ---------------------------------------------------------------------------------------------
# Plain HTTP to the stand-ins (never through a proxy: everything is on 127.0.0.1)

_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_json(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with _HTTP.open(request, timeout=10) as answer:
            return json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        detail = error.read()[:300].decode(errors="replace")
        raise DemoError(f"{method} {url.split('?')[0]} answered {error.code}: {detail}") from None


# ---------------------------------------------------------------------------------------------
# A minimal AWS Lambda Runtime API


def send_json(handler, status, body=b"", headers=()):
    """Answers the request `handler` serves with a JSON `body`."""
    handler.send_response(status)
    for name, value in headers:
        handler.send_header(name, value)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    with contextlib.suppress(OSError):
        # A Lambda is stopped before these servers: its last long poll has no reader.
        handler.wfile.write(body)


class RuntimeApi:
    """The HTTP interface a Lambda polls, shared by any number of processes (make bench runs a
    hundred against one): each `next` hands out one queued event and the answer is collected.
    Paths and headers are those lambda_runtime uses (tests/integration/support/runtime.rs).

    Times are time.monotonic(): of each connection when it is accepted, and of each request when
    it reaches its handler, which is later by the stand-in's own work (a thread per connection,
    parsing the request in Python: 1 to 3 ms here). The server runs from construction on."""

    PREFIX = "/2018-06-01/runtime"

    def __init__(self):
        self.events = queue.Queue()
        self.answers = {}  # request id -> queue of ("response" | "error", body, monotonic time)
        self.delivered_at = {}  # request id -> monotonic time the event was handed out
        self.polls = []  # monotonic times of every `next`
        self.connections = []  # monotonic times of every accepted connection
        self.polled = threading.Condition()
        self.init_errors = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass  # the binary's own log tells the story

            def reply(self, status, body=b"", headers=()):
                send_json(self, status, body, headers)

            def do_GET(self):
                now = time.monotonic()
                if self.path != f"{api.PREFIX}/invocation/next":
                    return self.reply(404, b'{"errorMessage":"unknown path"}')
                with api.polled:
                    api.polls.append(now)
                    api.polled.notify_all()
                while not api.stopping.is_set():
                    try:
                        request_id, deadline_ms, event = api.events.get(timeout=0.2)
                        break
                    except queue.Empty:
                        continue
                else:
                    return self.reply(503, b'{"errorMessage":"shutting down"}')
                with api.lock:
                    api.delivered_at[request_id] = time.monotonic()
                self.reply(
                    200,
                    # Text is sent as it is: bench's hostile events are JSON no dict can hold.
                    (event if isinstance(event, str) else json.dumps(event)).encode(),
                    [
                        ("Lambda-Runtime-Aws-Request-Id", request_id),
                        ("Lambda-Runtime-Deadline-Ms", str(deadline_ms)),
                        (
                            "Lambda-Runtime-Invoked-Function-Arn",
                            f"arn:aws:lambda:{REGION}:{AWS_ACCOUNT}:function:{FUNCTION_NAME}",
                        ),
                        (
                            "Lambda-Runtime-Trace-Id",
                            f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};"
                            f"Parent={uuid.uuid4().hex[:16]};Sampled=0",
                        ),
                    ],
                )

            def do_POST(self):
                now = time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                payload = self.rfile.read(length) if length else b""
                if self.path == f"{api.PREFIX}/init/error":
                    api.init_errors.append(payload.decode(errors="replace"))
                    return self.reply(202, b'{"status":"OK"}')
                parts = self.path[len(api.PREFIX):].strip("/").split("/")
                if len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                    with api.lock:
                        waiting = api.answers.get(parts[1])
                    if waiting is None:
                        return self.reply(400, b'{"errorMessage":"unknown request id"}')
                    waiting.put((parts[2], payload, now))
                    return self.reply(202, b'{"status":"OK"}')
                return self.reply(404, b'{"errorMessage":"unknown path"}')

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            # A hundred processes connect at once in the bench's concurrency run; the default
            # backlog of 5 would make some of them wait for a SYN retry.
            request_queue_size = 256

            def get_request(self):
                connection = super().get_request()
                with api.lock:
                    api.connections.append(time.monotonic())
                return connection

            def handle_error(self, request, client_address):
                # A poll cut off by the Lambda's stop is expected; anything else is worth a trace.
                if not api.stopping.is_set():
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def queue_event(self, event, timeout_s):
        """Queues `event` with a deadline `timeout_s` from now; returns its request id."""
        request_id = str(uuid.uuid4())
        with self.lock:
            self.answers[request_id] = queue.Queue()
        self.events.put((request_id, int((time.time() + timeout_s) * 1000), event))
        return request_id

    def first_connection(self):
        """When the first connection was accepted: a Lambda's first poll opens it."""
        with self.lock:
            return self.connections[0]

    def wait_polls(self, count, timeout, exit_codes=()):
        """Waits until `count` polls have arrived; returns the time of the first. Raises DemoError
        when a process whose `exit_code()` is in `exit_codes` ends first."""
        give_up = time.monotonic() + timeout
        with self.polled:
            while len(self.polls) < count:
                left = give_up - time.monotonic()
                code = next((c for c in (exit_code() for exit_code in exit_codes) if c is not None), None)
                if code is not None:
                    raise DemoError(f"a Lambda process exited with status {code} before polling")
                if self.init_errors:
                    raise DemoError(f"a Lambda process failed to initialise: {self.init_errors[-1][:300]}")
                if left <= 0:
                    raise DemoError(f"only {len(self.polls)} of {count} Lambda processes polled within {timeout} s")
                self.polled.wait(min(left, 0.2))
            return self.polls[0]

    def wait_answer(self, request_id, timeout, exit_codes=()):
        """("response" | "error", body, time) of the answer to `request_id`. Raises DemoError when
        a process whose `exit_code()` is in `exit_codes` ends first, or after `timeout` s."""
        give_up = time.monotonic() + timeout
        waiting = self.answers[request_id]
        while True:
            try:
                return waiting.get(timeout=0.2)
            except queue.Empty:
                if self.init_errors:
                    raise DemoError(f"the Lambda failed to initialise: {self.init_errors[-1][:300]}")
                code = next((c for c in (exit_code() for exit_code in exit_codes) if c is not None), None)
                if code is not None:
                    raise DemoError(
                        f"the Lambda process exited with status {code} before answering"
                        + (
                            " without polling for the event: is target/debug/databricks-backend-privatelink"
                            " a stub? Rebuild it with `cargo build --workspace --bins`"
                            if code == 0 and not self.polls
                            else ""
                        )
                    )
                if time.monotonic() > give_up:
                    raise DemoError(f"the Lambda did not answer within {timeout} s")

    def invoke(self, event, timeout_s, exit_code):
        """Queues `event` for one Lambda; returns ("response" | "error", body) or raises DemoError."""
        request_id = self.queue_event(event, timeout_s)
        kind, body, _ = self.wait_answer(request_id, timeout_s + ANSWER_GRACE_S, [exit_code])
        return kind, body


# ---------------------------------------------------------------------------------------------
# DNS for the verifier, and the Lambda service's Invoke API


class LambdaService:
    """The Invoke API (`AWS_ENDPOINT_URL_LAMBDA`): an asynchronous invocation of the function is
    queued into its Runtime API as a fresh invocation (how it hands a held answer on); an
    invocation of the verifier runs the real verifier binary through its own Runtime API."""

    def __init__(self, runtime, verifier_runtime, verifier_exit_code):
        self.hops = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, status, body=b"", headers=()):
                send_json(self, status, body, headers)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"{}")
                name = self.path.split("/functions/", 1)[-1].split("/", 1)[0]
                name = urllib.parse.unquote(name)
                if self.headers.get("X-Amz-Invocation-Type") == "Event" and name.endswith(FUNCTION_NAME):
                    service.hops.append(runtime.queue_event(payload, HELD_TIMEOUT_S))
                    return self.reply(202)
                if name.endswith(VERIFIER_NAME):
                    kind, body = verifier_runtime.invoke(payload, VERIFIER_TIMEOUT_S, verifier_exit_code)
                    headers = [("X-Amz-Function-Error", "Unhandled")] if kind == "error" else []
                    return self.reply(200, body, headers)
                return self.reply(
                    404,
                    b'{"Type":"User","Message":"Function not found"}',
                    [("x-amzn-ErrorType", "ResourceNotFoundException")],
                )

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------------------------
# The Lambda binary and its log


class LambdaProcess:
    """The real binary, its JSON log copied to a file, and the records of the current step."""

    def __init__(self, log_path):
        self.log_path = log_path
        self.records = []
        self.lock = threading.Lock()
        self.proc = None

    def start(self, stack, env, binary=LAMBDA_BIN):
        if not binary.exists():
            raise DemoError(f"{binary.relative_to(REPO)} is missing; run `cargo build --workspace --bins`")
        log = open(self.log_path, "wb")
        stack.callback(log.close)
        self.proc = spawn(
            [binary], subprocess.STDOUT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env
        )
        stack.callback(stop_process, self.proc, f"the {binary.name} binary")

        def copy():
            for line in iter(self.proc.stdout.readline, b""):
                log.write(line)
                log.flush()
                try:
                    record = json.loads(line)
                except ValueError:
                    record = {"level": "OUTPUT", "fields": {"message": line.decode(errors="replace").strip()}}
                with self.lock:
                    self.records.append(record)

        self.reader = threading.Thread(target=copy, daemon=True)
        self.reader.start()

    def exit_code(self):
        """None while running."""
        return self.proc.poll()

    def take_records(self, limit_s=1.0):
        """The records since the last call. The binary logs the response's fate just before it
        answers the Runtime API, but this copy may lag behind the pipe: wait for that line."""
        give_up = time.monotonic() + limit_s
        while time.monotonic() < give_up:
            with self.lock:
                if any(is_last_record(r) for r in self.records):
                    break
            time.sleep(0.01)
        with self.lock:
            records, self.records = self.records, []
        return records


def is_last_record(record):
    message = str((record.get("fields") or {}).get("message", ""))
    return message == "CloudFormation response delivered" or message.startswith("CloudFormation was not answered")


# Fields already shown elsewhere, or too long to read in a one-line summary.
_QUIET_FIELDS = {"message", "budget_ms", "reason", "target", "attempt"}


def summarize(record):
    """One short line per log record: steps as `· step`, the rest as `LEVEL message k=v`."""
    fields = record.get("fields") or {}
    level = record.get("level", "")
    message = str(fields.get("message", ""))
    if message == "step" and "step" in fields:
        return f"    · {fields['step']}"
    extras = [f"{k}={v}" for k, v in fields.items() if k not in _QUIET_FIELDS and k != "step"]
    line = f"    {'' if level == 'INFO' else level + ' '}{message}"
    if extras:
        line += "  (" + ", ".join(extras) + ")"
    if len(line) > 150:
        line = line[:147] + "..."
    return line


# ---------------------------------------------------------------------------------------------
# Tables


def short(value):
    """A Databricks UUID cut to its first 8 characters, like a short git hash: the full ids are
    in the response's Data and in the log, and the tables stay readable in 120 columns."""
    if isinstance(value, str) and len(value) == 36 and value.count("-") == 4:
        return value[:8]
    return value


def cell(value):
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def table(title, headers, rows):
    print(f"  {title}")
    if not rows:
        print("    (none)")
        return
    cells = [list(headers)] + [[cell(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        print("    " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if index == 0:
            print("    " + "  ".join("-" * w for w in widths))


def show_state(ec2, emulator, endpoint_ids):
    endpoints = ec2.describe_vpc_endpoints(VpcEndpointIds=endpoint_ids)["VpcEndpoints"]
    order = {vpce: i for i, vpce in enumerate(endpoint_ids)}
    endpoints.sort(key=lambda e: order.get(e["VpcEndpointId"], 99))
    print()
    table(
        "AWS (moto): interface VPC endpoints",
        ["vpce", "service", "state", "private DNS"],
        [
            [e["VpcEndpointId"], e["ServiceName"], e.get("State", ""), "on" if e.get("PrivateDnsEnabled") else "off"]
            for e in endpoints
        ],
    )
    state = http_json("GET", f"{emulator}/_emulator/state?account_id={DATABRICKS_ACCOUNT}")
    print()
    table(
        "Databricks (emulator): VPC endpoint registrations (ids shortened to 8 characters)",
        ["id", "name", "vpce", "use_case", "state"],
        [
            [short(r["vpc_endpoint_id"]), r["vpc_endpoint_name"], r["aws_vpc_endpoint_id"], r["use_case"], r["state"]]
            for r in state["vpc_endpoints"]
        ],
    )
    print()
    table(
        "Databricks (emulator): private access settings",
        ["id", "name", "public access", "level", "allowed registrations"],
        [
            [
                short(p["private_access_settings_id"]),
                p["private_access_settings_name"],
                p["public_access_enabled"],
                p["private_access_level"],
                ",".join(short(i) for i in p.get("allowed_vpc_endpoint_ids") or []),
            ]
            for p in state["private_access_settings"]
        ],
    )
    print()
    table(
        "Databricks (emulator): network configurations",
        ["id", "name", "vpc", "rest_api vpce", "relay vpce"],
        [
            [
                short(n.get("network_id")),
                n.get("network_name"),
                n.get("vpc_id"),
                ",".join((n.get("vpc_endpoints") or {}).get("rest_api") or []),
                ",".join((n.get("vpc_endpoints") or {}).get("dataplane_relay") or []),
            ]
            for n in state["networks"]
        ],
    )
    print()
    table(
        "Databricks (emulator): workspaces",
        ["id", "name", "status", "network", "private access settings"],
        [
            [
                w["workspace_id"],
                w["workspace_name"],
                w["workspace_status"],
                short(w.get("network_id")),
                short(w.get("private_access_settings_id")),
            ]
            for w in state["workspaces"]
        ],
    )
    return state


# ---------------------------------------------------------------------------------------------
# The lifecycle


def cfn_event(request_type, request_id, stack_id, response_url, props, physical_id=None, old_props=None):
    """An event as CloudFormation sends it: scalars as strings, ServiceToken among the properties."""
    token = f"arn:aws:lambda:{REGION}:{AWS_ACCOUNT}:function:{FUNCTION_NAME}"

    def template(p):
        return {"ServiceToken": token, **{k: v if isinstance(v, (str, list)) else json.dumps(v) for k, v in p.items()}}

    event = {
        "RequestType": request_type,
        "ServiceToken": token,
        "ResponseURL": response_url,
        "StackId": stack_id,
        "RequestId": request_id,
        "LogicalResourceId": LOGICAL_ID,
        "ResourceType": RESOURCE_TYPE,
        "ResourceProperties": template(props),
    }
    if physical_id is not None:
        event["PhysicalResourceId"] = physical_id
    if old_props is not None:
        event["OldResourceProperties"] = template(old_props)
    return event


def show_response(response, elapsed):
    print(f"  CloudFormation receives, {elapsed:.2f} s after sending the request: Status={response.get('Status')}")
    print(f"    PhysicalResourceId {response.get('PhysicalResourceId')}")
    if response.get("Reason"):
        print(f"    Reason             {response['Reason']}")
    data = response.get("Data") or {}
    width = max([len(k) for k in data] + [14])
    for key, value in sorted(data.items()):
        print(f"    Data.{key:<{width}} {value}")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--verbose-log",
        action="store_true",
        help="print every log record of the binary, not only its steps and outcomes",
    )
    return parser.parse_args()


def run(stack, args, log_dir, failures):
    """The demo proper; everything it starts registers its own stop on `stack`."""
    side_log = open(log_dir / "moto-and-emulator.log", "wb")
    stack.callback(side_log.close)
    status(f"logs in {log_dir}")

    # --- AWS -------------------------------------------------------------------
    began = time.monotonic()
    moto = start_moto(stack, side_log)
    fixtures = aws_fixture.Fixtures(moto, REGION)
    network = fixtures.op_network(private_dns=True, name="demo")
    secret = fixtures.op_secret("databricks/demo-service-principal", json.dumps(CREDENTIALS))
    fixtures.warm_cloudformation()
    status(
        f"moto on {moto}: {network['vpc_id']}, subnets {', '.join(network['subnet_ids'])}, "
        f"endpoints {network['rest_vpce_id']} (REST) and {network['relay_vpce_id']} (relay) "
        f"[{time.monotonic() - began:.1f} s]"
    )

    # --- Databricks -----------------------------------------------------------------
    began = time.monotonic()
    emulator = start_emulator(stack, side_log)
    for role in ("rest", "relay"):
        http_json(
            "POST",
            f"{emulator}/_emulator/aws-endpoints",
            {
                "vpc_endpoint_id": network[f"{role}_vpce_id"],
                "service_name": network[f"{role}_service"],
                "aws_account_id": AWS_ACCOUNT,
            },
        )
    workspace = http_json(
        "POST",
        f"{emulator}/_emulator/workspaces",
        {
            "account_id": DATABRICKS_ACCOUNT,
            "name": "demo-workspace",
            "region": REGION,
            "network": {
                "vpc_id": network["vpc_id"],
                "subnet_ids": network["subnet_ids"],
                "security_group_ids": [network["cluster_sg_id"]],
            },
        },
    )
    status(
        f"emulator on {emulator}: account {DATABRICKS_ACCOUNT}, customer-managed workspace "
        f"{workspace['workspace_id']} [{time.monotonic() - began:.1f} s]"
    )

    # --- The verifier, asking the DNS world of the VPC ----------------------------------------
    dns = dns_world.DnsWorld(moto, emulator, REGION, network["vpc_id"])
    stack.callback(dns.stop)
    verifier_runtime = RuntimeApi()
    stack.callback(verifier_runtime.stop)
    verifier = LambdaProcess(log_dir / "verifier.log")
    verifier.start(
        stack,
        {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "AWS_LAMBDA_RUNTIME_API": verifier_runtime.address,
            "AWS_LAMBDA_FUNCTION_NAME": VERIFIER_NAME,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_REGION": REGION,
            # Test-only: the verifier asks this server instead of the system's resolvers.
            "VERIFIER_DNS_SERVER": dns.address,
            "RUST_LOG": "info",
        },
        binary=VERIFIER_BIN,
    )

    # --- The Lambda -----------------------------------------------------------------
    runtime = RuntimeApi()
    stack.callback(runtime.stop)
    service = LambdaService(runtime, verifier_runtime, verifier.exit_code)
    stack.callback(service.stop)
    status(
        f"verifier polling its own runtime API, asking the DNS world at {dns.address} (its answers "
        f"follow from moto's VPC and the emulator's workspaces, docs/verification.md); "
        f"Lambda Invoke API on {service.url}"
    )
    binary = LambdaProcess(log_dir / "lambda.log")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(log_dir),
        "AWS_LAMBDA_RUNTIME_API": runtime.address,
        "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": moto,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.environ["AWS_CONFIG_FILE"],
        "AWS_SHARED_CREDENTIALS_FILE": os.environ["AWS_SHARED_CREDENTIALS_FILE"],
        "DATABRICKS_HOST": emulator,
        "ALLOW_INSECURE_ENDPOINTS": "true",
        "NO_PROXY": "127.0.0.1,localhost",
        "RUST_LOG": "info",
        # The Invoke API for the verifier and for handing a held answer on.
        "AWS_ENDPOINT_URL_LAMBDA": service.url,
        # Test-only: ReadyAfter comes PROPAGATION_S after a switch instead of 20 minutes.
        "TEST_ONLY_PROPAGATION_SECONDS": str(PROPAGATION_S),
        # Test-only: the verifier is given the endpoints' loopback stand-ins, the addresses the
        # DNS world answers with and listens on, so nothing connects outside 127.0.0.0/8.
        "TEST_ONLY_LOOPBACK_ENDPOINTS": "1",
    }
    binary.start(stack, env)
    status(f"Lambda runtime API on {runtime.address}; {LAMBDA_BIN.relative_to(REPO)} polling it")

    endpoint_ids = [network["rest_vpce_id"], network["relay_vpce_id"]]
    stack_id = f"arn:aws:cloudformation:{REGION}:{AWS_ACCOUNT}:stack/{STACK_NAME}/{uuid.uuid4()}"
    create_props = {
        "AccountId": DATABRICKS_ACCOUNT,
        "CredentialsSecretArn": secret["arn"],
        "RestApiVpcEndpointId": network["rest_vpce_id"],
        "RelayVpcEndpointId": network["relay_vpce_id"],
        "WorkspaceIds": [str(workspace["workspace_id"])],
    }
    update_props = {**create_props, "PrivateAccessLevel": "ENDPOINT"}

    timings = []

    def play(title, request_type, props, physical_id=None, old_props=None, expected="SUCCESS",
             on_stack=None, timeout_s=FUNCTION_TIMEOUT_S):
        print()
        print("=" * 100)
        print(f"{title}")
        print("=" * 100)
        request_id = str(uuid.uuid4())
        key = f"{STACK_NAME}/{LOGICAL_ID}/{request_id}"
        urls = fixtures.op_response_url(key)
        event = cfn_event(
            request_type, request_id, on_stack or stack_id, urls["put_url"], props, physical_id, old_props
        )
        hops_before = len(service.hops)
        began = time.monotonic()
        kind, body = runtime.invoke(event, timeout_s, binary.exit_code)
        if kind != "response":
            failures.append(f"{request_type}: the invocation failed: {body[:300].decode(errors='replace')}")
            print(f"  the invocation failed: {body[:300].decode(errors='replace')}")
            return None
        held = json.loads(body or b"{}") == {"HandedOver": True}
        if held:
            print(f"  the first invocation answered nothing after {time.monotonic() - began:.1f} s: the answer is held")
        # An answer that is not held is in S3 before the invocation returns; a held one comes
        # from a later invocation.
        give_up = began + (90 if held else 0)
        stored, missing = None, None
        while stored is None:
            try:
                stored = fixtures.s3.get_object(Bucket=aws_fixture.RESPONSE_BUCKET, Key=key)["Body"].read()
            except fixtures.s3.exceptions.NoSuchKey as error:
                missing = error
                if time.monotonic() > give_up:
                    break
                time.sleep(0.5)
        elapsed = time.monotonic() - began
        for record in binary.take_records():
            if args.verbose_log or _worth_showing(record):
                print(summarize(record))
        hops = len(service.hops) - hops_before
        if hops:
            print(f"  the waiting was handed on {hops} time(s) to a fresh invocation of the function")
        if stored is None:
            failures.append(f"{request_type}: no response reached the ResponseURL ({missing})")
            print(f"  no response reached the ResponseURL: {missing}")
            return None
        response = json.loads(stored)
        show_response(response, elapsed)
        timings.append((request_type, elapsed, response.get("Status")))
        if response.get("Status") != expected:
            failures.append(f"{request_type}: {response.get('Status')}: {response.get('Reason')}")
        return response

    def expect(step, ok, what):
        print(f"  {'ok  ' if ok else 'FAIL'} {what}")
        if not ok:
            failures.append(f"{step}: expected {what}")

    # --- Verification from inside the VPC refuses the switch --------------------------------
    verify_stack = f"arn:aws:cloudformation:{REGION}:{AWS_ACCOUNT}:stack/{STACK_NAME}-verified/{uuid.uuid4()}"
    verify_props = {**create_props, "VerifyFunctionArn": VERIFIER_ARN}
    custom = fixtures.op_dhcp_dns_servers(network["vpc_id"], CUSTOM_DNS_SERVERS)
    dns.settle()
    status(f"VPC {network['vpc_id']} now hands out DNS servers {', '.join(CUSTOM_DNS_SERVERS)} ({custom})")
    refused = play(
        "0. Create with VerifyFunctionArn, in a VPC whose DHCP options hand out custom DNS servers\n"
        "   that do not forward to the VPC resolver: the verifier finds the endpoints' private names\n"
        "   public, so no workspace is switched",
        "Create",
        verify_props,
        expected="FAILED",
        on_stack=verify_stack,
    )
    print()
    for record in verifier.take_records():
        if record.get("level") != "INFO" or "verification" in json.dumps(record):
            print("  verifier: " + summarize(record).strip())
    unswitched = next(
        (w for w in show_state(fixtures.ec2, emulator, endpoint_ids)["workspaces"]
         if w["workspace_id"] == workspace["workspace_id"]),
        {},
    )
    print()
    expect(
        "Create with the verifier",
        refused is not None and f"{RELAY_PRIVATELINK} resolves to public" in (refused.get("Reason") or "")
        and unswitched.get("private_access_settings_id") is None,
        "FAILED naming the relay's PrivateLink name, and the workspace not switched",
    )
    if refused is not None:
        play(
            "0b. Delete (rollback of the refused Create)",
            "Delete",
            verify_props,
            physical_id=refused.get("PhysicalResourceId"),
            on_stack=verify_stack,
        )

    # --- Create -----------------------------------------------------------------
    restored = fixtures.op_dhcp_dns_servers(network["vpc_id"], ["AmazonProvidedDNS"])
    dns.settle()
    status(f"VPC {network['vpc_id']} back on AmazonProvidedDNS ({restored})")
    held_props = {**verify_props, "WaitUntilReady": "true"}
    created = play(
        "1. Create with VerifyFunctionArn and WaitUntilReady: the verifier passes (the workspace\n"
        "   host is still public, as Databricks documents before the switch); register both\n"
        "   endpoints, create private access settings (level ACCOUNT), switch the workspace to a\n"
        "   copy of its network that carries both endpoints, and hold the answer until ReadyAfter\n"
        f"   ({PROPAGATION_S} s here, 20 min for real) and a final verification that finds the host private",
        "Create",
        held_props,
        timeout_s=HELD_TIMEOUT_S,
    )
    state = show_state(fixtures.ec2, emulator, endpoint_ids)
    if created is None or created.get("Status") != "SUCCESS":
        if created is not None:
            # What CloudFormation does next: roll back with a Delete of the id the Create gave.
            play(
                "1b. Delete (rollback of the failed Create)",
                "Delete",
                create_props,
                physical_id=created.get("PhysicalResourceId"),
            )
            show_state(fixtures.ec2, emulator, endpoint_ids)
        raise DemoError("Create did not succeed, so the demo stops before Update and Delete")
    physical_id = created["PhysicalResourceId"]
    registered = {r["aws_vpc_endpoint_id"] for r in state["vpc_endpoints"]}
    print()
    expect("Create", set(endpoint_ids) <= registered, "both vpce ids registered with Databricks")
    expect("Create", len(state["private_access_settings"]) == 1, "one private access settings object")
    switched = next((w for w in state["workspaces"] if w["workspace_id"] == workspace["workspace_id"]), {})
    expect(
        "Create",
        created.get("Data", {}).get("VerificationReport", "").startswith("passed after ReadyAfter")
        and "workspace hosts resolve to the REST API endpoint" in created["Data"]["VerificationReport"],
        "the final verification passed with the workspace host on the REST API endpoint",
    )
    expect(
        "Create",
        switched.get("private_access_settings_id") == created.get("Data", {}).get("PrivateAccessSettingsId")
        and switched.get("network_id") != workspace.get("network_id"),
        "the workspace switched to the new network and the private access settings",
    )

    # --- Update -----------------------------------------------------------------
    updated = play(
        "2. Update in place: PrivateAccessLevel=ENDPOINT",
        "Update",
        update_props,
        physical_id=physical_id,
        old_props=held_props,
    )
    state = show_state(fixtures.ec2, emulator, endpoint_ids)
    print()
    if updated is not None:
        expect(
            "Update",
            updated.get("PhysicalResourceId") == physical_id,
            "the same PhysicalResourceId (no replacement, so no cleanup Delete)",
        )
    levels = [p["private_access_level"] for p in state["private_access_settings"]]
    expect("Update", levels == ["ENDPOINT"], "private access settings at level ENDPOINT")

    # --- Delete -----------------------------------------------------------------
    play(
        "3. Delete: remove what the resource owns, keeping what the workspace still uses",
        "Delete",
        update_props,
        physical_id=physical_id,
    )
    state = show_state(fixtures.ec2, emulator, endpoint_ids)
    print()
    # PrivateLink cannot be removed from a workspace, so the objects it uses stay (and are
    # logged); the stack still deletes.
    still = next((w for w in state["workspaces"] if w["workspace_id"] == workspace["workspace_id"]), {})
    expect(
        "Delete",
        still.get("private_access_settings_id") is not None and len(state["vpc_endpoints"]) == 2,
        "what the workspace uses is kept (PrivateLink cannot be removed from a workspace)",
    )
    expect(
        "Delete",
        any(n["network_id"] == workspace.get("network_id") for n in state["networks"]),
        "the workspace's original network untouched",
    )
    print()
    print("timings: " + ", ".join(f"{kind} {seconds:.2f} s ({outcome})" for kind, seconds, outcome in timings))


def isolated_log_dir(prefix):
    """A fresh folder for logs, and an environment in which a developer's AWS profile or proxy
    cannot leak into a run that only talks to 127.0.0.1."""
    log_dir = Path(tempfile.mkdtemp(prefix=prefix))
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    for name, file in (("AWS_CONFIG_FILE", "aws-config"), ("AWS_SHARED_CREDENTIALS_FILE", "aws-credentials")):
        (log_dir / file).touch()
        os.environ[name] = str(log_dir / file)
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    return log_dir


def main():
    args = parse_args()
    started = time.monotonic()
    log_dir = isolated_log_dir("databricks-privatelink-demo-")

    def on_sigterm(signum, frame):
        raise Stopped()

    signal.signal(signal.SIGTERM, on_sigterm)
    # Explicitly: a shell starts background jobs with SIGINT ignored, and Python keeps that.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    failures = []
    try:
        with contextlib.ExitStack() as stack:
            try:
                run(stack, args, log_dir, failures)
            finally:
                # Leaving the `with` block stops everything; a second Ctrl-C must not cut that
                # short (and if this process is killed anyway, the kernel signals the children).
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                print("\nstopping the Lambda, the runtime API, the emulator and moto ...", flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted; everything the demo started is stopped", file=sys.stderr)
        return 130
    except Stopped:
        print("\nstopped by SIGTERM; everything the demo started is stopped", file=sys.stderr)
        return 143
    except DemoError as error:
        failures.append(str(error))
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    print()
    print(f"Lambda log (JSON lines): {log_dir / 'lambda.log'}")
    print(f"moto and emulator log:   {log_dir / 'moto-and-emulator.log'}")
    print(f"total {time.monotonic() - started:.1f} s")
    sys.stdout.flush()
    if failures:
        print("\nDEMO FAILED:", file=sys.stderr)
        for failure in failures:
            print(f"  - {failure}", file=sys.stderr)
        return 1
    print("demo passed: Create, Update and Delete answered SUCCESS; nothing left running")
    return 0


def _worth_showing(record):
    """Steps, outcomes and anything above INFO; the request/response plumbing stays in the file."""
    fields = record.get("fields") or {}
    if record.get("level") not in ("INFO", "DEBUG", "TRACE"):
        return True
    if fields.get("message") == "Databricks account API retries spent":
        return str(fields.get("retries", "0")) != "0"
    return fields.get("message") not in (
        "custom-resource request received",
        "custom-resource request handled",
        "CloudFormation response delivered",
    )


def status(text):
    print(f"-- {text}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
