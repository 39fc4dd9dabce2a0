#!/usr/bin/env bash
# A soak: one gateway with the cache, the router and the guards on, under a closed loop of
# distinct prompts for a long time, its memory sampled every few seconds. Memory must level
# off once the cache has filled its byte budget; a line that keeps climbing is a leak.
#
#   bench/soak.sh                       10 minutes at 32 connections, appends to bench/RESULTS.md
#   DURATION=120 bench/soak.sh          a shorter run
#   DEMO=1 DURATION=60 CONCURRENCY=64 bench/soak.sh
#                                       the embedded demo's own config (examples/demo.toml: its
#                                       simulated models, router, cache, guards, SLOs), with a
#                                       bench key added: issue 18's "demo under 160 MiB"
#
# Environment: DURATION (seconds, default 600), CONCURRENCY (default 32), SAMPLE_SECS (default
# 10), CACHE_MB (the cache's byte budget, default 64), OUT (markdown file to append to),
# SKIP_BUILD=1 (use the release binaries already built), GATEWAY_CPU and LOAD_CPU (0 and 1),
# DEMO=1 (the demo's config instead of the simulator upstream and the bench's policy).
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
source bench/common.sh
TARGET_DIR=${CARGO_TARGET_DIR:-target}
DURATION=${DURATION:-600}
CONCURRENCY=${CONCURRENCY:-32}
SAMPLE_SECS=${SAMPLE_SECS:-10}
CACHE_MB=${CACHE_MB:-64}
DEMO=${DEMO:-0}
OUT=${OUT:-bench/RESULTS.md}
GATEWAY_CPU=${GATEWAY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

[[ -f models/minilm-static-256/model.safetensors ]] \
    || { echo "error: the semantic cache needs scripts/fetch-models.sh first" >&2; exit 1; }
release_binaries

begin_work
pin_cpus
SIM_PORT=$(free_port)
GATEWAY_PORT=$(free_port)
new_key soak

sim_config 0 24 >"$work/sim.toml"
if [[ $DEMO == 1 ]]; then
    # The demo as shipped, its data in $work and a key that no limit or budget refuses.
    CACHE_MB=$(awk -F' *= *' '/^max_mb/ {print $2; exit}' examples/demo.toml)
    { sed "s|^data_dir = .*|data_dir = \"$work/data\"|" examples/demo.toml
      printf '\n[[keys]]\nid = "soak"\ntenant = "bench"\nsecret_sha256 = "%s"\n' "$KEY_SHA256"
    } >"$work/gateway.toml"
else
    { gateway_config "$GATEWAY_PORT" "$work/data" warn "$SIM_PORT" "$CACHE_MB" "$KEY_SHA256" soak
      echo; routed_config; echo; guard_policy_config; } >"$work/gateway.toml"
fi

"${pin_load[@]}" "$SWITCHYARD" sim --listen "127.0.0.1:$SIM_PORT" --config "$work/sim.toml" \
    >"$work/sim.log" 2>&1 &
started+=("$!")
wait_ready sim "$!" "http://127.0.0.1:$SIM_PORT/v1/models"
"${pin_gateway[@]}" "$SWITCHYARD" serve --config "$work/gateway.toml" \
    --listen "127.0.0.1:$GATEWAY_PORT" >"$work/gateway.log" 2>&1 &
GATEWAY_PID=$!
started+=("$GATEWAY_PID")
wait_ready gateway "$GATEWAY_PID" "http://127.0.0.1:$GATEWAY_PORT/healthz"

# Memory every SAMPLE_SECS: resident set, split into anonymous memory (the heap, stacks) and
# mapped files (model weights read in as they are used), and the cache's own count of its
# bytes and entries.
sample() {
    local t0=$SECONDS rss metrics
    while kill -0 "$GATEWAY_PID" 2>/dev/null; do
        rss=$(awk '/^(VmRSS|RssAnon|RssFile):/ {printf "%s ", $2}' "/proc/$GATEWAY_PID/status" 2>/dev/null || echo "0 0 0 ")
        metrics=$(curl -fsS --max-time 2 "http://127.0.0.1:$GATEWAY_PORT/metrics" 2>/dev/null || true)
        printf '%s %s%s %s\n' "$((SECONDS - t0))" "$rss" \
            "$(awk '/^switchyard_cache_bytes / {printf "%d", $2}' <<<"$metrics")" \
            "$(awk '/^switchyard_cache_entries / {printf "%d", $2}' <<<"$metrics")"
        sleep "$SAMPLE_SECS"
    done
}
sample >"$work/samples.txt" &
started+=("$!")

SWITCHYARD_BENCH_KEY=$KEY "${pin_load[@]}" "$BENCH" \
    --baseline "http://127.0.0.1:$SIM_PORT/v1" --skip-baseline \
    --target "switchyard-auto=http://127.0.0.1:$GATEWAY_PORT/v1" --model auto \
    --workload unique --stream on --concurrency "$CONCURRENCY" --rates none \
    --duration "$DURATION" --warmup 0 --gateway-pid "switchyard-auto=$GATEWAY_PID" \
    --json "$work/bench.json" | tee "$work/bench.txt"

kill -0 "$GATEWAY_PID" 2>/dev/null || { echo "error: the gateway exited" >&2; tail -50 "$work/gateway.log" >&2; exit 1; }
requests=$(curl -fsS "http://127.0.0.1:$GATEWAY_PORT/metrics" \
    | awk '/^switchyard_requests_total\{/ {s += $2} END {printf "%d", s}')

# The table: one row a minute (or per sample on short runs), then the growth after warm-up,
# taken as the first fifth of the run.
report() {
    local warm=$((DURATION / 5)) step=$(( DURATION >= 300 ? 60 : SAMPLE_SECS ))
    echo
    echo "## Soak, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "Reproduce: \`$( [[ $DEMO == 1 ]] && echo "DEMO=1 ")$( [[ $DURATION != 600 ]] && echo "DURATION=$DURATION ")$( [[ $CONCURRENCY != 32 ]] && echo "CONCURRENCY=$CONCURRENCY ")bench/soak.sh\` (commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD 2>/dev/null || echo ' plus local changes')): the gateway on CPU $GATEWAY_CPU $( [[ $DEMO == 1 ]] && echo "running the embedded demo's config (\`examples/demo.toml\`: simulated models, " || echo "with ")the route \`auto\` (router, exact and semantic cache of $CACHE_MB MB), PII, injection, toxicity and compliance guards, limits and budgets, every request recorded; \`switchyard-bench --workload unique --stream on\` at $CONCURRENCY connections on CPU $LOAD_CPU, a new question every request; $requests requests in all."
    echo
    echo "| seconds | RSS MiB | of it anonymous | of it mapped files | cache MiB | cache entries |"
    echo "|---|---|---|---|---|---|"
    awk -v step="$step" '$1 % step < '"$SAMPLE_SECS"' { printf "| %d | %.1f | %.1f | %.1f | %.1f | %d |\n", $1, $2/1024, $3/1024, $4/1024, $5/1048576, $6 }' "$work/samples.txt"
    awk -v warm="$warm" '
        $1 >= warm && !seen { first = $2; seen = 1 }
        { last = $2; if ($2 > peak) peak = $2 }
        END { printf "\nAfter warm-up (%d s): RSS %.1f MiB then, %.1f MiB at the end (%+.1f MiB), peak %.1f MiB.\n", warm, first/1024, last/1024, (last-first)/1024, peak/1024 }' "$work/samples.txt"
}
report | tee -a "$OUT"
