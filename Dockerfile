# syntax=docker/dockerfile:1
# sagebridge image: `docker build -t sagebridge .`, then `docker run sagebridge` (= `sagebridge run`).
#
# Stage 1 builds the sagebridge wheel and installs it, with its runtime dependencies only, into a
# virtualenv, at exactly the versions in constraints.txt (exported from uv.lock: the versions CI
# tested). Stage 2 copies that virtualenv onto a clean slim base: no compiler, no build
# tools, no dev extra (pytest, ruff, mypy never reach the image).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY service ./service
RUN python -m pip wheel --no-deps --wheel-dir /dist . \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install --constraint constraints.txt /dist/sagebridge-*.whl

FROM ${PYTHON_IMAGE} AS runtime
# A wheel install has no contracts/ beside the package (they live at the repo root), so the
# default SAGEBRIDGE_CONTRACTS_DIR would point at nothing: ship them and say where.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SAGEBRIDGE_CONTRACTS_DIR=/app/contracts \
    SAGEBRIDGE_HTTP_PORT=8000
RUN groupadd --system --gid 10001 sagebridge \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin sagebridge
COPY --from=build /opt/venv /opt/venv
COPY contracts /app/contracts
WORKDIR /app
USER 10001:10001
EXPOSE 8000
# slim has no curl: the stdlib asks /healthz on whatever port the settings chose.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SAGEBRIDGE_HTTP_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["sagebridge"]
CMD ["run"]
