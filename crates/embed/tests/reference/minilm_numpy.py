"""Reference vectors for crates/embed/tests/minilm.rs, from an implementation independent of candle.

sentence-transformers needs torch, which this project does not install, so this is BERT written
out in numpy (float64) from the Hugging Face `modeling_bert` equations: embeddings + LayerNorm,
6 post-norm encoder layers (12-head attention, erf GELU), then sentence-transformers' pooling
(mean over the attention mask) and normalisation. Tokenization uses the `tokenizers` Python
package on the same tokenizer.json.

    python3 -m venv target/ref-venv && target/ref-venv/bin/pip install numpy safetensors tokenizers
    target/ref-venv/bin/python crates/embed/tests/reference/minilm_numpy.py models/all-MiniLM-L6-v2
"""

import json
import math
import sys

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

SENTENCES = [
    "How do I reset my password?",
    "What is the procedure to change my login password?",
    "The weather in Lisbon is sunny today.",
    "A man is playing a guitar on the stage.",
]

erf = np.vectorize(math.erf)


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def embed(folder, text):
    cfg = json.load(open(f"{folder}/config.json"))
    w = {k: v.astype(np.float64) for k, v in load_file(f"{folder}/model.safetensors").items()}
    tok = Tokenizer.from_file(f"{folder}/tokenizer.json")
    tok.no_padding()
    ids = tok.encode(text).ids
    n, h, heads, eps = len(ids), cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
    x = (w["embeddings.word_embeddings.weight"][ids]
         + w["embeddings.position_embeddings.weight"][:n]
         + w["embeddings.token_type_embeddings.weight"][0])
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    d = h // heads
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        lin = lambda t, name: t @ w[p + name + ".weight"].T + w[p + name + ".bias"]
        q = lin(x, "attention.self.query").reshape(n, heads, d).transpose(1, 0, 2)
        k = lin(x, "attention.self.key").reshape(n, heads, d).transpose(1, 0, 2)
        v = lin(x, "attention.self.value").reshape(n, heads, d).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        a = (s @ v).transpose(1, 0, 2).reshape(n, h)
        x = layer_norm(lin(a, "attention.output.dense") + x,
                       w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], eps)
        m = lin(x, "intermediate.dense")
        m = 0.5 * m * (1.0 + erf(m / math.sqrt(2.0)))
        x = layer_norm(lin(m, "output.dense") + x,
                       w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
    v = x.mean(0)
    return v / np.linalg.norm(v), n


if __name__ == "__main__":
    folder = sys.argv[1]
    vecs = []
    for s in SENTENCES:
        v, n = embed(folder, s)
        vecs.append(v)
        print(f"{s!r}: {n} tokens, first 4 components {[round(float(x), 7) for x in v[:4]]}")
    for i in range(len(vecs)):
        for j in range(i + 1, len(vecs)):
            print(f"cos({i},{j}) = {float(vecs[i] @ vecs[j]):.7f}")
