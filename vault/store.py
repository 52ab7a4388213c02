"""The vault: a locked-down DuckDB session with the encrypted database attached.

    with Vault.open(home, passphrase) as v:
        v.query("SELECT count(*) FROM audit_log")

Lock-down, in this order (the order matters: the extension must be loaded before external access is
switched off, and configuration is locked last):
  - autoinstall/autoload of extensions off; unsigned extensions stay disallowed;
  - the httpfs extension (DuckDB's signed build, shipped in the duckdb-extension-httpfs wheel) loaded by
    path: it supplies OpenSSL, without which DuckDB 1.5 only reads encrypted files;
  - temp files in <home>/tmp, encrypted; allowed_directories = [home]; enable_external_access = false;
  - ATTACH '<home>/vault.duckdb' (ENCRYPTION_KEY ?, ENCRYPTION_CIPHER 'GCM') with the key bound as a
    parameter (base64 of the DEK; never in SQL text);
  - lock_configuration = true.
DuckDB's unsafe (mbedtls) write mode is never switched on.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import hmac
import json
import os
import shutil
import stat
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from vault import keys as keymod
from vault import migrations, rowid

if TYPE_CHECKING:  # polars is imported where a frame is made, not by every command that opens a vault
    import polars as pl

    from vault import sealed_records
from vault.errors import (
    DiskFull,
    IntegrityError,
    MemoryCapReached,
    VaultError,
    VaultExists,
    VaultLocked,
    VaultMissing,
)
from vault.fsio import fsync_dir
from vault.lockfile import LOCK_FILE, read_lock_info
from vault.sqltext import sql_literal

HOME_MODE = 0o700  # the vault home: only its owner may list, enter or change it
DB_FILE = "vault.duckdb"
TMP_DIR = "tmp"
BLOB_DIR = "blobs"
ALIAS = "vault"
DUCKDB_VERSION = "1.5.5"


def httpfs_extension_path() -> Path:
    import duckdb_extension_httpfs  # the wheel that carries DuckDB's signed httpfs build

    path = Path(duckdb_extension_httpfs.__file__).parent / "extensions" / f"v{DUCKDB_VERSION}" / "httpfs.duckdb_extension"
    if not path.is_file():
        raise VaultError(f"the httpfs extension for DuckDB {DUCKDB_VERSION} is missing; reinstall lifevault")
    return path


def translate(e: BaseException, *, home: Path | None = None) -> VaultError | BaseException:
    """Map DuckDB's errors onto one-line user errors; anything unrecognised is returned as is."""
    msg = str(e)
    where = f" ({home})" if home else ""
    if "AES tag" in msg or "checksum" in msg.lower() or "Corrupt database" in msg or "not a valid DuckDB" in msg:
        return IntegrityError(
            f"the vault failed its integrity check{where}: vault.duckdb was modified or corrupted; "
            "restore it from a backup (`lifevault import`)"
        )
    if "Wrong encryption key" in msg:
        return IntegrityError(f"vault.duckdb does not belong to this keys.json{where}; restore the matching pair")
    if "No space left" in msg or "File too large" in msg or "disk is full" in msg.lower():
        return DiskFull("disk full: the write was rolled back and the previous state is intact; free space and retry")
    if isinstance(e, duckdb.OutOfMemoryException):
        return MemoryCapReached(
            f"out of memory{where}: the operation needed more than the vault's memory cap (DuckDB's memory_limit) "
            "and could not spill the rest to disk; it was rolled back; retry it when less is running")
    return e


