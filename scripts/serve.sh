#!/usr/bin/env bash
# Serve ToxPlatform on this machine: a Celery worker for every queue, beat, and the web server,
# all on the same settings (the embedded default unless DATABASE_URL / CELERY_BROKER_URL are
# set). Ctrl+C (or SIGTERM) stops all three; if one of them exits, the others are stopped too.
# scripts/demo.sh ends with this; run it alone to serve an existing ./var again.
#   PORT (8000), WORKER_CONCURRENCY (1), PY (.venv/bin/python)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PORT=${PORT:-8000}
VAR=${TOXPLATFORM_VAR_DIR:-var}
mkdir -p "$VAR/log"

pids=()
stop_all() {
  trap - INT TERM EXIT
  echo "Stopping the web server, the worker and beat..."
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null; done
  # A worker finishes its current batch on a warm shutdown; after 15 s it is killed (the job's
  # chunk is claimed again by the next worker: every task is idempotent).
  for _ in $(seq 30); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.5
  done
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null; done
  wait 2>/dev/null
  exit 0
}
trap stop_all INT TERM EXIT

# Each in its own session (setsid), so stop_all can end a process with its children.
# --without-gossip/mingle/heartbeat: no broadcast messages, which the filesystem broker lacks
# (the worker's heartbeat that pages read is a database row, evaluation/workers.py).
setsid "$PY" -m celery -A toxplatform worker -Q generate,score,celery -c "${WORKER_CONCURRENCY:-1}" \
  --loglevel=INFO --without-gossip --without-mingle --without-heartbeat >>"$VAR/log/worker.log" 2>&1 &
pids+=($!)
setsid "$PY" -m celery -A toxplatform beat --loglevel=INFO --schedule "$VAR/celerybeat-schedule" \
  >>"$VAR/log/beat.log" 2>&1 &
pids+=($!)
setsid "$PY" manage.py runserver "127.0.0.1:$PORT" --noreload &
pids+=($!)
echo "Worker (queues generate, score, celery) and beat started; logs in $VAR/log/worker.log and $VAR/log/beat.log."

wait -n
echo "A process ended; stopping the others."
stop_all
