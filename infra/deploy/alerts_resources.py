"""Deploys and operates the alerts side: SNS FlightAlerts, DynamoDB state, S3 geofences, flight-alerts.

  python -m infra.deploy.alerts_resources deploy                # topic, table, bucket + fences, role, function, queue
  python -m infra.deploy.alerts_resources geofences FILE        # validate, then replace the fences (no redeploy)
  python -m infra.deploy.alerts_resources alerts [--type EMERGENCY] [--max N] [--seconds S] [--pollers N]
                                                [--lines-per-s N | --all | --sample N]
  python -m infra.deploy.alerts_resources destroy

Same conventions as aws_resources.py (whose clients, IAM templating and Lambda helpers it reuses):
only the standard AWS variables select the endpoint, so MiniStack and real AWS work unchanged.
Settings: AlertResourceSettings below (also in docs/CONFIGURATION.md). GEOFENCE_REFRESH_S, WATCH_GAP_S,
ALERT_STATE_TTL_S, PUBLISH_* and LOG_LEVEL are passed on to the function when set here.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, Mapping

from botocore.exceptions import ClientError

from flight_domain.alert_declarations import (ALERT_WATCHLIST, ALERTS_TABLE, ALERTS_TOPIC_NAME, GEOFENCES_BUCKET,
                                              GEOFENCES_KEY, default_geofences_bucket)
from flight_domain.alert_rules import Watchlist, WatchlistError, alert_body  # the function's own parsers
from flight_domain.geofence import GeofenceError, parse_fences
from infra.demo import queue_reader
from infra.deploy import aws_resources as base
from infra.deploy.lambda_package import DEFAULT_SRC, build_zip_bytes, lambda_code_sha256
from infra.progress import Say, printer
from pipeline_common.settings import ConfigError, Settings, setting

HERE = Path(__file__).resolve().parent  # iam/ and geofences/ live beside the deployers

DEFAULT_FENCES = HERE / "geofences" / "default.geojson"
HANDLER = "alerts_handler.lambda_handler"
POLICY_NAME = "flight-alerts-permissions"
ALERT_TYPES = ("GEOFENCE_ENTER", "GEOFENCE_EXIT", "EMERGENCY", "WATCHLIST")
FUNCTION_PASSTHROUGH = ("GEOFENCE_REFRESH_S", "WATCH_GAP_S", "ALERT_STATE_TTL_S", "ALERT_STATE_REFRESH_S", "PUBLISH_CONCURRENCY",
                        "PUBLISH_MAX_ATTEMPTS", "PUBLISH_BACKOFF_S", "METRICS_ENABLED", "LOG_LEVEL")



@dataclass(frozen=True)
class AlertResourceSettings(Settings):
    USED_BY: ClassVar[str] = "alerts deploy, geofences, alerts (infra/deploy/alerts_resources.py), demo"

    topic_name: str = ALERTS_TOPIC_NAME.field()
    fifo: bool = setting("ALERTS_FIFO", False, help="true: the topic is `<name>.fifo` (an SQS FIFO demo queue) "
                                                    "and SNS drops a re-sent alert by its deduplication id")
    function_name: str = setting("ALERTS_FUNCTION_NAME", "flight-alerts", help="the alerts function")
    table: str = ALERTS_TABLE.field()
    bucket: str = GEOFENCES_BUCKET.field()
    key: str = GEOFENCES_KEY.field()
    queue_name: str = setting("ALERTS_QUEUE_NAME", "flight-alerts-demo", help="demo subscriber queue of every alert")
    queue_retention_s: int = setting("ALERTS_QUEUE_RETENTION_S", 345600, minimum=60, maximum=1209600, unit="s",
                                     help="how long the demo alerts queue keeps an alert nobody read")
    watchlist: str = ALERT_WATCHLIST.field()
    base: base.AwsResourceSettings = field(default_factory=base.AwsResourceSettings)
    function_env: Mapping[str, str] = field(default_factory=dict)  # extra variables for the function

    @property
    def topic(self) -> str:
        return f"{self.topic_name}.fifo" if self.fifo and not self.topic_name.endswith(".fifo") else self.topic_name

    @property
    def queue(self) -> str:
        return f"{self.queue_name}.fifo" if self.fifo and not self.queue_name.endswith(".fifo") else self.queue_name

    @property
    def role_name(self) -> str:
        return f"{self.function_name}-role"

    def check(self) -> None:
        try:
            Watchlist.parse(self.watchlist)
        except WatchlistError as exc:
            raise ConfigError(f"ALERT_WATCHLIST: {exc}") from None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> "AlertResourceSettings":
        """The function's own tuning variables, when set here, are passed on to it."""
        env = os.environ if env is None else env
        overrides.setdefault("function_env", {name: env[name].strip() for name in FUNCTION_PASSTHROUGH
                                              if env.get(name, "").strip()})
        return super().from_env(env, **overrides)


