"""The collector: gathers a run's results from Redis into files, and evaluates them."""

from collector.collect import Collected, collect

__all__ = ["Collected", "collect"]
