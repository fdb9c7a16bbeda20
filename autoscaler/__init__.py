"""Prometheus-driven autoscaling controller for EC2 Auto Scaling Groups and Nomad jobs."""

__version__ = "0.1.0"
