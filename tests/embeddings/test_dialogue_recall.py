"""Conversation notes as an agent stores a long chat: questions asked months or years later still find the turns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
