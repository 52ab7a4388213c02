"""Tables written by ingest: raw rows per source, quarantine, loads, cursors, and derived tables.

Conventions: `row_id` is a keyed hash (a MAC under the vault's rowid key, vault/rowid.py) of the natural key, so
re-ingesting the same export adds nothing. Times are TIMESTAMPTZ in UTC; `utc_offset_min` keeps the
offset the export was written in. `start`/`end`/`at` are SQL keywords, hence `start_ts`/`end_ts`/`ts`.
"""

from __future__ import annotations

_PROVENANCE = "format VARCHAR NOT NULL, file VARCHAR, position BIGINT, load_id VARCHAR NOT NULL"

MIGRATIONS: list[tuple[str, list[str]]] = [
    (
        "0010_ingest_raw",
        [
            f"""CREATE TABLE location_points (
                row_id BIGINT PRIMARY KEY, ts TIMESTAMPTZ, utc_offset_min INTEGER,
                lat DOUBLE NOT NULL, lon DOUBLE NOT NULL, accuracy_m DOUBLE, altitude_m DOUBLE,
                provider VARCHAR, {_PROVENANCE})""",
            f"""CREATE TABLE place_visits (
                row_id BIGINT PRIMARY KEY, start_ts TIMESTAMPTZ NOT NULL, end_ts TIMESTAMPTZ NOT NULL,
                utc_offset_min INTEGER, lat DOUBLE, lon DOUBLE, place_id VARCHAR, name VARCHAR, address VARCHAR,
                semantic_type VARCHAR, confidence DOUBLE, {_PROVENANCE})""",
            f"""CREATE TABLE activity_segments (
                row_id BIGINT PRIMARY KEY, start_ts TIMESTAMPTZ NOT NULL, end_ts TIMESTAMPTZ NOT NULL,
                utc_offset_min INTEGER, start_lat DOUBLE, start_lon DOUBLE, end_lat DOUBLE, end_lon DOUBLE,
                distance_m DOUBLE, activity_type VARCHAR, {_PROVENANCE})""",
            f"""CREATE TABLE calendar_events (
                row_id BIGINT PRIMARY KEY, uid VARCHAR NOT NULL, recurrence_id VARCHAR NOT NULL,
                start_ts TIMESTAMPTZ NOT NULL, end_ts TIMESTAMPTZ, utc_offset_min INTEGER, tzid VARCHAR,
                all_day BOOLEAN, summary VARCHAR, location VARCHAR, description VARCHAR, status VARCHAR,
                organizer VARCHAR, attendees VARCHAR, calendar VARCHAR, {_PROVENANCE})""",
            f"""CREATE TABLE usage_events (
                row_id BIGINT PRIMARY KEY, ts TIMESTAMPTZ NOT NULL, utc_offset_min INTEGER, package VARCHAR,
                class_name VARCHAR, event_type VARCHAR NOT NULL, {_PROVENANCE})""",
            f"""CREATE TABLE usage_intervals (
                row_id BIGINT PRIMARY KEY, start_ts TIMESTAMPTZ NOT NULL, end_ts TIMESTAMPTZ NOT NULL,
                utc_offset_min INTEGER, package VARCHAR, stream VARCHAR, {_PROVENANCE})""",
        ],
    ),
    (
        "0011_ingest_bookkeeping",
        [
            """CREATE TABLE loads (
                load_id VARCHAR PRIMARY KEY, kind VARCHAR, source VARCHAR NOT NULL, files VARCHAR NOT NULL,
                started_at TIMESTAMPTZ NOT NULL, finished_at TIMESTAMPTZ, status VARCHAR NOT NULL,
                loaded BIGINT NOT NULL DEFAULT 0, duplicates BIGINT NOT NULL DEFAULT 0,
                quarantined BIGINT NOT NULL DEFAULT 0, seconds DOUBLE)""",
            """CREATE TABLE quarantine (
                row_id BIGINT PRIMARY KEY, load_id VARCHAR NOT NULL, format VARCHAR NOT NULL, file VARCHAR,
                position BIGINT, reason VARCHAR NOT NULL, raw VARCHAR, quarantined_at TIMESTAMPTZ NOT NULL)""",
            """CREATE TABLE ingest_cursors (
                file_key VARCHAR PRIMARY KEY, format VARCHAR NOT NULL, batches_done BIGINT NOT NULL,
                complete BOOLEAN NOT NULL, load_id VARCHAR NOT NULL, updated_at TIMESTAMPTZ NOT NULL)""",
        ],
    ),
    (
        "0012_ingest_derived",
        [
            """CREATE TABLE stays (
                row_id BIGINT PRIMARY KEY, start_ts TIMESTAMPTZ NOT NULL, end_ts TIMESTAMPTZ NOT NULL,
                utc_offset_min INTEGER, lat DOUBLE, lon DOUBLE, place_id VARCHAR, name VARCHAR, address VARCHAR,
                semantic_type VARCHAR, origin VARCHAR NOT NULL, n_points BIGINT)""",
            """CREATE TABLE trips (
                row_id BIGINT PRIMARY KEY, start_ts TIMESTAMPTZ NOT NULL, end_ts TIMESTAMPTZ NOT NULL,
                utc_offset_min INTEGER, from_stay BIGINT, to_stay BIGINT, from_name VARCHAR, to_name VARCHAR,
                start_lat DOUBLE, start_lon DOUBLE, end_lat DOUBLE, end_lon DOUBLE,
                distance_m DOUBLE, activity_type VARCHAR, origin VARCHAR NOT NULL)""",
            """CREATE TABLE app_sessions (
                row_id BIGINT PRIMARY KEY, start_ts TIMESTAMPTZ NOT NULL, end_ts TIMESTAMPTZ NOT NULL,
                utc_offset_min INTEGER, package VARCHAR NOT NULL, app_name VARCHAR, category VARCHAR,
                origin VARCHAR NOT NULL)""",
            """CREATE TABLE daily_summaries (
                day DATE PRIMARY KEY, utc_offset_min INTEGER, places VARCHAR, meetings BIGINT,
                meeting_minutes DOUBLE, screen_minutes DOUBLE, screen_by_app VARCHAR, screen_by_category VARCHAR)""",
        ],
    ),
    (
        # Raw fixes are the bulk of a vault (millions of rows) and are only ever appended or deleted:
        # maintaining a primary-key index for them cost more than the rest of the write. Without it,
        # Vault.insert_frame skips existing ids with a hash anti-join (one writer, in-batch duplicates
        # already dropped by the pipeline), which keeps re-ingest idempotent at half the cost.
        "0013_location_points_unindexed",
        [
            f"""CREATE TABLE location_points_heap (
                row_id BIGINT NOT NULL, ts TIMESTAMPTZ, utc_offset_min INTEGER,
                lat DOUBLE NOT NULL, lon DOUBLE NOT NULL, accuracy_m DOUBLE, altitude_m DOUBLE,
                provider VARCHAR, {_PROVENANCE})""",
            "INSERT INTO location_points_heap SELECT * FROM location_points",
            "DROP TABLE location_points",
            "ALTER TABLE location_points_heap RENAME TO location_points",
        ],
    ),
    (
        # Row ids: vaults that already hold data keep the keyed BLAKE2b ids they were written with (their
        # ids are stored in other tables and audit events too: they cannot all be recomputed); a vault
        # with nothing in it yet uses AES-CMAC, computed a column at a time (vault/rowid.py).
        "0014_row_id_scheme",
        [
            """INSERT INTO vault_meta
               SELECT 'row_id_scheme', CASE WHEN EXISTS (
                   SELECT 1 FROM duckdb_tables() WHERE database_name = 'vault' AND estimated_size > 0
                   AND table_name NOT IN ('_migrations', 'vault_meta')) THEN 'blake2b' ELSE 'aes-cmac' END
               WHERE NOT EXISTS (SELECT 1 FROM vault_meta WHERE key = 'row_id_scheme')""",
        ],
    ),
    (
        # Derived state behind the raw tables: a raw table is marked here in the same transaction as a batch
        # that changed it, and the mark is cleared in the transaction that commits the derived tables, so a
        # run killed in between leaves the mark and any later run (even one with nothing new) derives.
        # Vaults that already hold raw rows are marked once: one recompute heals derived tables an earlier
        # crash left behind.
        "0015_derive_pending",
        [
            "CREATE TABLE derive_pending (raw_table VARCHAR PRIMARY KEY, marked_at TIMESTAMPTZ NOT NULL)",
            *(f"INSERT INTO derive_pending SELECT '{t}', now() WHERE EXISTS (SELECT 1 FROM {t})"
              for t in ("location_points", "place_visits", "activity_segments", "calendar_events", "usage_events",
                        "usage_intervals")),
        ],
    ),
]
