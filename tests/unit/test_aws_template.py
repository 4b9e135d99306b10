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
    assert alerts["FunctionName"] == "<AlertsFunction.Arn>" and alerts["BatchSize"] == "1000"
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


# --- the lake, the archiver and MWAA (issues 22 and 23) ----------------------------------------------------

LAKE_S3TABLES = {**MSK_IAM, "LakeCatalog": "S3TABLES", "DeployArchiver": "true", "Airflow": "ENVIRONMENT",
                 "ArchiverImageTag": "0123abc", "ArchiverBootstrapServers": "b-1.flights.kafka.example:9098",
                 "VpcId": "vpc-1", "PrivateSubnetId1": "subnet-aaa", "PrivateSubnetId2": "subnet-bbb",
                 "TrackerDatabaseSecretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:tracker-db-AbCdEf"}
LAKE_GLUE_SCRAM = {**SELF_MANAGED_VPC, **{k: v for k, v in LAKE_S3TABLES.items() if k != "MskClusterArn"},
                   "LakeCatalog": "GLUE", "ArchiverBootstrapServers": "b-1.example.com:9096",
                   "AlertsOnFailureDestination": f"{SQS_ARN}-alerts"}  # of the SQS kind, as the main one
TABLE_BUCKET_ARN = "<LakeTableBucket.TableBucketARN>"
# Actions whose API has no resource type, so "*" is the only Resource IAM accepts (each one's comment says so).
UNSCOPABLE = {"ecr:GetAuthorizationToken", "s3:GetAccountPublicAccessBlock", "logs:DescribeLogGroups",
              "cloudwatch:PutMetricData",
              # the ESM's pollers make ENIs in subnets Lambda picks (as AWSLambdaMSKExecutionRole grants them)
              "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs",
              "ec2:DeleteNetworkInterface", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"}
NEW_ROLES = ("ArchiverExecutionRole", "ArchiverTaskRole", "AirflowExecutionRole")


def _role_statements(stack: Stack, role: str) -> dict[str, dict]:
    """Sid -> statement of every inline policy of `role`, as CloudFormation would create it."""
    policies = stack.properties(role)["Policies"]
    return {s["Sid"]: s for p in policies for s in p["PolicyDocument"]["Statement"]}


def _resources(statement: dict) -> list[str]:
    found = statement.get("Resource", statement.get("NotResource"))
    return [found] if isinstance(found, str) else found


def test_lake_is_off_unless_asked_so_existing_stacks_update_unchanged(template):
    # GIVEN the parameters' defaults (a stack deployed before the lake existed)
    stack = Stack(template, **MSK_IAM)
    new = [name for name, res in template["Resources"].items()
           if res.get("Condition") and name not in ("AlertsTopic",) and res["Type"].split("::")[1] in
           ("S3Tables", "Glue", "ECS", "MWAA", "EC2", "Logs")]
    # THEN none of the lake's resources is created, and the rules hold
    assert new and not any(stack.condition(template["Resources"][n]["Condition"]) for n in new)
    assert stack.broken_rules() == []


def test_s3_tables_table_is_the_catalogs_positions_table(template):
    from lakehouse.catalog import POSITIONS_SCHEMA, POSITIONS_SORT, POSITIONS_SPEC, REJECTS_SCHEMA, TABLE_PROPERTIES
    from lakehouse.settings import LakeSettings
    stack, lake = Stack(template, **LAKE_S3TABLES), LakeSettings()
    positions, rejects = stack.properties("PositionsTable"), stack.properties("RejectsTable")

    def fields(schema):
        return [{"Id": f.field_id, "Name": f.name, "Type": str(f.field_type), "Required": f.required}
                for f in schema.fields]
    # THEN the stack's tables have the lake code's schema, day partition, sort order and properties
    assert (positions["Namespace"], positions["TableName"]) == lake.identifier
    assert rejects["TableName"] == f"{lake.table}_rejects"
    meta = positions["IcebergMetadata"]
    assert meta["IcebergSchema"]["SchemaFieldList"] == fields(POSITIONS_SCHEMA)
    assert rejects["IcebergMetadata"]["IcebergSchema"]["SchemaFieldList"] == fields(REJECTS_SCHEMA)
    assert meta["IcebergPartitionSpec"]["Fields"] == [
        {"SourceId": f.source_id, "FieldId": f.field_id, "Name": f.name, "Transform": str(f.transform)}
        for f in POSITIONS_SPEC.fields]
    assert meta["IcebergSortOrder"]["Fields"] == [
        {"SourceId": f.source_id, "Transform": str(f.transform), "Direction": str(f.direction.value),
         "NullOrder": f.null_order.value.replace(" ", "-")} for f in POSITIONS_SORT.fields]
    assert meta["TableProperties"] == TABLE_PROPERTIES == rejects["IcebergMetadata"]["TableProperties"]
    # AND the data outlives the stack and any update that would replace it
    for name in ("LakeTableBucket", "LakeNamespaceResource", "PositionsTable", "RejectsTable"):
        assert template["Resources"][name]["DeletionPolicy"] == "Retain"
        assert template["Resources"][name]["UpdateReplacePolicy"] == "Retain"


@pytest.mark.parametrize("params", [LAKE_S3TABLES, LAKE_GLUE_SCRAM], ids=["s3tables-msk-iam", "glue-scram"])
def test_every_statement_of_every_role_is_scoped(template, params):
    # GIVEN the lake, the archiver and MWAA deployed WHEN every role of the stack is resolved
    stack = Stack(template, **params)
    assert stack.broken_rules() == []
    roles = stack.resources_of_type("AWS::IAM::Role")
    assert set(NEW_ROLES) < set(roles)
    for role in roles:
        for sid, statement in _role_statements(stack, role).items():
            actions = _actions(statement)
            # THEN no action is "*" or "service:*" ...
            assert all(a != "*" and not a.endswith(":*") for a in actions), (role, sid)
            # ... and "*" is a resource only for actions that have no resource type
            for resource in _resources(statement):
                if resource == "*":
                    assert set(actions) <= UNSCOPABLE, (role, sid)
                # AND every other resource is this stack's (it names a <Resource> the stack creates) or an ARN
                # in this account; only the Celery queue lives in another (MWAA's) account, scoped by its name
                elif "<" not in resource:
                    assert resource.startswith("arn:aws:"), (role, sid, resource)
                    assert f":{ACCOUNT}:" in resource or sid == "CeleryQueue", (role, sid, resource)


def test_archiver_reads_and_commits_only_the_two_lake_tables(template):
    statements = _role_statements(Stack(template, **LAKE_S3TABLES), "ArchiverTaskRole")
    # THEN table data and commits are allowed on exactly the positions and rejects tables ...
    tables = statements["LakeReadWritePositions"]
    assert tables["Resource"] == ["<PositionsTable.TableARN>", "<RejectsTable.TableARN>"]
    assert sorted(_actions(tables)) == ["s3tables:GetTable", "s3tables:GetTableData",
                                        "s3tables:GetTableMetadataLocation", "s3tables:PutTableData",
                                        "s3tables:UpdateTableMetadataLocation"]
    # ... creating a table only in the lake's namespace, and nothing that deletes
    create = statements["LakeCreateTablesInNamespace"]
    assert create["Resource"] == TABLE_BUCKET_ARN
    assert create["Condition"] == {"StringEquals": {"s3tables:namespace": "flightpipe"}}
    granted = {a for s in statements.values() for a in _actions(s)}
    assert not {a for a in granted if "Delete" in a or a.startswith(("s3tables:Put", "iam:"))} - {
        "s3tables:PutTableData"}
    # AND with MSK IAM it reads the topic in its own group, and never writes to Kafka
    prefix, cluster = f"arn:aws:kafka:{REGION}:{ACCOUNT}", "flights/0a1b2c3d-1111-2222-3333-444455556666-7"
    assert statements["ReadSourceTopic"]["Resource"] == f"{prefix}:topic/{cluster}/{DEFAULT_TOPIC}"
    assert statements["UseArchiverGroup"]["Resource"] == f"{prefix}:group/{cluster}/flight-archiver"
    assert not any("WriteData" in a for a in granted)


def test_archiver_with_glue_and_scram_gets_its_secret_and_the_warehouse_prefix_only(template):
    stack = Stack(template, **LAKE_GLUE_SCRAM)
    task = _role_statements(stack, "ArchiverTaskRole")
    execution = _role_statements(stack, "ArchiverExecutionRole")
    assert "ConnectToMsk" not in task and not any(k.startswith("LakeTable") for k in task)
    assert task["LakeWarehouseObjects"]["Resource"] == "<LakeWarehouseBucket.Arn>/warehouse/*"
    assert task["LakeWarehouseList"]["Condition"] == {"StringLike": {"s3:prefix": "warehouse/*"}}
    assert execution["ReadSaslSecret"]["Resource"] == SECRET_ARN
    container = stack.properties("ArchiverTaskDefinition")["ContainerDefinitions"][0]
    assert container["Secrets"] == [{"Name": "KAFKA_SASL_USERNAME", "ValueFrom": f"{SECRET_ARN}:username::"},
                                    {"Name": "KAFKA_SASL_PASSWORD", "ValueFrom": f"{SECRET_ARN}:password::"}]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert (env["KAFKA_SECURITY_PROTOCOL"], env["KAFKA_SASL_MECHANISM"]) == ("SASL_SSL", "SCRAM-SHA-256")
    assert (env["LAKE_CATALOG_TYPE"], env["LAKE_WAREHOUSE"]) == ("glue", "s3://<LakeWarehouseBucket>/warehouse")


def test_archiver_container_is_configured_with_the_projects_own_settings(template):
    from archiver.settings import ArchiverConfig
    from pipeline_common.settings import table_rows
    stack = Stack(template, **LAKE_S3TABLES)
    container = stack.properties("ArchiverTaskDefinition")["ContainerDefinitions"][0]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    # THEN it signs in to MSK with the task role and writes through the S3 Tables REST catalog ...
    assert env["KAFKA_SASL_MECHANISM"] == "AWS_MSK_IAM" and env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["LAKE_CATALOG_URI"] == f"https://s3tables.{REGION}.amazonaws.com/iceberg"
    assert env["LAKE_WAREHOUSE"] == TABLE_BUCKET_ARN and env["LAKE_CATALOG_TYPE"] == "rest"
    assert "Secrets" not in container
    # ... every variable is a declared setting
    declared = {v.strip("`") for row in table_rows([ArchiverConfig]) for v in row[0].split(" or ")}
    assert set(env) - declared - {"AWS_REGION"} == set(), set(env) - declared
    # AND there is exactly one archiver: a deployment stops the old task before it starts the new one
    service = stack.properties("ArchiverService")
    assert service["DesiredCount"] == 1
    assert (service["DeploymentConfiguration"]["MinimumHealthyPercent"],
            service["DeploymentConfiguration"]["MaximumPercent"]) == (0, 100)
    assert service["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "DISABLED"


def test_mwaa_runs_airflow_3_from_its_own_bucket_in_private_subnets(template):
    stack = Stack(template, **LAKE_S3TABLES, AirflowRequirementsVersion="v1", AirflowPluginsVersion="v2")
    env = stack.properties("AirflowEnvironment")
    assert env["AirflowVersion"].startswith("3.")
    assert (env["DagS3Path"], env["RequirementsS3Path"], env["PluginsS3Path"]) == ("dags", "requirements.txt",
                                                                                    "plugins.zip")
    assert (env["RequirementsS3ObjectVersion"], env["PluginsS3ObjectVersion"]) == ("v1", "v2")
    assert "StartupScriptS3Path" not in env
    assert env["NetworkConfiguration"]["SubnetIds"] == ["subnet-aaa", "subnet-bbb"]
    assert env["WebserverAccessMode"] == "PRIVATE_ONLY"
    bucket = stack.properties("AirflowBucket")
    assert bucket["BucketName"].startswith("airflow-") and bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    # AND its role reaches the lake's namespace, the tracker's secret and its own logs, nothing more
    statements = _role_statements(stack, "AirflowExecutionRole")
    assert statements["LakeTablesOfNamespace"]["Resource"] == f"{TABLE_BUCKET_ARN}/table/*"
    assert statements["LakeTablesOfNamespace"]["Condition"] == {"StringEquals": {"s3tables:namespace": "flightpipe"}}
    assert statements["ReadTrackerDatabaseUrl"]["Resource"] == LAKE_S3TABLES["TrackerDatabaseSecretArn"]
    assert statements["EnvironmentLogs"]["Resource"] == (
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:airflow-flightpipe-*")
    # AND the quality task may read the topic (no consumer group: it assigns partitions), never write to it
    assert statements["ReadSourceTopic"]["Resource"] == (
        f"arn:aws:kafka:{REGION}:{ACCOUNT}:topic/flights/0a1b2c3d-1111-2222-3333-444455556666-7/{DEFAULT_TOPIC}")
    granted = {a for s in statements.values() for a in _actions(s)}
    assert not {a for a in granted if a.startswith("kafka-cluster:") and ("Write" in a or "Group" in a)}


@pytest.mark.parametrize("params, rule", [
    ({**MSK_IAM, "DeployArchiver": "true", "LakeCatalog": "S3TABLES"}, "ArchiverComplete"),
    ({**LAKE_S3TABLES, "LakeCatalog": "NONE"}, "ArchiverComplete"),
    ({**LAKE_S3TABLES, "PrivateSubnetId2": "subnet-aaa"}, "AirflowComplete"),
    ({**LAKE_S3TABLES, "DeployArchiver": "false", "LakeCatalog": "NONE"}, "AirflowComplete"),
])
def test_rules_refuse_an_incomplete_lake_deployment(template, params, rule):
    assert rule in Stack(template, **params).broken_rules()


def test_outputs_give_the_catalog_properties_the_code_needs(template):
    stack = Stack(template, **LAKE_S3TABLES)
    outputs = {name: stack.resolve(o["Value"]) for name, o in template["Outputs"].items()
               if "Condition" not in o or stack.condition(o["Condition"])}
    # THEN uri, warehouse and SigV4 signing are the S3 Tables REST endpoint's (infra.lake.spark.aws_catalog_conf)
    from infra.lake.spark import aws_catalog_conf
    spark = aws_catalog_conf("lake", region=REGION, namespace="flightpipe", table_bucket_arn=TABLE_BUCKET_ARN)
    assert outputs["LakeCatalogUri"] == spark["spark.sql.catalog.lake.uri"]
    assert outputs["LakeWarehouse"] == spark["spark.sql.catalog.lake.warehouse"]
    assert outputs["LakeSigningName"] == spark["spark.sql.catalog.lake.rest.signing-name"] == "s3tables"
    assert outputs["LakeSigningRegion"] == REGION
    assert outputs["LakeAthenaCatalog"] == "s3tablescatalog/flightpipe-lake"
    assert {"ArchiverServiceArn", "ArchiverLogGroupName", "AirflowBucketName", "AirflowWebserverUrl"} <= set(outputs)
    # AND a stack without the lake has none of them
    bare = Stack(template, **MSK_IAM)
    assert not [n for n, o in template["Outputs"].items() if n.startswith(("Lake", "Archiver", "Airflow"))
                and bare.condition(o["Condition"])]


def test_deploy_with_mwaa_makes_the_bucket_uploads_then_creates_the_environment(tmp_path):
    # GIVEN an account where the Airflow bucket does not exist yet, a DAG folder and a requirements file
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "aws"
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "AWS $*" >> "$AWS_CALLS"\n'
                    'case "$1 $2" in\n'
                    '  "sts get-caller-identity") echo 123456789012 ;;\n'
                    '  "s3api head-bucket") exit 254 ;;\n'
                    '  "s3api put-object") while [[ "$1" != --key ]]; do shift; done; echo "ver-$2" ;;\n'
                    'esac\nexit 0\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "daily.py").write_text("# a DAG\n")
    requirements = tmp_path / "requirements-mwaa.txt"
    requirements.write_text("--find-links /usr/local/airflow/plugins\nflightpipe==0.1.0\n")
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path),
           "AWS_CALLS": str(tmp_path / "calls.txt"), "LAMBDA_ZIP": str(tmp_path / "fn.zip"),
           "AWS_REGION": REGION, "ARTIFACT_BUCKET": "artifacts", "MSK_CLUSTER_ARN": MSK_ARN,
           "LAKE_CATALOG": "s3tables", "VPC_ID": "vpc-1", "PRIVATE_SUBNET_IDS": "subnet-aaa, subnet-bbb",
           "ARCHIVER_IMAGE_TAG": "0123abc", "ARCHIVER_BOOTSTRAP_SERVERS": "b-1:9098", "AIRFLOW": "environment",
           "AIRFLOW_DAGS": str(tmp_path / "dags"), "AIRFLOW_REQUIREMENTS": str(requirements),
           "AIRFLOW_BUILD_DIR": str(tmp_path / "mwaa")}
    # WHEN deploy.sh runs
    result = subprocess.run(["bash", str(DEPLOY)], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    deploys = [dict(a.split("=", 1) for a in c.split("--parameter-overrides ", 1)[1].split())
               for c in calls if c.startswith("AWS cloudformation deploy")]
    bucket = f"airflow-flightpipe-{ACCOUNT}-{REGION}"
    # THEN the first deploy makes only the bucket, then the DAGs and files go up, then the environment follows
    assert [d.get("Airflow") for d in deploys] == ["BUCKET", "ENVIRONMENT"]
    order = [i for i, c in enumerate(calls) if c.startswith(("AWS cloudformation deploy", "AWS s3 sync",
                                                             "AWS s3api put-object"))]
    assert [calls[i].split()[1:3] for i in order] == [["cloudformation", "deploy"], ["s3", "sync"],
                                                      ["s3api", "put-object"], ["s3api", "put-object"],
                                                      ["cloudformation", "deploy"]]
    assert f"s3://{bucket}/dags/" in next(c for c in calls if c.startswith("AWS s3 sync"))
    final = deploys[-1]
    assert (final["AirflowRequirementsVersion"], final["AirflowPluginsVersion"]) == ("ver-requirements.txt",
                                                                                    "ver-plugins.zip")
    # AND the lake and the archiver are deployed with it, and plugins.zip carries the project's wheel
    assert (final["LakeCatalog"], final["DeployArchiver"], final["ArchiverImageTag"]) == ("S3TABLES", "true", "0123abc")
    assert (final["PrivateSubnetId1"], final["PrivateSubnetId2"]) == ("subnet-aaa", "subnet-bbb")
    import zipfile
    with zipfile.ZipFile(tmp_path / "mwaa" / "plugins.zip") as plugins:
        assert [n for n in plugins.namelist() if n.startswith("flightpipe-") and n.endswith(".whl")]


def test_deploy_rejects_an_unknown_lake_catalog(tmp_path):
    result = _run_deploy(tmp_path, ARTIFACT_BUCKET="b", MSK_CLUSTER_ARN=MSK_ARN, LAKE_CATALOG="hive")
    assert result.returncode == 2 and "LAKE_CATALOG=hive is not s3tables, glue or none" in result.stderr
