"""SQL lives with the tables' owners: api/, federated/, reports/ and lifevault/ read the vault only through
typed functions (vault.read, vault.tokens, the memory service), never with SQL text of their own; embeddings/
runs SQL on its own tables only, and reads ingest's through vault.read."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from vault.load import RAW_TABLES

ROOT = Path(__file__).resolve().parents[1]
READERS = ("api", "federated", "reports", "lifevault")  # packages that hold no SQL at all
SQL = re.compile(
    r"\bSELECT\s+(?:\*|DISTINCT\b|[a-z_(])|\bINSERT\s+INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b"
    r"|\b(?:CREATE|DROP|ALTER)\s+(?:TABLE|INDEX|VIEW)\b|\bFROM\s+[a-z_]+\s+WHERE\b|\bCHECKPOINT\b")
INGEST_TABLES = (*RAW_TABLES, "stays", "trips", "app_sessions", "daily_summaries")  # written by ingest
QUERY_CALLS = frozenset({"execute", "executemany", "sql", "query", "scalar", "frame", "fetchall", "fetchone",
                         "insert_frame"})


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes (prose may say SELECT; it is not run)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def _text(node: ast.expr) -> str | None:
    """The literal text of a string constant, an f-string (its literal parts) or a + chain of them."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return " ".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left), _text(node.right)
        if left is not None or right is not None:
            return f"{left or ''}{right or ''}"
    return None


def sql_strings(source: str, name: str) -> list[tuple[int, str]]:
    """(line, text) of every string in `source` that reads as SQL (docstrings aside)."""
    tree = ast.parse(source, filename=name)
    docs = _docstrings(tree)
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant | ast.JoinedStr | ast.BinOp) and id(node) not in docs:
            text = _text(node)
            if text is not None and SQL.search(text):
                out.append((node.lineno, text))
    return out


def sql_in(source: str, name: str) -> list[str]:
    """`name:line: what` for every SQL string and every query call in `source`."""
    found = {f"{name}:{line}: SQL text {SQL.search(text).group(0)!r}"  # type: ignore[union-attr]
             for line, text in sql_strings(source, name)}
    found |= {f"{name}:{node.lineno}: .{node.func.attr}(...) call" for node in ast.walk(ast.parse(source))
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in QUERY_CALLS}
    return sorted(found, key=lambda s: (s.split(":")[0], int(s.split(":")[1])))


def test_api_federated_reports_and_the_cli_hold_no_sql() -> None:
    found = [hit for pkg in READERS for path in sorted((ROOT / pkg).rglob("*.py"))
             for hit in sql_in(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))]
    assert not found, "SQL outside the tables' owners (use vault.read):\n" + "\n".join(found)


def test_the_scan_names_file_and_line_of_sql_strings_f_strings_and_query_calls() -> None:
    source = '''"""A docstring may say SELECT x FROM t WHERE y."""
a = "SELECT row_id, start_ts FROM stays "
b = f"DELETE FROM {table} WHERE row_id = ?"
c = vault.scalar(a)
d = ("SELECT count(*) " + "FROM t")
e = "Select what to forget: ids, a source or a time range"
'''
    assert sql_in(source, "x.py") == [
        "x.py:2: SQL text 'SELECT r'", "x.py:3: SQL text 'DELETE FROM'", "x.py:4: .scalar(...) call",
        "x.py:5: SQL text 'SELECT c'"]


def ingest_tables_named(module: str) -> list[str]:
    """`module:line: table` for every SQL string in this embeddings/ module that names one of ingest's tables."""
    path = ROOT / "embeddings" / module
    tables = re.compile(r"\b(" + "|".join(INGEST_TABLES) + r")\b")
    return [f"embeddings/{module}:{line}: {m.group(0)}"
            for line, text in sql_strings(path.read_text(encoding="utf-8"), str(path)) if (m := tables.search(text))]


def test_forget_reaches_ingests_tables_only_through_the_vault() -> None:
    found = ingest_tables_named("forget.py")
    assert not found, "forget runs SQL on ingest's tables (use vault.read and vault.erase):\n" + "\n".join(found)


def test_the_memory_layer_reads_ingests_tables_only_through_vault_read() -> None:
    found = [hit for path in sorted((ROOT / "embeddings").glob("*.py")) for hit in ingest_tables_named(path.name)]
    assert not found, "embeddings/ runs SQL on ingest's tables (use vault.read):\n" + "\n".join(found)


def coarsening_in(source: str, name: str) -> list[str]:
    """`name:line` of code that coarsens a place itself: COARSE_DECIMALS used, or round() of a lat/lon."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name | ast.Attribute) and "COARSE_DECIMALS" in (getattr(node, "id", None),
                                                                                 getattr(node, "attr", None)):
            found.append(f"{name}:{node.lineno}: COARSE_DECIMALS")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "round"
              and node.args and re.search(r"\b(lat|lon)\b|\[.(lat|lon).\]", ast.unparse(node.args[0]))):
            found.append(f"{name}:{node.lineno}: round({ast.unparse(node.args[0])})")
    return sorted(found)


def test_places_are_coarsened_only_by_the_redaction_module() -> None:
    own = ROOT / "embeddings" / "redaction.py"
    found = [hit for pkg in (*READERS, "embeddings") for path in sorted((ROOT / pkg).rglob("*.py")) if path != own
             for hit in coarsening_in(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))]
    assert not found, "a place coarsened outside embeddings/redaction.py:\n" + "\n".join(found)
    assert coarsening_in("x = round(float(place['lat']), 2)\ny = round(lon, COARSE_DECIMALS)\n", "x.py") == [
        "x.py:1: round(float(place['lat']))", "x.py:2: COARSE_DECIMALS", "x.py:2: round(lon)"]  # the scan finds
