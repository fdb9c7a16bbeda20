"""Adapters that read metrics: each implements `autoscaler.core.ports.MetricSource`."""

from autoscaler.adapters.sources.prometheus import PrometheusSource
from autoscaler.adapters.sources.prometheus_settings import PrometheusSettings

__all__ = ["PrometheusSettings", "PrometheusSource"]
