"""Statistics over the caller's view: a token learns nothing of memories it may not see from scores,
weights or counts (idf, mean length and the query's specificity are computed over what it may see)."""

from __future__ import annotations

from embeddings.redaction import Redaction
from embeddings.retrieve import LEXICAL_MIN_WEIGHT, Filters
from embeddings.service import MemoryService
from tests.embeddings.persona import NOW

NO_LOCATION = Redaction.for_scopes(["memory:read"])


def _explained(svc: MemoryService, query: str, redaction: Redaction) -> list[tuple[str, float, float]]:
    hits = svc.search(query, k=20, redaction=redaction, now=NOW, mode="hybrid", parse_time=False).hits
    return sorted((h.memory.text, h.signals["lexical"].score, h.signals["lexical"].weight)
                  for h in hits if "lexical" in h.signals)


def test_a_word_only_hidden_memories_hold_weighs_like_a_nonsense_word_for_a_token_without_location(
        shared: MemoryService) -> None:
    hidden = _explained(shared, "gym Slack", NO_LOCATION)
    nonsense = _explained(shared, "zzqxv Slack", NO_LOCATION)
    assert hidden and hidden == nonsense
    owner = _explained(shared, "gym Slack", Redaction.OWNER)
    assert max(w for _, _, w in owner) > max(w for _, _, w in hidden) > LEXICAL_MIN_WEIGHT  # the test can fail


def test_lexical_scores_of_a_narrow_view_ignore_the_documents_it_cannot_see(shared: MemoryService) -> None:
    catalog = shared._state()[0]
    view = catalog.view(NO_LOCATION)
    assert view is not None and catalog.view(Redaction.OWNER) is None
    visible = catalog.mask(Filters(), NO_LOCATION.visible)
    assert view.live == int(visible.sum()) < len(catalog)
    bm25 = catalog.bm25(redacted=True)
    assert bm25.specificity("gym", view) == 0.0 and bm25.specificity("gym") > 0.0
