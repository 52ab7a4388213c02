"""Conversation-notes evaluation: evidence recall@10 of questions over multi-session dialogues stored turn by turn.

    python -m bench.eval_dialogue [--set generated|locomo|both] [--seed 11] [--personas 4] [--sessions 6]
                                  [--no-session] [--show-misses]
    python -m bench.eval_dialogue --set locomo [--conversations 2] [--locomo-sessions 20] [--bare] [--no-captions]
                                  [--locomo-file F [--samples N ...]]

Two sets. "generated" (the default, below); "locomo": LoCoMo-shaped conversations (bench/locomo_like.py;
the real set's JSON with --locomo-file), each stored in its own fresh encrypted vault exactly as an agent
stores them: every turn through `POST /v1/memories` of the real API (create_app, TestClient, a token
with memory:read and memory:write) as text "Speaker: utterance", occurred_at the session's date and time,
source "chat" and metadata {"session", "speaker", "dia_id"} (`--bare`: no metadata, so threads come from
time adjacency), then every question through `POST /v1/search` (k = 10). Evidence recall@10 per category
(single-hop, multi-hop, temporal, open-domain). The baselines and the switched-off variants run in the
same process over the same vault (the variants re-index it with a dialogue setting changed).

A seeded generator writes multi-session chats between a user and a friend over weeks: many short turns
("yeah", "that one", "haha"), answers split across turns ("Which one did you go for?" / "yes, the blue
one"), facts stated once and referred to later, and questions whose evidence is one or more specific
turns, including "when did ..." questions whose answer is the turn's occurred_at. Every turn is stored
through MemoryService.remember as an agent would (source "chat", occurred_at, metadata {"session": ...,
"speaker": ...}; `--no-session` leaves the session out so threads come from time adjacency).

Measured in the same run over the same turns: the real search (`MemoryService.search`, k = 10) with
neighbouring turns in the indexed text (embeddings/dialogue.py), the same without the bonus for notes said by a
person the question names (SPEAKER_BONUS 0, no re-index), the same vault re-indexed with each other setting of
VARIANTS (own text only; the own-text blend, OWN_WEIGHT 0.5, with 300 and 500 characters of context), and
three plain baselines over the turns' own texts: BM25 (embeddings/lexical.py),
dense (the same model, cosine) and BM25 + dense reciprocal-rank fusion (k = 60). Evidence recall@10 of a
question is the share of its evidence turns in the top 10; the table gives the mean over questions.
Caveat: dialogues and questions come from templates written by the same hands as the retriever; the real
LoCoMo file (snap-research/LoCoMo, data/locomo10.json, not in the repository) runs with --locomo-file F
[--samples N ...], category 5 and evidence-less questions left out and counted.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from bench import locomo_like
from embeddings import dialogue
from embeddings.encoder import Encoder
from embeddings.lexical import BM25
from embeddings.service import MemoryService
from vault.keys import KdfParams
from vault.store import Vault

START = datetime(2025, 3, 3, 19, 0, tzinfo=UTC)
K = 10
RRF_K = 60
USERS = ["Maya", "Tom", "Lena", "Omar", "Priya", "Sam"]
FRIENDS = ["Jon", "Ivy", "Ana", "Mei", "Bob", "Zoe"]
SLOTS = {
    "vehicle": ["bike", "scooter", "car", "kayak"], "colour": ["blue", "red", "green", "black", "yellow"],
    "sib": ["Rosa", "Nina", "Clara", "Eva"], "city": ["Lisbon", "Berlin", "Toronto", "Osaka", "Dublin"],
    "employer": ["hospital", "startup", "university", "bank"], "cuisine": ["Thai", "Italian", "Georgian", "Korean"],
    "landmark": ["the canal", "the old cinema", "the market", "the station"],
    "pet": ["puppy", "kitten", "rabbit"], "petname": ["Biscuit", "Pepper", "Mochi", "Ziggy", "Olive"],
    "hobby": ["pottery", "salsa", "guitar", "climbing"], "skill": ["make a decent bowl", "do a full turn",
                                                                  "play a barre chord", "finish a 6b route"],
    "day": ["Monday", "Tuesday", "Wednesday", "Thursday"], "bodypart": ["ankle", "wrist", "knee", "shoulder"],
    "sport": ["football", "tennis", "basketball", "squash"], "weeks": ["two", "three", "four", "six"],
    "book": ["The Overstory", "Piranesi", "Klara and the Sun", "Educated"],
    "verdict": ["honestly the best thing I've read this year", "a bit slow but the ending got me",
                "I couldn't put it down", "meh, overhyped"],
    "country": ["Japan", "Portugal", "Mexico", "Norway"], "month": ["May", "June", "September", "October"],
    "city2": ["Kyoto", "Porto", "Oaxaca", "Bergen"], "company": ["Acme", "Globex", "Initech", "Umbrella"],
    "role": ["product designer", "data analyst", "team lead", "backend engineer"],
    "colour2": ["sage green", "terracotta", "pale yellow", "navy"],
}
# (turns as (speaker: "A" user / "B" friend, text), questions as (text, evidence turn indexes, kind)).
# A turn index >= 100 is said in a later session (index - 100 in the follow-up list).
EPISODES: list[tuple[list[tuple[str, str]], list[tuple[str, list[int], str]], list[tuple[str, str]]]] = [
    ([("A", "I finally bought a new {vehicle} on Saturday."), ("B", "Oh nice, which one did you go for?"),
      ("A", "yes, the {colour} one")],
     [("What colour is the {vehicle} {user} bought?", [2], "split"), ("When did {user} buy the new {vehicle}?", [0], "when")], []),
    ([("A", "My sister {sib} is moving to {city} next month."), ("B", "Wow, big change. For work?"),
      ("A", "Yeah, she got a job at a {employer} there")],
     [("Which city is {user}'s sister relocating to?", [0], "fact"), ("Why is {sib} moving abroad?", [2], "split")], []),
    ([("B", "Where did you two go for the anniversary?"), ("A", "That little {cuisine} place near {landmark}."),
      ("B", "The one with the garden?"), ("A", "yeah, that one")],
     [("Which restaurant did {user} choose for the anniversary dinner?", [1, 3], "split")], []),
    ([("A", "We adopted a {pet} from the shelter today!"), ("B", "Aww, what's its name?"), ("A", "{petname}.")],
     [("What is the name of {user}'s {pet}?", [2], "split"), ("When did {user} adopt the {pet}?", [0], "when")], []),
    ([("B", "Are you still doing the {hobby} classes?"), ("A", "yep, every {day}"), ("B", "How's it going?"),
      ("A", "Slowly, but I can finally {skill}.")],
     [("On which day of the week does {user} have {hobby} class?", [1], "split"),
      ("What progress has {user} made in {hobby}?", [3], "split")], []),
    ([("A", "Ugh, I hurt my {bodypart} playing {sport}."), ("B", "Oh no, is it bad?"),
      ("A", "not too bad, the doctor said rest for {weeks} weeks")],
     [("How long must {user} rest the injured {bodypart}?", [2], "split"),
      ("When did {user} get injured playing {sport}?", [0], "when")], []),
    ([("B", "Read anything good lately?"), ("A", "{book}"), ("B", "Worth it?"), ("A", "{verdict}")],
     [("Which novel did {user} read recently?", [1], "split"), ("What did {user} think of {book}?", [3], "split")], []),
    ([("A", "We're going to {country} in {month}!"), ("B", "Where exactly?"),
      ("A", "mostly {city2}, then a few days on the coast")],
     [("Which city will {user} mostly stay in during the {country} holiday?", [2], "split")], []),
    ([("A", "Big news: I got the job at {company}!"), ("B", "Congrats!! What role?"), ("A", "{role}, starting in two weeks")],
     [("What position was {user} offered at {company}?", [2], "split"),
      ("When did {user} get the offer from {company}?", [0], "when")], []),
    ([("A", "I'm thinking of painting the living room {colour2}.")],
     [("Did {user} paint the living room, and in which colour?", [0, 101], "later")],
     [("B", "Did you paint the living room in the end?"), ("A", "yes! it looks great")]),
]
FILLERS = ["haha", "yeah", "totally", "same", "lol", "oh really?", "that's great", "for sure", "sounds good",
           "hmm maybe", "I know right", "nice", "ok!", "true", "wow"]
OPENERS = [("B", "hey! how was your week?"), ("A", "pretty busy, work stuff mostly"), ("A", "hey you, long time"),
           ("B", "good to hear from you")]
CLOSERS = [("A", "ok talk later!"), ("B", "bye, take care"), ("A", "gotta run, speak soon")]


@dataclass(frozen=True, slots=True)
class Turn:
    key: int
    user: str
    session: str
    speaker: str
    text: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Question:
    text: str
    evidence: tuple[int, ...]  # Turn keys
    kind: str


def generate(seed: int, personas: int, sessions: int) -> tuple[list[Turn], list[Question]]:
    rng = random.Random(seed)
    turns: list[Turn] = []
    questions: list[Question] = []
    for p in range(personas):
        user, friend = USERS[p % len(USERS)], FRIENDS[p % len(FRIENDS)]
        names = {"A": user, "B": friend}
        plan: list[list[tuple[list[tuple[str, str]], dict[str, str], int]]] = [[] for _ in range(sessions)]
        follow: list[tuple[int, int, list[tuple[str, str]], tuple[str, list[int], str], dict[str, str], int]] = []
        for s in range(sessions):
            for _ in range(rng.randint(2, 3)):
                e = rng.randrange(len(EPISODES))
                plan[s].append((EPISODES[e][0], {k: rng.choice(v) for k, v in SLOTS.items()} | {"user": user}, e))
        keys: dict[tuple[int, int, int], int] = {}  # (session, episode slot, turn index) -> key
        for s in range(sessions):
            at = START + timedelta(days=14 * s + rng.randint(0, 5), hours=p, minutes=rng.randint(0, 50))
            session = f"{user.lower()}-{s + 1}"
            lines: list[tuple[str, str, tuple[int, int, int] | None]] = [(sp, t, None) for sp, t in rng.sample(OPENERS, 2)]
            for j, (script, values, _) in enumerate(plan[s]):
                for i, (sp, text) in enumerate(script):
                    lines.append((sp, text.format(**values), (s, j, i)))
                    if rng.random() < 0.35:
                        lines.append(("B" if sp == "A" else "A", rng.choice(FILLERS), None))
                for sp2, text2 in [(rng.choice("AB"), rng.choice(FILLERS))] * rng.randint(0, 2):
                    lines.append((sp2, text2, None))
            for f_s, f_j, f_script, _, f_values, _ in follow:
                if f_s == s:
                    for i, (sp, text) in enumerate(f_script):
                        lines.append((sp, text.format(**f_values), (s, f_j, 100 + i)))
            lines.append(rng.choice(CLOSERS) + (None,))
            for sp, text, where in lines:
                at += timedelta(minutes=rng.randint(0, 3), seconds=rng.randint(5, 55))
                key = len(turns)
                turns.append(Turn(key=key, user=user, session=session, speaker=names[sp],
                                  text=f"{names[sp]}: {text}", at=at))
                if where is not None:
                    keys[where] = key
            for j, (_, values, e) in enumerate(plan[s]):  # a later-session follow-up, said in the next session
                if EPISODES[e][2] and s + 1 < sessions:
                    follow.append((s + 1, 1000 + j, EPISODES[e][2], EPISODES[e][1][0], values, s))
        for s in range(sessions):
            for j, (_, values, e) in enumerate(plan[s]):
                for text, ev, kind in EPISODES[e][1]:
                    found = []
                    for i in ev:
                        k = keys.get((s + 1, 1000 + j, i) if i >= 100 else (s, j, i))
                        if k is not None:
                            found.append(k)
                    if len(found) == len(ev):
                        questions.append(Question(text=text.format(**values), evidence=tuple(found), kind=kind))
    return turns, questions


def _recall(ranked: Sequence[object], evidence: Sequence[object]) -> float:
    top = set(ranked[:K])
    return sum(e in top for e in evidence) / len(evidence)


def _rrf(*lists: Sequence[int]) -> list[int]:
    fused: dict[int, float] = defaultdict(float)
    for ranked in lists:
        for r, key in enumerate(ranked, 1):
            fused[key] += 1 / (RRF_K + r)
    return sorted(fused, key=lambda k: -fused[k])


def baselines(turns: list[Turn], questions: list[Question], encoder: Encoder) -> dict[str, list[list[int]]]:
    """BM25, dense and their RRF over the turns' own texts (all in one collection, as the search sees them)."""
    return _baseline_texts([t.text for t in turns], [q.text for q in questions], encoder)


