#!/usr/bin/env bash
# Reproduces bench/RESULTS.md: starts a zero-latency `switchyard sim` upstream and a Switchyard
# gateway in front of it, pinned to separate cores, runs switchyard-bench against both, and
# appends the results. Everything it starts is stopped on exit.
#
#   bench/run.sh                 full run, about 5 minutes, appends to bench/RESULTS.md
#   QUICK=1 bench/run.sh         about 1 minute smoke run, written to target/bench-quick.md
#
# Environment:
#   EXTRA_TARGETS="nginx=http://127.0.0.1:8081/v1 other=http://..."   more gateways, already
#                                running and pointed at SIM_PORT (set SIM_PORT to fix the port)
#   BENCH_ARGS="..."             extra switchyard-bench flags (e.g. --target-model nginx=fast)
#   BENCH_KEY                    the key every target is sent (default: a random one); give it
#                                when an EXTRA_TARGETS gateway must accept it (an A/B of two
#                                Switchyard builds: the other one's config names its SHA-256)
#   DURATION, WARMUP             seconds per scenario (default 10 and 2; QUICK: 2 and 1)
#   CONCURRENCY, RATES           default "1,16,64" and "500,2000"
#   SIM_PORT, GATEWAY_PORT       default: free ports picked at start
#   GATEWAY_CPU, LOAD_CPU        default 0 and 1
#   LOG_LEVEL                    the gateway's log level (default info, its own default)
#   OUT                          markdown file to append to
#   SKIP_BUILD=1                 use the binaries already built
#   ROUTED=1                     also send the load to the route `auto` of the same gateway
#                                (router + exact and semantic cache on; needs the models of
#                                scripts/fetch-models.sh), as target `switchyard-auto`
#   WORKLOAD                     same (default) | unique | repeat: see switchyard-bench --help
#   GUARDS=1                     also run a second gateway with the demo's guard policy (PII
#                                masking, injection screen, toxicity and compliance), on the
#                                gateway's CPU, as target `switchyard-guarded`
#   SCREEN_FIRST=1               with GUARDS=1, a third gateway with the same policy and
#                                `screen = "first"` (input guards finish before the provider
#                                call starts), as target `switchyard-guarded-first`
#   WEBHOOK_MS=N                 with GUARDS=1, add a webhook guard that answers after N ms
#                                (a remote classifier; a small Python server on the load CPU)
#   UPSTREAM                     mock (default): `switchyard-mock-upstream`, a fixed answer
#                                at next to no cost, so the load CPU is not what limits the
#                                floor | sim: `switchyard sim`, a simulated model
#   UPSTREAM_TTFT_MS=N           the simulated model's time to first token (default 0; not 0
#                                implies UPSTREAM=sim)
#   NGINX=0                      leave out nginx, the floor (default: on when nginx is
#                                installed): a plain reverse proxy, one worker on the gateway's
#                                CPU, target `nginx`; every row's `of floor` is its req/s as a
#                                share of nginx's in the same scenario
#   FLEET=1                      also run the plain gateway as a replica of a fleet: its store in
#                                PostgreSQL and its limits' counters in Redis (both started here,
#                                on the load CPU), as target `switchyard-fleet`
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
source bench/common.sh
TARGET_DIR=${CARGO_TARGET_DIR:-target}
QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    DURATION=${DURATION:-2}
    WARMUP=${WARMUP:-1}
    # A smoke run's numbers are too short to keep next to the real ones.
    OUT=${OUT:-$TARGET_DIR/bench-quick.md}
else
    DURATION=${DURATION:-10}
    WARMUP=${WARMUP:-2}
    OUT=${OUT:-bench/RESULTS.md}
