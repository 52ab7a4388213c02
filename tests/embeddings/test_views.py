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


def test_a_coarse_forget_deletes_the_routines_of_what_it_forgets_without_counting_them(
        indexed: MemoryService) -> None:
    from embeddings.forget import ForgetRequest

    coarse = Redaction.for_scopes(["memory:read", "location:read"], location="coarse")
    home = indexed.search("at home", k=1, kinds=["visit"], redaction=coarse, now=NOW, parse_time=False).hits[0]
    routines = {h.memory.memory_id for h in indexed.search("Home is", k=50, kinds=["routine"], now=NOW).hits
                if h.memory.sensitivity == "place"}
    assert routines  # the test can fail: the persona's nights at home make a place routine the owner sees
    plan = indexed.forget_preview(ForgetRequest(memory_ids=(home.memory.memory_id,)), redaction=coarse)
    # the visit and the coarse home routine built on it (the caller sees both); not the named twin it cannot see
    assert plan.to_dict()["memories"] == 2 and plan.by_kind == {"visit": 1, "routine": 1} and len(plan.memory_ids) > 2
    receipt = indexed.forget_commit(plan)
    assert receipt.memories == 2 and receipt.rows_deleted["memories"] == 2 and receipt.vectors_removed == 2
    left = {h.memory.memory_id for h in indexed.search("Home is", k=50, kinds=["routine"], now=NOW).hits}
    assert routines - left  # the home routine went with the visit it summarises (the work one stays)
