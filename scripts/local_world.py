"""`make local-world`: a local AWS and Databricks for `sam local invoke`, up until Ctrl-C.

Owns: starting moto and the Databricks account API emulator on 127.0.0.1, seeding them with one
customer VPC (two cluster subnets, the cluster security group, both Databricks interface endpoints
with private DNS), the service principal's secret and one customer-managed workspace in that VPC,
and writing what `sam local invoke` needs to use them: an `env.json` and Create, Update and Delete
events built from the committed files in events/, with this world's ids in place of their
placeholders and `WorkspaceIds` set, so the Create switches the workspace.
Must not know: what the function does with them; it never runs the function.

Everything it starts is stopped on the way out (Ctrl-C, SIGTERM, or a failure while starting); on
Linux the children also get SIGTERM from the kernel if this script is killed outright. The process
helpers are the demo's (scripts/demo.py), the AWS fixtures the integration tests' (tests/support/).
"""

import argparse
import contextlib
import json
import signal
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests" / "support"))

import aws_fixture  # noqa: E402  (shared with the integration tests)
import demo  # noqa: E402  (its process helpers: start and stop moto and the emulator)

REGION = demo.REGION
DATABRICKS_ACCOUNT = demo.DATABRICKS_ACCOUNT
# The placeholders of the committed events (tests/integration/invocation_modes.rs checks them).
PLACEHOLDER_ACCOUNT = "0d3f7c1e-2b4a-4c5d-9e8f-1a2b3c4d5e6f"
PLACEHOLDER_SECRET = (
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:databricks-backend-privatelink-sp-AbCdEf"
)
PLACEHOLDER_REST = "vpce-0a1b2c3d4e5f60718"
PLACEHOLDER_RELAY = "vpce-0f1e2d3c4b5a69788"
# The events written, each from the committed file of the same name.
EVENTS = ("create.json", "update.json", "delete.json")
READY = "LOCAL WORLD READY"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / ".local-world",
        help="where env.json, the events and world.json go (default: .local-world/)",
    )
    parser.add_argument(
        "--host",
        default="host.docker.internal",
        help="the name the function's container reaches this machine by (default "
        "host.docker.internal; 127.0.0.1 with `sam local invoke --docker-network host` on Linux)",
    )
    parser.add_argument(
        "--emulator-bin",
        type=Path,
        default=demo.EMULATOR_BIN,
        help="the emulator binary (default: target/debug/databricks-account-emulator)",
    )
    return parser.parse_args()


def substituted(value, pairs):
    """`value` with every string equal to a placeholder replaced, at any depth."""
    if isinstance(value, str):
        return pairs.get(value, value)
    if isinstance(value, list):
        return [substituted(item, pairs) for item in value]
    if isinstance(value, dict):
        return {key: substituted(item, pairs) for key, item in value.items()}
    return value


def event(name, pairs, workspace_id):
    """The committed events/<name> with this world's ids, switching the workspace."""
    committed = json.loads((REPO / "events" / name).read_text())
    made = substituted(committed, pairs)
    for field in ("ResourceProperties", "OldResourceProperties"):
        if field in made:
            made[field]["WorkspaceIds"] = str(workspace_id)
    return made


def port_of(url):
    return int(url.rsplit(":", 1)[1].split("/")[0])


def build(stack, args, log):
    """Starts and seeds the world; returns what world.json records."""
    moto = demo.start_moto(stack, log)
    fixtures = aws_fixture.Fixtures(moto, REGION)
    network = fixtures.op_network(private_dns=True, name="local-world")
    secret = fixtures.op_secret(
        "databricks/local-world-service-principal", json.dumps(demo.CREDENTIALS)
    )

    demo.EMULATOR_BIN = args.emulator_bin
    emulator = demo.start_emulator(stack, log)
    for role in ("rest", "relay"):
        demo.http_json(
            "POST",
            f"{emulator}/_emulator/aws-endpoints",
            {
                "vpc_endpoint_id": network[f"{role}_vpce_id"],
                "service_name": network[f"{role}_service"],
                "aws_account_id": demo.AWS_ACCOUNT,
            },
        )
    workspace = demo.http_json(
        "POST",
        f"{emulator}/_emulator/workspaces",
        {
            "account_id": DATABRICKS_ACCOUNT,
            "name": "local-world-workspace",
            "region": REGION,
            "network": {
                "vpc_id": network["vpc_id"],
                "subnet_ids": network["subnet_ids"],
                "security_group_ids": [network["cluster_sg_id"]],
            },
        },
    )
    return {
        "moto": moto,
        "emulator": emulator,
        "account_id": DATABRICKS_ACCOUNT,
        "secret_arn": secret["arn"],
        "workspace_id": workspace["workspace_id"],
        **{key: network[key] for key in (
            "vpc_id", "subnet_ids", "cluster_sg_id", "rest_vpce_id", "relay_vpce_id")},
    }


