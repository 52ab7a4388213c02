"""What an agent naturally sends is understood or refused with a clear 4xx, never a 5xx."""

from __future__ import annotations

import pytest

from tests.api.conftest import Served

FAR = ["what did I do in 9999", "on 31 Dec 9999", "in December 9999", "what did I do in 0001", "on 1 Jan 0001",
       "in January 1", "coffee in 99999", "last 99999999999999999999 days", "on 29 February 2100"]


@pytest.mark.parametrize("query", FAR)
def test_a_search_naming_a_far_date_answers_200(served: Served, query: str) -> None:
    r = served.call("POST", "/v1/search", "owner", json={"query": query, "k": 3})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("query", FAR[:3])
def test_a_context_pack_for_a_far_date_answers_200(served: Served, query: str) -> None:
    r = served.call("POST", "/v1/context", "owner", json={"task": query, "token_budget": 64})
    assert r.status_code == 200, r.text
