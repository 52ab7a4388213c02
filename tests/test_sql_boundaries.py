"""SQL lives with the tables' owners: api/, federated/, reports/ and lifevault/ read the vault only through
typed functions (vault.read, vault.tokens, the memory service), never with SQL text of their own."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
READERS = ("api", "federated", "reports", "lifevault")  # packages that hold no SQL at all
SQL = re.compile(
    r"\bSELECT\s+(?:\*|DISTINCT\b|[a-z_(])|\bINSERT\s+INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b"
    r"|\b(?:CREATE|DROP|ALTER)\s+(?:TABLE|INDEX|VIEW)\b|\bFROM\s+[a-z_]+\s+WHERE\b|\bCHECKPOINT\b")
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


def sql_in(source: str, name: str) -> list[str]:
    """`name:line: what` for every SQL string and every query call in `source`."""
    tree = ast.parse(source, filename=name)
    docs = _docstrings(tree)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in QUERY_CALLS:
            found.append(f"{name}:{node.lineno}: .{node.func.attr}(...) call")
        elif isinstance(node, ast.Constant | ast.JoinedStr | ast.BinOp) and id(node) not in docs:
            text = _text(node)
            if text is not None and (m := SQL.search(text)):
                found.append(f"{name}:{node.lineno}: SQL text {m.group(0)!r}")
    return sorted(set(found), key=lambda s: (s.split(":")[0], int(s.split(":")[1])))


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
