#!/usr/bin/env python3
"""Contract test: Databricks' official Python SDK (databricks-sdk) against the emulator.

If the SDK that Databricks generates from its own API description can authenticate, create,
read, list, replace, update and delete through the emulator, and maps the emulator's errors to
its own error classes, the emulator's wire format (paths, bodies, bare-array lists, error shapes,
OAuth discovery) matches what real clients expect.

Usage: EMULATOR_BIN=target/debug/databricks-account-emulator python test_sdk_contract.py
       (or pass the binary path as the only argument). Exits non-zero on the first failure and
       always stops the emulator it started. Plain script: no pytest needed.

SDK accommodations (databricks-sdk 0.162.0, see config.py / credentials_provider.py / oauth.py):
- The SDK only classifies hosts starting with "https://accounts." as account hosts
  (Config.is_account_client). That classification is deprecated and not needed: AccountClient
  builds every path from the explicit account_id, so http://127.0.0.1:PORT works as is.
- OAuth endpoints are found through GET /.well-known/databricks-config (its oidc_endpoint, with
  {account_id} substituted) and then GET <oidc_endpoint>/.well-known/oauth-authorization-server;
  the emulator serves both. auth_type="oauth-m2m" is passed explicitly so that no other
  credential found in the environment can be picked instead.
- DATABRICKS_* / ARM_* variables are removed and DATABRICKS_CONFIG_FILE points at a missing file
  so that a developer's own profile cannot leak into the run.
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from datetime import timedelta

ACCOUNT_ID = "7f3c2a10-5b7e-4c1d-9e2f-0a1b2c3d4e5f"
CLIENT_ID = "contract-client"
CLIENT_SECRET = "contract-secret"
REGION = "us-east-1"
REST_SERVICE = "com.amazonaws.vpce.us-east-1.vpce-svc-09143d1e626de2f04"
RELAY_SERVICE = "com.amazonaws.vpce.us-east-1.vpce-svc-00018a8c3ff62ffdf"
REST_VPCE = "vpce-0a1b2c3d4e5f60718"
RELAY_VPCE = "vpce-0f1e2d3c4b5a69788"
STARTUP_TIMEOUT_S = 20


def hermetic_environment():
    for name in list(os.environ):
        if name.startswith(("DATABRICKS_", "ARM_")):
            del os.environ[name]
    missing = os.path.join(tempfile.mkdtemp(prefix="sdk-contract-"), "no-databrickscfg")
    os.environ["DATABRICKS_CONFIG_FILE"] = missing


def emulator_binary():
    path = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("EMULATOR_BIN")
    if not path:
        sys.exit("usage: set EMULATOR_BIN or pass the databricks-account-emulator binary path "
                 "(build it with: cargo build -p emulator --bin databricks-account-emulator)")
    if not os.path.isfile(path):
        sys.exit(f"emulator binary {path!r} does not exist: build it with "
                 "cargo build -p emulator --bin databricks-account-emulator")
    return path


def start_emulator(binary):
    """Starts the binary on a free port (--port 0) and returns (process, base_url)."""
    process = subprocess.Popen(
        [binary, "--port", "0", "--client", f"{CLIENT_ID}:{CLIENT_SECRET}",
         "--accept-after-reads", "1"],
        stdout=subprocess.PIPE, text=True)
    first_line = []
    reader = threading.Thread(target=lambda: first_line.append(process.stdout.readline()),
                              daemon=True)
    reader.start()
    reader.join(STARTUP_TIMEOUT_S)
    line = first_line[0].strip() if first_line else ""
    if not line.startswith("listening on "):
        stop_emulator(process)
        raise RuntimeError(f"emulator did not announce its address within "
                           f"{STARTUP_TIMEOUT_S}s (first line: {line!r})")
    return process, line[len("listening on "):]


def stop_emulator(process):
    if process.poll() is not None:
        return process.returncode
    process.terminate()
    try:
        return process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None


class Control:
    """The emulator's /_emulator/ control API (not part of the Databricks API)."""

    def __init__(self, base):
        self.base = base

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def state(self):
        return self.call("GET", f"/_emulator/state?account_id={ACCOUNT_ID}")

    def request_counts(self):
        return self.call("GET", "/_emulator/requests")["counts"]


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def expect_error(error_class, call, contains=None):
    try:
        call()
    except error_class as error:
        if contains is not None:
            check(contains in str(error), f"{error_class.__name__} message {str(error)!r} "
                                          f"does not mention {contains!r}")
        return error
    except Exception as error:  # noqa: BLE001 - reported as a contract failure
        raise AssertionError(f"expected {error_class.__name__}, got "
                             f"{type(error).__name__}: {error}") from error
    raise AssertionError(f"expected {error_class.__name__}, but the call succeeded")


