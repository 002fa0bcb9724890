# syntax=docker/dockerfile:1
# One image for every prelabel process: worker, producer (`run`), Flower, the metrics
# exporter and the simulator. The command picks which: `docker run IMAGE worker`.

# --- build: install prelabel and its pinned dependencies into a venv -------------------
FROM python:3.11-slim AS build
# The extras the image carries: Kili uploads, Flower, the simulator (compose's demo profile),
# the reports' charts and OpenTelemetry tracing. A worker-only image needs none of the first
# four: --build-arg EXTRAS=otel
ARG EXTRAS=kili,flower,simulator,plots,otel
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
# Dependencies first, from pyproject and the lock alone, so that a code change does not
# reinstall them; constraints.txt pins every version (what CI tested).
COPY pyproject.toml README.md constraints.txt ./
RUN mkdir prelabel && echo '__version__ = "0"' > prelabel/__init__.py \
 && /opt/venv/bin/pip install -c constraints.txt ".${EXTRAS:+[$EXTRAS]}" \
 && /opt/venv/bin/pip uninstall --yes prelabel
COPY prelabel prelabel
COPY task_types task_types
COPY producer producer
COPY workers workers
COPY collector collector
COPY evaluation evaluation
COPY simulator simulator
RUN /opt/venv/bin/pip install --no-deps .

# --- runtime: slim, no build tools, not root -------------------------------------------
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/prelabel
RUN groupadd --gid 1000 prelabel \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/prelabel prelabel
COPY --from=build /opt/venv /opt/venv
# A small gold sample, for the simulator of the compose `demo` profile.
COPY producer/samples /opt/prelabel/samples
WORKDIR /home/prelabel
# Numeric, so that Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 1000:1000
# Exec form: prelabel is PID 1 and receives SIGTERM itself, which Celery turns into a warm
# shutdown (running shards finish, nothing new starts).
ENTRYPOINT ["prelabel"]
CMD ["worker"]
