from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import FAST_KDF, PASSPHRASE
from vault.sqltext import id_list
from vault.store import Vault


def test_an_id_list_literal_selects_exactly_the_ids_a_bound_list_selects(home):
    vault, _ = Vault.create(home, PASSPHRASE, kdf=FAST_KDF)
    with vault:
        ids = [0, 7, -3, 2**63 - 1, -(2**63), 41, 41]
        got = vault.query(f"SELECT unnest({id_list(ids)}) ORDER BY 1")
        bound = vault.query("SELECT unnest(?::BIGINT[]) ORDER BY 1", [ids])
        assert got == bound
        assert vault.query(f"SELECT count(*) FROM (SELECT unnest({id_list([])}))") == [(0,)]
        assert vault.query(f"SELECT unnest({id_list(np.array([5, 6], dtype=np.int64))})") == [(5,), (6,)]


@pytest.mark.parametrize("bad", ["1) OR (1=1", "1; DROP TABLE memories", "0x10", 1.5, None, 2**63, -(2**63) - 1])
def test_an_id_list_takes_nothing_but_integers_that_fit_a_bigint(bad):
    with pytest.raises((ValueError, TypeError)):
        id_list([1, bad])  # type: ignore[list-item]
