"""The fault matrix: every fault class of issue 8 injected into the real `autoscaler run`.

One module per kind of fault, each case held to the same four properties (`harness.py`):
no scale-in on bad data, no scale that could not be recorded, the loop goes on, and the
message is clear. README "Failure behaviour" lists every case with its node id.

    test_servers.py   Prometheus, AWS and Nomad failing, one shared service for all cases
    test_state.py     the state database unwritable, locked, on a full disk, deleted
    test_process.py   SIGKILL inside a cooldown, then a restart
    test_policies.py  reload conflicts, and 1,000 policies of which one is bad
"""
