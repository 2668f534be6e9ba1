# syntax=docker/dockerfile:1
# One image for the web (uvicorn), worker (taskiq worker) and scheduler (taskiq
# scheduler) pods: k8s/base sets each one's command. Built from the repository root:
#
#   docker build -t registry.example.com/asyncjobs:0.1.0 .
#
# Your project: copy its package(s) where example/ is copied below (or install it into
# /opt/venv) and set DJANGO_SETTINGS_MODULE and the web command to it.
ARG PYTHON_VERSION=3.12

# -- build: a virtual environment with asyncjobs and its pinned dependencies -----------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ARG PYTHON_VERSION
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY constraints/ constraints/
COPY pyproject.toml README.md ./
COPY asyncjobs/ asyncjobs/
# constraints/py3.X.txt pins every dependency for that Python line; uvicorn serves ASGI.
RUN /opt/venv/bin/pip install --constraint "constraints/py${PYTHON_VERSION}.txt" . uvicorn

# -- runtime: no compilers, no pip cache, a fixed non-root user ------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm
# PYTHONUNBUFFERED: log lines reach `kubectl logs` at once. No .pyc writes at run time
# (the root filesystem is read-only in k8s/; pip compiled them at install).
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app
# UID/GID 10001, the runAsUser/runAsGroup of every pod in k8s/base.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The example Django project (the image's default settings); replace with yours.
COPY example/ example/
USER 10001:10001
EXPOSE 8000 8001
# Exec form (no shell): the process is PID 1 and receives SIGTERM itself.
# The default command runs a worker; the web and scheduler Deployments set their own.
CMD ["taskiq", "worker", "asyncjobs.django.worker:broker", "--workers", "1"]
