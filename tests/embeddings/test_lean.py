"""The numpy query forward is the model itself, and a command-line search never imports the heavy stack."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embeddings.encoder import load_model, model_path
from embeddings.lean import BLOCK_ELEMS, BLOCK_ROWS, LeanEncoder, _gemm, _HalfLinear, _Linear, lean_encoder
from tests.conftest import FAST_KDF, PASSPHRASE
from tests.embeddings.persona import seed
from vault.store import Vault

TEXTS = ["when did I last see Dr. Lee?", "gym", "What did I do the weekend I was in Lisbon? " * 3,
         "Visited Café Nero, Kings Rd (café) on Tue 4 Mar 2025 09:05–09:40 (35 min)",
         "Zoë's ünïcode 東京 🙂 naïve façade", "x " * 400, ""]

HEAVY = ("torch", "transformers", "sentence_transformers")
NOT_FOR_A_SEARCH = ("polars", "pyarrow", "httpx")  # frames are for ingest and writes; httpx for a running server


@pytest.mark.parametrize("half", [True, False], ids=["half-precision products", "float32 numpy products"])
def test_the_numpy_forward_gives_the_models_vectors_alone_and_padded_together(half: bool) -> None:
    model = load_model()
    lean = lean_encoder(model_path()) if half else LeanEncoder(model_path(), half=False)
    assert lean is not None and LeanEncoder.supports(model_path())
    reference = model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    alone = np.concatenate([lean([t]) for t in TEXTS])
    together = lean(TEXTS)  # padded to the longest (truncated at 256 tokens) and masked
    for got in (alone, together):
        assert got.dtype == np.float32 and got.shape == (len(TEXTS), 384)
        assert (got * reference).sum(axis=1).min() > 0.99999
        assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return set(next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []))


def test_the_half_precision_products_are_built_and_used_where_the_cpu_runs_them() -> None:
    """The native products are optional at install: on a machine that runs them they must not be silently
    missing (a failed build would leave every query on the slower float32 products)."""
    if not {"avx2", "fma", "f16c"} <= _cpu_flags():
        pytest.skip("this CPU lacks AVX2, FMA or F16C: the float32 products serve, as designed")
    lean = lean_encoder(model_path())
    assert _gemm() is not None and lean is not None and lean.half
    assert all(isinstance(m, _HalfLinear) for layer in lean.stack for m in (layer.qkv, layer.out, layer.up, layer.down))


@pytest.mark.parametrize("rows", [1, 2, 5, 6, 7, 12, 13, 37])
def test_a_half_precision_product_is_the_float32_product_of_the_rounded_weights(rows: int) -> None:
    gemm = _gemm()
    if gemm is None:
        pytest.skip("the native products do not run on this CPU")
    rng = np.random.default_rng(rows)
    for k, n in ((384, 1152), (1536, 384), (384, 16)):
        w, b = rng.standard_normal((k, n)).astype(np.float32) * 0.05, rng.standard_normal(n).astype(np.float32)
        x = rng.standard_normal((rows, k)).astype(np.float32)
        got = _HalfLinear(w, b, gemm)(x)
        want = x.astype(np.float64) @ w.astype(np.float16).astype(np.float64) + b
        assert got.shape == (rows, n) and got.dtype == np.float32 and got.flags.c_contiguous
        assert np.abs(got - want).max() < 1e-4
        assert np.array_equal(_HalfLinear(w, b, gemm)(np.asfortranarray(x)), got)  # any layout of x


def test_a_half_precision_product_refuses_arrays_of_the_wrong_kind() -> None:
    gemm = _gemm()
    if gemm is None:
        pytest.skip("the native products do not run on this CPU")
    x, strips = np.zeros((3, 32), np.float32), np.zeros((2, 32, 16), np.float16)
    bias, out = np.zeros(32, np.float32), np.zeros((3, 32), np.float32)
    gemm.linear(x, strips, bias, out)
    for args in ((x.astype(np.float64), strips, bias, out), (x, strips.astype(np.float32), bias, out),
                 (x, strips, bias[:16], out), (x, strips, bias, out[:, :16]), (x[:, :16], strips, bias, out),
                 (x, strips, bias, out.T.copy().T), (x, strips, bias, np.zeros((3, 32), np.float32)[::-1])):
        with pytest.raises((ValueError, BufferError)):
            gemm.linear(*args)
    with pytest.raises((ValueError, BufferError)):  # the output must be writable
        gemm.linear(x, strips, bias, np.frombuffer(bytes(out), np.float32).reshape(3, 32))


def test_the_tokenizer_file_counts_and_cuts_as_the_models_tokenizer() -> None:
    tok = load_model().tokenizer
    lean = lean_encoder(model_path())
    assert lean is not None
    assert lean.count_tokens(TEXTS) == [len(ids) for ids in tok(TEXTS, add_special_tokens=False)["input_ids"]]
    for text in TEXTS:
        assert lean.tokenizer.encode(text).ids == tok(text, truncation=True, max_length=256)["input_ids"]


def test_erf_is_float32_exact_over_the_whole_line() -> None:
    import math

    from embeddings.lean import _erf

    xs = np.concatenate([np.linspace(-7, 7, 100_001), [0.0, -0.0, 1e-8, 3.99, 4.0, 4.01, 40.0, -40.0]])
    xs = xs.astype(np.float32)
    got = _erf(xs)
    assert got.dtype == np.float32
    assert np.abs(got.astype(np.float64) - [math.erf(float(x)) for x in xs]).max() < 5e-7


@pytest.mark.parametrize("rows", [1, BLOCK_ROWS - 1, BLOCK_ROWS, BLOCK_ROWS + 1, 3 * BLOCK_ROWS + 7])
def test_a_blocked_product_is_the_plain_product_under_and_over_the_row_bound(rows: int) -> None:
    rng = np.random.default_rng(rows)
    for k, n in ((384, 1152), (1536, 384), (384, 40)):  # the last has no 16-column block: one block of 40
        w, b = rng.standard_normal((k, n)).astype(np.float32), rng.standard_normal(n).astype(np.float32)
        x = rng.standard_normal((rows, k)).astype(np.float32)
        linear = _Linear(w, b)
        assert linear.blocks.shape[1] == k and linear.blocks[0].size <= max(BLOCK_ELEMS, k * n)
        got = linear(x)
        assert got.shape == (rows, n) and got.flags.c_contiguous
        assert np.allclose(got, x @ w + b, rtol=1e-5, atol=1e-4)


def test_only_the_layers_are_copied_and_the_word_table_stays_mapped() -> None:
    for lean in (lean_encoder(model_path()), LeanEncoder(model_path(), half=False)):
        assert lean is not None
        copied = sum((m.strips if isinstance(m, _HalfLinear) else m.blocks).nbytes + m.bias.nbytes
                     for layer in lean.stack for m in (layer.qkv, layer.out, layer.up, layer.down))
        low, high = (20e6, 23e6) if lean.half else (40e6, 45e6)  # 6 layers x 1.77M weights, 2 or 4 bytes each
        assert low < copied < high
        assert not lean.word.flags.owndata and lean.word.nbytes > 45e6  # a view of the weights file's memory map


def test_an_architecture_it_does_not_reproduce_is_refused(tmp_path: Path) -> None:
    for name in ("config.json", "sentence_bert_config.json", "modules.json", "tokenizer.json", "model.safetensors"):
        (tmp_path / name).symlink_to(model_path() / name)
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true}')
    assert not LeanEncoder.supports(tmp_path)
    assert not LeanEncoder.supports(tmp_path / "missing")


def test_a_cold_command_line_search_imports_neither_torch_nor_transformers_nor_polars(tmp_path: Path) -> None:
    home = tmp_path / "home"
    vault, _ = Vault.create(home, PASSPHRASE, kdf=FAST_KDF)
    with vault:
        seed(vault)
    env = {**os.environ, "LIFEVAULT_PASSPHRASE": PASSPHRASE, "LIFEVAULT_HOME": str(home)}
    cli = [sys.executable, "-c", "import sys; from lifevault.cli import main; sys.exit(main())"]
    subprocess.run([*cli, "index"], env=env, check=True, capture_output=True, timeout=600)
    for args in (["search", "when did I last see Dr Lee", "--json"], ["context", "dentist", "--budget", "200", "--json"]):
        run = subprocess.run([sys.executable, "-X", "importtime", *cli[1:], *args], env=env, capture_output=True,
                             text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-2000:]
        assert '"memory_id"' in run.stdout or '"id"' in run.stdout  # it answered with hits
        imported = {line.split("|")[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
        assert imported, "no -X importtime output"
        assert not {m for m in imported if m.split(".")[0] in HEAVY + NOT_FOR_A_SEARCH}, args


def test_the_weights_digest_is_cached_only_for_the_same_file(tmp_path: Path, monkeypatch) -> None:
    import json

    from embeddings import encoder

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    encoder.model_version.cache_clear()
    try:
        first = encoder.model_version()
        cache = tmp_path / "lifevault" / encoder.VERSION_CACHE
        saved = json.loads(cache.read_text())
        assert saved["version"] == first and first.startswith(saved["key"]["wheel"] + "+sha256:")
        saved["key"]["mtime_ns"] += 1  # another file at that path: the cached digest is not trusted
        saved["version"] = "0.1.0+sha256:000000000000"
        cache.write_text(json.dumps(saved))
        encoder.model_version.cache_clear()
        assert encoder.model_version() == first
        cache.write_text("{not json")
        encoder.model_version.cache_clear()
        assert encoder.model_version() == first
    finally:
        encoder.model_version.cache_clear()


def test_counting_tokens_in_one_thread_never_untruncates_a_text_embedded_in_another() -> None:
    """The server counts tokens (context packing) while its query thread embeds: the counting must not
    switch truncation off under the embedding (a 1,000-token text would then reach the 512 positions)."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    lean = lean_encoder(model_path())
    assert lean is not None
    long = ["word " * 1000]

    def count() -> None:
        for _ in range(30):
            assert lean.count_tokens(long) == [1000]

    def embed() -> None:
        for _ in range(10):
            assert lean(long).shape == (1, 384)

    with threadpool_limits(1, "blas"), ThreadPoolExecutor(2) as pool:  # one BLAS thread, as the server runs it
        for f in [pool.submit(count), pool.submit(embed)]:
            f.result()  # counting with the embedding tokenizer's truncation switched off failed here at once
