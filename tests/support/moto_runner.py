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
import sys

from moto.ec2.responses.vpcs import VPCs
from moto.server import ThreadedMotoServer


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


def main() -> int:
    # Werkzeug logs every request to stderr; the test process only keeps the tail of
    # stderr for diagnostics, so request lines would just be noise there.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    honour_private_dns_on_modify()

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
