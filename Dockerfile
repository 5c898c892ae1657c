# ToxPlatform: one image for the web server and every Celery worker (see docs/deploy.md).
FROM python:3.11-slim

# torch comes from PyPI by default (the build with CUDA, for GPU workers). For a smaller
# CPU-only image pass the CPU wheel index from PyTorch's install page:
#   docker compose build --build-arg TORCH_INDEX_URL=<cpu wheel index>
ARG TORCH_INDEX_URL=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TOXPLATFORM_VAR_DIR=/app/var \
    TOXPLATFORM_MODEL_CACHE=/data/models

WORKDIR /app

# Dependencies first, so that a code change does not reinstall them.
COPY requirements.txt /app/requirements.txt
RUN if [ -n "$TORCH_INDEX_URL" ]; then pip install --index-url "$TORCH_INDEX_URL" torch; else pip install torch; fi \
    && pip install -r /app/requirements.txt

RUN groupadd --system --gid 1000 app \
    && useradd --system --uid 1000 --gid app --home-dir /app --shell /usr/sbin/nologin app \
    && mkdir -p /app/var /data/models \
    && chown -R app:app /app /data

COPY --chown=app:app . /app

USER app

# Static files are collected at build time; whitenoise serves them from the web process.
RUN python manage.py collectstatic --noinput

EXPOSE 8000

# docker-compose.yml runs migrations before this (web) or a Celery worker instead of it.
CMD ["gunicorn", "toxplatform.wsgi:application", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
