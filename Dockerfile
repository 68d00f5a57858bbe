# syntax=docker/dockerfile:1
# One image for every amoroute process; the container command picks which one.
#
#   docker build --build-arg VERSION="$(cat VERSION)" -t amoroute:"$(cat VERSION)" .
#
# The entrypoint is `python -m`, so the arguments name the module to run:
#   edge (HTTP :8080)  gunicorn -c python:edge.gunicorn_conf edge.app:create_app()   (default)
#   edge worker        edge.worker
#   router_svc :50051  router_svc
#   referral_svc       referral_svc            (:50052)
#   traffic_svc        traffic_svc             (:50053)
#   notifier_svc       notifier_svc            (:50054)
#   migrations         edge migrate | referral_svc migrate | traffic_svc migrate | notifier_svc migrate
#
#   docker run --rm -p 8080:8080 amoroute:"$(cat VERSION)"
#   docker run --rm -p 50051:50051 amoroute:"$(cat VERSION)" router_svc
#
# The gunicorn config is named as a module (python:edge.gunicorn_conf), not as the file path
# edge/gunicorn_conf.py, because the package is installed into the venv, not kept in the
# working directory.

# Pinned by tag; CI may pin further by digest (python:3.11.11-slim-bookworm@sha256:...).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# --- builder: resolve the pinned dependencies, then install the project, into /opt/venv -------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
WORKDIR /src

# Dependencies first, from the hashed lock file alone (`make lock` writes it), so this layer is
# rebuilt only when the pins change and nothing unpinned or tampered with gets in. Every
# dependency ships manylinux wheels (psycopg[binary], grpcio), so no compiler.
COPY requirements/runtime.lock ./
RUN /opt/venv/bin/pip install --require-hashes -r runtime.lock

# Then the project itself (the generated gRPC code under amoroute/v1 is committed and ships
# with it). --no-deps: everything it needs is already in the venv, at the pinned versions.
COPY . .
RUN /opt/venv/bin/pip install --no-deps . \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib \
 && /opt/venv/bin/python -c "import edge.app, edge.worker, router_svc.server, referral_svc.server, traffic_svc.server, notifier_svc.server"

# --- runtime: the venv and a non-root user, nothing else ---------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# The release version (the VERSION file; deploy/set-version.sh keeps this default equal to it).
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="amoroute" \
      org.opencontainers.image.description="AmoCRM won-deal routing: edge, worker and gRPC services" \
      org.opencontainers.image.version="${VERSION}"

# A numeric uid/gid, so Kubernetes' runAsNonRoot can verify the user without a passwd lookup.
RUN groupadd --system --gid 10001 amoroute \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin amoroute \
 && mkdir -p /app/var \
 && chown -R 10001:10001 /app

COPY --from=builder /opt/venv /opt/venv

# HOME=/tmp: under readOnlyRootFilesystem /tmp (an emptyDir) is the one writable place, and
# gunicorn puts its control socket under $HOME/.gunicorn. /app/var is where the SQLite
# defaults land when the image runs without database URLs (docker run, not Kubernetes).
# BIND_HOST: in a container the servers must listen beyond loopback to be reached at all.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    BIND_HOST=0.0.0.0

WORKDIR /app
USER 10001:10001

EXPOSE 8080 50051 50052 50053 50054 9090

ENTRYPOINT ["python", "-m"]
CMD ["gunicorn", "-c", "python:edge.gunicorn_conf", "edge.app:create_app()"]
