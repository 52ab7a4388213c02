"""A note's write (with the turns around it re-indexed) and its seal import no polars, pyarrow or torch: a
server that only searched until then does not grow by their ~120 MB on its first note."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import PASSPHRASE

PROBE = textwrap.dedent("""
    import json, sys
    from datetime import UTC, datetime, timedelta
    from pathlib import Path

    from embeddings.service import MemoryService
    from vault.store import Vault

    vault = Vault.open(Path(sys.argv[1]), sys.argv[2])
    svc = MemoryService(vault)
    svc.search("when did I last see Dr Lee", k=5)
    at = datetime(2025, 4, 5, 18, tzinfo=UTC)
    ids = [svc.remember(text, occurred_at=at + timedelta(minutes=i), metadata={"session": "s1"}, source="chat").memory_id
           for i, text in enumerate(["Maya: which bike?", "Jon: the blue one", "Maya: nice"])]
    svc.update(ids[1], text="Jon: the green one")
    svc.flush()
    hits = [h.memory.memory_id for h in svc.search("which bike did Jon get", k=5).hits]
    rows = vault.query("SELECT memory_id, dtype FROM memory_vectors WHERE memory_id IN (?, ?, ?) ORDER BY 1", ids)
    svc.close()
    vault.close()
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("polars", "pyarrow", "torch", "transformers"))
    print(json.dumps({"heavy": heavy, "found": ids[1] in hits, "rows": [[int(i), d] for i, d in rows], "ids": ids}))
""")


def test_a_note_write_and_its_seal_import_no_polars_pyarrow_or_torch(indexed_home: Path) -> None:
    run = subprocess.run([sys.executable, "-c", PROBE, str(indexed_home), PASSPHRASE], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["heavy"] == []
    assert out["found"]  # the edited turn is searchable
    assert out["rows"] == [[i, "float32"] for i in sorted(out["ids"])]  # each vector's bookkeeping is written
