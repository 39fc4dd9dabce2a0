#!/usr/bin/env bash
# Counts the instructions the gateway executes per request, with valgrind's callgrind: a
# figure that repeats for the same binary and inputs whatever else the machine is doing, so
# two builds can be compared on a busy machine where timings move by a third between runs.
#
# Usage: bench/instructions.sh BINARY [REQUESTS] [STREAM]
#   BINARY    the switchyard binary to measure (and to run the simulated upstream with)
#   REQUESTS  requests counted, after 100 uncounted warm-up ones (default 400)
#   STREAM    true or false (default false)
# The gateway runs `gateway_config` of bench/common.sh (keys, limits, budgets, records; no
# guards; with GUARDS=1 also the demo's guard policy, `guard_policy_config`) in front of
# `switchyard-mock-upstream` (bench/run.sh's upstream; UPSTREAM=sim for `switchyard sim`, what
# the figures before issue 18's SSE decoder were counted against: its stream comes in other
# reads); 16 clients send the same small chat completion, each on a new connection. KEEP=DIR
# keeps the callgrind profile there, for `callgrind_annotate`.
# Counting covers the whole process during the counted requests, background work included
# (the records' writer; the SLO and control loops' ticks), so compare runs of equal REQUESTS
# and repeat: a run that caught a periodic task reads high.
set -euo pipefail
bin=$(realpath "$1"); n=${2:-400}; stream=${3:-false}
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
source bench/common.sh
work=$(mktemp -d)
key=sk-bench-instructions
sha=$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)
sim_port=$(free_port); gateway_port=$(free_port)
sim_config 0 8 >"$work/sim.toml"
{ gateway_config "$gateway_port" "$work/data" info "$sim_port" 16 "$sha" bench
  if [[ ${GUARDS:-0} == 1 ]]; then echo; guard_policy_config; fi; } >"$work/gateway.toml"
if [[ ${UPSTREAM:-mock} == sim ]]; then
    "$bin" sim --listen "127.0.0.1:$sim_port" --config "$work/sim.toml" >"$work/sim.log" 2>&1 &
else
    "$(dirname "$bin")/switchyard-mock-upstream" --listen "127.0.0.1:$sim_port" --tokens 8 >"$work/sim.log" 2>&1 &
fi
sim=$!
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/callgrind.out" \
    "$bin" serve --config "$work/gateway.toml" --listen "127.0.0.1:$gateway_port" \
    >"$work/gateway.log" 2>&1 &
gateway=$!
trap 'kill $sim $gateway 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 600); do
    curl -fs -o /dev/null "http://127.0.0.1:$gateway_port/healthz" && break
    sleep 0.2
done
body='{"model":"fast","stream":'$stream',"messages":[{"role":"user","content":"Say hello to the benchmark"}]}'
send() {
    seq 1 "$1" | xargs -P16 -I{} curl -s -o /dev/null -w '%{http_code}\n' \
        -H "Authorization: Bearer $key" -H 'content-type: application/json' -d "$body" \
        "http://127.0.0.1:$gateway_port/v1/chat/completions" | sort | uniq -c | tr '\n' ' '
}
send 100 >/dev/null
callgrind_control -i on "$gateway" >/dev/null
statuses=$(send "$n")
callgrind_control -i off "$gateway" >/dev/null
callgrind_control -d "$gateway" >/dev/null
total=$(callgrind_annotate "$work/callgrind.out.1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
if [[ -n ${KEEP:-} ]]; then cp "$work/callgrind.out.1" "$KEEP/"; fi
echo "$(basename "$bin") stream=$stream guards=${GUARDS:-0}: $((total / n)) instructions per request ($n requests; statuses: $statuses)"
