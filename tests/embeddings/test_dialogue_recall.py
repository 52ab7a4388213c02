"""Conversation notes as an agent stores a long chat: questions asked months or years later still find the turns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from embeddings import dialogue
from embeddings.service import MemoryService

JUNE = datetime(2023, 6, 27, 14, 5, tzinfo=UTC)  # a session's date, given to every turn of it
JULY = datetime(2023, 7, 20, 19, 30, tzinfo=UTC)
ASKED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # years later: "in June" alone means June 2026 to the parser
CHAT = [
    (JUNE, 1, "Caroline: Hey Mel! How have you been?"),
    (JUNE, 1, "Melanie: We took the kids camping at Cedar Lake last weekend, it was so peaceful by the fire."),
    (JUNE, 1, "Caroline: That sounds lovely, did they sleep in the tent?"),
    (JULY, 2, "Melanie: We went camping again at Pine Ridge, the kids caught their first fish!"),
    (JULY, 2, "Caroline: That's amazing, they must have been so proud."),
]


def _store(svc: MemoryService) -> dict[str, int]:
    return {text: svc.remember(text, occurred_at=at, metadata={"session": session}, source="chat").memory_id
            for at, session, text in CHAT}


def test_a_month_the_vault_holds_nothing_of_is_read_as_words_rather_than_answering_nothing(svc: MemoryService):
    ids = _store(svc)
    result = svc.search("When did Melanie go camping in June?", k=3, now=ASKED)
    assert result.hits and result.understood == () and "since" not in result.filters
    assert ids[CHAT[1][2]] in [h.memory.memory_id for h in result.hits]


def test_a_month_that_holds_memories_still_filters(svc: MemoryService):
    _store(svc)
    june = svc.remember("Melanie: the campsite was fully booked again", occurred_at=ASKED - timedelta(days=170),
                        source="chat")
    result = svc.search("When did Melanie go camping in June?", k=3, now=ASKED)
    assert [h.memory.memory_id for h in result.hits] == [june.memory_id] and result.understood == ("in June",)


def _thread(*texts: str) -> list[dialogue.Turn]:
    return [dialogue.Turn(memory_id=i, source="chat", session="s", at=JUNE, ingested=JUNE, text=t)
            for i, t in enumerate(texts)]


def test_a_turn_as_long_as_the_context_budget_is_indexed_without_neighbours():
    long = "Melanie: " + "we roasted marshmallows by the fire and told stories " * 10
    assert dialogue.CONTEXT_CHARS is not None and len(long) >= dialogue.CONTEXT_CHARS
    assert dialogue.indexed_text(_thread("Caroline: hi!", long, "Caroline: wow"), 1) == long


def test_a_short_turn_is_indexed_with_its_previous_turns_up_to_the_count_bound():
    short = [f"Caroline: turn {i}" for i in range(dialogue.BEFORE + 1)] + ["Melanie: yes!"]
    text = dialogue.indexed_text(_thread(*short), len(short) - 1)
    assert all(t in text for t in short[1:]) and short[0] not in text  # just under the bound in, just over out


def test_a_short_turn_takes_neighbours_only_until_the_context_budget_is_reached():
    assert dialogue.CONTEXT_CHARS is not None
    each = dialogue.CONTEXT_CHARS // 2  # two such turns reach the budget (each counts at most NEIGHBOUR_CHARS)
    assert each <= dialogue.NEIGHBOUR_CHARS
    near = ["Caroline: " + "x" * (each - 10), "Caroline: " + "y" * (each - 10)]
    text = dialogue.indexed_text(_thread("Caroline: far back", *near, "Melanie: yes!"), 3)
    assert all(t in text for t in near) and "far back" not in text  # the budget was reached by the nearest turns


def test_a_turn_that_does_not_name_its_speaker_is_indexed_with_the_speaker_from_its_metadata():
    thread = [dialogue.Turn(memory_id=1, source="chat", session="s", at=JUNE, ingested=JUNE, text="how was it?",
                            speaker="Caroline"),
              dialogue.Turn(memory_id=2, source="chat", session="s", at=JUNE, ingested=JUNE,
                            text="Melanie: so peaceful", speaker="Melanie")]
    assert dialogue.indexed_text(thread, 0).startswith("Caroline: how was it?")
    assert dialogue.indexed_text(thread, 1).endswith("Melanie: so peaceful | Caroline: how was it?")
    assert "Melanie: Melanie" not in dialogue.indexed_text(thread, 1)  # a text that names its speaker is kept
    assert dialogue.speaker_of('{"speaker": "Caroline", "session": 3}') == "Caroline"


def test_a_speaker_name_is_cut_to_its_bound():
    under, over = "C" * dialogue.SPEAKER_CHARS, "C" * (dialogue.SPEAKER_CHARS + 1)
    assert dialogue.speaker_of(f'{{"speaker": "{under}"}}') == under
    assert dialogue.speaker_of(f'{{"speaker": "{over}"}}') == over[:dialogue.SPEAKER_CHARS]


def test_a_turn_one_character_under_the_context_budget_still_takes_neighbours():
    assert dialogue.CONTEXT_CHARS is not None
    under = "Melanie: " + "x" * (dialogue.CONTEXT_CHARS - 10)
    at = "Melanie: " + "x" * (dialogue.CONTEXT_CHARS - 9)
    assert dialogue.indexed_text(_thread("Caroline: hi!", under), 1) != under
    assert dialogue.indexed_text(_thread("Caroline: hi!", at), 1) == at


OFFICE = [  # a short news turn among long turns about something else, then another session about animals
    (1, "Caroline: Hey Mel! Long time no see. How are the kids, and how is work going these days?"),
    (1, "Melanie: Work has been so hectic. The deadlines at the office never stop, my manager keeps adding "
        "projects and the quarterly report is due Friday."),
    (1, "Caroline: Oh, and I adopted a kitten!"),
    (1, "Melanie: Ugh, I know that feeling about deadlines. My team at the office shipped three releases this "
        "month and nobody has slept properly since."),
    (1, "Caroline: Same here, the office is pure chaos and the printer is broken again."),
    (2, "Melanie: I went to the animal shelter fundraiser with the kids, they loved the puppies."),
    (2, "Caroline: That sounds so sweet!"),
]


def _office(svc: MemoryService) -> dict[str, int]:
    return {text: svc.remember(text, occurred_at=JUNE + timedelta(days=20 * (s - 1), minutes=i),
                               metadata={"session": s}, source="chat").memory_id
            for i, (s, text) in enumerate(OFFICE)}


def test_with_an_own_weight_a_turn_is_embedded_as_its_own_text_blended_with_its_indexed_text(
        svc: MemoryService, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(dialogue, "OWN_WEIGHT", 0.5)
    ids = _office(svc)
    kitten = ids["Caroline: Oh, and I adopted a kitten!"]
    (own, indexed), = dialogue.entries(svc.vault, [kitten]).values()
    v_own, v_indexed = svc.encoder.encode([own, indexed])
    expected = dialogue.blend(v_own[None, :], v_indexed[None, :])[0]
    stored = svc._full.scores_of(expected, np.array([kitten]))[0]
    assert stored > 0.999 and float(v_indexed @ expected) < 0.99  # the blend, not the indexed text's vector


def test_with_an_own_weight_a_short_turn_among_long_turns_about_something_else_is_the_best_dense_match(
        svc: MemoryService, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(dialogue, "OWN_WEIGHT", 0.5)
    ids = _office(svc)
    hits = svc.search("Which animal did Caroline get?", k=3, mode="dense", now=ASKED).hits
    assert hits[0].memory.memory_id == ids["Caroline: Oh, and I adopted a kitten!"]


def test_by_default_the_short_turn_is_outranked_by_a_reply_whose_context_is_about_animals(svc: MemoryService):
    assert dialogue.OWN_WEIGHT == 0  # the indexed text's vector alone: what the blend would add
    ids = _office(svc)
    hits = svc.search("Which animal did Caroline get?", k=3, mode="dense", now=ASKED).hits
    assert hits[0].memory.memory_id == ids["Caroline: That sounds so sweet!"]
