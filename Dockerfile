# The production image: the server and its client package, nothing for development.
FROM python:3.11-slim AS build
WORKDIR /src
COPY clients/python clients/python
COPY pyproject.toml README.md ./
COPY identity_service identity_service
RUN python -m venv /opt/identity \
    && /opt/identity/bin/pip install --no-cache-dir ./clients/python .

FROM python:3.11-slim
COPY --from=build /opt/identity /opt/identity
RUN useradd --system --uid 10001 identity
USER identity
ENV PATH=/opt/identity/bin:$PATH \
    IDENTITY_LISTEN=0.0.0.0:50051 \
    PYTHONUNBUFFERED=1
EXPOSE 50051
# `serve` exits 0 on SIGTERM once calls in flight finish (SHUTDOWN_GRACE_SECONDS).
ENTRYPOINT ["identity-service"]
CMD ["serve"]
