#!/usr/bin/env bash
# The project's test command. Creates .venv with the OpenAI and Anthropic Python SDKs and pytest (for the SDK
# conformance test) when it is missing, then runs every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build the tests first: the static embedding model is distilled with the test build's own
# binary (no separate release build), once; later runs find the models and skip it.
cargo test --workspace --no-run "$@"
[ -x target/debug/switchyard ] || cargo build -p switchyard
SWITCHYARD_BIN=target/debug/switchyard scripts/fetch-models.sh

if ! .venv/bin/python -c "import anthropic, openai, pytest, yaml" 2>/dev/null; then
  echo "==> creating .venv with the test requirements (tests/sdk/requirements.txt)"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
fi

cargo test --workspace "$@"
