"""The local Kafka event source mapping: consumes `aviation-data` and invokes the Lambda with
batches shaped exactly like AWS Lambda's Kafka ESM event, at least once, in partition order."""
from .mapping import TriggerConfig
from .runner import Trigger, TriggerStats

__all__ = ["Trigger", "TriggerConfig", "TriggerStats"]
