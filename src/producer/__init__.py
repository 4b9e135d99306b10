"""Flight-state producer: OpenSky, synthetic or replayed aircraft states -> Kafka topic aviation-data.

Programmatic use (demo, benchmarks)::

    from producer import ProducerConfig, run_producer
    stats = run_producer(ProducerConfig.from_env(source="synthetic", max_ticks=5))
"""
from .runner import ProducerError, ProducerStats, run_producer
from .settings import ProducerConfig

__all__ = ["ProducerConfig", "ProducerError", "ProducerStats", "run_producer"]
