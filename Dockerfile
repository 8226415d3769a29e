# Tipwise image: one image for every process of the scaled topology
# (`tipwise migrate | serve | relay | learner | ml-serve`), see docs/deploy.md.
#
#   docker build -t tipwise:latest .
#   docker build --build-arg TIPWISE_MLFLOW=1 -t tipwise:mlflow .   (models in MLflow)

# --- builder: the pinned dependencies into a venv, then Tipwise itself -------
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /build
# The lock alone first, so the dependency layer is cached until the lock changes.
# --only-binary: the slim image has no compiler; every locked package ships a wheel.
COPY requirements/app.lock requirements/app.lock
RUN pip install --require-hashes --only-binary=:all: -r requirements/app.lock
# `--build-arg TIPWISE_MLFLOW=1` adds the MLflow registry client (TIPWISE_MODEL_REGISTRY=mlflow):
# its lock is the app lock plus the `mlflow` extra, so this installs only what the extra adds.
ARG TIPWISE_MLFLOW=0
COPY requirements/mlflow.lock requirements/mlflow.lock
RUN if [ "$TIPWISE_MLFLOW" = 1 ]; then \
      pip install --require-hashes --only-binary=:all: -r requirements/mlflow.lock; \
    fi

COPY pyproject.toml README.md ./
COPY src ./src
# --no-deps: everything Tipwise needs came from the hash-checked lock above.
RUN pip install --no-deps . \
    && tipwise --help > /dev/null

# --- runtime: the venv and a non-root user, nothing else ---------------------
FROM python:3.11-slim AS runtime

# A fixed UID/GID, so volume ownership and Kubernetes' runAsUser/fsGroup agree.
ARG TIPWISE_UID=10001
RUN groupadd --system --gid "${TIPWISE_UID}" tipwise \
    && useradd --system --uid "${TIPWISE_UID}" --gid tipwise --no-create-home \
       --home-dir /var/lib/tipwise --shell /usr/sbin/nologin tipwise \
    && mkdir -p /var/lib/tipwise/models \
    && chown -R tipwise:tipwise /var/lib/tipwise

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    TIPWISE_DATA_DIR=/var/lib/tipwise \
    TIPWISE_LOG_FORMAT=json

# A new named volume starts as a copy of this folder, owned by the tipwise user.
VOLUME ["/var/lib/tipwise"]
WORKDIR /var/lib/tipwise
USER 10001:10001

EXPOSE 8000

# The slim image has no curl: ask /healthz with the standard library. The default
# command serves on TIPWISE_PORT (8000); compose and Kubernetes probe each process
# on its own port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('TIPWISE_PORT', '8000') + '/healthz', timeout=4)"]

# Exec form: tipwise is PID 1 and receives SIGTERM itself, for a graceful stop.
ENTRYPOINT ["tipwise"]
CMD ["serve", "--host", "0.0.0.0"]
