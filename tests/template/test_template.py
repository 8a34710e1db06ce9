"""Checks of template.yaml that need no AWS account: what a real deploy would trip over.

Each test guards a trap the shipped template once had: a resource name that some legal stack
name pushes over its service's limit, endpoints or their security group deleted with the stack,
a log group that blocks a retried first create, and an IAM policy that differs from the calls the
code makes. Run with the project's venv: `.venv/bin/python tests/template/test_template.py`
(`make test` does).
"""

import itertools
import json
import re
import subprocess
import sys
import unittest
from pathlib import Path

from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
ENV_JSON = ROOT / "events" / "env.json"
AWS_SRC = ROOT / "src" / "aws"

# CreateStack: StackName is at most 128 characters, and so is a StackSet instance stack's
# (StackSet-<set name>-<uuid>). https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CreateStack.html
MAX_STACK_NAME = 128
# Longest values the other pseudo parameters take: a 12-digit account id; region names such as
# ap-southeast-3 or us-gov-west-1 are well under 20; partitions such as aws-us-gov or aws-iso-b.
PSEUDO_MAX = {
    "AWS::StackName": MAX_STACK_NAME,
    "AWS::AccountId": 12,
    "AWS::Region": 20,
    "AWS::Partition": 12,
    "AWS::URLSuffix": 20,
}
# What `Ref` returns for a resource, at its longest, where it ends up inside a name.
REF_MAX = {
    # The function name: https://docs.aws.amazon.com/lambda/latest/api/API_CreateFunction.html
    "AWS::Serverless::Function": 64,
    "AWS::Lambda::Function": 64,
}
# Names a service caps, as (resource type, property) -> limit in characters.
NAME_LIMITS = {
    ("AWS::Serverless::Function", "FunctionName"): 64,
    ("AWS::Lambda::Function", "FunctionName"): 64,
    # https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_CreateLogGroup.html
    ("AWS::Logs::LogGroup", "LogGroupName"): 512,
    # https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateRole.html
    ("AWS::IAM::Role", "RoleName"): 64,
    ("AWS::IAM::Policy", "PolicyName"): 128,
    ("AWS::IAM::ManagedPolicy", "ManagedPolicyName"): 128,
    ("AWS::EC2::SecurityGroup", "GroupName"): 255,
    ("AWS::S3::Bucket", "BucketName"): 63,
    ("AWS::SQS::Queue", "QueueName"): 80,
    ("AWS::SNS::Topic", "TopicName"): 256,
}
# EC2 and most services: tag keys up to 128 characters, values up to 256.
TAG_KEY_LIMIT = 128
TAG_VALUE_LIMIT = 256

# SDK crate (aws-sdk-<name>) -> IAM service prefix, for the services the function calls.
IAM_PREFIX = {
    "ec2": "ec2",
    "secretsmanager": "secretsmanager",
    "cloudformation": "cloudformation",
    "lambda": "lambda",
}
# SDK operations whose IAM action has another name
# (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awslambda.html).
ACTION_OF_OPERATION = {"lambda:invoke": "lambda:invokefunction"}
# Granted although the code makes no such SDK call, with the reason.
INDIRECT_ACTIONS = {
    # Secrets Manager decrypts a secret under a customer-managed key with the caller's permission.
    "kms:decrypt",
}

RETAIN_ON_DELETE = {"AWS::EC2::VPCEndpoint", "AWS::EC2::SecurityGroup"}


def load_template(path=TEMPLATE):
    """The template as plain dicts and lists; short-form tags (!Ref, !Sub) become Fn:: maps."""
    return json.loads(json.dumps(cfn_yaml.load(str(path))))


def is_no_value(node):
    return node == {"Ref": "AWS::NoValue"}


def if_branches(node):
    """Every value a node can take through Fn::If, AWS::NoValue dropped."""
    if isinstance(node, dict) and list(node) == ["Fn::If"]:
        _, yes, no = node["Fn::If"]
        return [v for b in (yes, no) for v in if_branches(b)]
    return [] if is_no_value(node) else [node]