_say = printer("==>")


def bucket_name(settings: AlertResourceSettings, clients: base.AwsClients) -> str:
    if settings.bucket:
        return settings.bucket
    return default_geofences_bucket(clients.sts.get_caller_identity()["Account"])


# --- pieces ------------------------------------------------------------------------------------------------

def ensure_topic(settings: AlertResourceSettings, clients: base.AwsClients, say: Say = _say) -> str:
    attributes = {"FifoTopic": "true", "ContentBasedDeduplication": "false"} if settings.fifo else {}
    arn = clients.sns.create_topic(Name=settings.topic, Attributes=attributes)["TopicArn"]
    say(f"SNS topic {settings.topic}: {arn}")
    return arn


def ensure_table(settings: AlertResourceSettings, clients: base.AwsClients, say: Say = _say) -> str:
    """The state table (on-demand, keyed on icao24) with TTL on expires_at; returns its ARN."""
    try:
        clients.dynamodb.create_table(TableName=settings.table, BillingMode="PAY_PER_REQUEST",
                                      KeySchema=[{"AttributeName": "icao24", "KeyType": "HASH"}],
                                      AttributeDefinitions=[{"AttributeName": "icao24", "AttributeType": "S"}])
        say(f"DynamoDB table {settings.table} created")
    except ClientError as exc:
        if base._error_code(exc) != "ResourceInUseException":
            raise
        say(f"DynamoDB table {settings.table} exists")
    clients.dynamodb.get_waiter("table_exists").wait(TableName=settings.table, WaiterConfig=base.WAITER)
    try:
        ttl = clients.dynamodb.describe_time_to_live(TableName=settings.table)["TimeToLiveDescription"]
        if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            clients.dynamodb.update_time_to_live(TableName=settings.table, TimeToLiveSpecification={
                "Enabled": True, "AttributeName": "expires_at"})
    except ClientError as exc:  # an emulator without TTL: state then lives until `make destroy`
        say(f"DynamoDB TTL not available here ({base._error_code(exc)}): state is not expired")
    return clients.dynamodb.describe_table(TableName=settings.table)["Table"]["TableArn"]


def ensure_bucket(settings: AlertResourceSettings, clients: base.AwsClients, say: Say = _say) -> str:
    """The fences bucket; the default fences are uploaded only if there are none yet."""
    bucket = bucket_name(settings, clients)
    try:
        clients.s3.head_bucket(Bucket=bucket)
    except ClientError:
        region = clients.s3.meta.region_name
        kwargs = {} if region in (None, "us-east-1") else {
            "CreateBucketConfiguration": {"LocationConstraint": region}}
        clients.s3.create_bucket(Bucket=bucket, **kwargs)
        say(f"S3 bucket {bucket} created")
    try:
        clients.s3.head_object(Bucket=bucket, Key=settings.key)
        say(f"geofences s3://{bucket}/{settings.key} kept (replace them with `make geofences FILE=...`)")
    except ClientError:
        put_geofences(DEFAULT_FENCES, settings, clients, say, bucket=bucket)
    return bucket


