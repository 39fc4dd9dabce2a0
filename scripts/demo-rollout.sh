#!/usr/bin/env bash
# Walks through versioned prompts and canary rollouts against the running embedded demo
# (`cargo run --release` in another terminal): pushes a prompt and a second version, rolls the
# second version out to a growing share of users until it is promoted, then rolls out a much
# slower model and watches the gateway roll it back by itself. Prints what it does.
#
#   scripts/demo-rollout.sh            uses target/release/switchyard
#   SWITCHYARD_BIN=path scripts/demo-rollout.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${SWITCHYARD_BIN:-target/release/switchyard}
export SWITCHYARD_URL=${SWITCHYARD_URL:-http://127.0.0.1:8080}
export SWITCHYARD_ADMIN_KEY=${SWITCHYARD_ADMIN_KEY:-sk-switchyard-admin}
KEY=${SWITCHYARD_KEY:-sk-switchyard-demo}
RUN=$(date +%s)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

# Sends N chat requests from N different users, 16 at a time.
traffic() {
    local n=$1 body=$2
    echo "(sending $n requests from $n users)"
    seq "$n" | xargs -P 16 -I{} curl -s -o /dev/null "$SWITCHYARD_URL/v1/chat/completions" \
        -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" \
        -d "${body/USER/user-$RUN-\{\}}"
}

# 1. A prompt, versioned like code: version 1 in production, version 2 in staging.
say "$BIN" prompt push examples/prompts/support-answer.toml --label production -m "first version"
sed 's/Be brief and answer only from the articles./Be brief, warm, and answer only from the articles./' \
    examples/prompts/support-answer.toml >"$work/support-answer.toml"
say "$BIN" prompt push "$work/support-answer.toml" --label staging -m "a warmer tone"
V2=$("$BIN" prompt show support-answer --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["labels"]["staging"])')

# 2. Canary: version 2 to 20% of users, then 50%, then everyone, each step judged against
#    version 1 (errors, guard failures, latency, feedback). Steps are short for the demo.
say "$BIN" rollout start prompt support-answer@production "$V2" --id "prompt-$RUN" \
    --steps 20,50,100 --min-step-secs 0 --min-step-requests 20 --min-samples 20 \
    --reason "demo: a warmer tone"
traffic 400 '{"model": "prompt:support-answer", "user": "USER", "max_tokens": 24, "prompt": {"variables": {"question": "How do I reset my password?"}}}'
say "$BIN" rollout status "prompt-$RUN"
say "$BIN" prompt list

# 3. A bad candidate: `frontier` answers far slower than `small`. The p95 latency check
#    breaches and the gateway rolls it back by itself; everyone is back on `small`.
say "$BIN" rollout start model small frontier --id "model-$RUN" \
    --steps 20,50,100 --min-step-secs 0 --min-step-requests 20 --min-samples 20 \
    --reason "demo: is frontier fast enough?"
traffic 200 '{"model": "small", "user": "USER", "max_tokens": 24, "messages": [{"role": "user", "content": "Hello!"}]}'
say "$BIN" rollout status "model-$RUN"

# 4. Every step above is in the audit log, hash-chained.
say "$BIN" audit list --limit 20
say "$BIN" audit verify
