"""infra/aws/template.yaml and deploy.sh: least-privilege role, the ESM wired to the local trigger's settings,
the same function as the local deployer, and a deploy script that is valid bash and refuses the local stack.

The template is read with PyYAML (CloudFormation short tags kept as their long forms) and resolved for a few
parameter sets by trigger.cloudformation (the resolver `make trigger MAPPINGS=...` uses), so each assertion is about what
CloudFormation would create for that deployment.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from infra.deploy.aws_resources import (DEFAULT_FUNCTION_NAME, DEFAULT_NAMESPACE, DEFAULT_TOPIC_NAME, HANDLER,
                                 AwsResourceSettings)
from pipeline_common.kafka_client import DEFAULT_DLQ_TOPIC, DEFAULT_TOPIC
from trigger import cloudformation
from trigger.mapping import STARTING_POSITIONS, TriggerConfig

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "aws" / "template.yaml"
DEPLOY = ROOT / "infra" / "aws" / "deploy.sh"
LOCAL_POLICY = ROOT / "infra" / "deploy" / "iam" / "lambda_execution_policy.json"

REGION, ACCOUNT = "eu-west-1", "123456789012"
MSK_ARN = f"arn:aws:kafka:{REGION}:{ACCOUNT}:cluster/flights/0a1b2c3d-1111-2222-3333-444455556666-7"
SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:AmazonMSK_flights-AbCdEf"
SQS_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:flight-esm-dlq"
MSK_IAM = {"MskClusterArn": MSK_ARN}
SELF_MANAGED_VPC = {"BootstrapServers": "b-1.example.com:9096,b-2.example.com:9096", "SaslSecretArn": SECRET_ARN,
                    "SaslAuthType": "SASL_SCRAM_256_AUTH", "VpcSubnetId1": "subnet-aaa", "VpcSubnetId2": "subnet-bbb",
                    "VpcSecurityGroupId": "sg-123", "OnFailureDestinationType": "SQS", "OnFailureDestination": SQS_ARN}


# --- reading and resolving the template ------------------------------------------------------------------

class Stack(cloudformation.Stack):
    """The template resolved for one set of parameter values (trigger.cloudformation, as `make trigger
    MAPPINGS=...` reads it), in this test's region and account."""

    def __init__(self, template: dict, **overrides: str):
        super().__init__(template, pseudo={"AWS::Region": REGION, "AWS::AccountId": ACCOUNT}, **overrides)

    def statements(self, policy_name: str) -> list[dict]:
        policies = self.properties("FunctionRole")["Policies"]
        return next(p for p in policies if p["PolicyName"] == policy_name)["PolicyDocument"]["Statement"]

    def broken_rules(self) -> list[str]:
        broken = []
        for name, rule in self.template["Rules"].items():
            if "RuleCondition" in rule and not self.resolve(rule["RuleCondition"]):
                continue
            broken += [name for a in rule["Assertions"] if not self.resolve(a["Assert"])]
        return broken


def _actions(statement: dict) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else action


def _walk(node):
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


@pytest.fixture(scope="module")
def template() -> dict:
    return cloudformation.load_template(TEMPLATE)


# --- the role ----------------------------------------------------------------------------------------------

def test_function_policy_publishes_only_to_its_own_topic(template):
    # GIVEN the function's inline policy as written
    policy = next(p for p in template["Resources"]["FunctionRole"]["Properties"]["Policies"]
                  if p["PolicyName"] == "flight-processor-permissions")
    publish = [s for s in policy["PolicyDocument"]["Statement"] if "sns:Publish" in _actions(s)]
    # THEN exactly one statement publishes, and only to the topic this stack creates
    assert len(publish) == 1 and publish[0]["Resource"] == {"Ref": "NotificationsTopic"}
    assert template["Resources"]["NotificationsTopic"]["Type"] == "AWS::SNS::Topic"
    assert template["Parameters"]["TopicName"]["Default"] == DEFAULT_TOPIC_NAME


@pytest.mark.parametrize("params", [MSK_IAM, SELF_MANAGED_VPC, {**MSK_IAM, "OnFailureDestinationType": "SNS",
                                    "OnFailureDestination": f"arn:aws:sns:{REGION}:{ACCOUNT}:esm-failures"}])
