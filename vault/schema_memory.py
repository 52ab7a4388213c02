"""Tables written by embeddings/: memories, their history, and vector bookkeeping.

- `memories`: one row per memory (a visit, a calendar occurrence, an app-usage cluster or a day's screen
  time, a trip, an agent-written note). `text` is what is embedded and searched; `text_redacted` is the
  same memory with places named by type and event locations removed (NULL when identical), used for
  callers without precise location. `details` is the structured private part (place name, coordinates,
  attendees with emails) that the API redacts per scope; `metadata` is an agent note's JSON object, kept
  as the exact text it was given. `source_table`/`source_row_ids` are the provenance (NULL for notes).
  `text_sha` covers what is embedded; `content_sha` the whole row (sync compares it).
  Two time axes: `start_ts`/`end_ts` (when it happened) and `ingested_at`/`updated_at` (when it was known).
- `memory_history`: earlier versions of updated notes; deleted with the note.
- `memory_vectors`: which model (name, weights version, precision) embedded which text_sha of a memory.
  The vectors themselves live in the sealed FAISS blobs (IndexIDMap2 keeps them); a row is written only
  after the blob holding its vector has been sealed.
- `forgotten_rows`: keyed row ids (no content) of source rows removed by `forget`, so ingest can refuse to
  bring them back from an old export.
No CHECK or FOREIGN KEY constraints: every table must accept tests/vault/canary.py's planted rows.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, list[str]]] = [
    (
        "0020_memories",
        [
            """CREATE TABLE memories (
                memory_id BIGINT PRIMARY KEY, kind VARCHAR NOT NULL, text VARCHAR NOT NULL,
                text_redacted VARCHAR, start_ts TIMESTAMPTZ, end_ts TIMESTAMPTZ, utc_offset_min INTEGER,
                tags VARCHAR[], metadata VARCHAR, details VARCHAR, source VARCHAR NOT NULL,
                source_table VARCHAR, source_row_ids BIGINT[], sensitivity VARCHAR NOT NULL,
                version INTEGER NOT NULL, ingested_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL,
                text_sha VARCHAR NOT NULL, content_sha VARCHAR NOT NULL)""",
            """CREATE TABLE memory_history (
                memory_id BIGINT NOT NULL, version INTEGER NOT NULL, text VARCHAR NOT NULL,
                start_ts TIMESTAMPTZ, end_ts TIMESTAMPTZ, utc_offset_min INTEGER, tags VARCHAR[],
                metadata VARCHAR, source VARCHAR, updated_at TIMESTAMPTZ NOT NULL,
                replaced_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (memory_id, version))""",
            """CREATE TABLE memory_vectors (
                memory_id BIGINT PRIMARY KEY, model VARCHAR NOT NULL, model_version VARCHAR NOT NULL,
                dtype VARCHAR NOT NULL, text_sha VARCHAR NOT NULL, embedded_at TIMESTAMPTZ NOT NULL)""",
            """CREATE TABLE forgotten_rows (
                source_table VARCHAR NOT NULL, row_id BIGINT NOT NULL, forgotten_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (source_table, row_id))""",
        ],
    ),
]
