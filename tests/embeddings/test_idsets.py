"""contains() answers as np.isin does, without importing numpy.ma (which np.isin's np.unique does)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from embeddings.idsets import contains

IDS = st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.integers(min_value=0, max_value=20),
               max_size=60)


@given(IDS, IDS)
def test_contains_answers_as_isin(ids: list[int], of: list[int]):
    a, b = np.array(ids, dtype=np.int64), np.array(of, dtype=np.int64)
    assert contains(a, b).tolist() == np.isin(a, b).tolist()


def test_contains_imports_no_numpy_ma_where_isin_does():
    code = ("import sys, numpy as np; from embeddings.idsets import contains; a = np.arange(1000) * 2**40; {} ; "
            "print('numpy.ma' in sys.modules)")
    ours = subprocess.run([sys.executable, "-c", code.format("contains(a, a)")], capture_output=True, text=True)
    theirs = subprocess.run([sys.executable, "-c", code.format("np.isin(a, a)")], capture_output=True, text=True)
    assert (ours.stdout.strip(), theirs.stdout.strip()) == ("False", "True")
