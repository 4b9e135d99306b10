"""Event source mappings declared the AWS way: from a CloudFormation template or a mappings file.

What runs locally is then what deploys: each `AWS::Lambda::EventSourceMapping` resource of a
template (parameters resolved: defaults, overridden by `Key=Value` pairs), or each entry of a small
JSON/YAML file written with `CreateEventSourceMapping`'s property names:

    {"EventSourceMappings": [
      {"FunctionName": "flight-processor", "Topics": ["aviation-data"], "BatchSize": 500,
       "SelfManagedKafkaEventSourceConfig": {"ConsumerGroupId": "flight-processor-esm"},
       "FilterCriteria": {"Filters": [{"Pattern": "{\\"value\\": {\\"on_ground\\": [false]}}"}]},
       "DestinationConfig": {"OnFailure": {"Destination": "kafka://aviation-data-dlq"}}}]}

(a single mapping object, or a list of them, is accepted too). Everything a mapping does not say
comes from the TRIGGER_* / KAFKA_* environment as for a single mapping; AWS's defaults apply where
the property exists on AWS (no FunctionResponseTypes: item failures are not honoured; no
DestinationConfig: no on-failure destination). The brokers are always KAFKA_BOOTSTRAP_SERVERS: the
template's SelfManagedEventSource names the remote cluster.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Mapping

import yaml

from pipeline_common.settings import ConfigError

from .cloudformation import Stack, TemplateError, load_template
from .mapping import TriggerConfig

logger = logging.getLogger(__name__)

ESM_TYPE = "AWS::Lambda::EventSourceMapping"

# CreateEventSourceMapping parameters that have no local meaning (README: parity table).
NOT_APPLICABLE = {"SourceAccessConfigurations", "ProvisionedPollerConfig", "KMSKeyArn", "Tags", "MetricsConfig",
                  "LoggingConfig", "ScalingConfig", "DocumentDBEventSourceConfig", "Queues",
                  "TumblingWindowInSeconds", "ParallelizationFactor", "SelfManagedEventSource"}
APPLIED = {"FunctionName", "Topics", "Enabled", "BatchSize", "MaximumBatchingWindowInSeconds", "StartingPosition",
           "StartingPositionTimestamp", "FilterCriteria", "DestinationConfig", "FunctionResponseTypes",
           "SelfManagedKafkaEventSourceConfig", "AmazonManagedKafkaEventSourceConfig", "EventSourceArn",
           "MaximumRetryAttempts", "MaximumRecordAgeInSeconds", "BisectBatchOnFunctionError"}


def load_mappings(path: str | Path, parameters: Mapping[str, str] | None = None,
                  env: Mapping[str, str] | None = None) -> list[TriggerConfig]:
    """Every enabled mapping declared in `path` (a CloudFormation template or a mappings file)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"mappings: {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            doc = json.loads(text)
        else:
            doc = load_template(path)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"mappings: {path} is not valid JSON/YAML: {exc}") from None
    if isinstance(doc, dict) and "Resources" in doc:
        declared = _from_template(doc, parameters or {}, path)
    else:
        if parameters:
            raise ConfigError(f"mappings: parameters are for CloudFormation templates; {path} is a mappings file")
        entries = doc.get("EventSourceMappings", doc) if isinstance(doc, dict) else doc
        entries = [entries] if isinstance(entries, dict) else entries
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ConfigError(f"mappings: {path} holds no mapping objects")
        declared = [(f"mapping-{i + 1}", e) for i, e in enumerate(entries)]
    configs = [config_from_properties(props, name, env) for name, props in declared
               if props.get("Enabled", True) not in (False, "false", "False")]
    groups = [c.group_id for c in configs]
    duplicated = sorted({g for g in groups if groups.count(g) > 1})
    if duplicated:
        raise ConfigError(f"mappings: consumer group {duplicated[0]!r} is used by more than one mapping; "
                          "each mapping needs its own group (AWS requires it too)")
    if not configs:
        raise ConfigError(f"mappings: {path} declares no enabled {ESM_TYPE}")
    return configs


