"""The `autoscaler` command: argument parsing, output formats and exit codes.

May import every other layer; nothing imports it.
"""
