"""Creates, updates and removes the pipeline's AWS resources (MiniStack, LocalStack or real AWS).

  python -m infra.deploy.aws_resources create-sns-topic
  python -m infra.deploy.aws_resources deploy-lambda          # package + create-or-update, waits until Active
  python -m infra.deploy.aws_resources deploy-resources       # topic + IAM role + function + demo SQS subscriber
  python -m infra.deploy.aws_resources destroy

Reading what the deployed pipeline did (count-messages, notifications) is infra/demo/observe.py.

Only the standard AWS variables are used (AWS_ENDPOINT_URL, AWS_REGION, credentials; boto3 reads
them itself), so the same commands target MiniStack, LocalStack or AWS unchanged. Settings: see
AwsResourceSettings (each is a variable and a flag). PUBLISH_CONCURRENCY, PUBLISH_MAX_ATTEMPTS,
PUBLISH_BACKOFF_S, METRICS_ENABLED and LOG_LEVEL, when set here, are passed on to the function.

AWS_ENDPOINT_URL is deliberately not passed to the function: MiniStack already points a function's
boto3 at itself (its warm worker sets AWS_ENDPOINT_URL=http://127.0.0.1:<gateway port> unless the
function sets one), LocalStack does the same for its containers, and the deployer's
"localhost:4566" would be wrong inside a container anyway.
"""
from __future__ import annotations

import argparse
import json
import os
import string
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, Mapping

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, WaiterError

from infra.deploy.lambda_package import DEFAULT_SRC, build_zip_bytes, lambda_code_sha256, sha256_hex
from infra.progress import Say, printer
from pipeline_common.aws_clients import AwsClients, subscribe_queue
from pipeline_common.settings import ConfigError, Settings, setting
from pipeline_common.shared_settings import (
    DEFAULT_FUNCTION_NAME, DEFAULT_METRICS_NAMESPACE, FUNCTION_NAME, METRICS_NAMESPACE)  # noqa: F401

HERE = Path(__file__).resolve().parent  # iam/ and geofences/ live beside the deployers
DEFAULT_TOPIC_NAME = "FlightNotifications"
DEFAULT_QUEUE_NAME = "flight-notifications-demo"
DEFAULT_NAMESPACE = DEFAULT_METRICS_NAMESPACE
DEFAULT_COUNTRIES = ("United States", "Germany", "United Kingdom", "France")
HANDLER = "flight_handler.lambda_handler"
# Function settings a deployer may tune; passed through only when set in the deployer's environment.
FUNCTION_PASSTHROUGH = ("PUBLISH_CONCURRENCY", "PUBLISH_MAX_ATTEMPTS", "PUBLISH_BACKOFF_S", "METRICS_ENABLED",
                        "LOG_LEVEL")
INLINE_POLICY_NAME = "flight-processor-permissions"
WAITER = {"Delay": 1, "MaxAttempts": 180}
# PutRetentionPolicy accepts only these (CloudWatch Logs API reference).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
                      2922, 3288, 3653)



_say = printer("==>")


def _countries(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(",") if c.strip())