class Lengths:
    """Longest string a template expression can produce, or None when nothing bounds it."""

    def __init__(self, template):
        self.template = template
        self.params = template.get("Parameters", {})
        self.resources = template.get("Resources", {})

    def ref(self, name):
        if name in PSEUDO_MAX:
            return PSEUDO_MAX[name]
        if name in self.params:
            p = self.params[name]
            if "AllowedValues" in p:
                return max(len(str(v)) for v in p["AllowedValues"])
            if "MaxLength" in p:
                return int(p["MaxLength"])
            return None
        if name in self.resources:
            return REF_MAX.get(self.resources[name]["Type"])
        return None

    def of(self, node):
        if isinstance(node, (str, int, float, bool)):
            return len(str(node))
        if not isinstance(node, dict) or len(node) != 1:
            return None
        (fn, arg), = node.items()
        if fn == "Ref":
            return self.ref(arg)
        if fn == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            total = len(re.sub(r"\$\{[^}!]*\}", "", text))
            for var in re.findall(r"\$\{([^}!]*)\}", text):
                if var in variables:
                    n = self.of(variables[var])
                elif "." in var:
                    n = None  # an attribute: nothing bounds it here
                else:
                    n = self.ref(var)
                if n is None:
                    return None
                total += n
            return total
        if fn == "Fn::Join":
            delimiter, items = arg
            if not isinstance(items, list):
                return None
            parts = [self.of(i) for i in items]
            if None in parts:
                return None
            return sum(parts) + len(delimiter) * max(len(items) - 1, 0)
        if fn == "Fn::If":
            parts = [self.of(b) for b in if_branches(node)]
            return None if None in parts or not parts else max(parts)
        return None

    def references_resource(self, node):
        """Whether the expression depends on a resource of the stack (then it differs per create)."""
        text = json.dumps(node)
        names = set(re.findall(r'"Ref": "([^"]+)"', text))
        names |= set(re.findall(r"\$\{([A-Za-z0-9]+)(?:\.[^}]*)?\}", text))
        names |= {a[0] if isinstance(a, list) else a.split(".")[0]
                  for a in re.findall(r'"Fn::GetAtt": (\[[^\]]*\]|"[^"]*")', text)
                  for a in [json.loads(a)]}
        return any(n in self.resources for n in names)


def statements(template, function="Function"):
    """(statement, guarding condition or None) for each inline statement of the function's role,
    and of the AWS::IAM::Policy resources attached to that role."""
    found = []
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": f"{function}Role"} in resource["Properties"]["Roles"]:
            found += [(s, resource.get("Condition")) for s in resource["Properties"]["PolicyDocument"]["Statement"]]
    for policy in template["Resources"][function]["Properties"].get("Policies", []):
        if not isinstance(policy, dict) or "Statement" not in policy:
            raise AssertionError(
                f"policy {policy!r} is not an inline statement list; this test cannot see what it grants"
            )
        for item in policy["Statement"]:
            if isinstance(item, dict) and list(item) == ["Fn::If"]:
                condition = item["Fn::If"][0]
                found += [(s, condition) for s in if_branches(item)]
            else:
                found.append((item, None))
    return found


def actions_of(statement):
    action = statement.get("Action", [])
    return [action] if isinstance(action, str) else list(action)


def sdk_operations():
    """Operation names (snake_case) of every aws-sdk-* crate in the build, from the crates' sources."""
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )
    operations = {}
    for package in json.loads(meta.stdout)["packages"]:
        if package["name"].startswith("aws-sdk-"):
            crate = package["name"][len("aws-sdk-"):]
            op_dir = Path(package["manifest_path"]).parent / "src" / "operation"
            operations[crate] = {d.name for d in op_dir.iterdir() if d.is_dir()}
    return operations


def non_test_source(path):
    """A source file without its `#[cfg(test)]` code: `mod x;` declarations, and the inline test
    module, which the tests keep at the end of the file."""
    text = re.sub(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*;", "", path.read_text())
    module = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text)
    if module is None:
        return text
    cut = module.start()
    # Past the test module's opening line, only its own closing brace may sit in column 0: any
    # other top-level item there would be production code this scan does not see.
    closing = [line for line in text[cut:].splitlines()[2:] if line.startswith("}")]
    if closing != ["}"] or text.rstrip().splitlines()[-1] != "}":
        raise AssertionError(f"{path.name}: code after the #[cfg(test)] module; keep the tests at the end")
    return text[:cut]


def test_only_modules(mod_rs):
    text = mod_rs.read_text()
    return set(re.findall(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text))