def test_no_wildcard_action_and_sns_publish_nowhere_unexpected(template, params):
    # GIVEN any deployment WHEN every policy statement is resolved
    stack = Stack(template, **params)
    statements = stack.statements("flight-processor-permissions") + stack.statements("kafka-event-source")
    # THEN no action is "*" or "service:*" ...
    assert all("*" not in action for s in statements for action in _actions(s))
    # ... and sns:Publish reaches the notifications topic, plus the on-failure topic only when one is chosen
    published_to = {s["Resource"] for s in statements if "sns:Publish" in _actions(s)}
    allowed = {"<NotificationsTopic>"} | ({params["OnFailureDestination"]}
                                          if params.get("OnFailureDestinationType") == "SNS" else set())
    assert published_to == allowed


def test_put_metric_data_is_limited_to_the_metrics_namespace(template):
    stack = Stack(template, **MSK_IAM, MetricsNamespace="FlightPipelineProd")
    [metrics] = [s for s in stack.statements("flight-processor-permissions")
                 if "cloudwatch:PutMetricData" in _actions(s)]
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "FlightPipelineProd"}}
    assert template["Parameters"]["MetricsNamespace"]["Default"] == DEFAULT_NAMESPACE


def test_function_policy_matches_the_local_deployers_policy(template):
    # GIVEN the local deployer's policy file WHEN compared with the stack's function policy
    local = yaml.safe_load(LOCAL_POLICY.read_text())["Statement"]
    stack = Stack(template, **MSK_IAM)
    aws = stack.statements("flight-processor-permissions")
    # THEN the same statements grant the same actions; logs are scoped to this function's log group
    assert [(s["Sid"], sorted(_actions(s))) for s in aws] == [(s["Sid"], sorted(_actions(s))) for s in local]
    logs = next(s for s in aws if s["Sid"] == "WriteFunctionLogs")
    assert logs["Resource"] == f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{DEFAULT_FUNCTION_NAME}:*"


def test_msk_with_iam_auth_grants_cluster_topic_and_group_access_only(template):
    # GIVEN an MSK cluster with IAM authentication (no secret) and the default Kafka dead-letter topic
    statements = {s["Sid"]: s for s in Stack(template, **MSK_IAM).statements("kafka-event-source")}
    prefix, cluster = f"arn:aws:kafka:{REGION}:{ACCOUNT}", "flights/0a1b2c3d-1111-2222-3333-444455556666-7"
    # THEN Lambda may describe the cluster, manage ENIs, and read exactly our topic with our group
    assert sorted(_actions(statements["DescribeMskCluster"])) == ["kafka:DescribeClusterV2",
                                                                  "kafka:GetBootstrapBrokers"]
    assert statements["DescribeMskCluster"]["Resource"] == MSK_ARN
    assert "ec2:CreateNetworkInterface" in _actions(statements["EventPollerNetworkInterfaces"])
    assert statements["ConnectToMsk"]["Resource"] == MSK_ARN
    assert statements["ReadSourceTopic"]["Resource"] == f"{prefix}:topic/{cluster}/{DEFAULT_TOPIC}"
    assert statements["UseConsumerGroup"]["Resource"] == f"{prefix}:group/{cluster}/flight-processor-esm"
    assert sorted(_actions(statements["UseConsumerGroup"])) == ["kafka-cluster:AlterGroup",
                                                                "kafka-cluster:DescribeGroup"]
    assert statements["WriteDeadLetterTopic"]["Resource"] == f"{prefix}:topic/{cluster}/{DEFAULT_DLQ_TOPIC}"
    assert "ReadSaslSecret" not in statements


def test_self_managed_kafka_gets_its_secret_and_vpc_access_but_nothing_of_msk(template):
    statements = {s["Sid"]: s for s in Stack(template, **SELF_MANAGED_VPC).statements("kafka-event-source")}
    assert set(statements) == {"EventPollerNetworkInterfaces", "ReadSaslSecret", "SendToDeadLetterQueue"}
    assert statements["ReadSaslSecret"] == {"Sid": "ReadSaslSecret", "Effect": "Allow",
                                            "Action": "secretsmanager:GetSecretValue", "Resource": SECRET_ARN}
    assert statements["SendToDeadLetterQueue"]["Resource"] == SQS_ARN


# --- the event source mapping ---------------------------------------------------------------------------