@dataclass(frozen=True)
class AwsResourceSettings(Settings):
    USED_BY: ClassVar[str] = "deploy (infra/deploy/aws_resources.py), count-messages, notifications (infra/demo/observe.py)"

    topic_name: str = setting("SNS_TOPIC_NAME", DEFAULT_TOPIC_NAME, help="the notification topic")
    function_name: str = FUNCTION_NAME.field()
    role_name: str = setting("LAMBDA_ROLE_NAME", "", doc_default="`<function>-role`",
                             help="the function's execution role")
    queue_name: str = setting("NOTIFY_QUEUE_NAME", DEFAULT_QUEUE_NAME, help="demo subscriber queue")
    # An unread queue would otherwise keep every notification (MiniStack: ~1.8 KB each, in memory).
    queue_retention_s: int = setting("NOTIFY_QUEUE_RETENTION_S", 300, minimum=60, maximum=1_209_600, unit="s",
                                     help="demo subscriber queue's `MessageRetentionPeriod`: notifications "
                                          "nobody reads are dropped after it")
    log_retention_days: int = setting("LOG_RETENTION_DAYS", 1, minimum=1, maximum=3653,
                                      help="retention of the function's log group `/aws/lambda/<function>` "
                                           "(one of CloudWatch's values: 1, 3, 5, 7, 14, 30, ...)")
    notify_countries: tuple[str, ...] = setting("NOTIFY_COUNTRIES", DEFAULT_COUNTRIES, parse=_countries,
                                                help="demo subscriber's filter policy on `origin_country`")
    metrics_namespace: str = METRICS_NAMESPACE.field()
    runtime: str = setting("LAMBDA_RUNTIME", "python3.12", help="the function's runtime")
    timeout: int = setting("LAMBDA_TIMEOUT", 60, minimum=1, maximum=900, unit="s", help="the function's timeout")
    memory: int = setting("LAMBDA_MEMORY", 512, minimum=128, maximum=10240, unit="MB", help="the function's memory")
    lambda_src: Path = DEFAULT_SRC
    function_env: Mapping[str, str] = field(default_factory=dict)  # extra variables for the function

    def check(self) -> None:
        if not self.role_name:
            object.__setattr__(self, "role_name", f"{self.function_name}-role")
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            raise ConfigError(f"LOG_RETENTION_DAYS={self.log_retention_days} is not one of CloudWatch's values: "
                              f"{', '.join(map(str, LOG_RETENTION_DAYS))}")
        if not self.notify_countries or not all(c.strip() for c in self.notify_countries):
            raise ConfigError(f"NOTIFY_COUNTRIES={','.join(self.notify_countries)!r} must list at least one country")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> "AwsResourceSettings":
        """Values passed in ``overrides`` win over the environment; the function's own tuning
        variables, when set here, are passed on to it."""
        env = os.environ if env is None else env
        overrides.setdefault("function_env", {name: env[name].strip() for name in FUNCTION_PASSTHROUGH
                                              if env.get(name, "").strip()})
        return super().from_env(env, **overrides)


def _error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _render(template: str, **values: str) -> dict:
    """Load infra/deploy/iam/<template> and substitute ${name} inside string values (never inside JSON syntax)."""
    def fill(node):
        if isinstance(node, str):
            return string.Template(node).substitute(values)
        if isinstance(node, list):
            return [fill(item) for item in node]
        if isinstance(node, dict):
            return {key: fill(value) for key, value in node.items()}
        return node
    return fill(json.loads((HERE / "iam" / template).read_text()))


def _arn_parts(arn: str) -> dict:
    _, partition, _service, region, account, _resource = arn.split(":", 5)
    return {"partition": partition, "region": region, "account": account}


def execution_policy(topic_arn: str, settings: AwsResourceSettings) -> dict:
    """Only sns:Publish on this topic, PutMetricData in our namespace, and the function's own logs."""
    return _render("lambda_execution_policy.json", topic_arn=topic_arn, metrics_namespace=settings.metrics_namespace,
                   function_name=settings.function_name, **_arn_parts(topic_arn))


def filter_policy(settings: AwsResourceSettings) -> dict:
    return {"origin_country": list(settings.notify_countries)}


# --- SNS topic ---------------------------------------------------------------------------------------------

def create_sns_topic(settings: AwsResourceSettings | None = None, clients: AwsClients | None = None,
                     say: Say = _say) -> str:
    """Create the topic if needed (CreateTopic is idempotent); return its ARN."""
    settings, clients = settings or AwsResourceSettings.from_env(), clients or AwsClients()
    arn = clients.sns.create_topic(Name=settings.topic_name)["TopicArn"]
    say(f"SNS topic {settings.topic_name}: {arn}")
    return arn


def find_topic_arn(settings: AwsResourceSettings, clients: AwsClients) -> str | None:
    for page in clients.sns.get_paginator("list_topics").paginate():
        for topic in page.get("Topics", []):
            if topic["TopicArn"].rsplit(":", 1)[-1] == settings.topic_name:
                return topic["TopicArn"]
    return None


# --- IAM role ----------------------------------------------------------------------------------------------

