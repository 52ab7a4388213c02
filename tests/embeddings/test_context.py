"""Context packs fit the token budget by the model's own tokenizer, cite their memories, and redact."""

from __future__ import annotations

import json
import re

import pytest

from embeddings.context import Redaction
from embeddings.service import MemoryService
from tests.embeddings.persona import NOW, PRECISE_LAT, PRECISE_LON


@pytest.mark.parametrize("budget", [90, 200, 350, 5000])
@pytest.mark.parametrize("task", ["what do I usually do on Tuesday mornings?", "plan my week around meetings"])
def test_a_context_pack_never_exceeds_its_budget_by_the_models_tokenizer(shared: MemoryService, budget: int,
                                                                         task: str):
    pack = shared.context(task, token_budget=budget, now=NOW)
    counted = len(shared.encoder.tokenizer(pack.text, add_special_tokens=False)["input_ids"])
    assert counted == pack.tokens_used <= budget
    assert pack.snippets or pack.free  # something fit (a planning pack lists free time before routines),
    assert pack.left_out if budget < 5000 else not pack.left_out  # and something did not
    named = [s.memory_id for s in pack.snippets] + [i for s in pack.snippets for i in s.also]
    ids = named + [x.memory_id for x in pack.left_out]
    assert len(set(ids)) == len(ids)  # every memory once: on its line, named by a near-duplicate's line, or left out


def test_every_snippet_cites_its_memory_source_and_time(shared: MemoryService):
    pack = shared.context("my visits to Dr. Lee", token_budget=400, now=NOW)
    for s in pack.snippets:
        assert f"[{s.n}] " in pack.text and f"memory {s.memory_id}" in s.text
        assert s.source in ("location", "calendar", "usage") and s.start is not None
    assert [s.n for s in pack.snippets] == list(range(1, len(pack.snippets) + 1))
    assert "Dr. Lee" in pack.snippets[0].text


def test_coarse_location_never_returns_precise_coordinates_or_place_names(shared: MemoryService):
    coarse = Redaction.for_scopes(["memory:read", "location:read"], location="coarse")
    precise_names = ("Café Nero", "Kings Rd", "Harley", "Elm Grove", "PureGym", "Time Out Market", "Acme")
    result = shared.search("coffee at Café Nero on Kings Rd", k=20, redaction=coarse, now=NOW)
    pack = shared.context("where do I get coffee on Kings Rd?", token_budget=1500, redaction=coarse, now=NOW)
    dumped = json.dumps(result.to_dict(explain=True), default=str) + pack.text + json.dumps(pack.to_dict())
    for name in precise_names:
        assert name not in dumped, name
    assert str(PRECISE_LAT) not in dumped and str(PRECISE_LON) not in dumped
    coords = [float(x) for x in re.findall(r'"la[tn]": (-?\d+\.\d+)', dumped)]
    assert coords and all(len(repr(c).split(".")[1]) <= 2 for c in coords)
    cafes = [h for h in result.hits if h.memory.kind == "visit" and "café" in h.memory.text]
    assert cafes and cafes[0].memory.details["place"] == {"type": "a café", "lat": 51.49, "lon": -0.17}


def test_precise_location_shows_names_and_coordinates(shared: MemoryService):
    hit = shared.search("Café Nero", k=1, kinds=["visit"], now=NOW).hits[0]
    assert hit.memory.details["place"]["name"] == "Café Nero" and hit.memory.details["place"]["lat"] == PRECISE_LAT


def test_attendee_emails_only_with_calendar_scope(shared: MemoryService):
    with_cal = Redaction.for_scopes(["memory:read", "calendar:read"])
    without = Redaction.for_scopes(["memory:read"])
    a = shared.search("check-up with Dr. Lee", k=1, kinds=["event"], redaction=with_cal, now=NOW).hits[0]
    b = shared.search("check-up with Dr. Lee", k=1, kinds=["event"], redaction=without, now=NOW).hits[0]
    assert a.memory.details["attendees"][0]["email"] == "ann.lee@clinic.example"
    assert "email" not in b.memory.details["attendees"][0] and "@" not in json.dumps(b.to_dict())
    assert "Harley" not in b.memory.text  # no location scope: event places are dropped too