def test_mapping_defaults_are_the_local_triggers_defaults(template):
    # GIVEN the parameters' defaults and the local trigger's defaults
    params, local = template["Parameters"], TriggerConfig()
    esm = template["Resources"]["EventSourceMapping"]["Properties"]
    # THEN the ESM reads aviation-data with the same batch size and starting position
    assert esm["Topics"] == [{"Ref": "KafkaTopic"}] and params["KafkaTopic"]["Default"] == DEFAULT_TOPIC
    assert esm["BatchSize"] == {"Ref": "BatchSize"} and params["BatchSize"]["Default"] == local.batch_size
    assert esm["StartingPosition"] == {"Ref": "StartingPosition"}
    assert params["StartingPosition"]["Default"] == local.starting_position
    assert sorted(params["StartingPosition"]["AllowedValues"]) == sorted(STARTING_POSITIONS)
    assert (params["BatchSize"]["MinValue"], params["BatchSize"]["MaxValue"]) == (1, 10_000)
    assert params["MaximumBatchingWindowInSeconds"]["Default"] == 1
    assert params["MaximumBatchingWindowInSeconds"]["MaxValue"] == 300


def test_msk_mapping_as_cloudformation_would_create_it(template):
    esm = Stack(template, **MSK_IAM, BatchSize="250", MaximumBatchingWindowInSeconds="5",
                ConsumerGroupId="flights-prod").properties("EventSourceMapping")
    assert esm == {
        "FunctionName": "<Function.Arn>",
        "Topics": [DEFAULT_TOPIC],
        "EventSourceArn": MSK_ARN,
        "AmazonManagedKafkaEventSourceConfig": {"ConsumerGroupId": "flights-prod"},
        "StartingPosition": "TRIM_HORIZON",
        "BatchSize": "250",
        "MaximumBatchingWindowInSeconds": "5",
        "ProvisionedPollerConfig": {"MinimumPollers": "1", "MaximumPollers": "3"},
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "MaximumRetryAttempts": "-1",
        "MaximumRecordAgeInSeconds": "-1",
        "BisectBatchOnFunctionError": "false",
        "DestinationConfig": {"OnFailure": {"Destination": f"kafka://{DEFAULT_DLQ_TOPIC}"}},
    }


def test_self_managed_mapping_lists_its_brokers_secret_and_vpc(template):
    esm = Stack(template, **SELF_MANAGED_VPC, MaximumBatchingWindowInSeconds="-1").properties("EventSourceMapping")
    assert "EventSourceArn" not in esm and "AmazonManagedKafkaEventSourceConfig" not in esm
    assert esm["SelfManagedEventSource"] == {
        "Endpoints": {"KafkaBootstrapServers": ["b-1.example.com:9096", "b-2.example.com:9096"]}}
    assert esm["SelfManagedKafkaEventSourceConfig"] == {"ConsumerGroupId": "flight-processor-esm"}
    assert esm["SourceAccessConfigurations"] == [
        {"Type": "SASL_SCRAM_256_AUTH", "URI": SECRET_ARN},
        {"Type": "VPC_SUBNET", "URI": "subnet:subnet-aaa"},
        {"Type": "VPC_SUBNET", "URI": "subnet:subnet-bbb"},
        {"Type": "VPC_SECURITY_GROUP", "URI": "security_group:sg-123"},
    ]
    # -1 leaves the property out so AWS's 500 ms Kafka default applies
    assert "MaximumBatchingWindowInSeconds" not in esm
    assert esm["DestinationConfig"] == {"OnFailure": {"Destination": SQS_ARN}}


def test_on_demand_mode_leaves_out_the_provisioned_only_error_handling(template):
    esm = Stack(template, **MSK_IAM, EventPollerMode="ON_DEMAND").properties("EventSourceMapping")
    for name in ("ProvisionedPollerConfig", "FunctionResponseTypes", "MaximumRetryAttempts",
                 "MaximumRecordAgeInSeconds", "BisectBatchOnFunctionError"):
        assert name not in esm
    assert esm["BatchSize"] == "1000"


@pytest.mark.parametrize("params, rule", [
    ({**MSK_IAM, "BootstrapServers": "b-1.example.com:9092"}, "OneCluster"),
    ({}, "OneCluster"),
    ({"BootstrapServers": "b-1.example.com:9092"}, "SelfManagedReachable"),
    ({**SELF_MANAGED_VPC, "VpcSecurityGroupId": ""}, "VpcComplete"),
    ({**MSK_IAM, "SaslSecretArn": SECRET_ARN, "SaslAuthType": "BASIC_AUTH"}, "MskHasNoSaslPlain"),
    ({**MSK_IAM, "OnFailureDestination": DEFAULT_TOPIC}, "DestinationNamed"),
])
def test_rules_reject_deployments_aws_would_refuse(template, params, rule):
    assert rule in Stack(template, **params).broken_rules()


def test_rules_accept_the_documented_deployments(template):
    assert Stack(template, **MSK_IAM).broken_rules() == []
    assert Stack(template, **SELF_MANAGED_VPC).broken_rules() == []


# --- the function ------------------------------------------------------------------------------------------

