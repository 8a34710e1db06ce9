"""The DNS world: what a cluster node in one VPC sees when it looks up the Databricks names and
connects to the back-end endpoints, derived from the state of moto (the VPC, its endpoints,
DHCP options and security groups) and of the Databricks account emulator (which workspaces have
private access settings), never from a test's script.

Owns: one DNS server on 127.0.0.1 and the endpoints' TCP listeners, for the verifier's test-only
DNS setting (`VERIFIER_DNS_SERVER`), the integration tests, `make demo` and the local world.
Must not know: which test runs, or what any test expects.

Every answer follows a rule of docs/verification.md ("The DNS world"), which names its public
source or says it is a choice:

1. an endpoint's own `vpce-…` names (regional and zonal) resolve to its interface addresses,
   whatever private DNS says;
2. an endpoint service's private DNS name (what DescribeVpcEndpointServices reports) resolves to
   the addresses of the VPC's endpoint for that service when private DNS is in effect: the
   endpoint has private DNS on, the VPC has enableDnsSupport and enableDnsHostnames on, and its
   DHCP options hand out AmazonProvidedDNS (custom DNS servers do not see the private zone);
   otherwise it is answered as public DNS answers it: a `*.privatelink.cloud.databricks.com` name
   is a CNAME of the matching public name;
3. a workspace host `<deployment>.cloud.databricks.com` is a CNAME of its region's public name
   (`nvirginia.cloud.databricks.com`) until the workspace has private access settings, then of
   the region's privatelink name (`nvirginia.privatelink.cloud.databricks.com`), answered by
   rule 2;
4. the regional public names and the public relay names resolve to a public address
   (TEST-NET-3, 203.0.113.0/24, which nothing routes and the verifier never connects to);
5. any other name is NXDOMAIN.

Addresses: an interface's private address `a.b.c.d` is answered, and listened on, as its
loopback stand-in `127.b.c.d` (the rule the function applies to the addresses it hands the
verifier when `TEST_ONLY_LOOPBACK_ENDPOINTS` is set in a debug build), so nothing connects
outside 127.0.0.0/8.

TCP: each endpoint's stand-in addresses accept on the ports of its role (443 for the REST API,
6666 and 2443 for the relay) that one of its security groups admits; nothing listens on the
others, so connections there are refused (AWS would drop them: the verifier reports "timed out"
there instead of "refused", the same verdict).

Run as a program (tests/integration/support/dns_world.rs) it prints `DNS <ip>:<port>` once it
answers, reads the world anew and prints `SETTLED` for each `settle` line on its stdin, and
serves until its stdin reaches end of file.
"""

import argparse
import ipaddress
import json
import socket
import sys
import threading
import time
import urllib.request

import boto3
from dnslib import CNAME, QTYPE, RCODE, RR, A, DNSRecord

TTL = 5
PUBLIC_ADDRESS = "203.0.113.10"
REST_PORTS = (443,)
RELAY_PORTS = (6666, 2443)
# How often the listeners follow the security groups and endpoints when no question arrives.
REFRESH_SECONDS = 2.0
# Questions that arrive together (a verifier asks all its names at once, and asks again after
# 2 s without an answer) share one reading of the world no older than this; a reading takes
# about eight calls to moto, tens of milliseconds, seconds when the machine is busy.
SNAPSHOT_SECONDS = 1.0
AMAZON_PROVIDED_DNS = "AmazonProvidedDNS"


def loopback_stand_in(address):
    """`a.b.c.d` → `127.b.c.d`: the test-only stand-in of an interface's private address."""
    octets = str(address).split(".")
    if len(octets) != 4:
        return str(address)
    return ".".join(["127"] + octets[1:])


def privatelink_to_public(name):
    """`nvirginia.privatelink.cloud.databricks.com` → `nvirginia.cloud.databricks.com`;
    `tunnel.privatelink.us-east-1.cloud.databricks.com` → `tunnel.us-east-1.cloud.databricks.com`."""
    return name.replace(".privatelink.", ".", 1)