def code_actions(src=AWS_SRC, operations=None):
    """IAM actions for the SDK operations the code under src/aws/ calls (`client.get_secret_value()`)."""
    operations = sdk_operations() if operations is None else operations
    skipped = test_only_modules(src / "mod.rs")
    actions = {}
    for path in sorted(src.glob("*.rs")):
        if path.stem in skipped:
            continue
        text = non_test_source(path)
        crates = set(re.findall(r"\baws_sdk_(\w+)::", text))
        calls = set(re.findall(r"\.\s*([a-z][a-z0-9_]*)\(\)", text))
        for crate in crates:
            if crate not in operations:
                raise AssertionError(f"{path.name} uses aws_sdk_{crate}, which is not a dependency")
            for op in calls & operations[crate]:
                if crate not in IAM_PREFIX:
                    raise AssertionError(f"{path.name} calls aws_sdk_{crate} {op}: add its IAM prefix to IAM_PREFIX")
                pascal = "".join(w.capitalize() for w in op.split("_"))
                action = f"{IAM_PREFIX[crate]}:{pascal}".lower()
                actions.setdefault(ACTION_OF_OPERATION.get(action, action), f"{path.name}: .{op}()")
    return actions


# The parameters that choose which attributes the function returns and which outputs exist:
# register only or switch, Network or not, verifier on or off, held answer or not.
PATH_PARAMETERS = {
    "CreateEndpoints": ["true", "false"],
    "WorkspaceIds": ["", "1234567890123456"],
    "NetworkFromClusterParameters": ["false", "true"],
    "DeployVerifier": ["false", "true"],
    "WaitUntilReady": ["false", "true"],
}


def returned_attributes():
    """(always, with Network): the attributes the function answers a Create or Update with, from
    the tables in src/resource/converge.rs that its unit tests hold attributes() to."""
    text = (ROOT / "src" / "resource" / "converge.rs").read_text()

    def table(name):
        found = re.search(rf"pub const {name}: \[&str; \d+\] = \[(.*?)\];", text, re.S)
        if found is None:
            raise AssertionError(f"converge.rs has no table {name}")
        return set(re.findall(r'"(\w+)"', found.group(1)))

    return table("ALWAYS_RETURNED"), table("RETURNED_WITH_NETWORK")


class Deployment:
    """The values a template's conditions and simple expressions take for given parameters, in one
    region: what CloudFormation decides before it creates anything."""

    def __init__(self, template, parameters, region="us-east-1"):
        self.template = template
        self.region = region
        self.values = {}
        for name, spec in template.get("Parameters", {}).items():
            value = parameters.get(name, spec.get("Default"))
            if spec["Type"] == "CommaDelimitedList" and isinstance(value, str):
                value = value.split(",")
            self.values[name] = value
        self.decided = {}

    def condition(self, name):
        if name not in self.decided:
            self.decided[name] = bool(self.value(self.template["Conditions"][name]))
        return self.decided[name]

    def value(self, node):
        if isinstance(node, (str, int, float, bool)):
            return node
        if isinstance(node, list):
            return [self.value(n) for n in node]
        (fn, arg), = node.items()
        if fn == "Ref":
            return self.region if arg == "AWS::Region" else self.values[arg]
        if fn == "Condition":
            return self.condition(arg)
        if fn == "Fn::Equals":
            a, b = (self.value(x) for x in arg)
            return str(a) == str(b)
        if fn == "Fn::Not":
            return not self.value(arg[0])
        if fn == "Fn::And":
            return all(self.value(x) for x in arg)
        if fn == "Fn::Or":
            return any(self.value(x) for x in arg)
        if fn == "Fn::If":
            return self.value(arg[1] if self.condition(arg[0]) else arg[2])
        if fn == "Fn::Join":
            return arg[0].join(self.value(arg[1]))
        if fn == "Fn::Split":
            return self.value(arg[1]).split(arg[0])
        if fn == "Fn::Select":
            return self.value(arg[1])[int(arg[0])]
        if fn == "Fn::Sub" and isinstance(arg, list):
            variables = {k: self.value(v) for k, v in arg[1].items()}
            return re.sub(r"\$\{([^}]+)\}", lambda m: variables[m.group(1)], arg[0])
        raise AssertionError(f"the test cannot evaluate {fn}")

    def holds(self, name):
        return self.condition(name)

    def resolve(self, node):
        """The node with every Fn::If taken and AWS::NoValue dropped."""
        if isinstance(node, dict):
            if list(node) == ["Fn::If"]:
                condition, yes, no = node["Fn::If"]
                return self.resolve(yes if self.condition(condition) else no)
            resolved = {k: self.resolve(v) for k, v in node.items()}
            return {k: v for k, v in resolved.items() if not is_no_value(v)}
        if isinstance(node, list):
            return [self.resolve(v) for v in node if not is_no_value(v)]
        return node

    def present(self, section="Resources"):
        """The logical ids of a section that this deployment creates."""
        return {
            name for name, item in self.template.get(section, {}).items()
            if "Condition" not in item or self.condition(item["Condition"])
        }