PASSPHRASE = "eval"
KDF = KdfParams(memory_kib=19 * 1024, iterations=2, lanes=1)
VARIANTS: dict[str, dict[str, object]] = {  # other settings of embeddings/dialogue.py, measured beside
    "search, no speaker bonus (SPEAKER_BONUS 0)": {"SPEAKER_BONUS": 0.0},
    "search, own text only": {"BEFORE": 0, "AFTER": 0},
    "search, own and indexed text's vectors blended (OWN_WEIGHT 0.5)": {"OWN_WEIGHT": 0.5},
    "search, blended, neighbours up to 500 characters": {"OWN_WEIGHT": 0.5, "CONTEXT_CHARS": 500},
}

SEARCH_ONLY = {"SPEAKER_BONUS", "SPEAKER_POOL"}  # settings that change the search, not the indexed texts


def variants(vault: Vault, encoder: Encoder, questions: list[str], now: datetime | None = None
             ) -> dict[str, list[list[int]]]:
    """Each VARIANTS setting: the vault re-indexed with it (unless it changes the search alone), every question
    searched (memory ids)."""
    out: dict[str, list[list[int]]] = {}
    reindexed = False
    for name, settings in VARIANTS.items():
        saved = {k: getattr(dialogue, k) for k in settings}
        try:
            for k, v in settings.items():
                setattr(dialogue, k, v)
            svc = MemoryService(vault, encoder=encoder)
            if not set(settings) <= SEARCH_ONLY:
                svc.index(rebuild=True)
                reindexed = True
            out[name] = [[h.memory.memory_id for h in svc.search(q, k=K, now=now).hits] for q in questions]
            svc.close()
        finally:
            for k, v in saved.items():
                setattr(dialogue, k, v)
    if reindexed:
        svc = MemoryService(vault, encoder=encoder)
        svc.index(rebuild=True)  # back to the current setting
        svc.close()
    return out


