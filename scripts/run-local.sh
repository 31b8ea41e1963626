#!/usr/bin/env bash
# `make run`: the seeded shop on HOST:PORT and, unless RUN_SANDBOXES=0, every partner
# sandbox (`python -m app.sandbox`, on the topology's ports or SANDBOX_*_PORT), wired
# for signed webhooks in both directions of trust:
#
# - one webhook secret per partner (payments, couriers), made for this run only
#   (secrets.token_urlsafe(32)) and handed to both sides through the environment:
#   the sandboxes' SANDBOX_{PAYMENTS,COURIERS}_WEBHOOK_SECRET and the shop's
#   PARTNERS_{PAYMENTS,COURIERS}_WEBHOOK_SECRET. Never on a command line, never on
#   disk; they die with the run. A secret already in the environment (under either
#   name) is used for both sides instead, e.g. to pair RUN_SANDBOXES=0 with
#   `make sandboxes` in another shell.
# - the sandboxes push to the shop: SANDBOX_PAYMENTS_WEBHOOK_URL and
#   SANDBOX_COURIERS_WEBHOOK_URL = http://HOST:PORT/api/webhooks/{payments,couriers}
#   (loopback when HOST is a wildcard address; a URL already set is kept).
#
# Everything else in the environment reaches the shop and the sandboxes unchanged
# (DATABASE_URL, PARTNERS_*, SANDBOX_*_PORT, ...). When either process exits, the
# other is stopped and the script exits with the first one's status; SIGINT/SIGTERM
# stop both.
set -euo pipefail

PY=${PY:-.venv/bin/python}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
WORKERS=${WORKERS:-2}
SEED_PRODUCTS=${SEED_PRODUCTS:-10000}
RUN_SANDBOXES=${RUN_SANDBOXES:-1}

new_secret() { "$PY" -c 'import secrets; print(secrets.token_urlsafe(32))'; }

origin="from the environment"
payments_secret=${PARTNERS_PAYMENTS_WEBHOOK_SECRET:-${SANDBOX_PAYMENTS_WEBHOOK_SECRET:-}}
if [ -z "$payments_secret" ]; then payments_secret=$(new_secret) origin="made for this run"; fi
couriers_secret=${PARTNERS_COURIERS_WEBHOOK_SECRET:-${SANDBOX_COURIERS_WEBHOOK_SECRET:-}}
if [ -z "$couriers_secret" ]; then couriers_secret=$(new_secret) origin="made for this run"; fi

case $HOST in
  0.0.0.0 | '') shop_host=127.0.0.1 ;;
  :: | '[::]') shop_host='[::1]' ;;
  \[*) shop_host=$HOST ;;
  *:*) shop_host="[$HOST]" ;;
  *) shop_host=$HOST ;;
esac
shop_url="http://$shop_host:$PORT"

pids=()
stop_all() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait || true
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$RUN_SANDBOXES" = 1 ]; then
  (
    # one process: the shop's multiprocess metrics directory is not theirs
    unset PROMETHEUS_MULTIPROC_DIR
    export SANDBOX_PAYMENTS_WEBHOOK_SECRET=$payments_secret
    export SANDBOX_COURIERS_WEBHOOK_SECRET=$couriers_secret
    export SANDBOX_PAYMENTS_WEBHOOK_URL=${SANDBOX_PAYMENTS_WEBHOOK_URL:-$shop_url/api/webhooks/payments}
    export SANDBOX_COURIERS_WEBHOOK_URL=${SANDBOX_COURIERS_WEBHOOK_URL:-$shop_url/api/webhooks/couriers}
    exec "$PY" -m app.sandbox --host 127.0.0.1
  ) &
  pids+=($!)
fi
echo "run-local: webhooks to $shop_url/api/webhooks/{payments,couriers}," \
  "one secret per partner ($origin), shared by the shop and the sandboxes" >&2

PARTNERS_PAYMENTS_WEBHOOK_SECRET=$payments_secret \
  PARTNERS_COURIERS_WEBHOOK_SECRET=$couriers_secret \
  BIND_HOST=$HOST PORT=$PORT WEB_CONCURRENCY=$WORKERS SEED_PRODUCTS=$SEED_PRODUCTS \
  "$PY" -m app.serve --seed-if-empty &
pids+=($!)

status=0
wait -n || status=$?
exit "$status"