def _from_template(template: dict, parameters: Mapping[str, str], path: Path) -> list[tuple[str, dict]]:
    def resource_value(stack: Stack, resource: str, attribute: str | None):
        spec = template["Resources"][resource]
        if spec.get("Type") == "AWS::Lambda::Function":  # Ref and GetAtt Arn: the trigger needs the name
            return stack.resolve((spec.get("Properties") or {}).get("FunctionName", resource))
        return f"<{resource}{'.' + attribute if attribute else ''}>"

    try:
        stack = Stack(template, resource_value=resource_value, **dict(parameters))
        return [(name, stack.properties(name)) for name in stack.resources_of_type(ESM_TYPE)]
    except (TemplateError, KeyError, IndexError, TypeError) as exc:
        raise ConfigError(f"mappings: {path}: {type(exc).__name__}: {exc}") from None


def config_from_properties(props: dict, name: str, env: Mapping[str, str] | None = None) -> TriggerConfig:
    """One mapping's TriggerConfig: the environment's settings, then the mapping's properties."""
    unknown = set(props) - APPLIED - NOT_APPLICABLE
    if unknown:
        raise ConfigError(f"mapping {name}: unknown CreateEventSourceMapping properties {sorted(unknown)}")
    ignored = sorted(set(props) & NOT_APPLICABLE)
    if ignored:
        logger.info("mapping %s: %s not applicable locally (see src/trigger/README.md)", name, ", ".join(ignored))
    base = TriggerConfig.from_env(env)
    values: dict = {"name": name, "mappings": None, "dlq_topic": None, "dlq_sqs_url": None, "report_batch_item_failures": False,
                    "on_failure_destination": None, "filter_criteria": None}
    function = str(props.get("FunctionName") or base.function_name)
    values["function_name"], qualifier = _function_and_qualifier(function)
    if qualifier:
        values["qualifier"] = qualifier
    if "Topics" in props:
        values["topics"] = tuple(props["Topics"])
    group = (props.get("SelfManagedKafkaEventSourceConfig") or props.get("AmazonManagedKafkaEventSourceConfig")
             or {}).get("ConsumerGroupId")
    # AWS names the group after the mapping's UUID when none is given; here, after the mapping.
    values["group_id"] = group or f"{name}-{values['function_name']}"
    numbers = {"BatchSize": ("batch_size", int), "MaximumBatchingWindowInSeconds": ("maximum_batching_window_s", float),
               "MaximumRetryAttempts": ("maximum_retry_attempts", int),
               "MaximumRecordAgeInSeconds": ("maximum_record_age_s", int),
               "StartingPositionTimestamp": ("starting_position_timestamp", float)}
    for prop, (field, kind) in numbers.items():
        if prop in props:
            try:
                values[field] = kind(props[prop])
            except (TypeError, ValueError):
                raise ConfigError(f"mapping {name}: {prop}={props[prop]!r} is not a number") from None
    if "StartingPosition" in props:
        values["starting_position"] = str(props["StartingPosition"]).upper()
    if "BisectBatchOnFunctionError" in props:
        values["bisect_batch_on_function_error"] = str(props["BisectBatchOnFunctionError"]).lower() == "true"
    values["report_batch_item_failures"] = "ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or [])
    if props.get("FilterCriteria"):
        criteria = props["FilterCriteria"]
        values["filter_criteria"] = criteria if isinstance(criteria, str) else json.dumps(criteria)
    destination = ((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
    if destination:
        values["on_failure_destination"] = destination
    if props.get("EventSourceArn"):
        values["event_source"], values["event_source_arn"] = "aws:kafka", props["EventSourceArn"]
    try:
        return dataclasses.replace(base, **values)
    except ConfigError as exc:
        raise ConfigError(f"mapping {name}: {exc}") from None


def _function_and_qualifier(function: str) -> tuple[str, str | None]:
    """FunctionName as AWS takes it: a name, name:qualifier, or a function ARN (with a qualifier)."""
    if function.startswith("arn:"):
        parts = function.split(":")
        return parts[6], (parts[7] if len(parts) > 7 else None)
    name, _, qualifier = function.partition(":")
    return name, qualifier or None
