"""Pydantic models at the edge: separate input (…In, extra fields forbidden) and output (…Out) models."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from api.params import End, Start
from embeddings.notes import MAX_TEXT_CHARS
from embeddings.records import MAX_METADATA_BYTES, MAX_METADATA_DEPTH, metadata_problem

Kind = Literal["visit", "event", "usage", "trip", "note", "routine"]
Scope = Literal["memory:read", "memory:write", "location:read", "calendar:read", "usage:read", "audit:read", "owner"]


NoteText = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS, pattern=r"\S", description="Not blank.")]


def _bounded(metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    problem = metadata_problem(metadata) if metadata is not None else None
    if problem:
        raise ValueError(problem)
    return metadata


Metadata = Annotated[dict[str, Any] | None, AfterValidator(_bounded), Field(
    description=f"A JSON object, nested at most {MAX_METADATA_DEPTH} levels and at most {MAX_METADATA_BYTES} bytes "
                "of JSON.")]
Tag = Annotated[str, Field(min_length=1, max_length=100, pattern=r"\S")]


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorOut(BaseModel):
    detail: str | list[dict[str, Any]] = Field(description="A message (never quoting the request), or validation "
                                                          "errors as location, message and type.")


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": text} for code, text in (
        (400, "A request the vault cannot honour"), (401, "No token, or a malformed, unknown, revoked or expired one"),
        (403, "The token lacks the scope, or the Host/Origin is not this loopback server"),
        (404, "No such memory (or none this token may see)"), (409, "A conflict: not a note, or a stale forget digest"),
        (422, "Invalid input"), (429, "Over this token's rate limit (see Retry-After)"))
}


class Health(BaseModel):
    status: Literal["ok"]
    version: str


# ---- memory --------------------------------------------------------------------------------------------
class SearchIn(In):
    query: str = Field(min_length=1, max_length=2000, description="Natural language; time phrases become filters.")
    k: int = Field(10, ge=1, le=100)
    since: Start | None = None
    until: End | None = None
    kinds: list[Kind] | None = Field(None, max_length=6)
    tags: list[Tag] | None = Field(None, max_length=20)
    explain: bool = False
    mode: Literal["hybrid", "dense", "lexical"] = Field("hybrid", description="Both signals fused, or one alone.")


class Provenance(BaseModel):
    source: str
    table: str | None
    row_ids: list[int]


class MemoryOut(BaseModel):
    id: int
    kind: str
    text: str
    start: str | None
    end: str | None
    utc_offset_min: int | None
    tags: list[str]
    metadata: dict[str, Any] | None = Field(description="An agent note's metadata, exactly as stored.")
    details: dict[str, Any] = Field(description="Places, attendees, app: redacted to the token's grants.")
    provenance: Provenance
    sensitivity: str
    version: int
    ingested_at: str | None
    updated_at: str | None


class Signal(BaseModel):
    rank: int | None = Field(description="1-based; null when beyond the depth this signal searched.")
    score: float
    weight: float
    contribution: float = Field(description="This signal's part of the hit's fused score.")


class HitOut(MemoryOut):
    score: float
    rank: int
    explain: dict[str, Signal] | None = None


class SearchOut(BaseModel):
    hits: list[HitOut] = Field(description="Best first.")
    understood: list[str] = Field(default_factory=list, description="Time phrases turned into filters.")
    candidates: int = Field(0, description="Memories visible to the token that passed the filters.")


class ContextIn(In):
    task: str = Field(min_length=1, max_length=2000)
    token_budget: int = Field(1500, ge=32, le=32000)
    since: Start | None = None
    until: End | None = None
    kinds: list[Kind] | None = Field(None, max_length=6)
    now: Start | None = Field(None, description="Plan as of this time (replaying an old export); default now.")


class SnippetOut(BaseModel):
    n: int
    id: int
    kind: str
    text: str
    source: str
    start: str | None
    end: str | None
    score: float
    tokens: int
    also: list[int] = Field(default_factory=list, description="Near-duplicates named on this line by their dates.")


class LeftOutOut(BaseModel):
    id: int
    score: float
    tokens: int


class ContextOut(BaseModel):
    text: str
    snippets: list[SnippetOut]
    left_out: list[LeftOutOut]
    tokens_used: int
    token_budget: int
    free: list[FreeSlot] = Field(default_factory=list, description="Free time listed in a planning pack.")


class RememberIn(In):
    text: NoteText
    occurred_at: Start | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=20)
    metadata: Metadata = None
    source: str = Field("agent", min_length=1, max_length=100)


class CreatedOut(BaseModel):
    id: int


class WrittenOut(BaseModel):
    """What a token without memory:read gets back from an edit: the note's id and version, nothing it says."""

    id: int
    version: int


class UpdateIn(In):
    text: NoteText | None = None
    occurred_at: Start | None = None
    tags: list[Tag] | None = Field(None, max_length=20)
    metadata: Metadata = None


_ID = {"type": "integer", "minimum": 0}
_SELECTORS: dict[str, dict[str, Any]] = {"memory_ids": {"type": "array", "minItems": 1, "maxItems": 1000, "items": _ID}, "source": {"type": "string", "minLength": 1},
              "since": {"type": "string"}, "until": {"type": "string"}, "query": {"type": "string", "minLength": 1},
              "kinds": {"type": "array", "minItems": 1}}