def run(base, control):
    # Imported here so that a missing SDK is reported after the emulator has been stopped.
    from databricks.sdk import AccountClient
    from databricks.sdk import errors
    from databricks.sdk.service import provisioning as pv

    def client(secret):
        return AccountClient(host=base, account_id=ACCOUNT_ID, client_id=CLIENT_ID,
                             client_secret=secret, auth_type="oauth-m2m")

    steps = []

    def wait_gone(network_id):
        # Network deletion is asynchronous: poll until 404, as the Terraform provider does.
        for _ in range(5):
            try:
                a.networks.get(network_id)
            except errors.ResourceDoesNotExist:
                return
        raise AssertionError(f"network {network_id} never went away")

    def step(name):
        steps.append(name)
        print(f"  - {name}", flush=True)

    step("wrong client secret fails with the SDK's OAuth error")
    try:
        client("not-the-secret").vpc_endpoints.list()
        raise AssertionError("listing with a wrong secret succeeded")
    except ValueError as error:
        check("invalid_client" in str(error), f"unexpected auth error text: {error}")

    a = client(CLIENT_SECRET)

    step("discovery + token: the SDK authenticates and lists (bare array) an empty account")
    check(a.vpc_endpoints.list() == [], "a fresh account must have no registrations")
    counts = control.request_counts()
    for pattern in ("GET /.well-known/databricks-config",
                    "GET /oidc/accounts/{account_id}/.well-known/oauth-authorization-server",
                    "POST /oidc/accounts/{account_id}/v1/token"):
        check(counts.get(pattern, 0) >= 1, f"SDK did not request {pattern}: {counts}")

    step("vpc-endpoints: create, duplicate conflict, get until available, list")
    control.call("POST", "/_emulator/aws-endpoints",
                 {"vpc_endpoint_id": REST_VPCE, "service_name": REST_SERVICE,
                  "aws_account_id": "123456789012"})
    control.call("POST", "/_emulator/aws-endpoints",
                 {"vpc_endpoint_id": RELAY_VPCE, "service_name": RELAY_SERVICE,
                  "aws_account_id": "123456789012"})
    rest = a.vpc_endpoints.create(vpc_endpoint_name="contract-rest",
                                  aws_vpc_endpoint_id=REST_VPCE, region=REGION)
    relay = a.vpc_endpoints.create(vpc_endpoint_name="contract-relay",
                                   aws_vpc_endpoint_id=RELAY_VPCE, region=REGION)
    check(rest.state == "pendingAcceptance", f"new registration state {rest.state!r}")
    check(rest.use_case == pv.EndpointUseCase.GENERAL_ACCESS, f"REST use case {rest.use_case}")
    check(relay.use_case == pv.EndpointUseCase.DATAPLANE_RELAY_ACCESS,
          f"relay use case {relay.use_case}")
    check(rest.aws_endpoint_service_id == REST_SERVICE, rest.aws_endpoint_service_id)
    check(rest.account_id == ACCOUNT_ID and rest.region == REGION, rest)
    check(rest.aws_account_id == "123456789012", rest.aws_account_id)
    expect_error(errors.ResourceAlreadyExists,
                 lambda: a.vpc_endpoints.create(vpc_endpoint_name="contract-dup",
                                                aws_vpc_endpoint_id=REST_VPCE, region=REGION),
                 contains=REST_VPCE)
    expect_error(errors.InvalidParameterValue,
                 lambda: a.vpc_endpoints.create(vpc_endpoint_name="abc",
                                                aws_vpc_endpoint_id="vpce-0000000a",
                                                region=REGION),
                 contains="vpc_endpoint_name")
    for registration in (rest, relay):
        states = [a.vpc_endpoints.get(registration.vpc_endpoint_id).state for _ in range(2)]
        check(states == ["pendingAcceptance", "available"], f"state sequence {states}")
    listed = {v.vpc_endpoint_id: v for v in a.vpc_endpoints.list()}
    check(set(listed) == {rest.vpc_endpoint_id, relay.vpc_endpoint_id}, listed)
    check(all(v.state == "available" for v in listed.values()), listed)

    step("private-access-settings: create, get, list, replace (ENDPOINT, public on)")
    pas = a.private_access.create(private_access_settings_name="contract-pas", region=REGION,
                                  public_access_enabled=True)
    check(pas.public_access_enabled is True, pas)
    check(pas.private_access_level == pv.PrivateAccessLevel.ACCOUNT, pas)
    check(a.private_access.get(pas.private_access_settings_id) == pas, "get differs from create")
    check([p.private_access_settings_id for p in a.private_access.list()]
          == [pas.private_access_settings_id], "list must hold exactly the new PAS")
    defaulted = a.private_access.create(private_access_settings_name="contract-pas-default",
                                        region=REGION)
    check(defaulted.public_access_enabled is False,
          "public_access_enabled must default to false on AWS")
    replaced = a.private_access.replace(
        private_access_settings_id=pas.private_access_settings_id,
        customer_facing_private_access_settings=pv.PrivateAccessSettings(
            private_access_settings_name="contract-pas-replaced", region=REGION,
            public_access_enabled=True, private_access_level=pv.PrivateAccessLevel.ENDPOINT,
            allowed_vpc_endpoint_ids=[rest.vpc_endpoint_id]))
    fetched = a.private_access.get(pas.private_access_settings_id)
    for got in (replaced, fetched):
        check(got.private_access_settings_name == "contract-pas-replaced", got)
        check(got.private_access_level == pv.PrivateAccessLevel.ENDPOINT, got)
        check(got.allowed_vpc_endpoint_ids == [rest.vpc_endpoint_id], got)
        check(got.public_access_enabled is True, got)
    deleted_pas = a.private_access.delete(defaulted.private_access_settings_id)
    check(deleted_pas.private_access_settings_name == "contract-pas-default", deleted_pas)
    expect_error(errors.NotFound,
                 lambda: a.private_access.get(defaulted.private_access_settings_id))

    step("networks: create with vpc_endpoints, get, list, validation error")
    network = a.networks.create(
        network_name="contract-network", vpc_id="vpc-0123456789abcdef0",
        subnet_ids=["subnet-0aaa", "subnet-0bbb"], security_group_ids=["sg-0ccc"],
        vpc_endpoints=pv.NetworkVpcEndpoints(rest_api=[rest.vpc_endpoint_id],
                                             dataplane_relay=[relay.vpc_endpoint_id]))
    check(network.vpc_status == pv.VpcStatus.UNATTACHED, network.vpc_status)
    check(network.workspace_id is None, network)
    check(isinstance(network.creation_time, int), network.creation_time)
    check(network.vpc_endpoints.rest_api == [rest.vpc_endpoint_id], network.vpc_endpoints)
    check(a.networks.get(network.network_id) == network, "get differs from create")
    check([n.network_id for n in a.networks.list()] == [network.network_id], "network list")
    expect_error(errors.InvalidParameterValue,
                 lambda: a.networks.create(
                     network_name="contract-bad", vpc_id="vpc-1", subnet_ids=["subnet-0aaa"],
                     security_group_ids=["sg-1"]),
                 contains="subnet_ids")

    step("networks: vpc_status WARNED and BROKEN with the SDK's warning and error messages")
    for subnet, vpc, zone in (("subnet-0ddd", "vpc-0123456789abcdef0", "us-east-1a"),
                              ("subnet-0eee", "vpc-0123456789abcdef0", "us-east-1a"),
                              ("subnet-0fff", "vpc-0fffffffffffffff0", "us-east-1b")):
        control.call("POST", "/_emulator/aws-subnets",
                     {"subnet_id": subnet, "vpc_id": vpc, "availability_zone": zone})
    warned = a.networks.create(
        network_name="contract-warned", vpc_id="vpc-0123456789abcdef0",
        subnet_ids=["subnet-0ddd", "subnet-0eee"], security_group_ids=["sg-0ddd"])
    check(warned.vpc_status == pv.VpcStatus.WARNED, warned.vpc_status)
    check(warned.warning_messages[0].warning_type == pv.WarningType.SUBNET, warned)
    check("us-east-1a" in warned.warning_messages[0].warning_message, warned)
    broken = a.networks.create(
        network_name="contract-broken", vpc_id="vpc-0123456789abcdef0",
        subnet_ids=["subnet-0ddd", "subnet-0fff"], security_group_ids=["sg-0eee"])
    check(broken.vpc_status == pv.VpcStatus.BROKEN, broken.vpc_status)
    check(broken.error_messages[0].error_type == pv.ErrorType.SUBNET, broken)
    check("subnet-0fff" in broken.error_messages[0].error_message, broken)
    check(a.networks.get(broken.network_id) == broken, "get differs from create")
    for extra in (warned, broken):
        a.networks.delete(extra.network_id)
        wait_gone(extra.network_id)

    step("errors: 503 with Retry-After is retried; plain-text and HTML bodies are parsed")
    before = control.request_counts().get("GET /api/2.0/accounts/{account_id}/networks", 0)
    control.call("POST", "/_emulator/faults", {
        "method": "GET", "path_contains": "/networks", "kind": "status", "status": 503,
        "retry_after": 1, "body": {"type": "json", "error_code": "TEMPORARILY_UNAVAILABLE",
                                   "message": "emulated outage"}})
    check(len(a.networks.list()) == 1, "list after a retried 503")
    after = control.request_counts()["GET /api/2.0/accounts/{account_id}/networks"]
    check(after - before == 2, f"expected one retry after the 503, saw {after - before} calls")
    malformed = expect_error(errors.BadRequest, lambda: a.api_client.do(
        "POST", f"/api/2.0/accounts/{ACCOUNT_ID}/networks", data="{not json",
        headers={"Content-Type": "application/json"}))
    check(malformed.error_code == "MALFORMED_REQUEST", malformed.error_code)
    check(str(malformed) == "Cannot parse request body", str(malformed))
    control.call("POST", "/_emulator/faults", {
        "method": "DELETE", "kind": "status", "status": 409, "body": {"type": "empty"}})
    expect_error(errors.ResourceConflict, lambda: a.networks.delete(network.network_id))
    control.call("POST", "/_emulator/faults", {
        "method": "GET", "path_contains": "/private-access-settings", "kind": "status",
        "status": 502, "body": {"type": "html", "html": "<html><pre>bad gateway</pre></html>"}})
    html = expect_error(errors.DatabricksError, lambda: a.private_access.list())
    check("bad gateway" in str(html), f"HTML error text not extracted: {html}")

    step("lost answer: a create carried out behind a gateway's 504 page is listed afterwards")
    control.call("POST", "/_emulator/faults", {
        "method": "POST", "path_contains": "/private-access-settings", "kind": "lose_answer",
        "after": "gateway_timeout"})
    expect_error(errors.DatabricksError,
                 lambda: a.private_access.create(private_access_settings_name="contract-lost",
                                                 region=REGION, public_access_enabled=True))
    lost = [p for p in a.private_access.list() if p.private_access_settings_name == "contract-lost"]
    check(len(lost) == 1, f"the create whose answer was lost must exist once: {lost}")
    a.private_access.delete(lost[0].private_access_settings_id)

    step("workspaces: seed, get, list, update (network + PAS) and wait for RUNNING")
    seeded = control.call("POST", "/_emulator/workspaces", {
        "account_id": ACCOUNT_ID, "name": "contract-workspace", "region": REGION,
        "network": {"vpc_id": "vpc-0123456789abcdef0",
                    "subnet_ids": ["subnet-0aaa", "subnet-0bbb"],
                    "security_group_ids": ["sg-0ccc"]},
        "running_clusters": True})
    workspace_id = seeded["workspace_id"]
    check(isinstance(workspace_id, int), f"workspace_id must be a JSON number: {workspace_id!r}")
    workspace = a.workspaces.get(workspace_id)
    check(workspace.workspace_status == pv.WorkspaceStatus.RUNNING, workspace)
    check(workspace.compute_mode == pv.CustomerFacingComputeMode.HYBRID, workspace.compute_mode)
    check([w.workspace_id for w in a.workspaces.list()] == [workspace_id], "workspace list")
    change = pv.Workspace(network_id=network.network_id,
                          private_access_settings_id=pas.private_access_settings_id)
    mask = "network_id,private_access_settings_id"
    expect_error(errors.InvalidState,
                 lambda: a.workspaces.update(workspace_id, change, update_mask=mask),
                 contains="terminate all running compute")
    control.call("POST", f"/_emulator/workspaces/{workspace_id}/clusters", {"running": False})
    waiter = a.workspaces.update(workspace_id, change, update_mask=mask)
    check(waiter.response.network_id == network.network_id, waiter.response)
    updated = waiter.result(timeout=timedelta(seconds=60))
    check(updated.workspace_status == pv.WorkspaceStatus.RUNNING, updated)
    check(updated.network_id == network.network_id, updated)
    check(updated.private_access_settings_id == pas.private_access_settings_id, updated)
    attached = a.networks.get(network.network_id)
    check(attached.vpc_status == pv.VpcStatus.VALID, attached.vpc_status)
    check(attached.workspace_id == workspace_id, attached.workspace_id)
    expect_error(errors.InvalidParameterValue,
                 lambda: a.workspaces.update(workspace_id,
                                             pv.Workspace(private_access_settings_id=""),
                                             update_mask="private_access_settings_id"),
                 contains="private access settings")

    step("workspaces: a FAILED workspace is updated and the SDK waits through PROVISIONING")
    failed_seed = control.call("POST", "/_emulator/workspaces", {
        "account_id": ACCOUNT_ID, "name": "contract-failed", "region": REGION,
        "network": {"vpc_id": "vpc-0123456789abcdef0",
                    "subnet_ids": ["subnet-0ggg", "subnet-0hhh"],
                    "security_group_ids": ["sg-0ggg"]},
        "status": "FAILED"})
    failed_id = failed_seed["workspace_id"]
    check(a.workspaces.get(failed_id).workspace_status == pv.WorkspaceStatus.FAILED, failed_seed)
    failed_network = a.networks.create(
        network_name="contract-failed-network", vpc_id="vpc-0123456789abcdef0",
        subnet_ids=["subnet-0ggg", "subnet-0hhh"], security_group_ids=["sg-0ggg"],
        vpc_endpoints=pv.NetworkVpcEndpoints(rest_api=[rest.vpc_endpoint_id],
                                             dataplane_relay=[relay.vpc_endpoint_id]))
    waiter = a.workspaces.update(
        failed_id, pv.Workspace(network_id=failed_network.network_id,
                                private_access_settings_id=pas.private_access_settings_id),
        update_mask=mask)
    check(waiter.response.workspace_status == pv.WorkspaceStatus.PROVISIONING, waiter.response)
    recovered = waiter.result(timeout=timedelta(seconds=60))
    check(recovered.workspace_status == pv.WorkspaceStatus.RUNNING, recovered)
    check(recovered.network_id == failed_network.network_id, recovered)

    step("deletes: blocked while attached (INVALID_STATE), objects returned otherwise")
    expect_error(errors.InvalidState, lambda: a.networks.delete(network.network_id),
                 contains=f"Unable to delete, Network is being used by active workspace "
                          f"{workspace_id}")
    expect_error(errors.InvalidState,
                 lambda: a.private_access.delete(pas.private_access_settings_id))
    expect_error(errors.InvalidState, lambda: a.vpc_endpoints.delete(rest.vpc_endpoint_id))
    old_network_id = seeded["network_id"]
    old_network = a.networks.delete(old_network_id)
    check(old_network.network_id == old_network_id, old_network)
    wait_gone(old_network_id)

    step("wire level: raw JSON types as the account API sends them")
    dump = control.state()
    raw_workspace = dump["workspaces"][0]
    check(isinstance(raw_workspace["workspace_id"], int), raw_workspace)
    check(isinstance(raw_workspace["creation_time"], int), raw_workspace)
    check(raw_workspace["workspace_status"] == "RUNNING", raw_workspace)
    raw_network = dump["networks"][0]
    check(raw_network["vpc_status"] == "VALID" and raw_network["workspace_id"] == workspace_id,
          raw_network)
    raw_pas = dump["private_access_settings"][0]
    check(raw_pas["public_access_enabled"] is True, raw_pas)
    return steps


def main():
    hermetic_environment()
    binary = emulator_binary()
    started = time.monotonic()
    process, base = start_emulator(binary)
    print(f"emulator at {base}", flush=True)
    failed = False
    try:
        steps = run(base, Control(base))
    except Exception:  # noqa: BLE001 - any failure fails the contract
        failed = True
        traceback.print_exc()
    finally:
        exit_code = stop_emulator(process)
    if not failed and exit_code != 0:
        print(f"emulator did not stop cleanly on SIGTERM (exit code {exit_code})")
        failed = True
    elapsed = time.monotonic() - started
    if failed:
        print(f"SDK contract FAILED after {elapsed:.1f}s")
        return 1
    print(f"SDK contract OK: {len(steps)} steps in {elapsed:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