# What a deployment for pipelines needs of the template (docs/direct-invocation.md).
FULL = {
    "DatabricksAccountId": "0d3f7c1e-2b4a-4c5d-9e8f-1a2b3c4d5e6f",
    "CredentialsSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:sp-AbCdEf",
    "VpcId": "vpc-0a1b2c3d",
    "ClusterSubnetIds": "subnet-1,subnet-2",
    "ClusterSecurityGroupId": "sg-0a1b2c3d",
}
FUNCTION_ONLY = {
    "DatabricksAccountId": FULL["DatabricksAccountId"],
    "CredentialsSecretArn": FULL["CredentialsSecretArn"],
    "CreateEndpoints": "false",
}


class TemplateTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.t = load_template()
        cls.resources = cls.t["Resources"]
        cls.lengths = Lengths(cls.t)

    def of_type(self, *types):
        return {k: v for k, v in self.resources.items() if v["Type"] in types}

    # --- point 2: names that a long stack name pushes over the limit ------------------------------
    def test_names_fit_the_longest_stack_name(self):
        problems = []
        for logical, res in self.resources.items():
            props = res.get("Properties", {})
            for (rtype, prop), limit in NAME_LIMITS.items():
                if res["Type"] != rtype or prop not in props:
                    continue
                longest = self.lengths.of(props[prop])
                if longest is None:
                    problems.append(f"{logical}.{prop}: nothing bounds its length (limit {limit})")
                elif longest > limit:
                    problems.append(
                        f"{logical}.{prop}: up to {longest} characters with a {MAX_STACK_NAME}-character "
                        f"stack name, over the limit of {limit}; leave it out and let CloudFormation name it"
                    )
            tags = props.get("Tags", [])
            for tag in tags if isinstance(tags, list) else []:
                for part, limit in (("Key", TAG_KEY_LIMIT), ("Value", TAG_VALUE_LIMIT)):
                    longest = self.lengths.of(tag[part])
                    if longest is None or longest > limit:
                        problems.append(f"{logical} tag {tag['Key']!r}: {part} up to {longest}, limit {limit}")
        self.assertEqual(problems, [])

    # --- point 4: the workspaces' endpoints survive the stack ----------------------------------------
    def test_endpoints_and_their_security_group_survive_stack_deletion(self):
        guarded = self.of_type(*RETAIN_ON_DELETE)
        self.assertEqual({r["Type"] for r in guarded.values()}, RETAIN_ON_DELETE)
        problems = [
            f"{logical}: {attr} is {res.get(attr)!r}, must be 'Retain' (PrivateLink cannot be removed from a workspace)"
            for logical, res in guarded.items()
            for attr in ("DeletionPolicy", "UpdateReplacePolicy")
            if res.get(attr) != "Retain"
        ]
        self.assertEqual(problems, [])

    # --- point 3: a rolled-back first create can be retried -------------------------------------------
    def test_log_groups_do_not_block_a_retried_create(self):
        problems = []
        for logical, res in self.of_type("AWS::Logs::LogGroup").items():
            name = res.get("Properties", {}).get("LogGroupName")
            fixed = name is not None and not self.lengths.references_resource(name)
            if fixed and res.get("DeletionPolicy") in ("Retain", "Snapshot"):
                problems.append(
                    f"{logical}: a fixed name with DeletionPolicy {res['DeletionPolicy']} outlives a "
                    "rolled-back first create, and the retry fails with 'already exists'; use "
                    "RetainExceptOnCreate or a name that follows the function"
                )
        self.assertEqual(problems, [])

    def test_function_log_group_exists_before_the_function_runs(self):
        for fn in self.of_type("AWS::Serverless::Function", "AWS::Lambda::Function"):
            groups = [
                logical for logical, res in self.of_type("AWS::Logs::LogGroup").items()
                if res.get("Properties", {}).get("LogGroupName") in ({"Fn::Sub": f"/aws/lambda/${{{fn}}}"},)
            ]
            self.assertEqual(len(groups), 1, f"{fn}: one log group named /aws/lambda/${{{fn}}} expected")
            # Retain keeps the log of a failed first create; the name follows the function, so
            # the retry does not find it taken (test_log_groups_do_not_block_a_retried_create).
            self.assertIn(self.resources[groups[0]].get("DeletionPolicy"), ("Retain", "RetainExceptOnCreate"))
            for logical, res in self.resources.items():
                if res["Type"].startswith("Custom::") and res["Properties"].get("ServiceToken") == {
                    "Fn::GetAtt": [fn, "Arn"]
                }:
                    depends = res.get("DependsOn", [])
                    depends = [depends] if isinstance(depends, str) else depends
                    self.assertIn(
                        groups[0], depends,
                        f"{logical} may run {fn} before {groups[0]} exists: Lambda then creates the "
                        "group and CloudFormation's create of it fails with 'already exists'",
                    )

    # --- point 5 and the role: what the code calls, no more -------------------------------------------
    def test_policy_grants_exactly_the_calls_the_code_makes(self):
        called = code_actions()
        self.assertTrue(called, "no SDK call found under src/aws/: the scan is broken")
        granted = {a.lower() for s, _ in statements(self.t) for a in actions_of(s)}
        missing = sorted(f"{a} ({where})" for a, where in called.items() if a not in granted)
        unused = sorted(
            a for a in granted
            if a.split(":")[0] in IAM_PREFIX.values() and a not in called and a not in INDIRECT_ACTIONS
        )
        self.assertEqual(missing, [], "the code calls these, the role may not")
        self.assertEqual(unused, [], "the role may do these, the code never calls them")

    def test_sdk_calls_live_where_the_policy_test_looks(self):
        outside = [
            str(path.relative_to(ROOT)) for path in sorted((ROOT / "src").rglob("*.rs"))
            if AWS_SRC not in path.parents and re.search(r"\baws_sdk_\w+::", non_test_source(path))
        ]
        self.assertEqual(outside, [], "AWS SDK clients outside src/aws/: move the calls there, where the policy test sees them")

    def test_granted_actions_exist(self):
        policies = json.loads(
            (Path(cfn_yaml.__file__).parents[1] / "data" / "AdditionalSpecs" / "Policies.json").read_text()
        )
        unknown = []
        for s, _ in statements(self.t):
            for action in actions_of(s):
                prefix, name = action.split(":")
                if name.lower() not in policies.get(prefix, {}).get("Actions", {}):
                    unknown.append(action)
        self.assertEqual(unknown, [])

    def test_modify_vpc_endpoint_only_when_asked_and_only_on_this_stacks_endpoints(self):
        grants = [(s, c) for s, c in statements(self.t) if "ec2:modifyvpcendpoint" in
                  {a.lower() for a in actions_of(s)}]
        self.assertTrue(grants, "no statement grants ec2:ModifyVpcEndpoint, which EnablePrivateDns needs")
        custom = self.of_type("Custom::DatabricksBackendPrivateLink")
        endpoints = self.of_type("AWS::EC2::VPCEndpoint")
        for statement, condition in grants:
            self.assertIsNotNone(condition, "ec2:ModifyVpcEndpoint must only be granted under a condition")
            for logical, res in custom.items():
                self.assertEqual(
                    res["Properties"].get("EnablePrivateDns"),
                    {"Fn::If": [condition, "true", {"Ref": "AWS::NoValue"}]},
                    f"{logical}: EnablePrivateDns must be asked for exactly when {condition} grants the action",
                )
            self.assertNotEqual(statement.get("Resource"), "*")
            self.assertIn("${AWS::Region}", json.dumps(statement.get("Resource")))
            tags = statement.get("Condition", {}).get("StringEquals", {})
            tag_conditions = {k.split("/", 1)[1]: v for k, v in tags.items() if k.startswith("aws:ResourceTag/")}
            self.assertTrue(tag_conditions, "ec2:ModifyVpcEndpoint needs an aws:ResourceTag condition")
            for logical, res in endpoints.items():
                endpoint_tags = {t["Key"]: t["Value"] for t in res["Properties"].get("Tags", [])}
                for key, value in tag_conditions.items():
                    self.assertEqual(endpoint_tags.get(key), value, f"{logical} lacks tag {key}")

    # --- consistency with the function ----------------------------------------------------------------
    def region_table(self, endpoint, parameter):
        """{region: service name} of an endpoint's ServiceName, and its value in other regions."""
        cond, table, override = self.resources[endpoint]["Properties"]["ServiceName"]["Fn::If"]
        self.assertEqual(override, {"Ref": parameter})
        self.assertEqual(self.t["Conditions"][cond], {"Fn::Equals": [{"Ref": parameter}, ""]})
        delimiter, entries = table["Fn::Join"]
        self.assertEqual(delimiter, "")
        services, fallback = {}, None
        for entry in entries:
            condition, yes, no = entry["Fn::If"]
            if condition == "MappedRegion":
                fallback = (yes, no)
                continue
            self.assertEqual(no, "", f"{endpoint}: {condition} must give '' in other regions")
            region = self.t["Conditions"][condition]["Fn::Equals"]
            self.assertEqual(region[0], {"Ref": "AWS::Region"})
            services[region[1]] = yes
        return services, fallback

    def test_region_table_matches_the_function_and_cannot_fail_in_other_regions(self):
        text = (AWS_SRC / "services.rs").read_text()
        rows = re.findall(
            r'region: "([^"]+)",\s*variant: "([^"]+)",\s*rest_api: "([^"]+)",\s*relay: "([^"]+)"', text
        )
        code = [(r, rest, relay) for r, v, rest, relay in rows if v != "dod"]
        rest, rest_fallback = self.region_table("RestApiEndpoint", "RestApiServiceName")
        relay, relay_fallback = self.region_table("RelayEndpoint", "RelayServiceName")
        self.assertEqual(rest, {r: s for r, s, _ in code})
        self.assertEqual(relay, {r: s for r, _, s in code})
        # In a region without a service the name says which parameter to pass.
        self.assertEqual(rest_fallback[0], "")
        self.assertIn("RestApiServiceName", rest_fallback[1])
        self.assertEqual(relay_fallback[0], "")
        self.assertIn("RelayServiceName", relay_fallback[1])
        mapped = json.dumps([self.t["Conditions"][c] for c in ("MappedRegionA", "MappedRegionB")])
        named = set(re.findall(r'"Condition": "(\w+)"', mapped))
        regions = {self.t["Conditions"][c]["Fn::Equals"][1] for c in named}
        self.assertEqual(regions, set(rest))
        # A lookup of the region in a table fails the template where the region is missing.
        self.assertNotIn("Fn::FindInMap", json.dumps(self.resources))

    def test_custom_resource_uses_only_properties_the_function_knows(self):
        props = set(re.findall(r'pub const \w+: &str = "(\w+)";',
                               (ROOT / "src" / "resource" / "properties.rs").read_text()))
        props |= {"ServiceToken", "ServiceTimeout"}
        for logical, res in self.of_type("Custom::DatabricksBackendPrivateLink").items():
            self.assertEqual(set(res["Properties"]) - props, set(), logical)

    def test_every_output_reads_an_attribute_the_function_returns_on_that_path(self):
        """CloudFormation fails the stack when an output reads an attribute the answer lacks
        ("Vendor response doesn't contain ..."). On every path the parameters choose (register
        only or switch, Network or not, verifier on or off, held or not), each output that exists
        must read an attribute the function answers with for the properties of that path."""
        always, with_network = returned_attributes()
        self.assertIn("VerificationReport", always)
        self.assertEqual(with_network, {"NetworkId"})
        custom = self.of_type("Custom::DatabricksBackendPrivateLink")
        reads = {
            name: output["Value"]["Fn::GetAtt"]
            for name, output in self.t["Outputs"].items()
            if isinstance(output["Value"], dict) and "Fn::GetAtt" in output["Value"]
            and output["Value"]["Fn::GetAtt"][0] in custom
        }
        self.assertTrue(reads, "no output reads the custom resource: the scan is broken")
        paths = 0
        problems = []
        for values in itertools.product(*PATH_PARAMETERS.values()):
            parameters = dict(zip(PATH_PARAMETERS, values))
            conditions = Deployment(self.t, parameters)
            for name, (target, attr) in reads.items():
                condition = self.t["Outputs"][name].get("Condition")
                if condition is not None and not conditions.holds(condition):
                    continue
                made = custom[target].get("Condition")
                if made is not None and not conditions.holds(made):
                    problems.append(f"{parameters}: output {name} reads {target}, which this deployment does not create")
                    continue
                properties = conditions.resolve(custom[target]["Properties"])
                returned = always | (with_network if "Network" in properties else set())
                if attr not in returned:
                    problems.append(f"{parameters}: output {name} reads {target}.{attr}, which the function does not return")
            paths += 1
        self.assertEqual(problems, [])
        self.assertEqual(paths, 2 ** len(PATH_PARAMETERS))
        for wanted in ("ReadyAfter", "AttachedWorkspaceIds", "NetworkId", "VerificationReport"):
            self.assertIn(wanted, self.t["Outputs"])

    def test_the_condition_evaluator_sees_the_network_path(self):
        """The check above is only as good as its evaluator: the Network property is there exactly
        with NetworkFromClusterParameters=true."""
        (props,) = [r["Properties"] for r in self.of_type("Custom::DatabricksBackendPrivateLink").values()]
        for shared, present in (("true", True), ("false", False)):
            parameters = {**{k: v[0] for k, v in PATH_PARAMETERS.items()}, "NetworkFromClusterParameters": shared}
            self.assertEqual("Network" in Deployment(self.t, parameters).resolve(props), present)

    # --- the held answer's hand-overs as Lambda runs them ---------------------------------------------
    def test_the_function_may_always_invoke_itself_and_only_itself(self):
        """Another stack importing FunctionArn may set WaitUntilReady: the self-invoke grant does
        not depend on this stack's own WaitUntilReady."""
        policy = self.resources["SelfInvokePolicy"]
        self.assertNotIn("Condition", policy)
        (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
        self.assertEqual(statement["Action"], "lambda:InvokeFunction")
        self.assertEqual(statement["Resource"], {"Fn::GetAtt": ["Function", "Arn"]})

    def test_other_verifiers_are_invoked_by_their_arns_only_when_named(self):
        grants = [(s, c) for s, c in statements(self.t) if s.get("Sid") == "InvokeOtherVerifiers"]
        self.assertEqual(len(grants), 1)
        statement, condition = grants[0]
        self.assertEqual(statement["Resource"], {"Ref": "OtherVerifierFunctionArns"})
        self.assertFalse(Deployment(self.t, {}).holds(condition), "empty by default: no grant")
        self.assertTrue(Deployment(self.t, {"OtherVerifierFunctionArns": "arn:aws:lambda:us-east-1:123456789012:function:v"}).holds(condition))

    def test_recursive_loop_detection_lets_the_bounded_hand_overs_through(self):
        """Lambda stops a chain of about 16 invocations it sees as a loop ("Use Lambda recursive
        loop detection"): the template allows the chain and the code bounds it well below."""
        self.assertEqual(self.resources["Function"]["Properties"].get("RecursiveLoop"), "Allow")
        hops = re.search(r"pub const MAX_HOPS: u32 = (\d+);", (ROOT / "src" / "cfn" / "request.rs").read_text())
        self.assertIsNotNone(hops)
        self.assertLessEqual(int(hops.group(1)), 12)

    # --- a function for pipelines and other stacks, without endpoints ----------------------------------
    def test_function_only_deploys_the_function_its_role_and_log_group_and_nothing_else(self):
        only = Deployment(self.t, FUNCTION_ONLY)
        # SAM adds the role (FunctionRole) from the function's Policies.
        # The self-invoke grant stays: another stack's resource may hold its answer.
        self.assertEqual(only.present(), {"Function", "FunctionLogGroup", "SelfInvokePolicy"})
        self.assertEqual(only.present("Outputs"), {"FunctionArn", "FunctionName", "RoleArn"})
        self.assertEqual(self.t["Outputs"]["RoleArn"]["Value"], {"Fn::GetAtt": ["FunctionRole", "Arn"]})
        # The VPC parameters may stay empty then, and are required otherwise.
        for name in ("VpcId", "ClusterSubnetIds", "ClusterSecurityGroupId"):
            self.assertEqual(self.t["Parameters"][name].get("Default"), "", name)
        rule = self.t["Rules"]["EndpointsNeedTheVpc"]
        self.assertEqual(rule["RuleCondition"], {"Fn::Equals": [{"Ref": "CreateEndpoints"}, "true"]})
        asserted = json.dumps(rule["Assertions"])
        for name in ("VpcId", "ClusterSubnetIds", "ClusterSecurityGroupId"):
            self.assertIn(f'"Ref": "{name}"', asserted)

        full = Deployment(self.t, FULL)
        for logical in ("EndpointSecurityGroup", "RestApiEndpoint", "RelayEndpoint", "PrivateLink"):
            self.assertIn(logical, full.present())
        # Whatever a function-only stack leaves out must not be asked for by what it keeps.
        for logical in full.present() - only.present():
            self.assertNotIn({"Fn::GetAtt": [logical, "Arn"]}, [
                self.resources[r]["Properties"].get("ServiceToken") for r in only.present()
            ])
        with_verifier = Deployment(self.t, {**FUNCTION_ONLY, "DeployVerifier": "true"})
        self.assertNotIn("Verifier", with_verifier.present(), "the verifier needs the cluster subnets")
        holding = Deployment(self.t, {**FUNCTION_ONLY, "WaitUntilReady": "true"})
        self.assertIn("SelfInvokePolicy", holding.present(), "other stacks' resources may hold answers")

    def test_invoker_principals_become_one_permission_each(self):
        # Only the permissions made from the parameter: the template may grant others.
        permissions = {
            logical: res for logical, res in self.of_type("AWS::Lambda::Permission").items()
            if '"InvokerPrincipals"' in json.dumps(res["Properties"].get("Principal"))
        }
        self.assertEqual(len(permissions), 5, "the parameter's description promises five")
        self.assertIn("five", self.t["Parameters"]["InvokerPrincipals"]["Description"])
        principals = ["210987654321", "arn:aws:iam::210987654321:role/vending", "345678901234"]
        deployment = Deployment(self.t, {**FUNCTION_ONLY, "InvokerPrincipals": ",".join(principals)})
        granted = []
        for logical in sorted(deployment.present() & set(permissions)):
            props = permissions[logical]["Properties"]
            self.assertEqual(props["Action"], "lambda:InvokeFunction")
            self.assertEqual(props["FunctionName"], {"Fn::GetAtt": ["Function", "Arn"]})
            granted.append(deployment.value(props["Principal"]))
        self.assertEqual(granted, principals)
        self.assertEqual(Deployment(self.t, FUNCTION_ONLY).present() & set(permissions), set())
        # Five slots: a sixth principal is not granted, as the description says.
        six = [f"21098765432{n}" for n in range(6)]
        deployment = Deployment(self.t, {**FUNCTION_ONLY, "InvokerPrincipals": ",".join(six)})
        granted = sorted(deployment.value(permissions[p]["Properties"]["Principal"])
                         for p in deployment.present() & set(permissions))
        self.assertEqual(granted, six[:5])
        self.assertIn("sixth", self.t["Parameters"]["InvokerPrincipals"]["Description"])

    def test_additional_secrets_are_readable_only_when_listed(self):
        grants = [
            (statement, condition) for statement, condition in statements(self.t)
            if statement.get("Resource") == {"Ref": "AdditionalSecretArns"}
        ]
        self.assertEqual(len(grants), 1)
        statement, condition = grants[0]
        self.assertEqual(actions_of(statement), ["secretsmanager:GetSecretValue"])
        self.assertFalse(Deployment(self.t, FUNCTION_ONLY).condition(condition))
        listed = {**FUNCTION_ONLY, "AdditionalSecretArns": "arn:aws:secretsmanager:us-east-1:1:secret:a"}
        self.assertTrue(Deployment(self.t, listed).condition(condition))

    # --- point 9: sam local invoke --env-vars sets only declared variables ---------------------------
    def test_env_json_sets_only_variables_the_template_declares(self):
        env = json.loads(ENV_JSON.read_text())
        for function, variables in env.items():
            declared = self.resources[function]["Properties"].get("Environment", {}).get("Variables", {})
            self.assertEqual(
                set(variables) - set(declared), set(),
                f"SAM ignores these for {function} because the template does not declare them",
            )


if __name__ == "__main__":
    sys.exit(0 if unittest.main(verbosity=1, exit=False).result.wasSuccessful() else 1)
