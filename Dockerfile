# syntax=docker/dockerfile:1
#
# The pydeephaven command line as a small image (the client only: no server, no Java).
#
#   docker build -t pydeephaven-cli .
#   docker run --rm -e DH_HOST=my-server -e DH_AUTH_TYPE=psk -e DH_AUTH_TOKEN pydeephaven-cli tables
#
# compose.yaml pairs it with the official server image. No test builds this image (there is no
# Docker engine where the tests run); tests/test_cli.py runs its ENTRYPOINT + CMD in the test venv.
# To move to a newer Python, change both FROM lines together (the venv is copied between them).

# -- build: a venv holding the package and its runtime dependencies ------------------------------
FROM python:3.11.7-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY pydeephaven ./pydeephaven
RUN python -m venv /opt/pydeephaven \
 && /opt/pydeephaven/bin/pip install . \
 && /opt/pydeephaven/bin/pydeephaven --version

# -- runtime: the venv alone, run by an unprivileged user ----------------------------------------
FROM python:3.11.7-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 deephaven \
 && useradd --system --uid 10001 --gid deephaven --home-dir /data --create-home --shell /usr/sbin/nologin deephaven
COPY --from=build /opt/pydeephaven /opt/pydeephaven
ENV PATH=/opt/pydeephaven/bin:$PATH PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /data
ENTRYPOINT ["pydeephaven"]
CMD ["--help"]