class State:
    """One snapshot of the VPC and the account, read when a question arrives."""

    def __init__(self, endpoints, private_zone_works, workspaces, services, admitted):
        # [{id, service, private_dns, addresses:[stand-ins], dns_names:[...], groups:[...]}]
        self.endpoints = endpoints
        self.private_zone_works = private_zone_works
        # [{deployment_name, region, private_access_settings_id}]
        self.workspaces = workspaces
        # service name -> [private DNS names]
        self.services = services
        # security group id -> ports of REST_PORTS + RELAY_PORTS it admits
        self.admitted = admitted


class DnsWorld:
    def __init__(self, aws_endpoint, emulator_url, region, vpc_id, account_id=None):
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
        )
        self.ec2 = session.client("ec2", endpoint_url=aws_endpoint)
        self.emulator_url = emulator_url.rstrip("/")
        self.account_id = account_id
        self.region = region
        self.vpc_id = vpc_id
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.reading = threading.Lock()
        self.snapshot_at = 0.0
        self.last_state = None
        self.listeners = {}  # (ip, port) -> socket
        self.problems = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.threads = [
            threading.Thread(target=self.serve, daemon=True),
            threading.Thread(target=self.follow_listeners, daemon=True),
        ]
        self.refresh_listeners()
        for thread in self.threads:
            thread.start()

    # --- reading the world ------------------------------------------------------------------

    def snapshot(self, max_age=SNAPSHOT_SECONDS):
        """The world as read at most `max_age` seconds ago; one reading at a time."""
        with self.reading:
            if self.last_state is None or time.monotonic() - self.snapshot_at > max_age:
                self.last_state = self.read_state()
                self.snapshot_at = time.monotonic()
            return self.last_state

    def settle(self):
        """Reads the world now, so that what changed before this call is what the next
        question and connection see (a test that changes the VPC calls it before going on)."""
        self.refresh_listeners(self.snapshot(max_age=0))

    def read_state(self):
        ec2 = self.ec2
        found = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [self.vpc_id]}])
        endpoints = []
        interface_ids = []
        for endpoint in found.get("VpcEndpoints", []):
            if endpoint.get("VpcEndpointType") != "Interface" or endpoint.get("State") in ("deleted", "deleting"):
                continue
            interface_ids.extend(endpoint.get("NetworkInterfaceIds", []))
            endpoints.append(endpoint)
        addresses = {}
        if interface_ids:
            for interface in ec2.describe_network_interfaces(NetworkInterfaceIds=interface_ids)["NetworkInterfaces"]:
                addresses[interface["NetworkInterfaceId"]] = interface["PrivateIpAddress"]
        service_names = sorted({e["ServiceName"] for e in endpoints})
        services = {}
        try:
            details = ec2.describe_vpc_endpoint_services(ServiceNames=service_names)["ServiceDetails"] if service_names else []
        except Exception:  # noqa: BLE001 - a service EC2 does not know has no private name
            details = []
        for detail in details:
            names = [n["PrivateDnsName"] for n in detail.get("PrivateDnsNames", []) if n.get("PrivateDnsName")]
            if not names and detail.get("PrivateDnsName"):
                names = [detail["PrivateDnsName"]]
            services[detail["ServiceName"]] = [n.lower().rstrip(".") for n in names]
        shaped = [
            {
                "id": e["VpcEndpointId"],
                "service": e["ServiceName"],
                "private_dns": bool(e.get("PrivateDnsEnabled")),
                "addresses": [loopback_stand_in(addresses[i]) for i in e.get("NetworkInterfaceIds", []) if i in addresses],
                "dns_names": [d["DnsName"].lower().rstrip(".") for d in e.get("DnsEntries", [])],
                "groups": [g["GroupId"] for g in e.get("Groups", [])],
            }
            for e in endpoints
        ]
        groups = {g for e in shaped for g in e["groups"]}
        return State(shaped, self.private_zone_works(), self.read_workspaces(), services, self.admitted_ports(groups))

    def private_zone_works(self):
        """The VPC resolver answers from the endpoints' private zones: DNS support and DNS
        host names on, and the DHCP options hand out AmazonProvidedDNS."""
        ec2 = self.ec2
        for attribute, key in (("enableDnsSupport", "EnableDnsSupport"), ("enableDnsHostnames", "EnableDnsHostnames")):
            value = ec2.describe_vpc_attribute(VpcId=self.vpc_id, Attribute=attribute)[key]["Value"]
            if not value:
                return False
        vpc = ec2.describe_vpcs(VpcIds=[self.vpc_id])["Vpcs"][0]
        options_id = vpc.get("DhcpOptionsId")
        if not options_id or options_id == "default":
            return True
        options = ec2.describe_dhcp_options(DhcpOptionsIds=[options_id])["DhcpOptions"][0]
        for entry in options.get("DhcpConfigurations", []):
            if entry["Key"] == "domain-name-servers":
                servers = [v["Value"] for v in entry.get("Values", [])]
                return servers == [] or servers == [AMAZON_PROVIDED_DNS]
        return True

    def read_workspaces(self):
        query = f"?account_id={self.account_id}" if self.account_id else ""
        with urllib.request.urlopen(f"{self.emulator_url}/_emulator/state{query}", timeout=5) as answer:
            dump = json.load(answer)
        found = []

        def walk(value):
            if isinstance(value, dict):
                if "deployment_name" in value and "workspace_id" in value:
                    found.append(value)
                else:
                    for inner in value.values():
                        walk(inner)
            elif isinstance(value, list):
                for inner in value:
                    walk(inner)

        walk(dump)
        return found

    # --- answering ----------------------------------------------------------------------------

    def resolve(self, name, state, depth=0):
        """The chain for `name`: a list of ('CNAME', target) and ('A', address) records, or
        None for NXDOMAIN."""
        name = name.lower().rstrip(".")
        if depth > 8:
            return None
        # Rule 1: the endpoints' own names.
        for endpoint in state.endpoints:
            if name in endpoint["dns_names"] and name.startswith("vpce-"):
                return [("A", a) for a in endpoint["addresses"]]
        # Rule 2: the services' private DNS names.
        for endpoint in state.endpoints:
            if name in state.services.get(endpoint["service"], []):
                if endpoint["private_dns"] and state.private_zone_works and endpoint["addresses"]:
                    return [("A", a) for a in endpoint["addresses"]]
        if ".privatelink." in name and name.endswith(".cloud.databricks.com"):
            if self.known_privatelink_name(name, state):
                public = privatelink_to_public(name)
                rest = self.resolve(public, state, depth + 1)
                return None if rest is None else [("CNAME", public)] + rest
            return None
        # Rule 3: workspace hosts.
        for workspace in state.workspaces:
            host = f"{workspace['deployment_name'].lower()}.cloud.databricks.com"
            if name == host:
                private = self.regional_privatelink_name(workspace.get("aws_region", self.region), state)
                if private is None:
                    return None
                target = private if workspace.get("private_access_settings_id") else privatelink_to_public(private)
                rest = self.resolve(target, state, depth + 1)
                return None if rest is None else [("CNAME", target)] + rest
        # Rule 4: the regional public names and the public relay names.
        if name in self.public_names(state):
            return [("A", PUBLIC_ADDRESS)]
        return None

    def known_privatelink_name(self, name, state):
        return any(name in names for names in state.services.values())

    def regional_privatelink_name(self, region, state):
        """The REST API service's private DNS name in `region` (`<regional>.privatelink.…`)."""
        for service, names in state.services.items():
            if f".{region}." in service:
                for candidate in names:
                    if not candidate.startswith("tunnel."):
                        return candidate
        return None

    def public_names(self, state):
        names = set()
        for private in (n for names in state.services.values() for n in names):
            names.add(privatelink_to_public(private))
        return names

    def answer(self, data):
        request = DNSRecord.parse(data)
        reply = request.reply(ra=1, aa=0)
        question = request.q
        qname = str(question.qname)
        try:
            chain = self.resolve(qname, self.snapshot())
            if chain is None:
                # A name the reading does not know may be one made since: read anew before
                # saying it does not exist.
                chain = self.resolve(qname, self.snapshot(max_age=0))
        except Exception as error:  # noqa: BLE001 - a broken read is a server failure, said once
            self.note(f"could not read the world for {qname}: {error}")
            reply.header.rcode = RCODE.SERVFAIL
            return reply.pack()
        if chain is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply.pack()
        owner = qname
        for kind, value in chain:
            if kind == "CNAME":
                reply.add_answer(RR(owner, QTYPE.CNAME, ttl=TTL, rdata=CNAME(value + ".")))
                owner = value + "."
            elif question.qtype in (QTYPE.A, QTYPE.ANY):
                reply.add_answer(RR(owner, QTYPE.A, ttl=TTL, rdata=A(value)))
        return reply.pack()

    def serve(self):
        while not self.stopping.is_set():
            try:
                data, client = self.sock.recvfrom(4096)
            except OSError:
                continue
            # Each question on its own thread: a verifier asks all its names at once.
            threading.Thread(target=self.reply, args=(data, client), daemon=True).start()

    def reply(self, data, client):
        try:
            self.sock.sendto(self.answer(data), client)
        except Exception as error:  # noqa: BLE001 - one bad packet must not stop the server
            self.note(f"could not answer a question: {error}")

    # --- the endpoints' listeners ---------------------------------------------------------------

    def wanted_listeners(self, state):
        wanted = set()
        admitted = state.admitted
        for endpoint in state.endpoints:
            names = state.services.get(endpoint["service"], [])
            ports = RELAY_PORTS if any(n.startswith("tunnel.") for n in names) else REST_PORTS
            for port in ports:
                if any(port in admitted.get(g, set()) for g in endpoint["groups"]):
                    for address in endpoint["addresses"]:
                        wanted.add((address, port))
        return wanted

    def admitted_ports(self, groups):
        admitted = {}
        if not groups:
            return admitted
        for group in self.ec2.describe_security_groups(GroupIds=sorted(groups))["SecurityGroups"]:
            ports = set()
            for rule in group.get("IpPermissions", []):
                if rule.get("IpProtocol") == "-1":
                    ports.update(REST_PORTS + RELAY_PORTS)
                elif rule.get("IpProtocol") == "tcp":
                    low, high = rule.get("FromPort", 0), rule.get("ToPort", 65535)
                    ports.update(p for p in REST_PORTS + RELAY_PORTS if low <= p <= high)
            admitted[group["GroupId"]] = ports
        return admitted

    def refresh_listeners(self, state=None):
        try:
            wanted = self.wanted_listeners(state or self.snapshot())
        except Exception as error:  # noqa: BLE001 - moto gone or busy: keep what listens
            self.note(f"could not read the endpoints: {error}")
            return
        with self.lock:
            for key in list(self.listeners):
                if key not in wanted:
                    self.listeners.pop(key).close()
            for key in wanted - set(self.listeners):
                address, port = key
                if not ipaddress.ip_address(address).is_loopback:
                    self.note(f"refusing to listen on {address}: outside 127.0.0.0/8")
                    continue
                listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    listener.bind((address, port))
                    listener.listen(64)
                except OSError as error:
                    listener.close()
                    self.note(f"could not listen on {address}:{port} for an endpoint: {error}")
                    continue
                listener.settimeout(0.2)
                self.listeners[key] = listener
                threading.Thread(target=self.accept, args=(listener,), daemon=True).start()

    def accept(self, listener):
        while not self.stopping.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection.close()

    def follow_listeners(self):
        while not self.stopping.wait(REFRESH_SECONDS):
            self.refresh_listeners()

    def note(self, problem):
        with self.lock:
            if problem not in self.problems:
                self.problems.append(problem)
                print(f"dns_world: {problem}", file=sys.stderr, flush=True)

    def stop(self):
        self.stopping.set()
        self.sock.close()
        with self.lock:
            for listener in self.listeners.values():
                listener.close()
            self.listeners.clear()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aws-endpoint", required=True)
    parser.add_argument("--emulator", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--vpc-id", required=True)
    parser.add_argument("--account-id")
    args = parser.parse_args()
    world = DnsWorld(args.aws_endpoint, args.emulator, args.region, args.vpc_id, args.account_id)
    print(f"DNS {world.address}", flush=True)
    # Each line `settle` is answered `SETTLED` once the world is read anew; the loop ends at end
    # of file, that is when the test process is gone.
    for line in sys.stdin:
        if line.strip() == "settle":
            world.settle()
            print("SETTLED", flush=True)
    world.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