def read_geofences_file(path: Path) -> tuple[bytes, int]:
    """The file's bytes and its fence count; raises GeofenceError with the reason if it is not usable."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise GeofenceError(f"cannot read {path}: {exc.strerror}") from None
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise GeofenceError(f"{path} is not JSON: {exc}") from None
    return data, len(parse_fences(doc))


def put_geofences(path: Path, settings: AlertResourceSettings, clients: base.AwsClients, say: Say = _say,
                  bucket: str | None = None) -> dict:
    """Validate with the function's own parser, then replace the object. An invalid file raises
    GeofenceError before anything is written: the old fences stay."""
    data, count = read_geofences_file(path)
    bucket = bucket or bucket_name(settings, clients)
    etag = clients.s3.put_object(Bucket=bucket, Key=settings.key, Body=data,
                                 ContentType="application/geo+json")["ETag"]
    say(f"geofences: {count} fence(s) from {path} -> s3://{bucket}/{settings.key} ({etag}); "
        "running functions pick them up within GEOFENCE_REFRESH_S")
    return {"bucket": bucket, "key": settings.key, "fences": count, "etag": etag}


def execution_policy(topic_arn: str, table_arn: str, bucket: str, settings: AlertResourceSettings) -> dict:
    """sns:Publish on FlightAlerts, item reads/writes on the state table, GetObject on the fences object,
    metrics in the pipeline's namespace, the function's own logs. Nothing else."""
    return base._render("alerts_execution_policy.json", topic_arn=topic_arn, table_arn=table_arn, bucket=bucket,
                        key=settings.key, metrics_namespace=settings.base.metrics_namespace,
                        function_name=settings.function_name, **base._arn_parts(topic_arn))


def ensure_role(policy: dict, settings: AlertResourceSettings, clients: base.AwsClients, say: Say = _say) -> str:
    trust = json.dumps(base._render("lambda_trust_policy.json"))
    try:
        arn = clients.iam.create_role(RoleName=settings.role_name, AssumeRolePolicyDocument=trust,
                                      Description="Execution role of flight-alerts")["Role"]["Arn"]
        say(f"IAM role {settings.role_name} created")
    except ClientError as exc:
        if base._error_code(exc) != "EntityAlreadyExists":
            raise
        clients.iam.update_assume_role_policy(RoleName=settings.role_name, PolicyDocument=trust)
        arn = clients.iam.get_role(RoleName=settings.role_name)["Role"]["Arn"]
        say(f"IAM role {settings.role_name} exists")
    clients.iam.put_role_policy(RoleName=settings.role_name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(policy))
    say(f"IAM policy {POLICY_NAME}: publish to the alerts topic, state table items, the fences object")
    return arn


def function_environment(topic_arn: str, bucket: str, settings: AlertResourceSettings) -> dict:
    return {"LOG_LEVEL": "INFO", **settings.function_env, "SNS_TOPIC_ARN": topic_arn, "ALERTS_TABLE": settings.table,
            "GEOFENCES_BUCKET": bucket, "GEOFENCES_KEY": settings.key, "ALERT_WATCHLIST": settings.watchlist,
            "METRICS_NAMESPACE": settings.base.metrics_namespace}


def deploy_function(topic_arn: str, role_arn: str, bucket: str, settings: AlertResourceSettings,
                    clients: base.AwsClients, say: Say = _say) -> dict:
    """Create or update flight-alerts from the same zip as flight-processor; waits until it is Active."""
    b, name = settings.base, settings.function_name
    code = build_zip_bytes(b.lambda_src if b.lambda_src else DEFAULT_SRC)
    config = dict(FunctionName=name, Runtime=b.runtime, Role=role_arn, Handler=HANDLER, Timeout=b.timeout,
                  MemorySize=b.memory, Description="Kafka flight states -> geofence/emergency/watchlist alerts -> SNS",
                  Environment={"Variables": function_environment(topic_arn, bucket, settings)})
    try:
        current = clients.lambda_.get_function_configuration(FunctionName=name)
    except ClientError as exc:
        if base._error_code(exc) != "ResourceNotFoundException":
            raise
        current = None
    if current is None:
        say(f"creating function {name} (handler {HANDLER})")
        base._create_function(clients, config, code, say)
        base._wait(clients, "function_active_v2", name)
        action = "created"
    else:
        base._wait(clients, "function_updated_v2", name)
        if current.get("CodeSha256") != lambda_code_sha256(code):
            say(f"updating code of {name}")
            base._retry_on_conflict(clients, name, lambda: clients.lambda_.update_function_code(
                FunctionName=name, ZipFile=code, Publish=False), say)
            base._wait(clients, "function_updated_v2", name)
        base._retry_on_conflict(clients, name, lambda: clients.lambda_.update_function_configuration(**config), say)
        action = "updated"
    base._wait(clients, "function_updated_v2", name)
    base.ensure_log_retention(name, b.log_retention_days, clients, say)   # LOG_RETENTION_DAYS, declared once
    final = clients.lambda_.get_function_configuration(FunctionName=name)
    say(f"function {name} {action}: State={final.get('State')} LastUpdateStatus={final.get('LastUpdateStatus')}")
    return {"function_arn": final["FunctionArn"], "action": action}


def ensure_queue(topic_arn: str, settings: AlertResourceSettings, clients: base.AwsClients, say: Say = _say) -> dict:
    """The demo subscriber of every alert (raw delivery), kept for ALERTS_QUEUE_RETENTION_S."""
    attributes = {"MessageRetentionPeriod": str(settings.queue_retention_s)}
    if settings.fifo:
        attributes["FifoQueue"] = "true"
    queue_url = clients.sqs.create_queue(QueueName=settings.queue, Attributes=attributes)["QueueUrl"]
    clients.sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={
        "MessageRetentionPeriod": str(settings.queue_retention_s)})
    queue = base.subscribe_queue(topic_arn, settings.queue, clients)
    say(f"SQS queue {settings.queue} subscribed to {settings.topic} (all alerts, raw delivery, "
        f"kept {settings.queue_retention_s} s)")
    return {"alerts_queue_url": queue["queue_url"], "alerts_queue_arn": queue["queue_arn"],
            "alerts_subscription_arn": queue["subscription_arn"]}


def deploy(settings: AlertResourceSettings | None = None, clients: base.AwsClients | None = None,
           say: Say = _say) -> dict:
    settings, clients = settings or AlertResourceSettings.from_env(), clients or base.AwsClients()
    topic_arn = ensure_topic(settings, clients, say)
    table_arn = ensure_table(settings, clients, say)
    bucket = ensure_bucket(settings, clients, say)
    role_arn = ensure_role(execution_policy(topic_arn, table_arn, bucket, settings), settings, clients, say)
    function = deploy_function(topic_arn, role_arn, bucket, settings, clients, say)
    queue = ensure_queue(topic_arn, settings, clients, say)
    return {"alerts_topic_arn": topic_arn, "alerts_table_arn": table_arn, "geofences_bucket": bucket,
            "alerts_role_arn": role_arn, "alerts_function_arn": function["function_arn"], **queue}


# --- watching ----------------------------------------------------------------------------------------------

def format_alert(body: dict) -> str:
    subject = body.get("geofence") or (f"{body.get('squawk')} {body.get('emergency')}"
                                       if body.get("alert_type") == "EMERGENCY" else body.get("watch", ""))
    return (f"{body.get('time_position')}  {body.get('alert_type', '?'):<14} {subject:<30} "
            f"{body.get('icao24')} {body.get('callsign') or '-':<8} {body.get('origin_country')}  "
            f"{body.get('latitude')},{body.get('longitude')} {body.get('altitude_feet')} ft")


def _parse_alert(text: str) -> dict:
    try:
        return alert_body(text)
    except ValueError:
        return {"alert_type": "?", "raw": text}


def read_alerts(settings: AlertResourceSettings, clients: base.AwsClients, on_alert: Callable[[dict], object], *,
                types: set[str] | None = None, max_messages: int | None = None, seconds: float | None = None,
                quiet_s: float | None = None, pollers: int = queue_reader.DEFAULT_POLLERS,
                tick: Callable[[], None] = lambda: None) -> queue_reader.QueueReader:
    """Receive (and delete) alerts from the demo queue with several pollers; those of `types` (all if
    None) go to on_alert, in receive order. Stops after max_messages of them, after `seconds`, once the
    queue was empty for `quiet_s`, or on Ctrl-C. Returns the reader (its totals, how many were shown)."""
    queue_url = clients.sqs.get_queue_url(QueueName=settings.queue)["QueueUrl"]

    def handle(texts: list[str]) -> int:
        shown = 0
        for text in texts:
            body = _parse_alert(text)
            if types is None or body.get("alert_type") in types:
                on_alert(body)
                shown += 1
        return shown

    reader = queue_reader.QueueReader(clients.sqs, queue_url, handle, pollers=pollers, max_messages=max_messages,
                                      seconds=seconds, quiet_s=quiet_s, tick=tick)
    reader.run()
    return reader


def receive_alerts(settings: AlertResourceSettings, clients: base.AwsClients, *, types: set[str] | None = None,
                   max_messages: int | None = None, seconds: float | None = None, quiet_s: float | None = None,
                   on_alert: Callable[[dict], None] = lambda body: print(format_alert(body), flush=True),
                   pollers: int = queue_reader.DEFAULT_POLLERS) -> list[dict]:
    """Receive (and delete) alerts from the demo queue; those of `types` (all if None) go to on_alert and
    are returned (the recounts compare them). Stops after max_messages, after `seconds`, or once the
    queue was empty for `quiet_s`."""
    shown: list[dict] = []

    def keep(body: dict) -> None:
        on_alert(body)
        shown.append(body)

    read_alerts(settings, clients, keep, types=types, max_messages=max_messages, seconds=seconds, quiet_s=quiet_s,
                pollers=pollers)
    return shown


def watch_alerts(settings: AlertResourceSettings, clients: base.AwsClients, feed: queue_reader.FeedPrinter, *,
                 types: set[str] | None = None, max_messages: int | None = None, seconds: float | None = None,
                 pollers: int = queue_reader.DEFAULT_POLLERS) -> str:
    """`make alerts`: the alerts as lines through `feed` (nothing kept in memory: it runs for hours);
    returns the totals line."""
    kinds = f" of type {', '.join(sorted(types))}" if types else ""
    print(f"==> alerts from {settings.queue}{kinds} with {pollers} poller(s); {feed.describe()}; Ctrl-C to stop",
          file=sys.stderr, flush=True)

    def handle_batch(texts: list[str]) -> int:
        bodies = (_parse_alert(text) for text in texts)
        return feed.show([b for b in bodies if types is None or b.get("alert_type") in types], format_alert)

    queue_url = clients.sqs.get_queue_url(QueueName=settings.queue)["QueueUrl"]
    reader = queue_reader.QueueReader(clients.sqs, queue_url, handle_batch, pollers=pollers,
                                      max_messages=max_messages, seconds=seconds, tick=feed.tick)
    try:
        totals = reader.run()
    finally:
        feed.close()
    return queue_reader.totals_line("alert", totals, reader.accepted, reader.interrupted, reader.abandoned,
                                    shown_note=f" ({', '.join(sorted(types))} only)" if types else "")


# --- teardown ----------------------------------------------------------------------------------------------

def destroy(settings: AlertResourceSettings | None = None, clients: base.AwsClients | None = None,
            say: Say = _say) -> None:
    """Function, role, topic (and subscriptions), queue and table; the fences bucket is kept (your fences)."""
    settings, clients = settings or AlertResourceSettings.from_env(), clients or base.AwsClients()
    gone = base._ignore_missing(lambda: clients.lambda_.delete_function(FunctionName=settings.function_name),
                                "ResourceNotFoundException")
    say(f"function {settings.function_name}: {'deleted' if gone else 'not found'}")
    base.delete_role(settings.role_name, clients, say)
    for page in clients.sns.get_paginator("list_topics").paginate():
        for topic in page.get("Topics", []):
            if topic["TopicArn"].rsplit(":", 1)[-1] == settings.topic:
                base.delete_topic(topic["TopicArn"], clients, say)
    base.delete_queue(settings.queue, clients, say)
    gone = base._ignore_missing(lambda: clients.dynamodb.delete_table(TableName=settings.table),
                                "ResourceNotFoundException")
    say(f"DynamoDB table {settings.table}: {'deleted' if gone else 'not found'}")


# --- CLI ---------------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m infra.deploy.alerts_resources", description=__doc__.splitlines()[0])
    AlertResourceSettings.add_flags(parser.add_argument_group("settings (before the command)"))
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("deploy", help="topic, table, bucket + default fences, role, function, demo queue")
    fences = commands.add_parser("geofences", help="validate a GeoJSON file, then replace the fences")
    fences.add_argument("file", type=Path, nargs="?", default=DEFAULT_FENCES)
    watch = commands.add_parser("alerts", help="print alerts as the demo subscriber receives them")
    watch.add_argument("--type", action="append", choices=ALERT_TYPES, help="only this kind (repeatable)")
    watch.add_argument("--max", type=int, default=None, help="stop after N alerts")
    watch.add_argument("--seconds", type=float, default=None, help="stop after S seconds")
    queue_reader.add_reader_flags(watch)
    commands.add_parser("destroy", help="delete function, role, topic, queue and table (keeps the fences bucket)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def command() -> None:
        settings = AlertResourceSettings.from_args(args)
        if args.command == "deploy":
            _say("deployed: " + json.dumps(deploy(settings)))
        elif args.command == "geofences":
            put_geofences(args.file, settings, base.AwsClients())
        elif args.command == "alerts":
            line = watch_alerts(settings, base.AwsClients(), queue_reader.feed_from_args("alert", args),
                                types=set(args.type) if args.type else None, max_messages=args.max,
                                seconds=args.seconds, pollers=args.pollers)
            print(f"==> {line}", file=sys.stderr, flush=True)
        elif args.command == "destroy":
            destroy(settings)

    try:
        return base.run_command(command)
    except GeofenceError as exc:
        print(f"error: geofences refused, the old ones stay: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
