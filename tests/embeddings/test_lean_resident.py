"""The numpy forward keeps no copy of the weights file resident: its pages go back once the layers are built.

Measured in a fresh process: in the test run's own process other tests map the same file (the model loaded
through torch or sentence-transformers), and /proc/self/smaps names every mapping alike."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from embeddings.lean import release_pages

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps")

PROBE = textwrap.dedent("""
    import json
    from pathlib import Path

    import numpy as np

    from embeddings.encoder import model_path
    from embeddings.lean import LeanEncoder


    def mapped_mb(field="Rss"):
        kb, current = 0, ""
        for line in Path("/proc/self/smaps").read_text().splitlines():
            head = line.split()
            if not head[0].endswith(":"):
                current = head[5] if len(head) > 5 else ""
            elif head[0] == field + ":" and current.endswith("/model.safetensors"):
                kb += int(head[1])
        return kb / 1024


    lean = LeanEncoder(model_path())
    built = {"size": mapped_mb("Size"), "rss": mapped_mb(), "word_dim_ok": lean.word.shape[1] == lean.dim}
    first = lean(["when did I last go to the gym on weekends"])
    after_query = mapped_mb()
    again = lean(["when did I last go to the gym on weekends"])
    print(json.dumps({**built, "after_query": after_query, "same": bool(np.array_equal(first, again)),
                      "norm": float(np.linalg.norm(first))}))
""")


@pytest.fixture(scope="module")
def fresh() -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_building_the_forward_leaves_no_page_of_the_weights_file_resident(fresh: dict) -> None:
    assert fresh["size"] > 40  # still mapped: the word embeddings are read from it
    assert fresh["rss"] < 1.0  # reading the layers made ~40 MB of it resident before
    assert fresh["word_dim_ok"]


def test_a_query_maps_back_only_the_rows_it_reads_and_embeds_as_before(fresh: dict) -> None:
    # the rows read and the pages the kernel reads ahead around them (1-4 MB seen), far from the ~40 MB of the
    # layers the build read or the 47 MB table
    assert fresh["after_query"] < 8.0
    assert fresh["same"] and abs(fresh["norm"] - 1.0) < 1e-5  # the word rows read back from the page cache


def test_releasing_pages_of_an_array_without_a_memory_map_is_a_no_op() -> None:
    assert release_pages(np.zeros(4, dtype=np.float32)) is False