def ensure_role(topic_arn: str, settings: AwsResourceSettings | None = None, clients: AwsClients | None = None,
                say: Say = _say) -> str:
    """Create or update the function's execution role and its inline policy; return the role ARN."""
    settings, clients = settings or AwsResourceSettings.from_env(), clients or AwsClients()
    trust = json.dumps(_render("lambda_trust_policy.json"))
    try:
        arn = clients.iam.create_role(RoleName=settings.role_name, AssumeRolePolicyDocument=trust,
                                      Description="Execution role of the flight-data Lambda")["Role"]["Arn"]
        say(f"IAM role {settings.role_name} created")
    except ClientError as exc:
        if _error_code(exc) != "EntityAlreadyExists":
            raise
        clients.iam.update_assume_role_policy(RoleName=settings.role_name, PolicyDocument=trust)
        arn = clients.iam.get_role(RoleName=settings.role_name)["Role"]["Arn"]
        say(f"IAM role {settings.role_name} exists")
    clients.iam.put_role_policy(RoleName=settings.role_name, PolicyName=INLINE_POLICY_NAME,
                                PolicyDocument=json.dumps(execution_policy(topic_arn, settings)))
    say(f"IAM policy {INLINE_POLICY_NAME}: sns:Publish on {topic_arn}, "
        f"cloudwatch:PutMetricData in {settings.metrics_namespace}, logs for /aws/lambda/{settings.function_name}")
    return arn


# --- Lambda function ---------------------------------------------------------------------------------------

def function_environment(topic_arn: str, settings: AwsResourceSettings) -> dict:
    # LOG_LEVEL=INFO unless set: one log line per invocation. A function that logs nothing makes MiniStack
    # wait ~50 ms after every invoke for output that never comes (and it inherits MiniStack's WARNING).
    return {"LOG_LEVEL": "INFO", **settings.function_env, "SNS_TOPIC_ARN": topic_arn,
            "METRICS_NAMESPACE": settings.metrics_namespace}


def _function_config(topic_arn: str, role_arn: str, settings: AwsResourceSettings) -> dict:
    return dict(FunctionName=settings.function_name, Runtime=settings.runtime, Role=role_arn, Handler=HANDLER,
                Timeout=settings.timeout, MemorySize=settings.memory,
                Description="Kafka flight states -> airborne flights -> SNS FlightNotifications",
                Environment={"Variables": function_environment(topic_arn, settings)})


def _wait(clients: AwsClients, waiter: str, function_name: str) -> None:
    clients.lambda_.get_waiter(waiter).wait(FunctionName=function_name, WaiterConfig=WAITER)


