"""Create AWS fixtures in the moto server for the integration tests.

Owns: the boto3 calls that build VPCs, subnets, security groups, VPC endpoints,
Secrets Manager secrets, presigned S3 response URLs and CloudFormation stacks in moto.
Must not know: anything about the Lambda under test or the Databricks account API.

Input (stdin, one JSON document):
  {"endpoint": "http://127.0.0.1:PORT", "region": "us-east-1",
   "operations": [{"op": "network", ...}, {"op": "secret", ...}, ...]}
Output (stdout, one JSON document): {"results": [<one result per operation, same order>]}
All operations of one document run in this one process, because starting Python and
importing boto3 costs far more than the calls themselves.
A failure prints the reason on stderr and exits non-zero.
"""

import io
import json
import sys
import urllib.request
import uuid
import zipfile

import boto3
from botocore.config import Config

# The Databricks endpoint services per region, as in src/aws/services.rs (commercial variant;
# docs/account-api.md#endpoint-services-ports-and-hostnames), with the private DNS name EC2
# reports for each (docs/verification.md#names-per-region): the REST API service's is
# `<regional name>.privatelink.cloud.databricks.com`, the relay's the "SCC relay for PrivateLink"
# name. Only the regions the tests use; moto_runner.py teaches moto these services.
DATABRICKS_SERVICES = {
    "us-east-1": {
        "rest": "com.amazonaws.vpce.us-east-1.vpce-svc-09143d1e626de2f04",
        "relay": "com.amazonaws.vpce.us-east-1.vpce-svc-00018a8c3ff62ffdf",
        "rest_private_dns": "nvirginia.privatelink.cloud.databricks.com",
        "relay_private_dns": "tunnel.privatelink.us-east-1.cloud.databricks.com",
    },
    "eu-west-1": {
        "rest": "com.amazonaws.vpce.eu-west-1.vpce-svc-0da6ebf1461278016",
        "relay": "com.amazonaws.vpce.eu-west-1.vpce-svc-09b4eb2bc775f4e8c",
        "rest_private_dns": "ireland.privatelink.cloud.databricks.com",
        "relay_private_dns": "tunnel.privatelink.eu-west-1.cloud.databricks.com",
    },
    "us-west-2": {
        "rest": "com.amazonaws.vpce.us-west-2.vpce-svc-0129f463fcfbc46c5",
        "relay": "com.amazonaws.vpce.us-west-2.vpce-svc-0158114c0c730c3bb",
        "rest_private_dns": "oregon.privatelink.cloud.databricks.com",
        "relay_private_dns": "tunnel.privatelink.cloud.databricks.com",
    },
}

# Ports Databricks requires from the compute plane to the back-end endpoints:
# HTTPS, the secure cluster connectivity relay, and the 8443-8451 control-plane range.
ENDPOINT_INGRESS_PORTS = [(443, 443), (6666, 6666), (2443, 2443), (8443, 8451)]

# The bucket CloudFormation uses for us-east-1 responses; the name only adds realism.
RESPONSE_BUCKET = "cloudformation-custom-resource-response-useast1"

# CloudFormation's presigned response URLs are valid for two hours.
RESPONSE_URL_EXPIRY_SECONDS = 7200


# moto answers in milliseconds; boto3's defaults (60 s reads, several retries) would turn
# a stuck moto into minutes of silence before the test fails.
CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=30, retries={"total_max_attempts": 2})


def tcp_from_group(source_group_id, ports):
    """Inbound TCP permissions from a source group for these (low, high) port ranges."""
    return [
        {
            "IpProtocol": "tcp",
            "FromPort": low,
            "ToPort": high,
            "UserIdGroupPairs": [{"GroupId": source_group_id}],
        }
        for low, high in ports
    ]