def test_function_is_the_same_as_the_local_deployers(template):
    local = AwsResourceSettings()
    function = Stack(template, **MSK_IAM).properties("Function")
    assert function["Handler"] == HANDLER
    assert function["Runtime"] == local.runtime
    assert function["FunctionName"] == DEFAULT_FUNCTION_NAME == local.function_name
    assert (function["Timeout"], function["MemorySize"]) == (str(local.timeout), str(local.memory))
    assert function["Environment"]["Variables"] == {"SNS_TOPIC_ARN": "<NotificationsTopic>",
                                                    "METRICS_NAMESPACE": local.metrics_namespace}
    assert function["Role"] == "<FunctionRole.Arn>"


def test_outputs_name_the_topic_function_and_mapping(template):
    outputs = template["Outputs"]
    assert outputs["TopicArn"]["Value"] == {"Ref": "NotificationsTopic"}
    assert outputs["FunctionArn"]["Value"] == {"Fn::GetAtt": ["Function", "Arn"]}
    assert outputs["EventSourceMappingId"]["Value"] == {"Ref": "EventSourceMapping"}


def test_every_reference_names_a_parameter_resource_or_condition(template):
    names = set(template["Parameters"]) | set(template["Resources"]) | set(cloudformation.PSEUDO) | {"AWS::NoValue"}
    for node in _walk({k: template[k] for k in ("Conditions", "Resources", "Outputs", "Rules")}):
        if isinstance(node, dict) and "Ref" in node:
            assert node["Ref"] in names
        if isinstance(node, dict) and "Fn::If" in node:
            assert node["Fn::If"][0] in template["Conditions"]


