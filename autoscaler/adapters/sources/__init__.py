"""Adapters that read metrics: each implements `autoscaler.core.ports.MetricSource`."""

from autoscaler.adapters.sources.prometheus import PrometheusSettings, PrometheusSource

__all__ = ["PrometheusSettings", "PrometheusSource"]