def _retry_on_conflict(clients: AwsClients, function_name: str, call: Callable[[], dict], say: Say,
                       attempts: int = 10) -> dict:
    """Run a Lambda update, waiting out a concurrent update (ResourceConflictException) between tries."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except ClientError as exc:
            if _error_code(exc) != "ResourceConflictException" or attempt == attempts:
                raise
            say(f"an update of {function_name} is in progress; waiting (try {attempt} of {attempts})")
            try:
                _wait(clients, "function_updated_v2", function_name)
            except WaiterError:
                time.sleep(min(2 ** attempt, 10))
    raise AssertionError("unreachable")


def _create_function(clients: AwsClients, config: dict, code: bytes, say: Say, attempts: int = 12) -> dict:
    # A role created seconds ago may not be assumable by Lambda yet on real AWS (IAM is eventually
    # consistent): retry that specific rejection for up to about a minute.
    for attempt in range(1, attempts + 1):
        try:
            return clients.lambda_.create_function(**config, Code={"ZipFile": code}, Publish=False)
        except ClientError as exc:
            message = exc.response.get("Error", {}).get("Message", "")
            if _error_code(exc) != "InvalidParameterValueException" or "role" not in message.lower() \
                    or attempt == attempts:
                raise
            say(f"the new role is not assumable yet; retrying in 5 s ({attempt} of {attempts})")
            time.sleep(5)
    raise AssertionError("unreachable")


def deploy_lambda(topic_arn: str | None = None, role_arn: str | None = None,
                  settings: AwsResourceSettings | None = None, clients: AwsClients | None = None,
                  say: Say = _say) -> dict:
    """Package src/lambda and create or update the function's code and configuration.

    Creates the topic and role first when they are not given. Waits with boto3 waiters until the
    function is Active and its LastUpdateStatus is Successful. Safe to run any number of times.
    Returns {"function_arn", "topic_arn", "role_arn", "code_sha256", "action"}.
    """
    settings, clients = settings or AwsResourceSettings.from_env(), clients or AwsClients()
    topic_arn = topic_arn or create_sns_topic(settings, clients, say)
    role_arn = role_arn or ensure_role(topic_arn, settings, clients, say)
    code = build_zip_bytes(settings.lambda_src)
    code_sha = lambda_code_sha256(code)
    say(f"packaged {settings.lambda_src}: {len(code)} bytes, sha256 {sha256_hex(code)}")
    config = _function_config(topic_arn, role_arn, settings)
    name = settings.function_name
    try:
        current = clients.lambda_.get_function_configuration(FunctionName=name)
    except ClientError as exc:
        if _error_code(exc) != "ResourceNotFoundException":
            raise
        current = None

    if current is None:
        say(f"creating function {name} ({settings.runtime}, {settings.memory} MB, timeout {settings.timeout} s)")
        _create_function(clients, config, code, say)
        _wait(clients, "function_active_v2", name)
        action = "created"
    else:
        _wait(clients, "function_updated_v2", name)
        if current.get("CodeSha256") == code_sha:
            say(f"function {name}: code unchanged")
        else:
            say(f"updating code of {name}")
            _retry_on_conflict(clients, name, lambda: clients.lambda_.update_function_code(
                FunctionName=name, ZipFile=code, Publish=False), say)
            _wait(clients, "function_updated_v2", name)
        say(f"updating configuration of {name}")
        _retry_on_conflict(clients, name, lambda: clients.lambda_.update_function_configuration(
            **config), say)
        _wait(clients, "function_active_v2", name)
        action = "updated"
    _wait(clients, "function_updated_v2", name)
    ensure_log_retention(settings.function_name, settings.log_retention_days, clients, say)
    final = clients.lambda_.get_function_configuration(FunctionName=name)
    say(f"function {name} {action}: State={final.get('State')} LastUpdateStatus={final.get('LastUpdateStatus')}")
    return {"function_arn": final["FunctionArn"], "topic_arn": topic_arn, "role_arn": role_arn,
            "code_sha256": final.get("CodeSha256", code_sha), "action": action}


def ensure_log_retention(function_name: str, days: int, clients: AwsClients, say: Say = _say) -> None:
    """A function's log group, created now rather than at its first invocation, with a retention
    policy (LOG_RETENTION_DAYS): Lambda's own log groups never expire by default."""
    group = f"/aws/lambda/{function_name}"
    try:
        clients.logs.create_log_group(logGroupName=group)
    except ClientError as exc:
        if _error_code(exc) != "ResourceAlreadyExistsException":
            raise
    clients.logs.put_retention_policy(logGroupName=group, retentionInDays=days)
    say(f"log group {group}: events kept {days} day(s)")


# --- Demo subscriber queue ---------------------------------------------------------------------------------

def ensure_demo_queue(topic_arn: str, settings: AwsResourceSettings | None = None,
                      clients: AwsClients | None = None, say: Say = _say) -> dict:
    """The demo SQS queue subscribed to the topic, filtered on origin_country (NOTIFY_COUNTRIES).
    Returns {"queue_url", "queue_arn", "subscription_arn"}."""
    settings, clients = settings or AwsResourceSettings.from_env(), clients or AwsClients()
    # Retention first: moto forgets a queue's Policy when another attribute is set after it.
    queue_url = clients.sqs.create_queue(QueueName=settings.queue_name)["QueueUrl"]
    clients.sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={
        "MessageRetentionPeriod": str(settings.queue_retention_s)})
    queue = subscribe_queue(topic_arn, settings.queue_name, clients, filter_policy(settings))
    say(f"SQS queue {settings.queue_name}: {queue['queue_url']} (policy allows {topic_arn}; unread "
        f"notifications dropped after {settings.queue_retention_s} s)")
    say(f"subscribed {settings.queue_name} to {settings.topic_name} for origin_country in "
        f"{', '.join(settings.notify_countries)} (raw delivery)")
    return queue


def deploy_resources(settings: AwsResourceSettings | None = None, clients: AwsClients | None = None,
                     say: Say = _say) -> dict:
    """Everything: topic, role, function, demo queue. Returns their ARNs/URLs."""
    settings, clients = settings or AwsResourceSettings.from_env(), clients or AwsClients()
    topic_arn = create_sns_topic(settings, clients, say)
    role_arn = ensure_role(topic_arn, settings, clients, say)
    deployed = deploy_lambda(topic_arn, role_arn, settings, clients, say)
    queue = ensure_demo_queue(topic_arn, settings, clients, say)
    return {**deployed, **queue}


# --- Teardown ----------------------------------------------------------------------------------------------

