"""Adapters that read metrics: each implements `autoscaler.ports.MetricSource`."""

from autoscaler.sources.prometheus import PrometheusSettings, PrometheusSource

__all__ = ["PrometheusSettings", "PrometheusSource"]
