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