def searched(turns: list[Turn], questions: list[Question], encoder: Encoder, *,
             sessions: bool) -> dict[str, list[list[int]]]:
    """Store every turn through MemoryService.remember in a fresh encrypted vault; search each question (the
    current setting, then the VARIANTS on the same vault re-indexed)."""
    with tempfile.TemporaryDirectory() as tmp:
        vault, _ = Vault.create(Path(tmp) / "home", PASSPHRASE, kdf=KDF)
        with vault:
            svc = MemoryService(vault, encoder=encoder)
            key_of: dict[int, int] = {}
            for t in turns:
                meta = {"speaker": t.speaker} | ({"session": t.session} if sessions else {})
                key_of[svc.remember(t.text, occurred_at=t.at, metadata=meta, source="chat").memory_id] = t.key
            now = max(t.at for t in turns) + timedelta(days=3)
            texts = [q.text for q in questions]
            out = {"search, with neighbouring turns": [[key_of[h.memory.memory_id] for h in svc.search(q, k=K, now=now).hits]
                                                      for q in texts]}
            svc.close()
            for name, ranked in variants(vault, encoder, texts, now).items():
                out[name] = [[key_of[m] for m in r] for r in ranked]
        return out


def _baseline_texts(texts: list[str], questions: list[str], encoder: Encoder) -> dict[str, list[list[int]]]:
    bm = BM25(texts)
    everything = np.ones(len(texts), bool)
    vectors = encoder.encode(texts)
    out: dict[str, list[list[int]]] = {"BM25": [], "dense": [], "BM25 + dense RRF": []}
    for q in questions:
        hits, scores = bm.scores(q, everything, None)
        lex = [int(h) for h in hits[np.argsort(-scores, kind="stable")][:100]]
        dense = np.argsort(-(vectors @ encoder.encode_query(q).reshape(-1)), kind="stable")[:100].tolist()
        out["BM25"].append(lex)
        out["dense"].append(dense)
        out["BM25 + dense RRF"].append(_rrf(lex, dense))
    return out