fi
CONCURRENCY=${CONCURRENCY:-1,16,64}
RATES=${RATES:-500,2000}
GATEWAY_CPU=${GATEWAY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
LOG_LEVEL=${LOG_LEVEL:-info}
EXTRA_TARGETS=${EXTRA_TARGETS:-}
BENCH_ARGS=${BENCH_ARGS:-}
ROUTED=${ROUTED:-0}
GUARDS=${GUARDS:-0}
WORKLOAD=${WORKLOAD:-same}
SCREEN_FIRST=${SCREEN_FIRST:-0}
WEBHOOK_MS=${WEBHOOK_MS:-}
UPSTREAM_TTFT_MS=${UPSTREAM_TTFT_MS:-0}
FLEET=${FLEET:-0}
UPSTREAM=${UPSTREAM:-mock}
[[ $UPSTREAM_TTFT_MS == 0 ]] || UPSTREAM=sim
NGINX=${NGINX:-1}
if [[ $NGINX == 1 ]] && ! command -v nginx >/dev/null; then
    echo "warning: nginx is not installed: no floor in this run (apt-get install nginx-light)" >&2
    NGINX=0
fi

release_binaries

begin_work
pin_cpus

SIM_PORT=${SIM_PORT:-$(free_port)}
GATEWAY_PORT=${GATEWAY_PORT:-$(free_port)}

# A throwaway key: the config stores only its SHA-256, and the bench reads it from the
# environment so it never appears in the recorded command line.
KEY=${BENCH_KEY:-"sk-bench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"}
KEY_SHA256=$(printf '%s' "$KEY" | sha256sum | cut -d' ' -f1)

if [[ $UPSTREAM == sim ]]; then
    sim_config "$UPSTREAM_TTFT_MS" 8 >"$work/sim.toml"
    upstream=("$SWITCHYARD" sim --listen "127.0.0.1:$SIM_PORT" --config "$work/sim.toml")
else
    upstream=("$MOCK_UPSTREAM" --listen "127.0.0.1:$SIM_PORT" --tokens 8)
fi

gateway_config "$GATEWAY_PORT" "$work/data" "$LOG_LEVEL" "$SIM_PORT" 16 "$KEY_SHA256" bench >"$work/gateway.toml"
if [[ $ROUTED == 1 ]]; then
    { echo; routed_config; } >>"$work/gateway.toml"
fi

"${pin_load[@]}" "${upstream[@]}" >"$work/sim.log" 2>&1 &
SIM_PID=$!
started+=("$SIM_PID")
wait_ready sim "$SIM_PID" "http://127.0.0.1:$SIM_PORT/healthz" "http://127.0.0.1:$SIM_PORT/v1/models"

targets=()
pids=()
if [[ $NGINX == 1 ]]; then
    NGINX_PORT=$(free_port)
    mkdir -p "$work/nginx/tmp"
    nginx_config "$NGINX_PORT" "$SIM_PORT" >"$work/nginx/nginx.conf"
    "${pin_gateway[@]}" nginx -p "$work/nginx" -c nginx.conf -e stderr >"$work/nginx.log" 2>&1 &
    NGINX_PID=$!
    started+=("$NGINX_PID")
    wait_ready nginx "$NGINX_PID" "http://127.0.0.1:$NGINX_PORT/v1/models"
    # The worker serves; the master only watches it.
    NGINX_WORKER=$(pgrep -P "$NGINX_PID" | head -n 1)
    targets+=(--target "nginx=http://127.0.0.1:$NGINX_PORT/v1")
    pids+=(--gateway-pid "nginx=$NGINX_WORKER")
fi

"${pin_gateway[@]}" "$SWITCHYARD" serve --config "$work/gateway.toml" \
    --listen "127.0.0.1:$GATEWAY_PORT" >"$work/gateway.log" 2>&1 &
GATEWAY_PID=$!
started+=("$GATEWAY_PID")
wait_ready gateway "$GATEWAY_PID" "http://127.0.0.1:$GATEWAY_PORT/healthz"

targets+=(--target "switchyard=http://127.0.0.1:$GATEWAY_PORT/v1")
pids+=(--gateway-pid "switchyard=$GATEWAY_PID")

if [[ $GUARDS == 1 ]]; then
    GUARDED_PORT=$(free_port)
    sed -e "s|$work/data|$work/data-guarded|" "$work/gateway.toml" >"$work/guarded.toml"
    { echo; guard_policy_config; } >>"$work/guarded.toml"
    if [[ -n $WEBHOOK_MS ]]; then
        WEBHOOK_PORT=$(free_port)
        "${pin_load[@]}" python3 bench/webhook.py "$WEBHOOK_PORT" "$WEBHOOK_MS" >"$work/webhook.log" 2>&1 &
        started+=("$!")
        wait_ready webhook "$!" "http://127.0.0.1:$WEBHOOK_PORT/"
        printf '\n[guards.webhook]\nurl = "http://127.0.0.1:%s/verdict"\ntimeout_ms = %s\n' \
            "$WEBHOOK_PORT" "$((WEBHOOK_MS * 4 + 100))" >>"$work/guarded.toml"
    fi
    start_guarded() {
        local name=$1 config=$2 port pid
        port=$(free_port)
        "${pin_gateway[@]}" "$SWITCHYARD" serve --config "$config" \
            --listen "127.0.0.1:$port" >"$work/$name.log" 2>&1 &
        pid=$!
        started+=("$pid")
        wait_ready "$name" "$pid" "http://127.0.0.1:$port/healthz"
        targets+=(--target "$name=http://127.0.0.1:$port/v1")
        pids+=(--gateway-pid "$name=$pid")
    }
    start_guarded switchyard-guarded "$work/guarded.toml"
    if [[ $SCREEN_FIRST == 1 ]]; then
        # The same policy with `screen = "first"` before its first table.
        { printf '[guards]\nscreen = "first"\n\n'
          sed -e "s|$work/data-guarded|$work/data-first|" "$work/guarded.toml"; } >"$work/first.toml"
        start_guarded switchyard-guarded-first "$work/first.toml"
    fi
fi
if [[ $FLEET == 1 ]]; then
    start_fleet_services
    FLEET_PORT=$(free_port)
    sed -e "s|$work/data|$work/data-fleet|" "$work/gateway.toml" >"$work/fleet.toml"
    SWITCHYARD_STORAGE_URL=$PG_URL SWITCHYARD_REDIS_URL=$REDIS_URL "${pin_gateway[@]}" \
        "$SWITCHYARD" serve --config "$work/fleet.toml" --listen "127.0.0.1:$FLEET_PORT" \
        >"$work/fleet.log" 2>&1 &
    FLEET_PID=$!
    started+=("$FLEET_PID")
    wait_ready fleet "$FLEET_PID" "http://127.0.0.1:$FLEET_PORT/healthz"
    targets+=(--target "switchyard-fleet=http://127.0.0.1:$FLEET_PORT/v1")
    pids+=(--gateway-pid "switchyard-fleet=$FLEET_PID")
fi
if [[ $ROUTED == 1 ]]; then
    targets+=(--target "switchyard-auto=http://127.0.0.1:$GATEWAY_PORT/v1" --target-model "switchyard-auto=auto")
    if [[ $FLEET == 1 ]]; then
        # The same route with its cache's shared tier in Redis.
        targets+=(--target "switchyard-fleet-auto=http://127.0.0.1:$FLEET_PORT/v1" --target-model "switchyard-fleet-auto=auto")
    fi
fi
for t in $EXTRA_TARGETS; do
    targets+=(--target "$t")
done

# Raise the open-loop client's file limit: each request in flight can hold a connection.
ulimit -n 65536 2>/dev/null || true

note="Reproduce: \`$( [[ $QUICK == 1 ]] && echo 'QUICK=1 ')$( [[ $ROUTED == 1 ]] && echo 'ROUTED=1 ')$( [[ $GUARDS == 1 ]] && echo 'GUARDS=1 ')$( [[ $SCREEN_FIRST == 1 ]] && echo 'SCREEN_FIRST=1 ')$( [[ -n $WEBHOOK_MS ]] && echo "WEBHOOK_MS=$WEBHOOK_MS ")$( [[ $UPSTREAM_TTFT_MS != 0 ]] && echo "UPSTREAM_TTFT_MS=$UPSTREAM_TTFT_MS ")$( [[ $WORKLOAD != same ]] && echo "WORKLOAD=$WORKLOAD ")$( [[ $FLEET == 1 ]] && echo 'FLEET=1 ')$( [[ $UPSTREAM == sim && $UPSTREAM_TTFT_MS == 0 ]] && echo 'UPSTREAM=sim ')$( [[ $NGINX == 0 ]] && echo 'NGINX=0 ')bench/run.sh\` (upstream: $( [[ $UPSTREAM == sim ]] && echo "\`switchyard sim\` with a model of time to first token ${UPSTREAM_TTFT_MS} ms" || echo "\`switchyard-mock-upstream\`, 8 tokens") on CPU $LOAD_CPU;$( [[ $NGINX == 1 ]] && echo " nginx $(nginx -v 2>&1 | sed 's|.*/||'), one worker, on CPU $GATEWAY_CPU;") gateway: \`switchyard serve\`, log level $LOG_LEVEL, on CPU $GATEWAY_CPU; commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' plus local changes'))."

# shellcheck disable=SC2086 # BENCH_ARGS is meant to split into flags.
SWITCHYARD_BENCH_KEY=$KEY "${pin_load[@]}" "$BENCH" \
    --baseline "http://127.0.0.1:$SIM_PORT/v1" \
    "${targets[@]}" \
    --model fast \
    "${pids[@]}" \
    --workload "$WORKLOAD" \
    --duration "$DURATION" --warmup "$WARMUP" \
    --concurrency "$CONCURRENCY" --rates "$RATES" \
    --stream both \
    --out "$OUT" --json "$TARGET_DIR/bench-results.json" \
    --note "$note" \
    $( [[ $NGINX == 1 ]] && echo --floor nginx ) \
    $BENCH_ARGS

if ! kill -0 "$GATEWAY_PID" 2>/dev/null; then
    echo "error: the gateway exited during the run; its log:" >&2
    tail -n 50 "$work/gateway.log" >&2
    exit 1
fi
