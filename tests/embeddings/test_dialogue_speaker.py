"""A question about a person is answered by what that person said: their notes are favoured in search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from embeddings import dialogue
from embeddings.service import MemoryService

JUNE = datetime(2023, 6, 27, 14, 5, tzinfo=UTC)
ASKED = datetime(2025, 12, 1, 12, 0, tzinfo=UTC)
ANSWER = ("They're Luna and Oliver! Luna is the grey one who sleeps all day on the radiator and only wakes up for "
          "dinner, and Oliver is the little troublemaker who knocks everything off the shelves at night. The kids "
          "adore them and fight over who gets to feed them every morning before school, it's chaos but we love it.")
PETS = [  # the other speaker's question shares the words of "What are Melanie's pets' names?"; the answer does not
    ("Melanie", "Here's a photo of the two furballs on the couch."),
    ("Caroline", "Aww, what are your pets' names? Pets are the best!"),
    ("Melanie", ANSWER),
]
QUESTION = "What are Melanie's pets' names?"


def _store(svc: MemoryService, *, in_text: bool = False) -> list[int]:
    """The chat through MemoryService.remember; the speaker in metadata, or (in_text) only in front of the text."""
    return [svc.remember(f"{who}: {text}" if in_text else text, occurred_at=JUNE + timedelta(minutes=i),
                         metadata={"session": 1} | ({} if in_text else {"speaker": who}), source="chat").memory_id
            for i, (who, text) in enumerate(PETS)]


def _order(svc: MemoryService, query: str, **kw: object) -> list[int]:
    return [h.memory.memory_id for h in svc.search(query, k=3, now=ASKED, **kw).hits]


def test_a_question_naming_a_person_ranks_that_persons_answer_above_the_other_speakers_question(svc: MemoryService):
    photo, question, answer = _store(svc)
    hits = svc.search(QUESTION, k=3, now=ASKED).hits
    assert [h.memory.memory_id for h in hits] == [photo, answer, question]
    assert hits[1].signals["speaker"].contribution == dialogue.SPEAKER_BONUS and "speaker" not in hits[2].signals


def test_without_the_bonus_the_other_speakers_question_outranks_the_answer(svc: MemoryService,
                                                                            monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(dialogue, "SPEAKER_BONUS", 0.0)
    photo, question, answer = _store(svc)
    assert _order(svc, QUESTION) == [photo, question, answer]  # what the bonus changes


def test_a_note_without_a_speaker_in_its_metadata_takes_the_name_in_front_of_its_text(svc: MemoryService):
    photo, question, answer = _store(svc, in_text=True)
    assert _order(svc, QUESTION) == [photo, answer, question]


def test_a_question_that_names_nobody_keeps_the_fused_order(svc: MemoryService, monkeypatch: pytest.MonkeyPatch):
    _store(svc)
    favoured = _order(svc, "What are the pets' names?")
    monkeypatch.setattr(dialogue, "SPEAKER_BONUS", 0.0)
    assert favoured == _order(svc, "What are the pets' names?")


def test_rank_fusion_and_a_single_signal_are_not_reordered(svc: MemoryService, monkeypatch: pytest.MonkeyPatch):
    _store(svc)
    favoured = [_order(svc, QUESTION, fusion="rrf"), _order(svc, QUESTION, mode="dense")]
    monkeypatch.setattr(dialogue, "SPEAKER_BONUS", 0.0)
    assert favoured == [_order(svc, QUESTION, fusion="rrf"), _order(svc, QUESTION, mode="dense")]


def test_a_most_recent_question_keeps_its_time_order_without_the_bonus(svc: MemoryService):
    _store(svc)
    hits = svc.search("What did Melanie say most recently about the pets?", k=3, now=ASKED).hits
    assert hits and all("speaker" not in h.signals for h in hits)


def test_a_name_is_named_as_whole_words_in_any_case():
    assert dialogue.names("What are Jon's pets?", "Jon") and dialogue.names("what did jon say", "Jon")
    assert not dialogue.names("What did Jonathan say?", "Jon")
    assert dialogue.names("What did Maria Lopez bake?", "Maria Lopez") and not dialogue.names("Maria baked", "Maria Lopez")


def test_the_name_in_front_of_a_text_is_a_speaker_up_to_its_bound():
    under = "M" * dialogue.SPEAKER_PREFIX_CHARS
    assert dialogue.speaker_in(f"{under}: hello", None) == under
    assert dialogue.speaker_in(f"{under}M: hello", None) is None
    assert dialogue.speaker_in("Maria Lopez: hi", None) == "Maria Lopez"
    assert dialogue.speaker_in("one two three four: hi", None) is None  # more than three words is not a name
    assert dialogue.speaker_in("Caroline: hi", {"speaker": "Mel"}) == "Mel"  # the metadata's speaker first
