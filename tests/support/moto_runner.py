"""Run a moto server for one integration-test process.

Owns: starting moto's ThreadedMotoServer on a free loopback port and stopping it.
Must not know: which AWS resources the tests create (see aws_fixture.py).

Protocol with the test process (tests/integration/support/moto.rs):
  * prints exactly one line `PORT <n>` on stdout once the server accepts connections;
  * keeps serving until its stdin reaches end-of-file, then stops.
The test process holds the write end of stdin and never closes it, so the server
lives exactly as long as the test process, however that process ends (pass, panic,
Ctrl-C, SIGKILL): the kernel closes the pipe and this script exits.
"""

import logging
import random
import sys

import moto.ec2.models.vpcs as vpc_models
from moto.ec2.responses.vpcs import VPCs
from moto.server import ThreadedMotoServer

from aws_fixture import DATABRICKS_SERVICES


def honour_private_dns_on_modify() -> None:
    """Make ModifyVpcEndpoint apply PrivateDnsEnabled, as AWS does.

    moto 5.2 reads only the subnet, route-table, security-group and policy parameters
    of ModifyVpcEndpoint and silently ignores PrivateDnsEnabled. The Lambda may have to
    enable private DNS after the endpoints are registered with Databricks (README,
    `EnablePrivateDns`), so without this the tests
    could not observe that step.
    """
    original = VPCs.modify_vpc_endpoint

    def modify_vpc_endpoint(self):  # type: ignore[no-untyped-def]
        result = original(self)
        private_dns = self._get_bool_param("PrivateDnsEnabled")
        if private_dns is not None:
            endpoint_id = self._get_param("VpcEndpointId")
            self.ec2_backend.describe_vpc_endpoints(vpc_end_point_ids=[endpoint_id])[0].private_dns_enabled = private_dns
        return result

    VPCs.modify_vpc_endpoint = modify_vpc_endpoint


def know_the_databricks_services() -> None:
    """Make DescribeVpcEndpointServices describe the Databricks endpoint services.

    moto knows only AWS's own services and answers InvalidServiceName for the Databricks ones,
    so the function could never read their private DNS names, and the DNS world
    (dns_world.py) could not know which names the endpoints' private DNS serves. AWS describes
    them as Interface services in every zone of the region, with one private DNS name each
    (docs/verification.md#names-per-region).
    """
    original = vpc_models.VPCBackend._collect_default_endpoint_services

    def collect(account_id, region):  # type: ignore[no-untyped-def]
        services = original(account_id, region)
        known = {s["ServiceName"] for s in services}
        zones = sorted({z for s in services for z in s.get("AvailabilityZones", [])}) or [f"{region}a", f"{region}b"]
        for roles in [DATABRICKS_SERVICES[r] for r in DATABRICKS_SERVICES if r == region]:
            for role in ("rest", "relay"):
                name = roles[role]
                if name in known:
                    continue
                private = roles[f"{role}_private_dns"]
                services.append(
                    {
                        "AcceptanceRequired": True,
                        "AvailabilityZones": zones,
                        "BaseEndpointDnsNames": [f"{name.rsplit('.', 1)[1]}.{region}.vpce.amazonaws.com"],
                        "ManagesVpcEndpoints": False,
                        "Owner": "565502421330",
                        "ServiceId": name.rsplit(".", 1)[1],
                        "ServiceName": name,
                        "ServiceType": [{"ServiceType": "Interface"}],
                        "Tags": [],
                        "VpcEndpointPolicySupported": False,
                        "PrivateDnsName": private,
                        "PrivateDnsNameVerificationState": "verified",
                        "PrivateDnsNames": [{"PrivateDnsName": private}],
                    }
                )
        return services

    vpc_models.VPCBackend._collect_default_endpoint_services = staticmethod(collect)


def name_endpoints_as_aws_does() -> None:
    """Give interface endpoints the regional DNS name AWS gives them.

    AWS names an interface endpoint `vpce-<id>-<8 characters>.<service id>.<region>.vpce.amazonaws.com`
    (AWS PrivateLink guide, "DNS names for interface endpoints"); moto appends the whole service
    name instead, a name no resolver would be asked for.
    """

    def create_dns_entries(service_name, vpc_endpoint_id):  # type: ignore[no-untyped-def]
        parts = service_name.split(".")
        suffix = "".join(random.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(8))
        if len(parts) >= 5 and parts[-1].startswith("vpce-svc-"):
            name = f"{vpc_endpoint_id}-{suffix}.{parts[-1]}.{parts[-2]}.vpce.amazonaws.com"
        else:
            name = f"{vpc_endpoint_id}-{suffix}.{parts[-1]}.{parts[-2] if len(parts) > 2 else 'us-east-1'}.vpce.amazonaws.com"
        return {"dns_name": name, "hosted_zone_id": "Z7HUB22UULQXV"}

    vpc_models.create_dns_entries = create_dns_entries


def main() -> int:
    # Werkzeug logs every request to stderr; the test process only keeps the tail of
    # stderr for diagnostics, so request lines would just be noise there.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    honour_private_dns_on_modify()
    know_the_databricks_services()
    name_endpoints_as_aws_does()

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    print(f"PORT {port}", flush=True)

    # read() returns only at end-of-file, that is when the test process is gone.
    sys.stdin.buffer.read()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
