"""An indexing run that will embed everything (the first after an ingest, or a rebuild) starts loading the model
in a thread while the tables turn into memories; a run with nothing new to embed, or a vault with no data,
never loads it (a server stays without torch)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from embeddings import encoder as encmod
from embeddings.service import MemoryService
from tests.embeddings.conftest import SessionEncoder
from vault.store import Vault


class CountingEncoder(SessionEncoder):
    def __init__(self) -> None:
        super().__init__()
        self.prefetched = 0

    def prefetch(self) -> threading.Thread:
        self.prefetched += 1
        return super().prefetch()


def _loading() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "lifevault-model-load"]


@pytest.fixture
def counting() -> CountingEncoder:
    return CountingEncoder()


def _ingest(vault: Vault) -> None:
    from ingest.pipeline import run
    from tests.ingest.test_calendar_ics import FIXTURES as ICS_FIXTURES

    window = {"window_start": datetime(2000, 1, 1, tzinfo=UTC), "window_end": datetime(2100, 1, 1, tzinfo=UTC)}
    assert run(vault, [ICS_FIXTURES / "google_bom.ics"], options=window).loaded > 0


def test_the_first_index_after_an_ingest_and_a_rebuild_prefetch_the_model_and_later_runs_do_not(
        vault: Vault, counting: CountingEncoder):
    service = MemoryService(vault, encoder=counting)
    _ingest(vault)
    assert service.index().embedded > 0 and counting.prefetched == 1
    assert not _loading()  # joined before the run returned: a process never exits while torch loads
    service.index()  # nothing new: no model needed
    assert counting.prefetched == 1
    service.index(rebuild=True)
    assert counting.prefetched == 2
    service.close()


def test_an_index_of_a_vault_without_data_does_not_load_the_model(vault: Vault, counting: CountingEncoder):
    service = MemoryService(vault, encoder=counting)
    assert service.index().embedded == 0 and counting.prefetched == 0
    service.close()


def test_a_failing_prefetch_prints_nothing_and_leaves_the_error_to_the_run(monkeypatch, capfd):
    def broken(*_args: object) -> None:
        raise OSError("model weights unreadable")

    monkeypatch.setattr(encmod, "_torch_bert", broken)
    monkeypatch.setattr(encmod, "_bf16_model", broken)
    monkeypatch.setattr(encmod, "load_model", broken)
    encmod.Encoder().prefetch().join(timeout=30)
    assert capfd.readouterr().err == ""
    with pytest.raises(OSError, match="unreadable"):
        encmod.Encoder()._encode_model(["some text"], None)


def test_a_prefetch_and_the_run_that_needs_the_model_share_one_load(monkeypatch):
    loads: list[int] = []
    gate = threading.Event()

    def slow_load() -> object:
        loads.append(1)
        gate.wait(timeout=30)
        return object()

    monkeypatch.setattr(encmod, "_load_model", __import__("functools").cache(slow_load))
    first = threading.Thread(target=encmod.load_model)
    first.start()  # a prefetch, still loading
    second: list[object] = []
    waiter = threading.Thread(target=lambda: second.append(encmod.load_model()))
    waiter.start()  # the run, asking for the model meanwhile
    gate.set()
    first.join(timeout=30)
    waiter.join(timeout=30)
    assert loads == [1] and second and second[0] is encmod._load_model()