def _ignore_missing(call: Callable[[], object], *codes: str) -> bool:
    try:
        call()
        return True
    except ClientError as exc:
        if _error_code(exc) in codes:
            return False
        raise


def destroy(settings: AwsResourceSettings | None = None, clients: AwsClients | None = None,
            say: Say = _say) -> None:
    """Delete the function, its role, the topic (with its subscriptions) and the demo queue; missing ones are skipped."""
    settings, clients = settings or AwsResourceSettings.from_env(), clients or AwsClients()
    gone = _ignore_missing(lambda: clients.lambda_.delete_function(FunctionName=settings.function_name),
                           "ResourceNotFoundException")
    say(f"function {settings.function_name}: {'deleted' if gone else 'not found'}")

    delete_role(settings.role_name, clients, say)
    topic_arn = find_topic_arn(settings, clients)
    if topic_arn is None:
        say(f"SNS topic {settings.topic_name}: not found")
    else:
        delete_topic(topic_arn, clients, say)
    delete_queue(settings.queue_name, clients, say)


def delete_role(role_name: str, clients: AwsClients, say: Say = _say) -> None:
    """Delete an IAM role with its inline and attached policies; a missing one is skipped."""
    try:
        policies = clients.iam.list_role_policies(RoleName=role_name)["PolicyNames"]
    except ClientError as exc:
        if _error_code(exc) != "NoSuchEntity":
            raise
        say(f"IAM role {role_name}: not found")
        return
    for policy in policies:
        clients.iam.delete_role_policy(RoleName=role_name, PolicyName=policy)
    for attached in clients.iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]:
        clients.iam.detach_role_policy(RoleName=role_name, PolicyArn=attached["PolicyArn"])
    clients.iam.delete_role(RoleName=role_name)
    say(f"IAM role {role_name}: deleted")


def delete_topic(topic_arn: str, clients: AwsClients, say: Say = _say) -> None:
    """Delete an SNS topic after its confirmed subscriptions."""
    for page in clients.sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
        for sub in page.get("Subscriptions", []):
            if sub.get("SubscriptionArn", "").startswith("arn:"):  # skip "PendingConfirmation"
                _ignore_missing(lambda arn=sub["SubscriptionArn"]: clients.sns.unsubscribe(SubscriptionArn=arn),
                                "NotFound")
    clients.sns.delete_topic(TopicArn=topic_arn)
    say(f"SNS topic {topic_arn.rsplit(':', 1)[-1]}: deleted")


def delete_queue(queue_name: str, clients: AwsClients, say: Say = _say) -> None:
    """Delete an SQS queue; a missing one is skipped."""
    try:
        queue_url = clients.sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    except ClientError as exc:
        if _error_code(exc) not in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            raise
        say(f"SQS queue {queue_name}: not found")
        return
    clients.sqs.delete_queue(QueueUrl=queue_url)
    say(f"SQS queue {queue_name}: deleted")


# --- CLI ---------------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m infra.deploy.aws_resources", description=__doc__.splitlines()[0])
    AwsResourceSettings.add_flags(parser.add_argument_group("settings (before the command)"))
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("create-sns-topic", help="create the FlightNotifications topic (idempotent)")
    commands.add_parser("deploy-lambda", help="package and create-or-update the function; waits until active")
    commands.add_parser("deploy-resources", help="topic + IAM role + function + demo SQS subscriber")
    commands.add_parser("destroy", help="delete the function, role, topic and subscriber queue")
    return parser


def run_command(command: Callable[[], object]) -> int:
    """Exit code of one command-line command (which reads its settings itself), the errors a user
    can act on printed in one line (2: a bad setting; 1: the endpoint or AWS refused)."""
    try:
        command()
        return 0
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except EndpointConnectionError as exc:
        print(f"error: cannot reach the AWS endpoint ({exc}); is the stack running? try `make run`", file=sys.stderr)
        return 1
    except (ClientError, BotoCoreError, WaiterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {
        "create-sns-topic": create_sns_topic,
        "deploy-lambda": lambda settings: deploy_lambda(settings=settings),
        "deploy-resources": lambda settings: _say("deployed: " + json.dumps(deploy_resources(settings))),
        "destroy": destroy,
    }
    return run_command(lambda: commands[args.command](AwsResourceSettings.from_args(args)))


if __name__ == "__main__":
    sys.exit(main())