class ForgetIn(In):
    """At least one selector (memory_ids, source, since, until, query, kinds); all given must hold."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"required": [k], "properties": {k: v}} for k, v in _SELECTORS.items()]})
    memory_ids: list[Annotated[int, Field(ge=0)]] | None = Field(None, max_length=1000)
    source: str | None = Field(None, max_length=100)
    since: Start | None = None
    until: End | None = None
    query: str | None = Field(None, max_length=500)
    kinds: list[Kind] | None = None
    commit: bool = Field(False, description="False: preview only. True: delete; needs the preview's digest.")
    digest: str | None = Field(None, max_length=64, description="The digest of the preview being confirmed.")


class PreviewItemOut(BaseModel):
    id: int
    kind: str
    text: str | None = Field(description="As the token sees it; null for a token without memory:read.")
    start: str | None = Field(description="Null for a token without memory:read (or an undated memory).")


class ForgetPreviewOut(BaseModel):
    committed: Literal[False] = False
    memories: int
    by_kind: dict[str, int]
    rows: dict[str, int]
    digest: str
    preview: list[PreviewItemOut]


class ReceiptOut(BaseModel):
    committed: Literal[True] = True
    memories: int
    rows_deleted: dict[str, int]
    vectors_removed: int
    audit_seq: int
    at: str


class DeletedOut(BaseModel):
    deleted: int
    receipt: ReceiptOut


# ---- derived data --------------------------------------------------------------------------------------
class PlaceOut(BaseModel):
    type: str | None = Field(description="'home', 'work', 'a café', ...")
    name: str | None = Field(None, description="Only with precise location.")
    address: str | None = Field(None, description="Only with precise location.")
    lat: float | None = Field(None, description="Rounded to ~1 km unless precise.")
    lon: float | None = None


class TimelineItem(BaseModel):
    id: int
    kind: Literal["visit", "trip"]
    start: str
    end: str
    utc_offset_min: int | None
    place: PlaceOut | None = None
    origin: PlaceOut | None = Field(None, alias="from")
    to: PlaceOut | None = None
    distance_m: float | None = None
    activity: str | None = None

    model_config = ConfigDict(populate_by_name=True)


class TimelineOut(BaseModel):
    items: list[TimelineItem]


class PlaceVisitsOut(BaseModel):
    place: PlaceOut
    visits: int
    minutes: float
    first: str
    last: str


class PlacesOut(BaseModel):
    places: list[PlaceVisitsOut] = Field(description="Most time spent first.")


class Attendee(BaseModel):
    name: str | None = None
    email: str | None = None
    partstat: str | None = None


class EventOut(BaseModel):
    id: int
    start: str
    end: str | None
    all_day: bool | None
    summary: str | None
    description: str | None
    location: str | None = Field(None, description="Only with precise location.")
    status: str | None
    organizer: str | None
    attendees: list[Attendee]
    calendar: str | None


class EventsOut(BaseModel):
    events: list[EventOut]


class FreeSlot(BaseModel):
    start: str
    end: str
    minutes: float


class FreeOut(BaseModel):
    free: list[FreeSlot]


class UsageRow(BaseModel):
    key: str
    minutes: float
    sessions: int


class UsageOut(BaseModel):
    by: Literal["app", "category", "day"]
    total_minutes: float
    rows: list[UsageRow]


# ---- audit, ingest, tokens -----------------------------------------------------------------------------
class AuditEventOut(BaseModel):
    seq: int
    at: str
    kind: str
    body: dict[str, Any]
    hash: str


class AuditEventsOut(BaseModel):
    events: list[AuditEventOut]


class VerifyOut(BaseModel):
    table: str
    ok: bool
    checked: int
    first_broken: int | None
    reason: str


class IngestIn(In):
    paths: list[str] = Field(min_length=1, max_length=1000, description="Absolute paths on this device.")
    kind: Literal["location", "calendar", "usage"] | None = None
    format: str | None = Field(None, max_length=50)
    strict: bool = False


class IngestOut(BaseModel):
    report: dict[str, Any]
    strict_failed: bool
    message: str | None = None


class IndexIn(In):
    rebuild: bool = False


class TokenIn(In):
    agent: str = Field(min_length=1, max_length=100, pattern=r"\S")
    scopes: list[Scope] = Field(min_length=1)
    location: Literal["none", "coarse", "precise"] | None = None
    ttl: str | None = Field(None, pattern=r"^([1-9][0-9]{0,4}[smhdw]|never)$", description="e.g. 30d, 12h, never")
    purpose: str | None = Field(None, max_length=500)
    rate_per_minute: int = Field(600, ge=1, le=1_000_000)


class TokenOut(BaseModel):
    token_id: str
    agent: str
    scopes: list[str]
    location: str
    purpose: str | None
    rate_per_minute: int
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    status: str


class IssuedOut(TokenOut):
    token: str = Field(description="The secret, shown once.")


class TokensOut(BaseModel):
    tokens: list[TokenOut]
