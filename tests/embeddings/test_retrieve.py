"""Hybrid search answers the persona's questions, filters before ranking, and explains itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import polars as pl

from embeddings import lexical, retrieve, temporal
from embeddings.encoder import DIM
from embeddings.events import MemorySearched
from embeddings.index import VectorIndex
from embeddings.redaction import Redaction
from embeddings.service import MemoryService
from tests.embeddings.helpers import notes_catalog
from tests.embeddings.persona import NOW
from vault import audit


def test_when_did_i_last_see_dr_lee_finds_the_latest_past_appointment(shared: MemoryService):
    hits = shared.search("when did I last see Dr. Lee?", k=3, now=NOW).hits
    assert "Dr. Lee" in hits[0].memory.text and hits[0].memory.start_ts.day == 13
    assert all(h.memory.start_ts <= NOW for h in hits)
    assert "recency" in hits[0].signals


def test_the_weekend_in_lisbon_returns_what_happened_there_on_saturday_and_sunday(shared: MemoryService):
    result = shared.search("what did I do the weekend I was in Lisbon?", k=3, now=NOW)
    assert result.understood == ("the weekend",)
    assert {h.memory.start_ts.day for h in result.hits} == {15, 16}
    assert all("Lisbon" in h.memory.text or "Belém" in h.memory.text for h in result.hits)


def test_youtube_after_11pm_last_month_becomes_a_time_filter(shared: MemoryService):
    april = datetime(2025, 4, 10, 12, tzinfo=UTC)
    result = shared.search("how much time did I spend on YouTube after 11pm last month?", k=30, now=april)
    assert result.filters["since"].startswith("2025-03-01") and result.filters["hours"] == ["23:00", "24:00"]
    sessions = [h for h in result.hits if h.memory.text.startswith("Used YouTube")]
    assert len(sessions) == 19 and all(h.memory.start_ts.month == 3 for h in result.hits)
    assert not any(h.memory.text.startswith("Used Slack") for h in result.hits)  # 11:00 sessions: filtered out


def test_a_narrow_time_filter_still_returns_k_results_when_k_exist(shared: MemoryService):
    since, until = datetime(2025, 3, 10, tzinfo=UTC), datetime(2025, 3, 11, tzinfo=UTC)
    result = shared.search("Café Nero coffee on Kings Rd", k=5, since=since, until=until, parse_time=False)
    assert result.candidates >= 5 and len(result.hits) == 5
    assert all(h.memory.end_ts >= since and h.memory.start_ts < until for h in result.hits)
    assert not any("Café Nero" in h.memory.text for h in result.hits)  # none that day: the filter came first


def test_kind_and_tag_filters_apply_before_ranking(shared: MemoryService):
    hits = shared.search("Dr. Lee", k=10, kinds=["event"], now=NOW).hits
    assert hits and {h.memory.kind for h in hits} == {"event"}
    gyms = shared.search("workout", k=10, tags=["gym"], now=NOW).hits
    assert len(gyms) == 2 and all("PureGym" in h.memory.text for h in gyms)


def test_explain_gives_each_signal_its_rank_and_score(shared: MemoryService):
    result = shared.search("coffee on Kings Rd", k=3, now=NOW)
    top = result.to_dict(explain=True)["hits"][0]
    assert set(top["explain"]) == {"dense", "lexical"}
    assert top["explain"]["dense"]["rank"] >= 1 and 0 < top["explain"]["dense"]["score"] <= 1
    assert top["explain"]["lexical"]["score"] > 0
    assert top["explain"]["dense"]["weight"] == 1.0 and 0.3 <= top["explain"]["lexical"]["weight"] <= 0.5
    assert abs(top["explain"]["dense"]["contribution"] - top["explain"]["dense"]["score"]) < 1e-6  # cosine x 1
    assert 0 < top["explain"]["lexical"]["contribution"] <= top["explain"]["lexical"]["weight"]  # BM25 / best x w
    assert abs(sum(s["contribution"] for s in top["explain"].values()) - top["score"]) < 1e-5
    rrf = shared.search("coffee on Kings Rd", k=3, now=NOW, fusion="rrf").to_dict(explain=True)["hits"][0]
    assert abs(sum(s["weight"] / (60 + s["rank"]) for s in rrf["explain"].values()) - rrf["score"]) < 1e-6


def test_a_memory_only_bm25_finds_rises_on_its_score_with_its_exact_cosine():
    """200 memories the model puts near the query (cosine 0.6) and one only BM25 finds (a name, cosine 0.3, beyond
    the dense top 100): score fusion ranks the name first with its exact cosine; rank fusion cannot."""
    n = 300
    at = datetime(2025, 3, 1, tzinfo=UTC)
    texts = ["coffee chat about the roadmap"] * 200 + ["lunch with Oyelaran"] + ["gym session"] * (n - 201)
    cat = notes_catalog(texts, at)
    cos = np.array([0.6] * 200 + [0.3] + [0.1] * (n - 201), dtype=np.float32)
    vectors = np.zeros((n, DIM), dtype=np.float32)
    vectors[:, 0], vectors[:, 1] = cos, np.sqrt(1 - cos**2)
    index = VectorIndex.new(DIM)
    index.add(np.arange(1, n + 1, dtype=np.int64), vectors)
    query = np.zeros(DIM, dtype=np.float32)
    query[0] = 1.0

    def top(fusion: retrieve.Fusion) -> retrieve.Ranked:
        return retrieve.rank(cat, index, None, query, "Oyelaran", k=3, filters=retrieve.Filters(),
                             redaction=Redaction.OWNER, fusion=fusion)

    ranked = top("score")
    assert ranked.ids[0] == 201
    dense, lex = ranked.signals[0]["dense"], ranked.signals[0]["lexical"]
    assert dense.rank is None and abs(dense.score - 0.3) < 1e-5 and lex.rank == 1
    assert abs(ranked.fused[0] - (dense.contribution + lex.contribution)) < 1e-6 and lex.contribution == lex.weight
    assert 201 not in top("rrf").ids


def test_dense_and_lexical_modes_use_one_signal_each(shared: MemoryService):
    dense = shared.search("a doctor's appointment", k=3, mode="dense", now=NOW).hits
    lexical = shared.search("Harley", k=3, mode="lexical", now=NOW).hits
    assert all(set(h.signals) == {"dense"} for h in dense)
    assert all(set(h.signals) == {"lexical"} for h in lexical) and "Harley" in lexical[0].memory.text


def test_hidden_sensitivities_never_influence_results_or_counts(shared: MemoryService):
    no_location = Redaction.for_scopes(["memory:read"])
    result = shared.search("Café Nero Kings Rd", k=10, redaction=no_location, now=NOW)
    assert all(h.memory.kind not in ("visit", "trip") for h in result.hits)
    full = shared.search("Café Nero Kings Rd", k=10, now=NOW)
    assert result.candidates < full.candidates


def test_every_search_is_audited_with_a_query_hash_and_the_returned_ids(shared: MemoryService):
    vault = shared.vault
    result = shared.search("secret question about Dr. Lee", k=2, actor="token-123", now=NOW)
    last = list(audit.events(vault, kind=MemorySearched.kind))[-1]
    assert last.body["actor"] == "token-123" and last.body["query_sha256"] == audit.text_hash(
        vault, "secret question about Dr. Lee")
    assert [int(i) for i in last.body["returned_ids"]] == [h.memory.memory_id for h in result.hits]
    assert "secret" not in str(last.body)


def test_temporal_phrases_become_filters_relative_to_now():
    tz = timezone(timedelta(hours=1))  # days begin at midnight in now's zone; filters hold UTC instants
    now = datetime(2025, 3, 20, 15, 0, tzinfo=tz)
    q, f = temporal.parse("coffee yesterday", now)
    assert q == "coffee" and f.since == datetime(2025, 3, 19, tzinfo=tz) and f.since.tzinfo == UTC
    assert f.until - f.since == timedelta(days=1)
    _, f = temporal.parse("meetings in March", now)
    assert (f.since.astimezone(tz).month, f.until.astimezone(tz).month) == (3, 4)
    _, f = temporal.parse("meetings in November", now)
    assert f.since.astimezone(tz).year == 2024  # the most recent November
    _, f = temporal.parse("gym on weekends", now)
    assert f.weekdays == frozenset({5, 6})
    _, f = temporal.parse("lunch last week", now)
    assert (f.since.astimezone(tz).date().isoformat(), f.until.astimezone(tz).date().isoformat()) == (
        "2025-03-10", "2025-03-17")
    q, f = temporal.parse("what did I do last weekend", now)  # Thursday: the weekend just past, as dates
    assert q == "what did I do" and f.weekdays is None and f.understood == ("last weekend",)
    assert (f.since.astimezone(tz).isoformat(), f.until.astimezone(tz).isoformat()) == (
        "2025-03-15T00:00:00+01:00", "2025-03-17T00:00:00+01:00")
    sunday = now + timedelta(days=3)
    assert temporal.parse("last weekend", sunday)[1].since == f.since  # on Sunday, "last" is the one before
    assert temporal.parse("this weekend", sunday)[1].since == f.since + timedelta(days=7)
    _, f = temporal.parse("slack between 9am and 5pm", now)
    assert f.hours == (540, 1020)
    _, f = temporal.parse("when did I first go to the gym", now)
    assert f.recency == "earliest"
    q, f = temporal.parse("after 2 beers", now)
    assert q == "after 2 beers" and f == temporal.TimeFilter()


def test_where_questions_leave_app_usage_out_unless_kinds_are_given(shared: MemoryService):
    q, f = temporal.parse("Where was I on 14 March in the morning?", NOW)
    assert q.lower().startswith("where was i") and f.kinds == temporal.WHERE_KINDS and "usage" not in f.kinds
    assert f.understood[0] == "Where was I" and temporal.parse("somewhere I was", NOW)[1].kinds is None
    places = shared.search("where was I on Saturday 15 March?", k=20, now=NOW)
    assert places.filters["kinds"] == sorted(temporal.WHERE_KINDS) and places.hits
    assert all(h.memory.kind != "usage" for h in places.hits)
    anything = shared.search("what was I doing on Saturday 15 March?", k=20, now=NOW)
    assert "kinds" not in anything.filters and any(h.memory.kind == "usage" for h in anything.hits)
    given = shared.search("where did I use YouTube?", k=5, kinds=["usage"], now=NOW)
    assert given.hits and {h.memory.kind for h in given.hits} == {"usage"}  # the caller's kinds win


def test_query_tokens_follow_the_same_rules_as_document_tokens():
    samples = ["Visited Café Nero, Kings Rd — straße ÉCOLE 東京 sessions studies", "naïve façade İstanbul",
               "snake_case x_1 ½ ² ٣ Ⅻ", "हिन्दी पाठ", "Ελληνικά ΣΟΦΊΑ", "don't it's AV-5530-221", "ﬁ ligature ẞ"]
    frame = lexical.token_frame(samples)
    for i, text in enumerate(samples):
        assert lexical.tokens(text) == frame.filter(frame["doc"] == i)["t"].to_list(), text
    assert lexical.tokens("The cafés in Lisbon") == ["cafe", "lisbon"]


def test_the_candidate_masks_kept_between_searches_follow_every_write_to_the_catalog():
    at = datetime(2025, 3, 1, tzinfo=UTC)

    def rows(ids: list[int], kind: str, sensitivity: str) -> pl.DataFrame:
        n = len(ids)
        return pl.DataFrame({
            "memory_id": ids, "kind": [kind] * n, "sensitivity": [sensitivity] * n, "source": ["agent"] * n,
            "start_ts": [at] * n, "end_ts": [at] * n, "utc_offset_min": [0] * n, "ingested_at": [at] * n,
            "tags": [[]] * n, "text": ["a note"] * n, "text_redacted": [None] * n},
            schema_overrides={"tags": pl.List(pl.String), "text_redacted": pl.String})

    cat = retrieve.Catalog()
    cat.add(rows([1, 2, 3], "note", "note"))
    notes_only = retrieve.Filters(kinds=frozenset({"note"}))
    memory_read = Redaction.for_scopes(["memory:read"]).visible
    assert cat.ids[cat.mask(notes_only, memory_read)].tolist() == [1, 2, 3]
    cat.remove([2])
    cat.add(rows([4], "note", "note"))
    cat.add(rows([5], "visit", "location"))
    assert cat.ids[cat.mask(notes_only, memory_read)].tolist() == [1, 3, 4]
    assert cat.ids[cat.mask(retrieve.Filters(), memory_read)].tolist() == [1, 3, 4]  # a visit is hidden here
    assert cat.ids[cat.mask(retrieve.Filters(), Redaction.OWNER.visible)].tolist() == [1, 3, 4, 5]
    m = cat.mask(notes_only, memory_read)
    m[:] = False  # a caller's change to its mask stays its own
    assert cat.ids[cat.mask(notes_only, memory_read)].tolist() == [1, 3, 4]
