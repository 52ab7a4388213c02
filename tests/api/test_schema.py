"""Schemathesis against the live server's OpenAPI schema with an owner token: no 5xx, responses match the schema.

The owner jobs (ingest, index) are left out: fuzzing them would make the server read arbitrary local paths.
(schemathesis' pytest plugin does not load under this pytest, so the operations are driven with hypothesis.)
"""

from __future__ import annotations

import schemathesis  # in the dev extras: a missing install fails, never skips
from hypothesis import HealthCheck, given, settings

from tests.api.conftest import Live

EXAMPLES = 12


def test_the_api_matches_its_schema_and_never_answers_5xx(live: Live) -> None:
    schema = schemathesis.openapi.from_url(f"{live.url}/v1/openapi.json").exclude(path=["/v1/ingest", "/v1/index"])
    headers = {"Authorization": f"Bearer {live.tokens['owner']}"}
    failures: dict[str, str] = {}
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()
        tested.append(operation.label)

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case) -> None:  # type: ignore[no-untyped-def]
            case.call_and_validate(base_url=live.url, headers=headers)

        try:
            check()
        except (Exception, BaseExceptionGroup) as e:  # noqa: BLE001 - collect every operation's failure
            failures[operation.label] = str(e)[:2000]
    assert len(tested) >= 16, tested
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
