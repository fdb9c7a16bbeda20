# autoscaler: Prometheus-driven autoscaling controller.
#   docker build -t autoscaler .
#   (umask 077 && openssl rand -hex 32 > api-token)
#   docker run --rm -v "$PWD/policies:/policies:ro" -v autoscaler-state:/data \
#     -v "$PWD/api-token:/run/secrets/api-token:ro" \
#     -e AUTOSCALER_API_TOKEN_FILE=/run/secrets/api-token \
#     -e AUTOSCALER_PROMETHEUS_URL=http://prometheus:9090 -p 127.0.0.1:8080:8080 autoscaler run
# The API listens on every interface of the container, so a token is required: without
# AUTOSCALER_API_TOKEN_FILE the container exits 4 saying so (AUTOSCALER_INSECURE_NO_AUTH=1
# starts it without one, for a throwaway test only).
# Every dependency is pinned by constraints.txt (scripts/lock), the versions CI tests; so is
# the build backend (setuptools).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY autoscaler ./autoscaler
# The build backend at its pin too: pip's build isolation installed the newest setuptools
# pyproject.toml allows at each build (pip applies no -c constraints there).
RUN pip install --no-cache-dir -c constraints.txt setuptools \
 && pip wheel --no-cache-dir --no-build-isolation --wheel-dir /wheels -c constraints.txt .

FROM python:3.11-slim
# tini runs as PID 1 and hands every signal to the service: the kernel drops a signal sent
# to a namespace's PID 1 that has no handler for it, so with the service as PID 1 a
# SIGTERM in its first half second (before Python installed its handlers) was lost.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 autoscaler \
 && useradd --system --uid 10001 --gid autoscaler --home-dir /data --no-create-home autoscaler \
 && mkdir -p /data /policies && chown autoscaler:autoscaler /data
COPY --from=build /wheels /wheels
COPY constraints.txt /tmp/constraints.txt
RUN pip install --no-cache-dir --no-index --find-links /wheels -c /tmp/constraints.txt autoscaler \
 && rm -rf /wheels /tmp/constraints.txt
ENV AUTOSCALER_POLICIES=/policies \
    AUTOSCALER_STATE=/data/autoscaler-state.db \
    AUTOSCALER_LISTEN=0.0.0.0:8080 \
    PYTHONUNBUFFERED=1
USER autoscaler
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
# Healthy while /readyz answers 200 (policies loaded, state writable, Prometheus answers).
# No curl in python:slim: a standard-library check that reads AUTOSCALER_LISTEN.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-m", "autoscaler.cli.healthcheck"]
ENTRYPOINT ["/usr/bin/tini", "--", "autoscaler"]
CMD ["run"]