class Fixtures:
    def __init__(self, endpoint, region):
        self.region = region
        session = boto3.session.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name=region,
        )
        self.ec2 = session.client("ec2", endpoint_url=endpoint, config=CLIENT_CONFIG)
        self.secretsmanager = session.client("secretsmanager", endpoint_url=endpoint, config=CLIENT_CONFIG)
        self.iam = session.client("iam", endpoint_url=endpoint, config=CLIENT_CONFIG)
        self.awslambda = session.client("lambda", endpoint_url=endpoint, config=CLIENT_CONFIG)
        self.cloudformation = session.client("cloudformation", endpoint_url=endpoint, config=CLIENT_CONFIG)
        self.endpoint = endpoint
        # Real ResponseURLs are SigV4 query-string signatures; path style keeps the
        # bucket out of the host name, which must stay 127.0.0.1.
        self.s3 = session.client(
            "s3",
            endpoint_url=endpoint,
            config=CLIENT_CONFIG.merge(Config(signature_version="s3v4", s3={"addressing_style": "path"})),
        )

    def services(self, region):
        try:
            return DATABRICKS_SERVICES[region]
        except KeyError:
            raise SystemExit(
                f"aws_fixture.py knows the Databricks services of {sorted(DATABRICKS_SERVICES)} only; "
                f"add {region} from src/aws/services.rs"
            )

    def tag(self, resource_type, name):
        return [{"ResourceType": resource_type, "Tags": [{"Key": "Name", "Value": name}]}]

    def op_network(self, private_dns=True, name=None):
        name = name or f"harness-{uuid.uuid4().hex[:8]}"
        services = self.services(self.region)
        ec2 = self.ec2
        vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=self.tag("vpc", name))["Vpc"]["VpcId"]
        # Private DNS on an interface endpoint needs both attributes on the VPC; AWS
        # accepts only one attribute per ModifyVpcAttribute call.
        ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": True})
        ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})

        zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]]
        subnet_ids = []
        for index, zone in enumerate(zones[:2]):
            subnet = ec2.create_subnet(
                VpcId=vpc_id,
                CidrBlock=f"10.0.{index}.0/24",
                AvailabilityZone=zone,
                TagSpecifications=self.tag("subnet", f"{name}-{zone}"),
            )
            subnet_ids.append(subnet["Subnet"]["SubnetId"])

        cluster_sg_id = ec2.create_security_group(
            GroupName=f"{name}-cluster", Description="Databricks compute plane", VpcId=vpc_id
        )["GroupId"]
        endpoint_sg_id = ec2.create_security_group(
            GroupName=f"{name}-endpoints", Description="Databricks back-end endpoints", VpcId=vpc_id
        )["GroupId"]
        self.op_endpoint_ingress(endpoint_sg_id, cluster_sg_id, ENDPOINT_INGRESS_PORTS)

        endpoints = {}
        for role in ("rest", "relay"):
            endpoints[role] = self.create_interface_endpoint(
                vpc_id, subnet_ids, [endpoint_sg_id], services[role], private_dns, f"{name}-{role}"
            )
        return {
            "vpc_id": vpc_id,
            "subnet_ids": subnet_ids,
            "cluster_sg_id": cluster_sg_id,
            "endpoint_sg_id": endpoint_sg_id,
            "rest_vpce_id": endpoints["rest"],
            "relay_vpce_id": endpoints["relay"],
            "rest_service": services["rest"],
            "relay_service": services["relay"],
        }

    def op_vpc_attribute(self, vpc_id, name, value):
        """Turns one VPC attribute (EnableDnsSupport or EnableDnsHostnames) on or off."""
        self.ec2.modify_vpc_attribute(VpcId=vpc_id, **{name: {"Value": value}})
        return {}

    def op_dhcp_dns_servers(self, vpc_id, servers):
        """Hand out `servers` as the VPC's DNS servers (a new DHCP option set, associated)."""
        options = self.ec2.create_dhcp_options(
            DhcpConfigurations=[{"Key": "domain-name-servers", "Values": servers}]
        )["DhcpOptions"]["DhcpOptionsId"]
        self.ec2.associate_dhcp_options(DhcpOptionsId=options, VpcId=vpc_id)
        return options

    def op_revoke_ingress(self, group_id, source_group_id, ports):
        """Removes the inbound TCP rules from a source group for these (low, high) port ranges."""
        self.ec2.revoke_security_group_ingress(
            GroupId=group_id,
            IpPermissions=tcp_from_group(source_group_id, ports),
        )
        return {}

    def op_endpoint_ingress(self, group_id, source_group_id, ports):
        """Adds inbound TCP rules from a source group for these (low, high) port ranges."""
        self.ec2.authorize_security_group_ingress(
            GroupId=group_id,
            IpPermissions=tcp_from_group(source_group_id, ports),
        )
        return {}

    def create_interface_endpoint(self, vpc_id, subnet_ids, sg_ids, service, private_dns, name):
        return self.ec2.create_vpc_endpoint(
            VpcEndpointType="Interface",
            VpcId=vpc_id,
            ServiceName=service,
            SubnetIds=subnet_ids,
            SecurityGroupIds=sg_ids,
            PrivateDnsEnabled=private_dns,
            TagSpecifications=self.tag("vpc-endpoint", name),
        )["VpcEndpoint"]["VpcEndpointId"]

    def op_endpoint(self, vpc_id, service_name, endpoint_type="Interface", private_dns=True,
                    subnet_ids=None, security_group_ids=None, name=None, route_table_ids=None):
        name = name or f"harness-{uuid.uuid4().hex[:8]}"
        if endpoint_type == "Interface":
            vpce_id = self.create_interface_endpoint(
                vpc_id, subnet_ids or [], security_group_ids or [], service_name, private_dns, name
            )
        else:
            # A Gateway endpoint has no private DNS in AWS; say so explicitly because
            # moto otherwise reports PrivateDnsEnabled=true for every endpoint.
            vpce_id = self.ec2.create_vpc_endpoint(
                VpcEndpointType=endpoint_type,
                VpcId=vpc_id,
                ServiceName=service_name,
                PrivateDnsEnabled=False,
                RouteTableIds=route_table_ids or [],
                TagSpecifications=self.tag("vpc-endpoint", name),
            )["VpcEndpoint"]["VpcEndpointId"]
        return {"vpce_id": vpce_id}

    def op_main_route_table(self, vpc_id):
        """The VPC's main route table, which serves the network's subnets (none has its own)."""
        tables = self.ec2.describe_route_tables(
            Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "association.main", "Values": ["true"]}]
        )["RouteTables"]
        return {"route_table_id": tables[0]["RouteTableId"]}

    def op_secret(self, name, secret_string):
        created = self.secretsmanager.create_secret(Name=name, SecretString=secret_string)
        return {"arn": created["ARN"]}

    def op_response_url(self, key):
        try:
            self.s3.create_bucket(Bucket=RESPONSE_BUCKET)
        except self.s3.exceptions.BucketAlreadyOwnedByYou:
            pass  # another test of the same process created it first
        params = {"Bucket": RESPONSE_BUCKET, "Key": key}
        return {
            "put_url": self.s3.generate_presigned_url(
                "put_object", Params=params, ExpiresIn=RESPONSE_URL_EXPIRY_SECONDS
            ),
            "get_url": self.s3.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=RESPONSE_URL_EXPIRY_SECONDS
            ),
        }

    def warm_cloudformation(self):
        """Loads moto's CloudFormation backend, which imports every service model on first use
        (about half a second). The function asks CloudFormation about each Create; without this
        the first one measured would carry moto's start-up, which is not the function's cost."""
        self.cloudformation.list_stacks()
        return {}

    def op_stack(self, logical_id, resource_type="Custom::DatabricksBackendPrivateLink"):
        """A stack whose only resource is a custom resource that waits for its Create's answer.

        moto keeps such a resource (and its stack) CREATE_IN_PROGRESS until an answer reaches
        its cfnresponse endpoint (see op_answer_stack). It invokes the ServiceToken function
        itself, which fails here without Docker and changes nothing: the test sends the Create
        to the binary under test instead.
        """
        name = f"harness-{uuid.uuid4().hex[:8]}"
        role = self.iam.create_role(RoleName=name, AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        package = io.BytesIO()
        with zipfile.ZipFile(package, "w") as archive:
            archive.writestr("bootstrap", "#!/bin/sh\n")
        function = self.awslambda.create_function(
            FunctionName=name,
            Runtime="provided.al2023",
            Role=role,
            Handler="bootstrap",
            Code={"ZipFile": package.getvalue()},
        )["FunctionArn"]
        template = {
            "Resources": {logical_id: {"Type": resource_type, "Properties": {"ServiceToken": function}}}
        }
        stack_id = self.cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))["StackId"]
        return {"stack_id": stack_id, "status": self.op_resource_status(stack_id, logical_id)["status"]}

    def op_resource_status(self, stack_id, logical_id):
        detail = self.cloudformation.describe_stack_resource(StackName=stack_id, LogicalResourceId=logical_id)
        return {"status": detail["StackResourceDetail"]["ResourceStatus"]}

    def op_delete_stack(self, stack_id, logical_id):
        """What CloudFormation does to a stack resource whose Create it cancelled: delete it."""
        self.cloudformation.delete_stack(StackName=stack_id)
        return self.op_resource_status(stack_id, logical_id)

    def op_answer_stack(self, stack_id, logical_id, response):
        """Hands a custom-resource response document to moto, as S3 would to CloudFormation."""
        url = f"{self.endpoint}/cloudformation_{self.region}/cfnresponse?stack={stack_id}"
        # No content type, as the custom-resource protocol PUTs it: moto's server would read a
        # form-encoded body as an API call of its own.
        request = urllib.request.Request(
            url, data=json.dumps(response).encode(), method="PUT", headers={"Content-Type": ""}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            answer.read()
        return self.op_resource_status(stack_id, logical_id)


def main():
    request = json.load(sys.stdin)
    fixtures = Fixtures(request["endpoint"], request["region"])
    results = []
    for operation in request["operations"]:
        arguments = dict(operation)
        handler = getattr(fixtures, "op_" + arguments.pop("op"), None)
        if handler is None:
            raise SystemExit(f"aws_fixture.py has no operation {operation['op']!r}")
        results.append(handler(**arguments))
    json.dump({"results": results}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
