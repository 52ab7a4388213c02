"""An indexing run embeds through the model's network built on torch alone (embeddings/torch_bert.py): the
same token ids and the same vectors as sentence-transformers' own model, without importing it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from embeddings.encoder import Encoder, _bf16_model, load_model, model_path
from embeddings.torch_bert import TorchBert

TEXTS = ["when did I last see Dr. Lee?", "gym", "What did I do the weekend I was in Lisbon? " * 3,
         "Used BBC News (News) on Fri 1 Nov 2024 07:21–07:23: 2 min", "café Nero, King's Rd — 9:05", "x" * 2000,
         "a long note about the garden " * 80,
         "Calendar: Daily standup on Fri 1 Nov 2024 09:30–09:45 at Google Meet. Join: https://meet.google.com/a-b"]


def test_the_token_ids_are_the_models_own_truncated_at_its_max_seq_length() -> None:
    model = load_model()
    expected = model.tokenizer(TEXTS, truncation=True, max_length=model.max_seq_length)["input_ids"]
    assert TorchBert(model_path(), "float32").token_ids(TEXTS) == expected
    assert max(len(x) for x in expected) == model.max_seq_length  # the long text was cut


def test_float32_vectors_are_sentence_transformers_own() -> None:
    import torch

    bert = TorchBert(model_path(), "float32")
    with torch.inference_mode():
        mine = bert(bert.token_ids(TEXTS))
    reference = load_model().encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    assert mine.dtype == np.float32 and mine.shape == (len(TEXTS), 384)
    assert (mine * reference).sum(axis=1).min() > 0.99999


def test_bfloat16_vectors_match_the_models_bfloat16_copy_padded_in_one_batch() -> None:
    import torch

    bert = TorchBert(model_path(), "bfloat16")
    with torch.inference_mode():
        mine = bert(bert.token_ids(TEXTS))  # one batch: short texts padded to the longest and masked
        alone = np.concatenate([bert(bert.token_ids([t])) for t in TEXTS])
        model = _bf16_model()
        batch = model.tokenizer(TEXTS, truncation=True, max_length=model.max_seq_length, padding=True,
                                return_tensors="pt")
        theirs = torch.nn.functional.normalize(model(dict(batch))["sentence_embedding"].float(), dim=1).numpy()
    assert (mine * theirs).sum(axis=1).min() > 0.9999
    assert (mine * alone).sum(axis=1).min() > 0.9999  # padding changes nothing but bfloat16 rounding


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_an_indexing_run_imports_neither_sentence_transformers_nor_transformers(dtype: str) -> None:
    code = (f"from embeddings.encoder import Encoder, LEAN_MAX_TEXTS\nimport sys\n"
            f"v = Encoder(dtype={dtype!r}).encode(['a text %d' % i for i in range(LEAN_MAX_TEXTS + 5)])\n"
            "assert v.shape[0] == LEAN_MAX_TEXTS + 5 and 'torch' in sys.modules\n"
            "print(sorted(m for m in ('sentence_transformers', 'transformers') if m in sys.modules))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "[]"


def test_the_encoder_falls_back_to_the_model_where_the_architecture_is_another(monkeypatch) -> None:
    from embeddings import encoder as encmod
    from embeddings import torch_bert

    texts = TEXTS * 6  # more than a note's few: the indexing path
    built = Encoder(dtype="float32")._encode_model(texts, None)
    monkeypatch.setattr(torch_bert, "supported", lambda path: False)
    assert encmod._torch_bert("float32") is None
    fallback = Encoder(dtype="float32")._encode_model(texts, None)
    assert (built * fallback).sum(axis=1).min() > 0.99999
