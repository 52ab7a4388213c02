"""Freed heap goes back to the system once requests pause: once per burst, never on a request's path, and
nothing at all where the C library has no malloc_trim."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from api import heap
from api.app import create_app
from api.heap import TRIM_IDLE_S, IdleTrim
from api.state import ApiSettings
from api.tokens import TokenStore
from tests.conftest import FAST_KDF, PASSPHRASE
from vault.store import Vault


def wait_for(condition, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_a_burst_of_requests_is_trimmed_once_after_it_ends() -> None:
    calls: list[float] = []
    idle = IdleTrim(idle_s=0.2, trim=lambda: calls.append(time.monotonic()) or True).start()
    try:
        for _ in range(10):  # a burst: 10 requests 0.05 s apart, each one putting the trim off
            time.sleep(0.05)
            idle.touch()
        last = time.monotonic()
        assert calls == []  # not during the burst
        assert wait_for(lambda: len(calls) == 1)
        assert calls[0] - last >= 0.19  # only once the server had been idle for idle_s
        time.sleep(0.4)
        assert len(calls) == 1 and idle.trims == 1  # and not again until the next burst
        idle.touch()
        assert wait_for(lambda: len(calls) == 2)
    finally:
        idle.close()


def test_without_malloc_trim_trimming_is_a_no_op_and_starts_no_thread(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    heap._malloc_trim.cache_clear()
    monkeypatch.setattr(heap.platform, "libc_ver", lambda: ("", ""))  # musl, macOS: no glibc
    try:
        assert heap.trim() is False
        idle = IdleTrim(idle_s=0.01).start()
        idle.touch()
        idle.close()
        assert idle._thread is None and idle.trims == 0
    finally:
        heap._malloc_trim.cache_clear()


@pytest.mark.skipif(heap._malloc_trim() is None, reason="glibc only")
def test_on_glibc_trimming_calls_malloc_trim() -> None:
    assert heap.trim() is True


@pytest.mark.skipif(heap._malloc_trim() is None, reason="glibc only")
def test_the_server_trims_once_its_requests_pause(tmp_path) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    with Vault.create(home, PASSPHRASE, kdf=FAST_KDF)[0] as v:
        secret = TokenStore.load(v).create(agent="auditor", scopes=["audit:read"]).secret
    app = create_app(ApiSettings(home=home, passphrase=PASSPHRASE, warm=False))
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        backend = app.state.backend
        assert client.get("/v1/health").status_code == 200  # no vault work: nothing to trim
        time.sleep(TRIM_IDLE_S + 0.3)
        assert backend.heap.trims == 0
        for _ in range(3):
            r = client.get("/v1/audit/events", headers={"Authorization": f"Bearer {secret}"})
            assert r.status_code == 200
        assert wait_for(lambda: backend.heap.trims == 1, timeout=TRIM_IDLE_S + 5)
    assert backend.heap._thread is not None and not backend.heap._thread.is_alive()  # stopped with the server