def locomo_runs(sample: dict[str, object], encoder: Encoder, *, bare: bool, captions: bool = True,
                left_out: Counter[str] | None = None) -> tuple[list[locomo_like.Question], dict[str, list[list[str]]]]:
    """One conversation in a fresh vault through the API; rankings as dia_ids per question."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.state import ApiSettings
    from api.tokens import TokenStore

    turns = locomo_like.turns(sample, captions=captions)
    questions = locomo_like.questions(sample, left_out)
    texts = [f"{t.speaker}: {t.text}" for t in turns]
    runs = {name: [[turns[i].dia_id for i in r] for r in ranked]
            for name, ranked in _baseline_texts(texts, [q.text for q in questions], encoder).items()}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        vault, _ = Vault.create(home, PASSPHRASE, kdf=KDF)
        with vault:
            issued = TokenStore.load(vault).create(agent="eval", scopes=["memory:read", "memory:write"],
                                                   purpose="dialogue evaluation", rate_per_minute=100_000)
        auth = {"Authorization": f"Bearer {issued.secret}"}
        dia: dict[int, str] = {}
        app = create_app(ApiSettings(home=home, passphrase=PASSPHRASE, warm=False), encoder=encoder)
        with TestClient(app, base_url="http://127.0.0.1:8765") as client:
            for t, text in zip(turns, texts, strict=True):
                body: dict[str, object] = {"text": text, "occurred_at": t.at.isoformat(), "source": "chat"}
                if not bare:
                    body["metadata"] = {"session": t.session, "speaker": t.speaker, "dia_id": t.dia_id}
                r = client.post("/v1/memories", json=body, headers=auth)
                assert r.status_code == 201, r.text
                dia[r.json()["id"]] = t.dia_id
            ranked = []
            for q in questions:
                r = client.post("/v1/search", json={"query": q.text, "k": K}, headers=auth)
                assert r.status_code == 200, r.text
                ranked.append([dia[h["id"]] for h in r.json()["hits"]])
        with Vault.open(home, PASSPHRASE) as vault:
            for name, got in variants(vault, encoder, [q.text for q in questions]).items():
                runs[name] = [[dia[m] for m in r] for r in got]
        runs["search (POST /v1/search)"] = ranked
    return questions, runs


def _table(questions: Sequence[Question | locomo_like.Question], runs: Mapping[str, Sequence[Sequence[object]]]) -> None:
    kinds = sorted({q.kind for q in questions})
    counts = ", ".join(f"{sum(q.kind == k for q in questions)} {k}" for k in kinds)
    print(f"{len(questions)} questions ({counts})")
    print("| ranking | " + " | ".join(["all", *kinds]) + " |")
    print("|---|" + "---|" * (len(kinds) + 1))
    mean: Callable[[list[float]], float] = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
    for name, ranked in runs.items():
        per = [_recall(r, q.evidence) for r, q in zip(ranked, questions, strict=True)]
        cells = [mean(per)] + [mean([x for x, q in zip(per, questions, strict=True) if q.kind == k]) for k in kinds]
        print(f"| {name} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")


def main_locomo(args: argparse.Namespace, encoder: Encoder) -> None:
    found = (locomo_like.samples(args.locomo_file, args.samples) if args.locomo_file
             else locomo_like.generate(args.seed, args.conversations, args.locomo_sessions))
    questions: list[locomo_like.Question] = []
    runs: dict[str, list[list[str]]] = {}
    turns = 0
    left_out: Counter[str] = Counter()
    for sample in found:
        qs, got = locomo_runs(sample, encoder, bare=args.bare, captions=not args.no_captions, left_out=left_out)
        turns += len(locomo_like.turns(sample))
        questions += qs
        for name, ranked in got.items():
            runs.setdefault(name, []).extend(ranked)
    what = (f"{args.locomo_file.name} samples {', '.join(str(s.get('sample_id')) for s in found)}" if args.locomo_file
            else f"LoCoMo-shaped, seed {args.seed}")
    print(f"{what}: {len(found)} conversations, {turns} turns, "
          f"{'no metadata' if args.bare else 'metadata session/speaker/dia_id'}, "
          f"{'no image captions' if args.no_captions else 'image captions in the text'}")
    if left_out:
        print("questions left out: " + ", ".join(f"{n} {why}" for why, n in sorted(left_out.items())))
    _table(questions, runs)
    if args.show_misses:
        for q, r in zip(questions, runs["search (POST /v1/search)"], strict=True):
            if _recall(r, q.evidence) < 1:
                print(f"MISS [{q.kind}] {q.text} -> {q.evidence} got {r}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", choices=["generated", "locomo", "both"], default="generated")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--personas", type=int, default=4)
    ap.add_argument("--sessions", type=int, default=6)
    ap.add_argument("--no-session", action="store_true", help="store turns without a session (time adjacency)")
    ap.add_argument("--conversations", type=int, default=2, help="LoCoMo-shaped conversations to generate")
    ap.add_argument("--locomo-sessions", type=int, default=20, help="sessions per LoCoMo-shaped conversation")
    ap.add_argument("--locomo-file", type=Path, help="a LoCoMo-format JSON file instead of generated ones")
    ap.add_argument("--samples", nargs="+", default=[], metavar="N",
                    help="--locomo-file: the samples to run, by 1-based position or sample_id (default: all)")
    ap.add_argument("--bare", action="store_true", help="LoCoMo set: store turns without metadata")
    ap.add_argument("--no-captions", action="store_true",
                    help="LoCoMo set: leave shared images' captions (blip_caption) out of the turns' texts")
    ap.add_argument("--show-misses", action="store_true")
    args = ap.parse_args(argv)
    encoder = Encoder()
    if args.set in ("locomo", "both"):
        main_locomo(args, encoder)
    if args.set == "locomo":
        return
    turns, questions = generate(args.seed, args.personas, args.sessions)
    runs: dict[str, list[list[int]]] = baselines(turns, questions, encoder)
    runs |= searched(turns, questions, encoder, sessions=not args.no_session)
    print(f"Generated: {len(turns)} turns, seed {args.seed}, "
          f"{'no session given' if args.no_session else 'session in metadata'}")
    _table(questions, runs)
    if args.show_misses:
        by_key = {t.key: t for t in turns}
        for q, r in zip(questions, runs["search, with neighbouring turns"], strict=True):
            if _recall(r, q.evidence) < 1:
                print(f"MISS [{q.kind}] {q.text} -> {[by_key[e].text for e in q.evidence]}")


if __name__ == "__main__":
    main()
