#!/usr/bin/env bash
# A mixed overload against a simulated continuous-batching engine, with priorities and without
# (FIFO), in one run: interactive traffic at half the engine's capacity plus a flood of batch
# work. Appends the figures to bench/RESULTS.md (OUT). About 3 minutes with DURATION=30.
#
#   bench/overload.sh
#
# The upstream is `switchyard sim` serving one model on an engine of SLOTS sequence slots
# (vLLM's /metrics, priority scheduling by the body's `priority`); the gateway declares the same
# capacity for its deployment, so requests beyond it wait in the gateway's queue by class.
# Scenarios, each DURATION seconds, with `switchyard loadgen` (streamed interactive requests on
# an open-loop schedule, so their times count from when each was due; batch requests from
# BATCH_WORKERS closed-loop workers):
#   capacity     batch alone: what the engine completes per second when saturated (C)
#   alone        interactive alone at C/2 per second: the reference time to first token
#   priorities   interactive at C/2 with the batch flood, batch sent as class `batch`
#   fifo         the same, every request in one class (the gateway's queue is then first come,
#                first served, and the engine's too)
# Environment: DURATION (30), SLOTS (8), BATCH_WORKERS (32), OUTPUT_TOKENS (24), OUT,
# SKIP_BUILD=1, GATEWAY_CPU/LOAD_CPU (0/1).
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
source bench/common.sh
TARGET_DIR=${CARGO_TARGET_DIR:-target}
DURATION=${DURATION:-30}
SLOTS=${SLOTS:-8}
BATCH_WORKERS=${BATCH_WORKERS:-32}
OUTPUT_TOKENS=${OUTPUT_TOKENS:-24}
OUT=${OUT:-bench/RESULTS.md}
GATEWAY_CPU=${GATEWAY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

release_binaries

begin_work
pin_cpus

SIM_PORT=$(free_port)
GATEWAY_PORT=$(free_port)
new_key bench

cat >"$work/sim.toml" <<EOF
[providers.sim]
kind = "sim"
seed = 7

[providers.sim.models.engine]
output_tokens = { p50 = $OUTPUT_TOKENS, min = $OUTPUT_TOKENS, max = $OUTPUT_TOKENS }

[providers.sim.models.engine.engine]
slots = $SLOTS
kv_tokens = 65536
prefill_ms = 20
prefill_ms_per_1k_tokens = 40
decode_ms = 10
decode_ms_per_sequence = 1
EOF

cat >"$work/gateway.toml" <<EOF
[server]
listen = "127.0.0.1:$GATEWAY_PORT"

[storage]
data_dir = "$work/data"

[telemetry]
log_format = "text"
log_level = "warn"

[providers.engine]
kind = "openai"
base_url = "http://127.0.0.1:$SIM_PORT/v1"
engine = "vllm"
priority_scheduling = true

[models.local]
deployments = [{ provider = "engine", upstream_model = "engine", capacity = { max_concurrent = $SLOTS } }]
price = { input_per_mtok = 0.05, output_per_mtok = 0.10 }

[[keys]]
id = "bench"
secret_sha256 = "$KEY_SHA256"
max_priority = "critical"
EOF

"${pin_load[@]}" "$SWITCHYARD" sim --listen "127.0.0.1:$SIM_PORT" --config "$work/sim.toml" \
    >"$work/sim.log" 2>&1 &
started+=("$!")
wait_ready sim "$!" "http://127.0.0.1:$SIM_PORT/v1/models"
"${pin_gateway[@]}" "$SWITCHYARD" serve --config "$work/gateway.toml" >"$work/gateway.log" 2>&1 &
started+=("$!")
wait_ready gateway "$!" "http://127.0.0.1:$GATEWAY_PORT/healthz"

loadgen() {
    "${pin_load[@]}" "$SWITCHYARD" loadgen --target "http://127.0.0.1:$GATEWAY_PORT" \
        --key "$KEY" --model local --mix simple=1 --feedback-share 0 --duration "${DURATION}s" \
        --json "$@"
}

preemptions() {
    curl -fsS "http://127.0.0.1:$GATEWAY_PORT/metrics" |
        awk '/^switchyard_preemptions_total/ { s += $NF } END { print s + 0 }'
}

# capacity: the batch flood alone.
loadgen --concurrency "$BATCH_WORKERS" --stream-share 0 --priority batch=1 --seed 1 \
    >"$work/capacity.json"
capacity=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["overall"]; print(s["ok"] / float(sys.argv[2]))' \
    "$work/capacity.json" "$DURATION")
rate=$(python3 -c "print(round($capacity / 2, 2))")

# alone: interactive at half the capacity.
loadgen --rate "$rate" --stream-share 1 --priority interactive=1 --seed 2 >"$work/alone.json"

# priorities and fifo: the same interactive load with the flood beside it.
mixed() {
    local name=$1 batch_class=$2 before after
    before=$(preemptions)
    loadgen --concurrency "$BATCH_WORKERS" --stream-share 0 --priority "$batch_class=1" \
        --seed 3 >"$work/$name-batch.json" &
    local flood=$!
    loadgen --rate "$rate" --stream-share 1 --priority interactive=1 --seed 2 \
        >"$work/$name-interactive.json"
    wait "$flood"
    after=$(preemptions)
    echo $((after - before)) >"$work/$name-preemptions"
}
mixed priorities batch
mixed fifo interactive

python3 - "$work" "$DURATION" "$capacity" "$rate" "$SLOTS" "$BATCH_WORKERS" "$OUTPUT_TOKENS" \
    >"$work/section.md" <<'PY'
import json, sys, datetime, platform, os
work, duration, capacity, rate, slots, workers, tokens = sys.argv[1:]
duration, capacity, rate = float(duration), float(capacity), float(rate)
def load(name):
    return json.load(open(os.path.join(work, name)))["overall"]
alone = load("alone.json")
free = capacity - alone["ok"] / duration
rows = []
def ms(v):
    return "-" if v is None else f"{v:.0f}"
for name in ("priorities", "fifo"):
    i = load(f"{name}-interactive.json")
    b = load(f"{name}-batch.json")
    pre = open(os.path.join(work, f"{name}-preemptions")).read().strip()
    goodput = b["ok"] / duration
    rows.append(
        f"| {name} | {ms(i['ttft_ms_p50'])} | {ms(i['ttft_ms_p99'])} | {i['ok']} | {i['shed']} "
        f"| {i['requests'] - i['ok'] - i['shed']} | {goodput:.1f} | {100 * goodput / free:.0f}% | {b['shed']} | {pre} |"
    )
print(f"\n## Mixed overload: priorities against FIFO ({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC)\n")
print(f"Command: `bench/overload.sh` (DURATION={duration:g}, SLOTS={slots}, BATCH_WORKERS={workers}, "
      f"OUTPUT_TOKENS={tokens}); release build; {os.cpu_count()} CPUs, {platform.machine()}.")
print(f"The engine completes {capacity:.1f} batch requests/s when saturated (scenario `capacity`); "
      f"interactive traffic is sent at {rate:g}/s (half of it), streamed, open loop.\n")
print("| scenario | interactive TTFT p50 ms | p99 ms | interactive ok | shed | failed | batch goodput /s | of free capacity | batch shed | preemptions |")
print("|---|---|---|---|---|---|---|---|---|---|")
print(f"| alone (no batch) | {ms(alone['ttft_ms_p50'])} | {ms(alone['ttft_ms_p99'])} | {alone['ok']} | {alone['shed']} "
      f"| {alone['requests'] - alone['ok'] - alone['shed']} | - | - | - | - |")
for r in rows:
    print(r)
print(f"\nFree capacity = {capacity:.1f} - {alone['ok'] / duration:.1f} interactive/s = {free:.1f}/s.")
PY
cat "$work/section.md"
cat "$work/section.md" >>"$OUT"
echo "appended to $OUT"