class _Lock:
    """An exclusive advisory lock on <home>/vault.lock holding {"pid", "port"} for error messages and the CLI."""

    def __init__(self, home: Path) -> None:
        self.path = home / LOCK_FILE
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(self.fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            info = read_lock_info(home) or {}
            pid = info.get("pid", "?")
            port = info.get("port")
            how = f"`lifevault serve` on 127.0.0.1:{port}" if port else "another lifevault command"
            raise VaultLocked(
                f"the vault is in use by process {pid} ({how}); wait for it to finish or stop it"
            ) from None
        self.write(port=None)

    def write(self, *, port: int | None) -> None:
        data = json.dumps({"pid": os.getpid(), "port": port}).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    def release(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            os.close(self.fd)
            self.fd = -1


def _connect(home: Path, *, memory_limit: str | None = None, httpfs: bool = True) -> duckdb.DuckDBPyConnection:
    """A locked-down session (see the module docstring). httpfs=False for a READ_ONLY attach: DuckDB's built-in
    crypto module decrypts and authenticates the file (it only refuses to write), and loading the extension
    is a third of what opening costs."""
    extra: dict[str, str | bool | int | float | list[str]] = {"memory_limit": memory_limit} if memory_limit else {}
    con = duckdb.connect(
        ":memory:",
        config=extra | {
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_unsigned_extensions": False,
            "allow_community_extensions": False,
        },
    )
    if httpfs:
        con.execute("LOAD " + sql_literal(str(httpfs_extension_path())))
    tmp = home / TMP_DIR
    tmp.mkdir(mode=0o700, exist_ok=True)
    con.execute("SET temp_directory = ?", [str(tmp)])
    con.execute("SET temp_file_encryption = true")
    con.execute("SET allowed_directories = ?", [[str(home)]])
    con.execute("SET enable_external_access = false")
    con.execute("SET TimeZone = 'UTC'")
    # DuckDB draws a progress bar on stdout for queries over 2 s: it would corrupt `--json` output
    con.execute("SET enable_progress_bar = false")
    con.execute("SET enable_progress_bar_print = false")
    return con


class Connecting:
    """_connect() (httpfs loaded) running in a thread from construction on: DuckDB releases the GIL while it
    loads the extension (~0.1 s), so a command that starts it before importing its search stack gets both at
    once. Pass it to Vault.open(connecting=...); result() waits and raises what _connect raised."""

    def __init__(self, home: Path) -> None:
        self._con: duckdb.DuckDBPyConnection | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(Path(home).expanduser().absolute(),),
                                        name="lifevault-connect", daemon=True)
        self._thread.start()

    def _run(self, home: Path) -> None:
        try:
            self._con = _connect(home)
        except BaseException as e:  # noqa: BLE001 - handed to the thread that waits in result()
            self._error = e

    def result(self) -> duckdb.DuckDBPyConnection:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._con is not None
        return self._con


def _attach(con: duckdb.DuckDBPyConnection, path: Path, key_text: str, alias: str, *, read_only: bool = False) -> None:
    mode = ", READ_ONLY" if read_only else ""
    con.execute(f"ATTACH {sql_literal(str(path))} AS {alias} (ENCRYPTION_KEY ?, ENCRYPTION_CIPHER 'GCM'{mode})", [key_text])


def make_private(home: Path) -> int | None:
    """Give the vault home mode HOME_MODE, whatever mode it had (e.g. made earlier by hand with 0755).
    Returns the mode it had when this changed it (for the CLI to say so), else None."""
    try:
        mode = stat.S_IMODE(home.stat().st_mode)
        if mode == HOME_MODE:
            return None
        os.chmod(home, HOME_MODE)
    except PermissionError:
        raise VaultError(f"cannot make the vault home {home} private (mode 0700): it must belong to you; "
                         f"check its owner and run `chmod 700 {home}`") from None
    return mode


class Vault:
    """An open vault. Use Vault.create / Vault.open; close() (or `with`) releases the lock."""

    def __init__(self, home: Path, keys: keymod.Keys, con: duckdb.DuckDBPyConnection, lock: _Lock, *,
                 read_only: bool = False) -> None:
        self.home = home
        self.read_only = read_only  # attached READ_ONLY (Vault.open(read_only=True)): writes are refused
        self._keys = keys
        self._con: duckdb.DuckDBPyConnection | None = con  # None once closed
        self._lock = lock
        self._owner = threading.get_ident()
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursors_lock = threading.Lock()
        self.chain_lock = threading.RLock()  # vault/chain.py: one append at a time, in seq order
        self.chain_heads: dict[str, tuple[int, str]] = {}  # vault/chain.py: table -> committed (seq, hash)
        self.chain_queues: dict[str, list[Any]] = {}  # vault/chain.py: appends waiting for the group commit
        self.chain_queue_lock = threading.Lock()
        self._row_ids_fn: rowid.RowIds | None = None  # the vault's row-id scheme, read once
        self._audit_key: bytes | None = None  # text_hmac's key, derived once
        self.home_mode_was: int | None = None  # the home's mode when opening made it HOME_MODE (make_private)
        self._primary_keys: dict[str, bool] = {}  # table -> has a primary key (the schema only changes at open)

    # ---- lifecycle -------------------------------------------------------------------------------
    @classmethod
    def create(cls, home: Path, passphrase: str, *, kdf: keymod.KdfParams | None = None) -> tuple[Vault, str]:
        """Create a new vault home; returns the open vault and the one-time recovery code."""
        home = Path(home).expanduser().absolute()
        if (home / keymod.KEYS_FILE).exists() or (home / DB_FILE).exists():
            raise VaultExists(f"{home} already holds a vault; pick another --home or remove it first")
        home.mkdir(mode=HOME_MODE, parents=True, exist_ok=True)
        was = make_private(home)  # an existing directory keeps its mode through mkdir
        keys, code = keymod.create(home, passphrase, kdf=kdf)
        try:
            vault = cls._open_with(home, keys)
        except BaseException:
            for leftover in (keymod.KEYS_FILE, DB_FILE, DB_FILE + ".wal"):
                (home / leftover).unlink(missing_ok=True)
            raise
        vault.home_mode_was = was
        return vault, code

    @classmethod
    def open(
        cls, home: Path, passphrase: str | None = None, *, recovery_code: str | None = None,
        memory_limit: str | None = None, read_only: bool = False, unlocking: keymod.Unlocking | None = None,
        connecting: Connecting | None = None,
    ) -> Vault:
        """Unlock and open. The Argon2id derivation runs in a thread while DuckDB starts (vault/kdf.py).

        memory_limit (e.g. "512MB") caps DuckDB's memory; beyond it, work spills to encrypted temp files in
        <home>/tmp. read_only, for a command that writes nothing (`status`, `token list`): the database is
        attached READ_ONLY without the httpfs extension and closed without a checkpoint, and the after-open
        steps (the head anchor's catch-up) wait for the next read-write open; a vault that must be written
        before it can be read (a migration, an unfinished key rotation, a WAL left by a crash) is opened
        read-write instead. unlocking: an unlock the caller started (keys.begin_unlock), so
        that its own imports ran during the derivation; connecting: likewise DuckDB's start (Connecting, for
        a read-write open without memory_limit)."""
        home = Path(home).expanduser().absolute()
        if not home.is_dir():
            raise VaultMissing(f"vault home {home} does not exist (run `lifevault init --home {home}` first)")
        was = make_private(home)
        if unlocking is None:
            unlocking = keymod.begin_unlock(home, passphrase, recovery_code=recovery_code)
        read_only = read_only and not (home / (DB_FILE + ".wal")).exists()
        if connecting is not None and (read_only or memory_limit):
            connecting.result().close()  # made for another kind of open
            connecting = None
        con = connecting.result() if connecting else _connect(home, memory_limit=memory_limit, httpfs=not read_only)
        try:
            keys = unlocking.keys()
            if not (home / DB_FILE).exists():
                raise VaultMissing(f"{home / DB_FILE} is missing; restore it from a backup (`lifevault import`)")
        except BaseException:
            con.close()
            raise
        vault = cls._open_with(home, keys, memory_limit=memory_limit, read_only=read_only, con=con)
        vault.home_mode_was = was
        return vault

    @classmethod
    def _open_with(cls, home: Path, keys: keymod.Keys, *, memory_limit: str | None = None, read_only: bool = False,
                   con: duckdb.DuckDBPyConnection | None = None) -> Vault:
        if read_only and keys.pending_duckdb is not None:  # the rotation is finished or abandoned read-write
            read_only = False
            if con is not None:  # made without httpfs, which writing needs
                con.close()
                con = None
        try:
            lock = _Lock(home)
        except BaseException:
            if con is not None:
                con.close()
            raise
        try:
            con = con or _connect(home, memory_limit=memory_limit, httpfs=not read_only)
            try:
                keys = cls._attach_current(con, home, keys, read_only=read_only)
                os.chmod(home / DB_FILE, 0o600)
                con.execute("SET lock_configuration = true")
                con.execute(f"USE {ALIAS}")
                vault = cls(home, keys, con, lock, read_only=read_only)
                settled = read_only and migrations.settled(vault)
                if not read_only:
                    migrations.apply(vault)
                    migrations.after_open(vault)
            except BaseException:
                con.close()
                raise
        except BaseException as e:
            lock.release()
            err = translate(e, home=home)
            if err is not e:
                raise err from None
            raise
        if read_only and not settled:  # opening has something to write: read-write after all
            vault.close()
            return cls._open_with(home, keys, memory_limit=memory_limit)
        _clean_stale(home)
        return vault

    @staticmethod
    def _attach_current(con: duckdb.DuckDBPyConnection, home: Path, keys: keymod.Keys, *,
                        read_only: bool = False) -> keymod.Keys:
        """Attach with the current key; finish or abandon an interrupted rotate-key."""
        db = home / DB_FILE
        try:
            _attach(con, db, keys.duckdb_key_text(), ALIAS, read_only=read_only)
            if keys.pending_duckdb is not None:  # the swap never happened: drop the staged key
                keymod.drop_pending(home)
            return keys
        except duckdb.Error as e:
            if keys.pending_duckdb is None or "Wrong encryption key" not in str(e):
                raise
        _attach(con, db, keys.duckdb_key_text(pending=True), ALIAS)  # the swap happened: promote
        return keymod.promote_pending(home, keys)

    def _conn(self) -> duckdb.DuckDBPyConnection:
        """This thread's connection. The opening thread uses the vault's own; any other thread (an API worker)
        gets its own cursor on the same database, with its own transactions, so threads read concurrently
        (DuckDB's MVCC) instead of sharing one connection that is not for concurrent use."""
        con = self._main()
        if threading.get_ident() == self._owner:
            return con
        cur = getattr(self._local, "con", None)
        if cur is None:
            cur = con.cursor()
            cur.execute(f"USE {ALIAS}")
            with self._cursors_lock:
                self._cursors.append(cur)
            self._local.con = cur
        return cur

    def _main(self) -> duckdb.DuckDBPyConnection:
        """The vault's own connection (the opening thread's)."""
        if self._con is None:
            raise VaultError("the vault is closed")
        return self._con

    def _close_cursors(self) -> None:
        with self._cursors_lock:
            cursors, self._cursors = self._cursors, []
        for cur in cursors:
            with contextlib.suppress(duckdb.Error):
                cur.close()
        self._local = threading.local()

    def close(self) -> None:
        self._close_cursors()
        if self._con is not None:
            if not self.read_only:
                with contextlib.suppress(duckdb.Error):
                    self._con.execute("CHECKPOINT")
            self._con.close()
            self._con = None
        self._lock.release()

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def announce_port(self, port: int) -> None:
        """Record in the lock file that `lifevault serve` owns the vault on this loopback port."""
        self._lock.write(port=port)

    # ---- SQL ---------------------------------------------------------------------------------------
    def _run(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
        try:
            con = self._conn()
            return con.execute(sql, params) if params is not None else con.execute(sql)
        except duckdb.Error as e:
            err = translate(e, home=self.home)
            if err is not e:
                raise err from None
            raise

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> None:
        self._run(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            self._conn().executemany(sql, rows)
        except duckdb.Error as e:
            err = translate(e, home=self.home)
            if err is not e:
                raise err from None
            raise

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return self._run(sql, params).fetchall()

    def scalar(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> Any:
        row = self._run(sql, params).fetchone()
        return row[0] if row else None

    def frame(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> pl.DataFrame:
        return self._run(sql, params).pl()

    def insert_frame(self, table: str, df: pl.DataFrame, *, on_conflict_nothing: bool = True,
                     replace: bool = False) -> int:
        """Insert a polars frame by column name; rows whose primary key exists are skipped (`replace`: replaced,
        in one statement, where a DELETE binding a list of 20,000 ids cost seconds). Returns rows added."""
        if df.height == 0:
            return 0
        before = self.scalar(f"SELECT count(*) FROM {table}")
        cols = ", ".join(f'"{c}"' for c in df.columns)
        con = self._conn()
        con.register("_lv_frame", df)
        try:
            source = "_lv_frame"
            conflict = ""
            verb = "INSERT"
            if replace:  # rows whose primary key exists are replaced whole
                verb = "INSERT OR REPLACE"
            elif on_conflict_nothing and self._has_primary_key(table):
                conflict = " ON CONFLICT DO NOTHING"
            elif on_conflict_nothing and "row_id" in df.columns:  # an unindexed table: skip ids it holds
                source = f"_lv_frame ANTI JOIN {table} USING (row_id)"
            self._run(f"{verb} INTO {table} ({cols}) SELECT {cols} FROM {source}{conflict}")
        finally:
            con.unregister("_lv_frame")
        return int(self.scalar(f"SELECT count(*) FROM {table}")) - int(before)

    def _has_primary_key(self, table: str) -> bool:
        has = self._primary_keys.get(table)
        if has is None:  # asked once per table: ingest inserts a batch at a time
            has = self._primary_keys[table] = bool(self.scalar(
                "SELECT count(*) FROM duckdb_constraints() WHERE database_name = ? AND table_name = ? "
                "AND constraint_type = 'PRIMARY KEY'", [ALIAS, table],
            ))
        return has

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Vault]:
        """One transaction on this thread's connection (not nestable)."""
        self._run("BEGIN TRANSACTION")
        self._local.in_tx = True
        try:
            try:
                yield self
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    self._conn().execute("ROLLBACK")
                raise
            self._run("COMMIT")
        except BaseException:
            self.chain_heads.clear()  # rolled back or not committed: appends made in it are gone
            raise
        finally:
            self._local.in_tx = False

    def in_transaction(self) -> bool:
        """Is a transaction() open on this thread?"""
        return bool(getattr(self._local, "in_tx", False))

    def checkpoint(self) -> None:
        self._run("CHECKPOINT")

    def tables(self) -> list[str]:
        return [r[0] for r in self.query(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = ? ORDER BY table_name", [ALIAS]
        )]

    def setting(self, name: str) -> Any:
        return self.scalar("SELECT current_setting(?)", [name])

    # ---- keyed ids and sealed blobs -----------------------------------------------------------------
    def row_id(self, *parts: object) -> int:
        """A stable, keyed 63-bit id for a natural key: a MAC under the rowid key (see vault/rowid.py).

        Without the key nobody can test whether a given natural key (a place, a time) is in the vault."""
        return self.row_ids(["\x1f".join("" if p is None else str(p) for p in parts)])[0]

    def row_ids(self, natural_keys: Iterable[str | None]) -> list[int]:
        """row_id for many already-joined natural keys (join parts with \\x1f, as row_id does)."""
        ids: list[int] = self._row_id_fn().of_texts(natural_keys).tolist()
        return ids

    def row_id_column(self, natural_keys: pl.Series) -> pl.Series:
        """row_id of every string in a column (nulls count as ""), as an Int64 Series; vectorised
        for the aes-cmac scheme (the ingest hot path)."""
        import polars as pl

        return pl.Series(natural_keys.name, self._row_id_fn().of_arrow(natural_keys.to_arrow()), dtype=pl.Int64)

    def purpose_key(self, info: bytes) -> bytes:
        """A 256-bit key for one purpose (HKDF-SHA256 of the rowid key, `info` names it): keys.json's head
        anchor MAC (vault/headanchor.py)."""
        return rowid.derive(self._keys.rowid, info)

    def text_hmac(self, text: str) -> str:
        """HMAC-SHA256 (hex) of `text` under the vault's audit key (HKDF-SHA256 of the rowid key, info
        "lifevault/audit/text-hmac"): the form in which queries and selectors enter the audit log. Equal
        texts give equal values (the log links them); without the key nobody can test a guess."""
        key = self._audit_key
        if key is None:
            key = self._audit_key = rowid.derive(self._keys.rowid, b"lifevault/audit/text-hmac")
        return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()

    @property
    def row_id_scheme(self) -> str:
        return self._row_id_fn().scheme

    def _row_id_fn(self) -> rowid.RowIds:
        fn = self._row_ids_fn
        if fn is None:  # the scheme is fixed for the vault's life (migration 0014); read once
            scheme = self.scalar("SELECT value FROM vault_meta WHERE key = 'row_id_scheme'") or rowid.BLAKE2B
            fn = self._row_ids_fn = rowid.RowIds(scheme, self._keys.rowid)
        return fn

    def blob_path(self, name: str) -> Path:
        d = self.home / BLOB_DIR
        d.mkdir(mode=0o700, exist_ok=True)
        return d / f"{name}.sealed"

    def write_blob(self, name: str, data: bytes) -> Path:
        from vault import sealed

        path = self.blob_path(name)
        sealed.write(path, self._keys.sealed, name, data)
        return path

    def read_blob(self, name: str) -> bytes | None:
        from vault import sealed

        path = self.blob_path(name)
        return sealed.read(path, self._keys.sealed, name) if path.exists() else None

    @contextlib.contextmanager
    def blob_writer(self, name: str) -> Iterator[Callable[[bytes | memoryview], None]]:
        """Seal what is written to the yielded function as blob `name`, chunk by chunk (no plaintext copy
        of the whole); the blob is replaced atomically when the block ends without an error."""
        from vault import sealed

        writer = sealed.SealWriter(self.blob_path(name), self._keys.sealed, name)
        try:
            yield writer.write
        except BaseException:
            writer.abort()
            raise
        writer.commit()

    def read_blob_chunks(self, name: str) -> Iterator[memoryview] | None:
        """Blob `name`'s plaintext chunk by chunk, each authenticated before it is yielded (decrypted in
        parallel, a few chunks ahead); None when there is no such blob."""
        from vault import sealed

        path = self.blob_path(name)
        return sealed.read_chunks(path, self._keys.sealed, name) if path.exists() else None

    def delete_blob(self, name: str) -> None:
        self.blob_path(name).unlink(missing_ok=True)

    def blob_names(self, prefix: str) -> list[str]:
        """Names of the sealed blobs and record files whose name starts with `prefix`."""
        return sorted(p.name.removesuffix(".sealed") for p in self.blob_path(prefix).parent.glob("*.sealed")
                      if p.name.startswith(prefix))

    def record_writer(self, name: str, *, record_size: int, count: int) -> sealed_records.RecordWriter:
        """A writer sealing `count` fixed-size records as `name` (vault/sealed_records.py); commit() puts the
        file in place atomically."""
        from vault import sealed_records

        return sealed_records.RecordWriter(self.blob_path(name), self._keys.sealed, name,
                                           record_size=record_size, count=count)

    def open_records(self, name: str) -> sealed_records.RecordReader:
        """Random access to the sealed records `name`; VaultMissing when there is no such file."""
        from vault import sealed_records

        return sealed_records.RecordReader(self.blob_path(name), self._keys.sealed, name)

    # ---- key operations -----------------------------------------------------------------------------
    def change_passphrase(self, new_passphrase: str, *, kdf: keymod.KdfParams | None = None) -> None:
        self._keys = keymod.change_passphrase(self.home, self._keys, new_passphrase, kdf=kdf)

    def rotate_duckdb_key(self) -> None:
        """New DuckDB DEK: copy into a new encrypted file, swap atomically, destroy the old wrapped key."""
        staged = keymod.stage_duckdb_key(self.home, self._keys)
        new_path = self.home / (DB_FILE + ".rotating")
        self._close_cursors()  # other threads' cursors point at the database being replaced
        new_path.unlink(missing_ok=True)
        self.checkpoint()
        _attach(self._main(), new_path, staged.duckdb_key_text(pending=True), "rotating")
        try:
            self._run(f"COPY FROM DATABASE {ALIAS} TO rotating")
            self._run("CHECKPOINT rotating")
        finally:
            self._run("DETACH rotating")
        fd = os.open(new_path, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        self._run("USE memory")
        self._run(f"DETACH {ALIAS}")
        os.replace(new_path, self.home / DB_FILE)
        (self.home / (DB_FILE + ".wal")).unlink(missing_ok=True)
        fsync_dir(self.home)
        self._keys = keymod.promote_pending(self.home, staged)
        _attach(self._main(), self.home / DB_FILE, self._keys.duckdb_key_text(), ALIAS)
        self._run(f"USE {ALIAS}")


def _clean_stale(home: Path) -> None:
    """Remove leftovers of a crashed run (encrypted temp spill files, an abandoned rotation copy)."""
    (home / (DB_FILE + ".rotating")).unlink(missing_ok=True)
    tmp = home / TMP_DIR
    if tmp.is_dir():
        for child in tmp.iterdir():
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
