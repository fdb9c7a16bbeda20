# autoscaler: Prometheus-driven autoscaling controller.
#   docker build -t autoscaler .
#   docker run --rm -v "$PWD/policies:/policies:ro" -v autoscaler-state:/data \
#     -e AUTOSCALER_PROMETHEUS_URL=http://prometheus:9090 -p 8080:8080 autoscaler run
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY autoscaler ./autoscaler
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN groupadd --system --gid 10001 autoscaler \
 && useradd --system --uid 10001 --gid autoscaler --home-dir /data --no-create-home autoscaler \
 && mkdir -p /data /policies && chown autoscaler:autoscaler /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
ENV AUTOSCALER_POLICIES=/policies \
    AUTOSCALER_STATE=/data/autoscaler-state.db \
    AUTOSCALER_LISTEN=0.0.0.0:8080 \
    PYTHONUNBUFFERED=1
USER autoscaler
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["autoscaler"]
CMD ["run"]
