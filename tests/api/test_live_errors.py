"""A user error keeps its one-line message through the running server, and a bad --format is a usage error."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from lifevault.cli import main
from tests.api.conftest import Live
from tests.conftest import PASSPHRASE

ICS = Path(__file__).resolve().parents[1] / "ingest" / "fixtures" / "calendar" / "work.ics"
FAST = ["--kdf-memory-mib", "19", "--kdf-iterations", "2", "--kdf-lanes", "1"]  # the KDF floor


def one_line(err: str) -> str:
    assert "Traceback" not in err and err.strip().count("\n") == 0, err
    return err.strip()


def test_ingest_of_a_missing_file_through_the_server_says_which_file(live: Live, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("LIFEVAULT_PASSPHRASE", raising=False)
    code = main(["ingest", "/nonexistent/x", "--home", str(live.home)])
    err = one_line(capsys.readouterr().err)
    assert code == 1 and "/nonexistent/x" in err and "nothing was ingested" in err
    assert "IngestError" not in err and "running server" in err


@pytest.mark.parametrize(("args", "says"), [
    (["search", "coffee", "--k", "150"], "k: Input should be less than or equal to 100"),
    (["remember", "x" * 20_001], "text: String should have at most 20000 characters"),
])
def test_a_job_the_server_refuses_shows_the_servers_message(live: Live, capsys, monkeypatch, args, says) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("LIFEVAULT_PASSPHRASE", raising=False)
    code = main([*args, "--home", str(live.home)])
    err = one_line(capsys.readouterr().err)
    assert code == 1 and says in err and "422" in err


def test_an_unknown_format_is_a_usage_error_before_anything_is_sent(live: Live, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("LIFEVAULT_PASSPHRASE", raising=False)
    code = main(["ingest", str(ICS), "--format", "nosuch", "--home", str(live.home)])
    err = capsys.readouterr().err
    assert code == 2 and "'nosuch' is not one of" in err and "ics" in err and "internal error" not in err


def test_the_api_answers_an_unknown_format_with_422_naming_the_field(live: Live) -> None:
    r = httpx.post(f"{live.url}/v1/ingest", json={"paths": [str(ICS)], "format": "nosuch"},
                   headers={"Authorization": f"Bearer {live.tokens['owner']}"}, timeout=60)
    assert r.status_code == 422, r.text
    (problem,) = r.json()["detail"]
    assert problem["loc"] == ["body", "format"] and "unknown format" in problem["msg"] and "ics" in problem["msg"]


def test_the_api_answers_a_missing_path_with_its_message(live: Live) -> None:
    r = httpx.post(f"{live.url}/v1/ingest", json={"paths": ["/nonexistent/x"]},
                   headers={"Authorization": f"Bearer {live.tokens['owner']}"}, timeout=60)
    assert r.status_code == 400 and "/nonexistent/x" in r.json()["detail"] and "IngestError" not in r.text


def test_an_unknown_format_without_a_server_is_a_usage_error(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("LIFEVAULT_HOME", str(tmp_path / "home"))
    assert main(["init", *FAST]) == 0
    capsys.readouterr()
    code = main(["ingest", str(ICS), "--format", "nosuch"])
    err = capsys.readouterr().err
    assert code == 2 and "'nosuch' is not one of" in err and "internal error" not in err and "Traceback" not in err


def test_an_error_message_is_one_line_of_at_most_its_bound() -> None:
    from api.app import MAX_ERROR_CHARS, one_line

    assert one_line("x" * MAX_ERROR_CHARS) == "x" * MAX_ERROR_CHARS
    cut = one_line("x" * (MAX_ERROR_CHARS + 1))
    assert len(cut) == MAX_ERROR_CHARS and cut.endswith("…")
    assert one_line("first line\nsecond line") == "first line"