def write_files(out, host, world):
    out.mkdir(parents=True, exist_ok=True)
    # Only variables template.yaml declares: SAM passes no others.
    env = {
        "Function": {
            "DATABRICKS_HOST": f"http://{host}:{port_of(world['emulator'])}",
            "AWS_ENDPOINT_URL": f"http://{host}:{port_of(world['moto'])}",
            "ALLOW_INSECURE_ENDPOINTS": "true",
            "RUST_LOG": "info",
        }
    }
    (out / "env.json").write_text(json.dumps(env, indent=2) + "\n")
    pairs = {
        PLACEHOLDER_ACCOUNT: world["account_id"],
        PLACEHOLDER_SECRET: world["secret_arn"],
        PLACEHOLDER_REST: world["rest_vpce_id"],
        PLACEHOLDER_RELAY: world["relay_vpce_id"],
    }
    for name in EVENTS:
        made = event(name, pairs, world["workspace_id"])
        (out / name).write_text(json.dumps(made, indent=2) + "\n")
    (out / "world.json").write_text(json.dumps(world, indent=2) + "\n")


def explain(out, world):
    shown = out.relative_to(REPO) if out.is_relative_to(REPO) else out
    print(
        f"moto on {world['moto']}: {world['vpc_id']}, endpoints {world['rest_vpce_id']} (REST) "
        f"and {world['relay_vpce_id']} (relay), secret {world['secret_arn']}\n"
        f"emulator on {world['emulator']}: account {world['account_id']}, "
        f"workspace {world['workspace_id']} (customer-managed, in that VPC)\n"
        f"\nIn another terminal:\n"
        f"    sam build\n"
        f"    sam local invoke Function -e {shown}/create.json --env-vars {shown}/env.json\n"
        f"then {shown}/update.json and {shown}/delete.json the same way. What the emulator holds:\n"
        f"    curl -s '{world['emulator']}/_emulator/state?account_id={world['account_id']}'\n"
        f"\nCtrl-C stops moto and the emulator.",
        flush=True,
    )


def main():
    args = parse_args()
    out = args.out.resolve()

    def on_sigterm(signum, frame):
        raise demo.Stopped()

    signal.signal(signal.SIGTERM, on_sigterm)
    # Explicitly: a shell starts background jobs with SIGINT ignored, and Python keeps that.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    out.mkdir(parents=True, exist_ok=True)
    # A developer's AWS profile or proxy must not leak into calls that only go to 127.0.0.1.
    log_dir = demo.isolated_log_dir("databricks-privatelink-local-world-")
    print(f"moto and emulator log: {log_dir / 'moto-and-emulator.log'}", flush=True)
    try:
        with contextlib.ExitStack() as stack:
            log = open(log_dir / "moto-and-emulator.log", "wb")
            stack.callback(log.close)
            try:
                world = build(stack, args, log)
                write_files(out, args.host, world)
                explain(out, world)
                print(f"{READY} {out}", flush=True)
                while True:
                    time.sleep(3600)
            finally:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                print("\nstopping the emulator and moto ...", flush=True)
    except KeyboardInterrupt:
        print("stopped; nothing the local world started is running", flush=True)
        return 0
    except demo.Stopped:
        print("stopped by SIGTERM; nothing the local world started is running", flush=True)
        return 0
    except demo.DemoError as error:
        print(f"the local world could not start: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
