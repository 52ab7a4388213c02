"""Least privilege on the writing side and at the bounds: forget selects in the token's view, writing never
implies reading, and note metadata is bounded when written and never breaks a read."""

from __future__ import annotations

import json
from typing import Any

import pytest

from embeddings.lexical import tokens as lexical_tokens
from embeddings.records import MAX_METADATA_BYTES, MAX_METADATA_DEPTH
from tests.api.conftest import Served


def _token(served: Served, scopes: list[str], location: str) -> str:
    r = served.call("POST", "/v1/tokens", "owner", json={"agent": f"lp-{'-'.join(scopes)}-{location}",
                                                         "scopes": scopes, "location": location})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def _preview(served: Served, token: str, body: dict[str, Any]) -> dict[str, Any]:
    r = served.call("POST", "/v1/forget", token, json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _nested(depth: int) -> dict[str, Any]:
    """A JSON object nested `depth` levels (an object holding a scalar is one level)."""
    out: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        out = {"a": out}
    return out


def test_forget_by_a_hidden_place_name_selects_nothing_for_a_coarse_token(served: Served) -> None:
    coarse = _token(served, ["memory:read", "memory:write", "location:read"], "coarse")
    assert _preview(served, "owner", {"query": "PureGym"})["memories"] >= 2  # the test can fail
    hidden = _preview(served, coarse, {"query": "PureGym"})
    assert hidden["memories"] == 0 and hidden["preview"] == [] and hidden["by_kind"] == {}
    shown = _preview(served, coarse, {"query": "gym"})  # what it is shown ("Visited a gym ...") it may forget
    assert shown["memories"] >= 2 and all("PureGym" not in p["text"] for p in shown["preview"])
    r = served.call("POST", "/v1/forget", coarse, json={"query": "PureGym", "commit": True, "digest": hidden["digest"]})
    assert r.status_code == 200 and r.json()["memories"] == 0
    assert _preview(served, "owner", {"query": "PureGym"})["memories"] >= 2


def test_forget_by_an_event_address_selects_nothing_without_location_scope(served: Served) -> None:
    writer = _token(served, ["memory:read", "memory:write"], "none")
    assert _preview(served, "owner", {"query": "Harley", "kinds": ["event"]})["memories"] == 1
    assert _preview(served, writer, {"query": "Harley"})["memories"] == 0
    assert _preview(served, writer, {"query": "Lee check-up"})["memories"] == 1  # its title it does see


def test_a_write_only_token_previews_forgets_as_ids_and_counts_without_texts(served: Served) -> None:
    writer = _token(served, ["memory:write"], "none")
    for kinds in (["event"], ["usage"]):
        p = _preview(served, writer, {"kinds": kinds})
        assert p["memories"] > 0 and p["preview"]
        assert all(item["text"] is None and item["start"] is None for item in p["preview"])
        assert all(set(item) == {"id", "kind", "text", "start"} for item in p["preview"])
    refused = served.call("POST", "/v1/forget", writer, json={"query": "Lee"})
    assert refused.status_code == 403 and "memory:read" in refused.json()["detail"]
    reader = _preview(served, "owner", {"kinds": ["event"]})
    assert all(item["text"] for item in reader["preview"])  # the test can fail


def test_a_write_only_token_edits_a_note_and_gets_back_only_its_id_and_version(served: Served) -> None:
    writer = _token(served, ["memory:write"], "none")
    made = served.call("POST", "/v1/memories", writer, json={"text": "Secret plan: Quorble surprise party",
                                                            "metadata": {"guest": "Xanthe"}})
    assert made.status_code == 201 and set(made.json()) == {"id"}
    mid = made.json()["id"]
    try:
        for _ in range(3):
            r = served.call("PATCH", f"/v1/memories/{mid}", writer, json={})
            assert r.status_code == 200 and r.json() == {"id": mid, "version": 1}
        r = served.call("PATCH", f"/v1/memories/{mid}", writer, json={"tags": ["party"]})
        assert r.json() == {"id": mid, "version": 2} and "Quorble" not in r.text and "Xanthe" not in r.text
        owner = served.call("PATCH", f"/v1/memories/{mid}", "owner", json={"tags": ["party"]})  # as it is: no change
        assert owner.json()["version"] == 2 and owner.json()["text"].startswith("Secret plan")
    finally:
        served.call("DELETE", f"/v1/memories/{mid}", "owner")


@pytest.mark.parametrize(("depth", "status"), [(MAX_METADATA_DEPTH, 201), (MAX_METADATA_DEPTH + 1, 422)])
def test_note_metadata_is_accepted_up_to_the_depth_bound_and_refused_past_it(served: Served, depth: int,
                                                                             status: int) -> None:
    r = served.call("POST", "/v1/memories", "owner", json={"text": f"depth probe {depth}", "metadata": _nested(depth)})
    assert r.status_code == status, r.text
    if status == 422:
        assert f"nested deeper than {MAX_METADATA_DEPTH} levels" in r.text
    else:
        got = served.call("GET", f"/v1/memories/{r.json()['id']}", "owner")
        assert got.status_code == 200 and got.json()["metadata"] == _nested(depth)
        served.call("DELETE", f"/v1/memories/{r.json()['id']}", "owner")


@pytest.mark.parametrize(("extra", "status"), [(0, 201), (1, 422)])
def test_note_metadata_is_accepted_up_to_the_size_bound_and_refused_past_it(served: Served, extra: int,
                                                                            status: int) -> None:
    frame = len(json.dumps({"pad": ""}))
    meta = {"pad": "x" * (MAX_METADATA_BYTES - frame + extra)}
    r = served.call("POST", "/v1/memories", "owner", json={"text": "size probe", "metadata": meta})
    assert r.status_code == status, r.text
    if status == 422:
        assert f"larger than {MAX_METADATA_BYTES} bytes" in r.text
    else:
        served.call("DELETE", f"/v1/memories/{r.json()['id']}", "owner")


def test_a_deep_note_stored_before_the_bounds_never_breaks_search_or_get(served: Served) -> None:
    word = "Vexillographic"
    made = served.call("POST", "/v1/memories", "owner", json={"text": f"{word} note", "metadata": {"ok": 1}})
    mid = made.json()["id"]
    b = served.client.app.state.backend
    try:
        with b.lock:  # as a note written before the bounds existed: 300 levels, straight into the table
            b.vault.execute("UPDATE memories SET metadata = ? WHERE memory_id = ?", [json.dumps(_nested(300)), mid])
            b.service._rows.clear()
        for token in ("owner", "memory:read"):
            r = served.call("POST", "/v1/search", token, json={"query": word, "k": 5, "explain": True})
            assert r.status_code == 200, r.text
            assert r.json()["hits"][0]["id"] == mid and r.json()["hits"][0]["metadata"] is None
            one = served.call("GET", f"/v1/memories/{mid}", token)
            assert one.status_code == 200 and one.json()["metadata"] is None
        ctx = served.call("POST", "/v1/context", "owner", json={"task": word})
        assert ctx.status_code == 200
    finally:
        served.call("DELETE", f"/v1/memories/{mid}", "owner")
    assert lexical_tokens(word)  # the word is searchable (not a stop word)
