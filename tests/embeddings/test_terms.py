"""BM25's term dictionary: every term keeps the id it was given, through freezes, colliding hashes, a round
trip through its arrays and a subset; a term it never saw has no id."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embeddings import terms
from embeddings.terms import Terms


def test_a_term_never_added_has_no_id_before_or_after_a_freeze():
    d = Terms()
    assert d.get("lisbon") is None
    d.add(["lisbon", "ferry"])
    assert d.get("porto") is None and d.get("lisbo") is None and d.get("") is None
    d.freeze()
    assert d.get("porto") is None and d.get("lisbonn") is None and d.get("lisbon") == 0 and d.get("ferry") == 1


def test_ids_are_dense_in_order_of_first_addition_and_repeats_keep_theirs():
    d = Terms()
    assert d.add(["b", "a", "b"]).tolist() == [0, 1, 0]
    d.freeze()
    assert d.add(["c", "a", "café", "c"]).tolist() == [2, 1, 3, 2]
    assert len(d) == 4 and [d.term(i) for i in range(4)] == ["b", "a", "c", "café"]


def test_terms_whose_hashes_collide_each_keep_their_own_id(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(terms, "term_hash", lambda t: len(t))  # every term of a length collides
    d = Terms()
    words = ["ab", "cd", "ef", "abc", "xyz", "q"]
    d.add(words)
    d.freeze()
    assert [d.get(w) for w in words] == list(range(len(words)))
    assert d.get("gh") is None and d.get("zzz") is None
    assert d.add(["gh", "cd"]).tolist() == [6, 1]


def test_new_terms_are_folded_into_the_arrays_once_they_pass_the_freeze_threshold():
    d = Terms()
    d.add([f"t{i}" for i in range(terms.FREEZE_MIN)])
    assert len(d._new) == terms.FREEZE_MIN  # just at the threshold: still in the dict
    d.add(["one more"])
    assert not d._new and len(d._hash) == terms.FREEZE_MIN + 1
    assert d.get("t17") == 17 and d.get("one more") == terms.FREEZE_MIN


def test_a_dictionary_read_back_from_its_arrays_finds_every_term_with_its_id():
    d = Terms()
    words = ["naïve", "zürich", "1990s", "東京", "a" * 300]
    d.add(words)
    back = Terms.from_arrays({k: v.copy() for k, v in d.arrays().items()})
    assert [back.get(w) for w in words] == [0, 1, 2, 3, 4] and back.get("zurich") is None


def test_arrays_that_do_not_fit_together_are_refused():
    a = Terms()
    a.add(["x", "y"])
    arrays = a.arrays()
    with pytest.raises(ValueError, match="do not fit"):
        Terms.from_arrays(arrays | {"hid": arrays["hid"][:1]})
    with pytest.raises(ValueError, match="do not fit"):
        Terms.from_arrays(arrays | {"off": arrays["off"].astype(np.int32)})


def test_a_subset_keeps_the_chosen_terms_renumbered_in_id_order():
    d = Terms()
    d.add(["a", "b", "c", "d", "e"])
    d.add(["f"])  # one still in the dict
    sub = d.subset(np.array([False, True, False, True, False, True]))
    assert [sub.get(w) for w in "abcdef"] == [None, 0, None, 1, None, 2] and len(sub) == 3


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.text(min_size=1, max_size=12), max_size=30), max_size=8), st.data())
def test_lookups_equal_a_plain_dict_through_any_sequence_of_adds_and_freezes(batches, data):
    d, reference = Terms(), {}
    for batch in batches:
        ids = d.add(batch).tolist()
        for t, i in zip(batch, ids, strict=True):
            assert reference.setdefault(t, len(reference)) == i
        if data.draw(st.booleans()):
            d.freeze()
    assert len(d) == len(reference)
    assert all(d.get(t) == i for t, i in reference.items())
    assert d.get("\x00never") is None
