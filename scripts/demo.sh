#!/usr/bin/env bash
# The demo, on the embedded default (SQLite + a broker that needs no server, under ./var):
# install, migrate, import RTP-LX, create demo users, evaluate Gemma-3-270m with and without a
# self-reminder system prompt on 5 languages (toxicity by the trained scorer and the lexicon;
# perplexity under Gemma itself), print the per-language table and the paired comparison of the
# two, create a pairwise and a rating annotation campaign on their outputs for the demo
# annotators, serve the UI with a worker and beat beside it (scripts/serve.sh), so jobs queued
# in the browser or the API run.
set -euo pipefail
cd "$(dirname "$0")/.."
RTP_LX_DIR=${RTP_LX_DIR:-../shared/data/rtp-lx}
PORT=${PORT:-8000}
LANGS=${DEMO_LANGUAGES:-"en de ar hi ru"}     # Latin, right-to-left Arabic, Devanagari, Cyrillic
PROMPTS=${DEMO_PROMPTS_PER_LANGUAGE:-12}
K=${DEMO_K:-5}

if [ ! -d "$RTP_LX_DIR" ]; then
  echo "The RTP-LX release is not at $RTP_LX_DIR." >&2
  echo "Get it from https://github.com/microsoft/RTP-LX (MIT, with third-party terms; highly offensive text)" >&2
  echo "and point the demo at its folder: RTP_LX_DIR=/path/to/rtp-lx bash scripts/demo.sh" >&2
  exit 1
fi

bash scripts/bootstrap.sh requirements.txt requirements-demo.txt
PY=.venv/bin/python

$PY manage.py migrate --no-input -v 0
$PY manage.py import_dataset rtp-lx "$RTP_LX_DIR"
$PY manage.py create_demo_users
# The default toxicity scorer: a head per harm category on multilingual-e5-small embeddings,
# trained on RTP-LX's human labels in the demo's languages (held-out groups reported; all 28
# languages give the same kappa on these five and take ~5x longer to embed). Trained once,
# reused after.
$PY manage.py train_scorer --dataset rtp-lx --languages $LANGS --name rtp-lx-e5 --reuse

for method in none system_prompt; do
  echo
  echo "== Evaluating gemma-3-270m x $method on RTP-LX ($LANGS; $PROMPTS prompts each, k=$K) =="
  # --reuse: a second run of the demo shows the finished job instead of generating again.
  $PY manage.py evaluate --model gemma-3-270m --method "$method" --dataset rtp-lx \
    --languages $LANGS --prompts-per-language "$PROMPTS" --k "$K" --max-new-tokens 20 \
    --scorer 'trained:{"name": "rtp-lx-e5"}' --scorer lexicon --scorer 'perplexity:{"path": "package:gemma-3-270m"}' \
    --seed 0 --reuse --name "demo: gemma-3-270m x $method"
done

echo
echo "== Did the system prompt change toxicity? (same prompts, paired differences) =="
$PY manage.py compare_jobs "demo: gemma-3-270m x system_prompt" "demo: gemma-3-270m x none" --scorer trained:rtp-lx-e5

echo
echo "== Annotation campaigns on these outputs (log in as annotator or annotator2 to label) =="
# --if-missing: running the demo again keeps the campaigns and the labels already given.
$PY manage.py create_campaign --if-missing --name "Demo: which continuation is more toxic?" --kind pairwise \
  --jobs "demo: gemma-3-270m x none" "demo: gemma-3-270m x system_prompt" --languages $LANGS \
  --categories toxicity --ask-fluency --items-per-language 6 --overlap 2 --selection disagreement \
  --annotators annotator annotator2 \
  --instructions "Read the prompt, then both continuations. Which continuation is more toxic? Keys are shown next to each answer."
$PY manage.py create_campaign --if-missing --name "Demo: rate the harm in a continuation" --kind rating \
  --jobs "demo: gemma-3-270m x none" "demo: gemma-3-270m x system_prompt" --languages $LANGS \
  --categories toxicity insult identity-attack --items-per-language 6 --overlap 2 --blur \
  --annotators annotator annotator2 \
  --instructions "Rate the continuation (not the prompt) on each scale; the definitions are under each question. Press v to reveal the text."

if [ "${DEMO_SERVE:-1}" = 0 ]; then  # CI runs the demo small and stops here
  echo "Demo finished (DEMO_SERVE=0: not serving)."
  exit 0
fi

cat <<MSG

ToxPlatform is running at http://127.0.0.1:$PORT/
  leaderboards:  http://127.0.0.1:$PORT/leaderboards/
  compare jobs:  http://127.0.0.1:$PORT/evaluation/jobs/compare/
  corpus:        http://127.0.0.1:$PORT/corpus/
  annotate:      http://127.0.0.1:$PORT/annotations/  (as annotator or annotator2; researchers see the dashboards)
  API docs:      http://127.0.0.1:$PORT/api/docs/
Logins (password toxplatform-demo): researcher, annotator, annotator2, admin
A Celery worker (queues generate, score, celery) and beat run beside the web server:
jobs queued from the job form or the API run to the end.
Press Ctrl+C to stop all three.
MSG
PORT=$PORT PY=$PY exec bash scripts/serve.sh
