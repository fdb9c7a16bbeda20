"""`make demo`: the controller scaling a (moto) Auto Scaling Group on live Prometheus data.

Starts, all on 127.0.0.1 and with no cloud account: a Prometheus (Debian's binary, a temp
data dir), a simulated checkout service exporting a latency histogram and an
open-conversations gauge, a moto server holding the `demo-checkout` ASG, and then
`autoscaler run demo/policies` for about a minute, printing every decision it makes.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from demo.loadgen import LoadGenerator  # noqa: E402
from tests.support.aws import fake_aws_env, fill_moto_gaps  # noqa: E402
from tests.support.net import free_port, wait_until  # noqa: E402
from tests.support.prometheus import PrometheusServer  # noqa: E402

ASG = "demo-checkout"
REGION = "eu-west-3"


def start_moto() -> tuple[ThreadedMotoServer, dict[str, str]]:
    fill_moto_gaps(pytest.MonkeyPatch())  # moto 5.2 lacks DescribeInstanceRefreshes
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per AWS call otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, fake_aws_env(f"http://127.0.0.1:{port}")


def create_group(env: dict[str, str]) -> None:
    session = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    )
    ec2 = session.client("ec2", endpoint_url=env["AWS_ENDPOINT_URL"])
    ec2.create_launch_template(
        LaunchTemplateName="demo", LaunchTemplateData={"ImageId": "ami-12c6146b"}
    )
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]]
    session.client("autoscaling", endpoint_url=env["AWS_ENDPOINT_URL"]).create_auto_scaling_group(
        AutoScalingGroupName=ASG,
        LaunchTemplate={"LaunchTemplateName": "demo"},
        MinSize=1,
        MaxSize=20,
        DesiredCapacity=2,
        AvailabilityZones=zones[:1],
    )


def desired_capacity(env: dict[str, str]) -> int:
    client = boto3.client(
        "autoscaling",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=REGION,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    groups = client.describe_auto_scaling_groups(AutoScalingGroupNames=[ASG])
    return int(groups["AutoScalingGroups"][0]["DesiredCapacity"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the controller runs")
    args = parser.parse_args()

    # Everything started is stopped, and the temporary directory removed, however the
    # demo ends: a failure half-way (no first scrape, a port taken, Ctrl-C) left an
    # orphan Prometheus and its data behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # cleans up
    with contextlib.ExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="autoscaler-demo-"))
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        return _demo(args.seconds, workdir, cleanup)


def _demo(seconds: float, workdir: Path, cleanup: contextlib.ExitStack) -> int:
    # The user's own AWS settings (AWS_PROFILE, a region, keys) must reach neither moto
    # nor the controller: the demo talks to its in-process AWS only. With AWS_PROFILE set
    # (a profile only the user's real config has, which the demo does not read), moto
    # failed to start, and the controller held at every evaluation.
    # Nor do the user's AUTOSCALER_* and NOMAD_* settings (a production webhook in
    # AUTOSCALER_NOTIFY_URLS, AUTOSCALER_DRY_RUN=1, a config file) reach the demo's controller.
    for name in [n for n in os.environ if n.startswith(("AWS_", "AUTOSCALER_", "NOMAD_"))]:
        del os.environ[name]
    moto, env = start_moto()
    cleanup.callback(moto.stop)
    create_group(env)
    print(f"demo: moto ASG {ASG} at {env['AWS_ENDPOINT_URL']}, desired capacity 2")

    exporter_port = free_port()
    loadgen = LoadGenerator(lambda: desired_capacity(env), exporter_port)
    loadgen.start()
    cleanup.callback(loadgen.stop)
    scrape = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": "demo", "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}
        ],
    }
    prometheus = PrometheusServer(workdir / "prometheus", config=scrape)
    prometheus.start()
    cleanup.callback(prometheus.stop)
    print(f"demo: Prometheus at {prometheus.url}, scraping the load generator every 1 s")
    wait_until(
        lambda: bool(prometheus.query("demo_requests_per_second")["result"]),
        timeout=30,
        what="the first scrape",
    )

    listen = f"127.0.0.1:{free_port()}"
    command = [
        sys.executable, "-m", "autoscaler", "run", str(ROOT / "demo" / "policies"),
        "--prometheus-url", prometheus.url,
        "--state", str(workdir / "state.db"),
        "--listen", listen,
    ]  # fmt: skip
    print(f"demo: starting the controller (API on http://{listen}): {' '.join(command[2:])}\n")
    controller = subprocess.Popen(command, env={**os.environ, **env}, cwd=ROOT)
    cleanup.callback(_stop, controller)
    started = time.monotonic()
    loadgen.reset_clock()
    stop = threading.Event()
    cleanup.callback(stop.set)

    def report() -> None:
        while not stop.wait(5):
            t = time.monotonic() - started
            print(
                f"demo: t={t:4.0f}s load={loadgen.current_rps:5.0f} rps "
                f"instances={loadgen.current_instances}",
                flush=True,
            )

    threading.Thread(target=report, daemon=True).start()
    try:
        controller.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        _stop(controller)
    stop.set()
    # Read from the group now: the load generator's copy is up to a second old, and said 9
    # after the last decision logged had set it to 8.
    print(
        f"\ndemo: done; the controller exited with {controller.returncode}; "
        f"final desired capacity {desired_capacity(env)}"
    )
    return 0 if controller.returncode == 0 else 1


def _stop(controller: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and SIGKILL if it has not exited 15 s later (nothing if it has exited)."""
    if controller.poll() is not None:
        return
    controller.send_signal(signal.SIGTERM)
    try:
        controller.wait(timeout=15)
    except subprocess.TimeoutExpired:
        controller.kill()
        controller.wait()


if __name__ == "__main__":
    raise SystemExit(main())