@pytest.mark.skipif(shutil.which("cfn-lint") is None, reason="cfn-lint is not installed")
def test_cfn_lint_accepts_the_template():
    result = subprocess.run(["cfn-lint", str(TEMPLATE)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


# --- deploy.sh ---------------------------------------------------------------------------------------------

def test_deploy_script_is_valid_bash():
    result = subprocess.run(["bash", "-n", str(DEPLOY)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _run_deploy(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """deploy.sh with a stand-in `aws` that records its arguments (no AWS call is ever made)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "aws"
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "AWS $*" >> "$AWS_CALLS"\n'
                    '[[ "$1 $2" == "sts get-caller-identity" ]] && echo 123456789012\nexit 0\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    base = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path),
            "AWS_CALLS": str(tmp_path / "calls.txt"), "LAMBDA_ZIP": str(tmp_path / "fn.zip")}
    return subprocess.run(["bash", str(DEPLOY)], env={**base, **env}, capture_output=True, text=True, timeout=60)


def test_deploy_refuses_the_local_endpoint(tmp_path):
    result = _run_deploy(tmp_path, AWS_ENDPOINT_URL="http://localhost:4566", ARTIFACT_BUCKET="b",
                         MSK_CLUSTER_ARN=MSK_ARN)
    assert result.returncode == 2
    assert "AWS_ENDPOINT_URL=http://localhost:4566 is the local stack" in result.stderr
    assert not (tmp_path / "calls.txt").exists()


def test_deploy_refuses_a_bootstrap_server_on_this_machine(tmp_path):
    result = _run_deploy(tmp_path, ARTIFACT_BUCKET="b", KAFKA_BOOTSTRAP_SERVERS="localhost:9092")
    assert result.returncode == 2 and "Lambda cannot reach it" in result.stderr


def test_deploy_uploads_by_digest_and_maps_trigger_settings_to_parameters(tmp_path, template):
    # GIVEN the local trigger's settings in the environment (and the Makefile's local bootstrap exported)
    result = _run_deploy(tmp_path, ARTIFACT_BUCKET="artifacts", MSK_CLUSTER_ARN=MSK_ARN,
                         KAFKA_BOOTSTRAP_SERVERS="localhost:9092", TRIGGER_GROUP_ID="flights-prod",
                         TRIGGER_BATCH_SIZE="250", TRIGGER_MAXIMUM_BATCHING_WINDOW_S="0.5",
                         TRIGGER_REPORT_BATCH_ITEM_FAILURES="yes", KAFKA_DLQ_TOPIC=DEFAULT_DLQ_TOPIC)
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    upload = next(c for c in calls if c.startswith("AWS s3 cp"))
    deploy = next(c for c in calls if c.startswith("AWS cloudformation deploy"))
    # THEN the zip goes to a key named by its sha256 and the stack is deployed with named IAM
    key = re.search(r"s3://artifacts/(flight-processor/[0-9a-f]{64}\.zip)", upload).group(1)
    assert "--capabilities CAPABILITY_NAMED_IAM" in deploy
    overrides = dict(arg.split("=", 1) for arg in deploy.split("--parameter-overrides ", 1)[1].split())
    assert set(overrides) <= set(template["Parameters"])
    assert overrides["CodeS3Key"] == key and overrides["CodeS3Bucket"] == "artifacts"
    assert overrides["MskClusterArn"] == MSK_ARN and overrides["BootstrapServers"] == ""  # MSK path
    assert overrides["ConsumerGroupId"] == "flights-prod" and overrides["BatchSize"] == "250"
    assert overrides["MaximumBatchingWindowInSeconds"] == "-1"  # 0.5 s is AWS's default: leave it out
    assert overrides["ReportBatchItemFailures"] == "true"
    assert (overrides["OnFailureDestinationType"], overrides["OnFailureDestination"]) == ("KAFKA", DEFAULT_DLQ_TOPIC)


def test_deploy_rejects_a_batching_window_aws_cannot_express(tmp_path):
    result = _run_deploy(tmp_path, ARTIFACT_BUCKET="b", MSK_CLUSTER_ARN=MSK_ARN,
                         TRIGGER_MAXIMUM_BATCHING_WINDOW_S="0.25")
    assert result.returncode == 2 and "must be a whole number" in result.stderr


# --- flight-alerts: a second function behind its own mapping ----------------------------------------------

def _alerts_statements(stack: Stack, policy_name: str) -> list[dict]:
    policies = stack.properties("AlertsFunctionRole")["Policies"]
    return next(p for p in policies if p["PolicyName"] == policy_name)["PolicyDocument"]["Statement"]


def test_alerts_policy_matches_the_local_alerts_deployers_and_publishes_only_alerts(template):
    from infra.deploy.alerts_resources import HERE
    local = yaml.safe_load((HERE / "iam" / "alerts_execution_policy.json").read_text())["Statement"]
    aws = _alerts_statements(Stack(template, **MSK_IAM), "flight-alerts-permissions")
    assert [(s["Sid"], sorted(_actions(s))) for s in aws] == [(s["Sid"], sorted(_actions(s))) for s in local]
    assert [s["Resource"] for s in aws if "sns:Publish" in _actions(s)] == ["<AlertsTopic>"]
    assert all("*" not in a for s in aws for a in _actions(s))


def test_alerts_mapping_reads_the_same_topic_in_its_own_group_with_its_own_destination(template):
    # GIVEN an MSK deployment with IAM auth
    stack = Stack(template, **MSK_IAM)
    processor, alerts = stack.properties("EventSourceMapping"), stack.properties("AlertsEventSourceMapping")
    # THEN both read the topic, each in its own consumer group, and failures go to separate topics
    assert alerts["Topics"] == processor["Topics"] == [DEFAULT_TOPIC]
    assert alerts["AmazonManagedKafkaEventSourceConfig"]["ConsumerGroupId"] == "flight-alerts-esm"
    assert processor["AmazonManagedKafkaEventSourceConfig"]["ConsumerGroupId"] != "flight-alerts-esm"
    assert alerts["DestinationConfig"]["OnFailure"]["Destination"] == "kafka://aviation-data-alerts-dlq"
    assert alerts["FunctionName"] == "<AlertsFunction.Arn>" and alerts["BatchSize"] == "500"
    assert alerts["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    groups = [s["Resource"] for s in _alerts_statements(stack, "kafka-event-source") if s["Sid"] == "UseConsumerGroup"]
    assert groups == [MSK_ARN.replace(":cluster/", ":group/") + "/flight-alerts-esm"]
    # AND a deployment that would put both mappings in one group is refused
    assert "AlertsMappingApart" in Stack(template, **MSK_IAM, AlertsConsumerGroupId="flight-processor-esm").broken_rules()


def test_alerts_function_is_the_local_alerts_deployers(template):
    from infra.deploy.alerts_resources import HANDLER as ALERTS_HANDLER
    function = Stack(template, **MSK_IAM).properties("AlertsFunction")
    assert function["Handler"] == ALERTS_HANDLER and function["Code"] == Stack(template, **MSK_IAM).properties(
        "Function")["Code"]
    assert set(function["Environment"]["Variables"]) == {"SNS_TOPIC_ARN", "ALERTS_TABLE", "GEOFENCES_BUCKET",
                                                        "GEOFENCES_KEY", "ALERT_WATCHLIST", "METRICS_NAMESPACE"}
    table = Stack(template, **MSK_IAM).properties("AlertStateTable")
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
