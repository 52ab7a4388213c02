"""Conversation notes: a short turn is indexed with its neighbouring turns, returned with its own text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from embeddings import dialogue
from embeddings.service import MemoryService
from vault.store import Vault

AT = datetime(2025, 4, 5, 18, 0, tzinfo=UTC)
CHATS = [  # (session, minutes after AT, text)
    ("s1", 0, "Maya: hey, how was the weekend?"),
    ("s1", 1, "Jon: good! I went to the shop and bought a bike"),
    ("s1", 2, "Maya: which colour did you get?"),
    ("s1", 3, "Jon: yes, the blue one"),
    ("s1", 4, "Maya: haha nice"),
    ("s2", 60 * 24 * 3, "Maya: did you keep one of the scarves from the market?"),
    ("s2", 60 * 24 * 3 + 1, "Jon: yes, the green one"),
    ("s3", 60 * 24 * 6, "Maya: which mug do you want for the office?"),
    ("s3", 60 * 24 * 6 + 1, "Jon: yes, the red one"),
    ("s3", 60 * 24 * 6 + 2, "Maya: ok"),
]
QUESTION = "What colour is the bike Jon bought?"


def _chat(svc: MemoryService, *, sessions: bool = True) -> dict[str, int]:
    ids = {}
    for session, minutes, text in CHATS:
        meta = {"session": session} if sessions else None
        ids[text] = svc.remember(text, occurred_at=AT + timedelta(minutes=minutes), metadata=meta,
                                 source="chat").memory_id
    return ids


def _top(svc: MemoryService, query: str, n: int) -> list[str]:
    return [h.memory.text for h in svc.search(query, k=n, now=AT + timedelta(days=30)).hits]


def test_a_short_turn_is_found_by_the_question_about_the_turn_before_it(svc: MemoryService):
    _chat(svc)
    assert "Jon: yes, the blue one" in _top(svc, QUESTION, 2)


def test_without_neighbouring_turns_the_short_turn_is_not_found(svc: MemoryService,
                                                                monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(dialogue, "BEFORE", 0)
    monkeypatch.setattr(dialogue, "AFTER", 0)
    _chat(svc)
    assert "Jon: yes, the blue one" not in _top(svc, QUESTION, 2)  # what the context above adds


def test_turns_without_a_session_are_threaded_by_time_adjacency(svc: MemoryService):
    _chat(svc, sessions=False)
    assert "Jon: yes, the blue one" in _top(svc, QUESTION, 2)


def test_returned_texts_are_the_notes_own_texts(svc: MemoryService):
    ids = _chat(svc)
    for text, memory_id in ids.items():
        assert svc.get(memory_id).text == text
    hits = svc.search(QUESTION, k=len(CHATS), now=AT + timedelta(days=30)).hits
    assert {h.memory.text for h in hits} <= set(ids) and all(" | " not in h.memory.text for h in hits)
    lexical = svc.search("bike", k=10, mode="lexical").hits  # found through its neighbour, returned as itself
    assert "Jon: yes, the blue one" in [h.memory.text for h in lexical]


def test_a_new_turn_reembeds_only_itself_and_the_turns_whose_window_it_enters(svc: MemoryService,
                                                                             monkeypatch: pytest.MonkeyPatch):
    ids = _chat(svc)
    embedded: list[list[int]] = []
    original = svc._embed
    monkeypatch.setattr(svc, "_embed", lambda todo, progress=None, write=False: embedded.append(sorted(todo)) or original(todo, write=write))
    new = svc.remember("Jon: it has a basket too", occurred_at=AT + timedelta(minutes=3, seconds=30),
                       metadata={"session": "s1"}, source="chat").memory_id
    # the turns whose window it enters: two before it (their next turns), the one after it (its previous turns)
    entered = [ids["Maya: which colour did you get?"], ids["Jon: yes, the blue one"], ids["Maya: haha nice"]]
    assert embedded == [sorted([new, *entered])]


def test_forgetting_a_turn_takes_its_words_out_of_its_neighbours_index(vault: Vault, svc: MemoryService):
    ids = _chat(svc)
    assert len(svc.search("shop", k=10, mode="lexical").hits) > 1  # the turn and the ones around it
    svc.delete(ids["Jon: good! I went to the shop and bought a bike"])
    assert svc.search("shop", k=10, mode="lexical").hits == ()
    reopened = MemoryService(vault, encoder=svc.encoder)  # and after a reload, from the vault
    assert reopened.search("shop", k=10, mode="lexical").hits == ()


def test_changing_a_turn_reindexes_its_neighbours(svc: MemoryService):
    ids = _chat(svc)
    svc.update(ids["Jon: good! I went to the shop and bought a bike"], text="Jon: good! I bought a tandem")
    found = [h.memory.text for h in svc.search("tandem", k=10, mode="lexical").hits]
    assert "Jon: yes, the blue one" in found and svc.search("shop", k=10, mode="lexical").hits == ()


def test_a_neighbour_is_cut_to_its_bound_in_the_indexed_text():
    def turn(i: int, text: str) -> dialogue.Turn:
        return dialogue.Turn(memory_id=i, source="chat", session="s", at=AT, ingested=AT, text=text)

    under = "x" * (dialogue.NEIGHBOUR_CHARS - 1) + "y"
    over = "x" * dialogue.NEIGHBOUR_CHARS + "y"
    own = "yes | " * dialogue.OWN_REPEAT
    assert dialogue.indexed_text([turn(1, under), turn(2, "yes")], 1) == own + under
    assert dialogue.indexed_text([turn(1, over), turn(2, "yes")], 1) == own + "x" * dialogue.NEIGHBOUR_CHARS


def test_a_session_is_declared_in_metadata_or_by_a_tag():
    assert dialogue.session_of('{"session": "a"}', ()) == "a"
    assert dialogue.session_of('{"session_id": 7}', ()) == "7"
    assert dialogue.session_of(None, ("travel", "session:b")) == "b"
    assert dialogue.session_of('{"session": true}', ("session:",)) is None


@pytest.mark.parametrize("spans", [dialogue.WINDOW_SPANS, 2])
def test_the_threads_around_notes_far_apart_are_read_from_their_own_windows_with_the_same_result(
        vault: Vault, monkeypatch: pytest.MonkeyPatch, spans: int):
    """A note's indexed text and its neighbours depend only on the turns within its reach, so reading a
    window around each note (merged where they overlap, or down to WINDOW_SPANS) gives exactly what reading
    every note gives, while notes months apart no longer read every note in between."""
    import random

    from embeddings import notes

    monkeypatch.setattr(dialogue, "WINDOW_SPANS", spans)
    rng = random.Random(spans)
    ids: list[int] = []
    for day in range(0, 240, 6):
        for source in ("chat", "sms"):
            session = f"s{day}" if day % 12 else None
            minutes = 0
            for turn in range(rng.randint(1, 6)):
                minutes += rng.choice([1, 20, 45])  # some silences past SESSION_GAP split an undeclared thread
                ids.append(notes.remember(vault, text=f"turn {turn} of day {day} on {source}", source=source,
                                          occurred_at=AT + timedelta(days=day, minutes=minutes),
                                          metadata={"session": session} if session else None).memory_id)
    every = dialogue.entries(vault)
    whole = dialogue.threads(dialogue._turns(vault.query(dialogue._SELECT)))
    read: list[int] = []
    turns = dialogue._turns
    monkeypatch.setattr(dialogue, "_turns", lambda rows: (read.append(len(rows)), turns(rows))[1])

    def neighbours(wanted: set[int]) -> set[int]:
        return {t.memory_id for th in whole for i, t in enumerate(th)
                if any(n.memory_id in wanted for n in th[slice(*dialogue.window(th, i))])} - wanted

    for k in (1, 2, 5, 40):
        wanted = rng.sample(ids, k)
        assert dialogue.entries(vault, wanted) == {m: e for m, e in every.items() if m in wanted}
        assert dialogue.neighbours(vault, wanted) == neighbours(set(wanted))
    assert len(every) > 50
    chat = [m for (m,) in vault.query("SELECT memory_id FROM memories WHERE source = 'chat' ORDER BY start_ts")]
    picked = [chat[0], chat[-1]]  # the first and the last note of one source, eight months apart
    read.clear()
    dialogue.entries(vault, picked)
    assert read[-1] < len(ids) / 4  # their windows, not the months between them


def test_a_forget_re_embeds_its_neighbours_with_the_numpy_forward_however_many_they_are(
        vault: Vault, monkeypatch: pytest.MonkeyPatch):
    """A forget or an edit re-embeds the turns around it; past LEAN_MAX_TEXTS an indexing run's batch goes
    through torch, which a server must not import for a write (+400 MB, seconds)."""
    from embeddings import encoder as encoder_mod
    from embeddings.encoder import Encoder
    from embeddings.forget import ForgetRequest

    monkeypatch.setattr(encoder_mod, "LEAN_MAX_TEXTS", 1)  # so a handful of neighbours is "many"
    svc = MemoryService(vault, encoder=Encoder())
    ids = _chat(svc)
    assert len(dialogue.neighbours(vault, [ids["Jon: yes, the blue one"]])) > 1

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("a write's texts went to the model")

    monkeypatch.setattr(Encoder, "_encode_model", no_model)
    receipt = svc.forget_commit(svc.forget_preview(ForgetRequest(memory_ids=(ids["Jon: yes, the blue one"],))))
    assert receipt.memories == 1
    dtypes = {d for (d,) in vault.query("SELECT DISTINCT dtype FROM memory_vectors")}
    assert dtypes == {"float32"}
    assert "Jon: yes, the blue one" not in _top(svc, QUESTION, 5)
    svc.close()
