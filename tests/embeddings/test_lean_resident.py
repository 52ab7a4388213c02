"""The numpy forward keeps no copy of the weights file resident: its pages go back once the layers are built."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from embeddings.encoder import model_path
from embeddings.lean import LeanEncoder, release_pages

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps")


def mapped_mb(name: str, field: str = "Rss") -> float:
    """This process's pages of the mappings of files called `name` (resident: "Rss"; mapped: "Size"), in MB."""
    kb, current = 0, ""
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if not head[0].endswith(":"):
            current = head[5] if len(head) > 5 else ""
        elif head[0] == field + ":" and current.endswith("/" + name):
            kb += int(head[1])
    return kb / 1024


def test_building_the_forward_leaves_no_page_of_the_weights_file_resident() -> None:
    lean = LeanEncoder(model_path())
    assert mapped_mb("model.safetensors", "Size") > 40  # still mapped: the word embeddings are read from it
    assert mapped_mb("model.safetensors") < 1.0  # reading the layers made ~40 MB of it resident before
    assert lean.word.shape[1] == lean.dim


def test_a_query_maps_back_only_the_rows_it_reads_and_embeds_as_before() -> None:
    lean = LeanEncoder(model_path())
    first = lean(["when did I last go to the gym on weekends"])
    assert mapped_mb("model.safetensors") < 2.0
    again = lean(["when did I last go to the gym on weekends"])  # the word rows read back from the page cache
    assert np.array_equal(first, again) and abs(float(np.linalg.norm(first)) - 1.0) < 1e-5


def test_releasing_pages_of_an_array_without_a_memory_map_is_a_no_op() -> None:
    assert release_pages(np.zeros(4, dtype=np.float32)) is False
