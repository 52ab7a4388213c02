"""The indexing forward pass of all-MiniLM-L6-v2 on torch alone: no transformers, no sentence-transformers.

An indexing run embeds thousands of texts, which wants torch's batched kernels (bfloat16 where the CPU has
them), but importing sentence-transformers and transformers on top of torch costs ~5 s of one core before
the first batch. This module builds the same network from the weights file (read as embeddings/lean.py
reads it) and the model's own `tokenizers` file: BERT (absolute positions, exact erf GELU, post-LayerNorm,
scaled-dot-product attention with padded keys masked) + mean pooling + L2 normalisation, in the dtype the
run asks for, with the operations in the order the model's own code runs them. It serves only where
`LeanEncoder.supports` recognises that architecture in the model's config files (else the model is loaded
as before); tests/embeddings/test_torch_bert.py holds it to sentence-transformers' own vectors.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from embeddings.lean import LeanEncoder, _read_safetensors, load_tokenizer, read_shape


class TorchBert:
    """Normalised float32 sentence vectors for batches of token ids, computed in `dtype` on torch."""

    def __init__(self, path: Path, dtype: str) -> None:
        import torch

        self.shape = read_shape(path)
        self.dtype = torch.bfloat16 if dtype == "bfloat16" else torch.float32
        self.tokenizer = load_tokenizer(path, self.shape.max_tokens)
        raw = _read_safetensors(path / "model.safetensors")
        self.w = {k.removeprefix("bert."): torch.from_numpy(np.array(v, dtype=np.float32)).to(self.dtype)
                  for k, v in raw.items() if not k.endswith("position_ids")}

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Each text's token ids with [CLS] and [SEP], truncated to the model's max_seq_length."""
        return [e.ids for e in self.tokenizer.encode_batch(texts)]

    def __call__(self, ids: list[list[int]]) -> np.ndarray:
        import torch
        from torch.nn import functional as F  # noqa: N812 - torch's own convention

        w, (h, d, eps) = self.w, (self.shape.heads, self.shape.dim, self.shape.eps)
        b, n = len(ids), max(len(row) for row in ids)
        tokens = torch.zeros((b, n), dtype=torch.long)
        present = torch.zeros((b, n), dtype=torch.bool)
        for i, row in enumerate(ids):
            tokens[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            present[i, : len(row)] = True
        hd = d // h
        x = (w["embeddings.word_embeddings.weight"][tokens] + w["embeddings.token_type_embeddings.weight"][0]
             + w["embeddings.position_embeddings.weight"][:n])
        x = F.layer_norm(x, (d,), w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        mask = torch.zeros((b, 1, 1, n), dtype=self.dtype)  # padded keys get the dtype's minimum
        mask.masked_fill_(~present[:, None, None, :], torch.finfo(self.dtype).min)
        for i in range(self.shape.layers):
            p = f"encoder.layer.{i}."
            q, k, v = (F.linear(x, w[f"{p}attention.self.{name}.weight"], w[f"{p}attention.self.{name}.bias"])
                       .view(b, n, h, hd).transpose(1, 2) for name in ("query", "key", "value"))
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            a = F.linear(a.transpose(1, 2).reshape(b, n, d), w[p + "attention.output.dense.weight"],
                         w[p + "attention.output.dense.bias"])
            x = F.layer_norm(a + x, (d,), w[p + "attention.output.LayerNorm.weight"],
                             w[p + "attention.output.LayerNorm.bias"], eps)
            f = F.gelu(F.linear(x, w[p + "intermediate.dense.weight"], w[p + "intermediate.dense.bias"]))
            f = F.linear(f, w[p + "output.dense.weight"], w[p + "output.dense.bias"])
            x = F.layer_norm(f + x, (d,), w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
        keep = present.unsqueeze(-1).to(x.dtype)
        pooled = (x * keep).sum(1) / torch.clamp(keep.sum(1), min=1e-9)
        # normalised in the run's dtype, as the model's Normalize module does, then again in float32 as the
        # encoder did the model's output: the same rounding as before
        pooled = F.normalize(pooled, p=2, dim=1).float()
        return F.normalize(pooled, p=2, dim=1).numpy()


def supported(path: Path) -> bool:
    """The architecture this builds (the same checks as the numpy forward)."""
    return LeanEncoder.supports(path)


@functools.cache
def torch_bert(path: Path, dtype: str) -> TorchBert:
    """The process-wide indexing forward for the model at `path` in `dtype` (callers hold encoder's lock)."""
    return TorchBert(path, dtype)
