"""`python -m bench.standins nomad|nomad-meta|asg N`: a target server with N targets, in its own
process (`nomad-meta`: N Nomad jobs whose meta opts in, `autoscaler.enabled = "true"`, for
a policy template to discover).

The benchmarks run the target servers of the tests (the Nomad API stand-in, moto with the
gaps the tests fill) in a process of their own, so that their CPU is not counted as the
autoscaler's and they do not compete for the benchmark's interpreter lock. Prints one line
of JSON (the environment a client needs) once the targets exist, then serves until its
standard input closes.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def nomad(count: int, *, opted_in: bool = False) -> None:
    from tests.support.nomad_api import NomadApiStandIn

    stand_in = NomadApiStandIn()
    stand_in.start()
    meta = {"autoscaler.enabled": "true"} if opted_in else None
    for i in range(count):
        stand_in.register_job(f"job{i}", {"web": 1}, meta=meta)
        # Service jobs have a deployment per version (the default update strategy).
        stand_in.set_deployment(f"job{i}", "successful")
    stand_in.record_requests = False  # a request log of a long run would only grow
    _serve(stand_in.env)
    stand_in.stop()


@contextmanager
def moto_server() -> Iterator[dict[str, str]]:
    """A moto server on loopback (with the gaps our tests fill), its environment set."""
    import pytest
    from moto.server import ThreadedMotoServer

    from tests.support.aws import fake_aws_env, fill_moto_gaps

    with pytest.MonkeyPatch.context() as mp:
        fill_moto_gaps(mp)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        env = fake_aws_env(f"http://{host}:{port}")
        for name, value in env.items():  # fake credentials only, never real AWS
            mp.setenv(name, value)
        try:
            yield env
        finally:
            server.stop()


def asg(count: int) -> None:
    from tests.support.aws import REGION

    with moto_server() as env:
        create_asgs(env["AWS_ENDPOINT_URL"], count)
        _serve({**env, "AWS_REGION": REGION})


def create_asgs(endpoint: str, count: int) -> None:
    """`count` Auto Scaling Groups asg0... (1 of 10 instances) on the moto server at `endpoint`."""
    import boto3

    from tests.support.aws import REGION

    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=endpoint)
    client = boto3.client("autoscaling", region_name=REGION, endpoint_url=endpoint)
    ec2.create_launch_template(
        LaunchTemplateName="bench",
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"},
    )
    # A subnet of its own, a /16: the default subnets (/20 each) hold about 4,000
    # instances, and moto refuses the next group's instance once they are full.
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    zones = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.0.0/16")["Subnet"]["SubnetId"]
    for i in range(count):
        client.create_auto_scaling_group(
            AutoScalingGroupName=f"asg{i}",
            LaunchTemplate={"LaunchTemplateName": "bench", "Version": "$Latest"},
            MinSize=1,
            MaxSize=10,
            DesiredCapacity=1,
            VPCZoneIdentifier=zones,
        )


def _serve(env: dict[str, str]) -> None:
    print(json.dumps(env), flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin (or dies)


def main() -> int:
    kind, count = sys.argv[1], int(sys.argv[2])
    if kind == "nomad-meta":
        nomad(count, opted_in=True)
    else:
        {"nomad": nomad, "asg": asg}[kind](count)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
