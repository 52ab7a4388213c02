"""LoCoMo-shaped conversations: a seeded generator writing the LoCoMo JSON format, and a loader for that format.

The format (Maharana et al., ACL 2024, `locomo10.json`): a list of samples, each

    {"sample_id": "conv-1",
     "conversation": {"speaker_a": "Nadia", "speaker_b": "Gabe",
                      "session_1_date_time": "1:56 pm on 8 May, 2023",
                      "session_1": [{"speaker": "Nadia", "dia_id": "D1:1", "text": "Hey Gabe! ..."}, ...], ...},
     "qa": [{"question": "When did Nadia ...?", "answer": "7 May 2023", "evidence": ["D1:3"], "category": 2}, ...]}

with categories 1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop, 5 adversarial (no evidence to find;
left out here). `samples(path)` reads such a file (the real set, when one has it locally); `generate` writes
conversations of the same shape: two named friends, sessions on dates weeks apart, long turns that tell a
piece of news in the first person (often with "yesterday" or "last weekend") among short replies and
supportive small talk, and questions that name the speaker in the third person and paraphrase the turn
rather than repeat it. Multi-hop questions gather one speaker's turns of a theme over several sessions;
temporal questions ask "when did ..." and their answer is the session's date.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

KINDS = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}  # category 5 (adversarial) left out
PAIRS = [("Nadia", "Gabe"), ("Rosa", "Kenji"), ("Elif", "Marcus"), ("Tariq", "Joanna")]
_WHEN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*([ap]m)\s+on\s+(\d{1,2})\s+([A-Za-z]+),?\s+(\d{4})\s*$", re.IGNORECASE)
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]

# An event: what the teller says (the evidence), the friend's reply, the teller's answer to it, the theme it
# adds to (multi-hop), and questions as (category, text, roles of the evidence turns: "tell" / "answer").
EVENTS: list[dict[str, Any]] = [
    dict(theme="community", tell="I went to a {group} support group {rel} and honestly it was so powerful. "
         "Hearing everyone's stories made me feel a lot less alone.",
         reply="That sounds amazing, {other}! How did it feel to open up?", answer="Scary at first, but everyone "
         "was so kind. I think I'll keep going.",
         qs=[(2, "When did {who} attend the {group} meeting?", ["tell"]),
             (4, "How did {who} feel about sharing in the group?", ["answer"])]),
    dict(theme="art", tell="Guess what, I finished the {painting} I started last month! I painted it {rel} while "
         "the kids were asleep.", reply="Wow, can I see it? What inspired you?",
         answer="The {inspiration}. I wanted to capture that calm feeling.",
         qs=[(2, "When did {who} complete the {painting}?", ["tell"]),
             (4, "What gave {who} the idea for the {painting}?", ["answer"])]),
    dict(theme="family", tell="We took the kids camping at {park} {rel}. We roasted marshmallows and told stories "
         "by the fire, it was so peaceful.", reply="That's so sweet! Did they like sleeping in a tent?",
         answer="They loved it, my youngest wants to go again next month.",
         qs=[(2, "When did {who} go on a camping trip with the family?", ["tell"]),
             (4, "Where did {who}'s family sleep outdoors?", ["tell"])]),
    dict(theme="career", tell="I've been looking into {field} programs. I really want to work with {people} "
         "and help them the way people helped me.", reply="You'd be so good at that. What made you decide?",
         answer="My own journey, I guess. I know how much it matters to have someone in your corner.",
         qs=[(4, "What kind of studies is {who} considering?", ["tell"]),
             (3, "Would {who} be likely to pursue a job in {job}?", ["tell", "answer"])]),
    dict(theme="family", tell="{rel_cap} I took the kids to the {museum}. They couldn't stop talking about the "
         "{exhibit} all the way home.", reply="Ha, I love that. Were they tired after?",
         answer="Exhausted! We had pizza and they were asleep by eight.",
         qs=[(2, "When did {who} take the children to the {museum}?", ["tell"]),
             (4, "Which exhibit fascinated {who}'s kids?", ["tell"])]),
    dict(theme="health", tell="I ran a charity {race} for {cause} {rel}. It was tough but I finished in "
         "{time}!", reply="No way, congrats! How long did you train for it?",
         answer="About three months, mostly early mornings before work.",
         qs=[(2, "When did {who} take part in the charity {race}?", ["tell"]),
             (4, "Which cause did {who}'s fundraising run support?", ["tell"])]),
    dict(theme="art", tell="I signed up for a {craft} class at the community center. My first {piece} came out "
         "a bit wonky but I love it.", reply="That's so cool! What are you making next?",
         answer="A set of {next} for my sister's birthday.",
         qs=[(4, "What hands-on class did {who} join?", ["tell"]),
             (4, "What is {who} making as a birthday present?", ["answer"]),
             (3, "Would {who} enjoy a weekend workshop on {similar}?", ["tell"])]),
    dict(theme="community", tell="I went to the {event} {rel}, there were so many people there and the "
         "speeches were so moving.", reply="I wish I could have come. What was the best part?",
         answer="Meeting {mentor}, she's been an activist for twenty years and gave me her number.",
         qs=[(2, "When did {who} go to the {event}?", ["tell"]),
             (4, "Whom did {who} meet at the {event}?", ["answer"])]),
    dict(theme="family", tell="My {relative} came to visit {rel} and we spent the whole afternoon baking "
         "{bake} like we used to when I was little.", reply="Aww, family recipes are the best.",
         answer="Right? It's her recipe from {country}, I finally wrote it down.",
         qs=[(2, "When did {who}'s {relative} come over?", ["tell"]),
             (4, "Where does the recipe {who} baked with her {relative} come from?", ["answer"])]),
    dict(theme="health", tell="I hurt my {bodypart} {rel} at {sport} practice, so I'm stuck on the couch for a "
         "while.", reply="Oh no! Is it serious?", answer="The doctor says {weeks} weeks of rest, no running.",
         qs=[(2, "When did {who} get injured?", ["tell"]),
             (4, "How long does {who} have to take a break from exercise?", ["answer"])]),
    dict(theme="outdoors", tell="We finally did the {hike} hike {rel}! The view from the top over {view} was "
         "unreal.", reply="I've always wanted to do that one. Was it hard?",
         answer="The last mile was brutal, but so worth it.",
         qs=[(2, "When did {who} climb the {hike} trail?", ["tell"]),
             (4, "What could {who} see from the summit?", ["tell"])]),
    dict(theme="pets", tell="We adopted a {pet} from the shelter {rel}! The kids named him {petname}.",
         reply="Stop, that's adorable. How is he settling in?", answer="He already sleeps on my bed, so... pretty well.",
         qs=[(2, "When did {who} bring home a new pet?", ["tell"]),
             (4, "What is the name of {who}'s {pet}?", ["tell"])]),
    dict(theme="outdoors", tell="I've started going to the beach every {day} morning to {beachact}. It clears my "
         "head before the week gets crazy.", reply="That sounds like the perfect routine.",
         answer="It really is. The water is freezing though!",
         qs=[(4, "What does {who} do by the sea at the start of the week?", ["tell"]),
             (3, "Does {who} likely enjoy spending time in nature?", ["tell"])]),
    dict(theme="career", tell="Big news: I got accepted into the {program} program! Classes start in "
         "{month}.", reply="Congratulations!! You worked so hard for this.",
         answer="Thank you, I still can't believe it. I'm nervous but excited.",
         qs=[(4, "Which course of study admitted {who}?", ["tell"]),
             (2, "When did {who} hear she was accepted?", ["tell"])]),
    dict(theme="music", tell="I played {instrument} at my friend's wedding {rel}. My hands were shaking the "
         "whole time!", reply="I didn't know you played! How long have you been at it?",
         answer="Since I was twelve, my grandpa taught me.",
         qs=[(4, "Which instrument does {who} play?", ["tell"]),
             (4, "Who taught {who} to play music?", ["answer"]),
             (2, "When did {who} perform at a wedding?", ["tell"])]),
    dict(theme="books", tell="I just finished reading \"{book}\" and I can't stop thinking about it. It's about "
         "{plot}.", reply="Ooh, would you recommend it?", answer="Absolutely, it changed how I think about {topic}.",
         qs=[(4, "What novel did {who} read recently?", ["tell"]),
             (3, "What genre of books is {who} likely to enjoy?", ["tell"])]),
]
SLOTS: dict[str, list[str]] = {
    "group": ["LGBTQ", "grief", "new parents", "cancer survivors"],
    "painting": ["lake sunrise painting", "portrait of my grandmother", "abstract canvas", "watercolour of the harbour"],
    "inspiration": ["sunrise over the lake near our cabin", "the colours at the market", "a trip we took years ago"],
    "park": ["Pine Ridge", "Cedar Lake", "Eagle Rock", "Willow Creek"],
    "field": ["counseling", "social work", "nursing", "teaching"],
    "people": ["trans youth", "kids in foster care", "veterans", "refugee families"],
    "job": ["mental health support", "community outreach", "education"],
    "museum": ["natural history museum", "science museum", "aquarium", "art gallery"],
    "exhibit": ["dinosaur skeletons", "planetarium show", "giant octopus", "sculpture garden"],
    "race": ["5K", "half marathon", "10K"], "cause": ["mental health", "homeless shelters", "children's hospitals"],
    "time": ["under thirty minutes", "just over two hours", "fifty-five minutes"],
    "craft": ["pottery", "woodworking", "jewellery making", "glass blowing"],
    "piece": ["bowl", "spoon", "pendant", "vase"], "next": ["mugs", "coasters", "earrings", "plates"],
    "similar": ["ceramics", "carving", "metalwork", "sculpture"],
    "event": ["pride parade", "climate march", "transgender conference", "city council meeting"],
    "mentor": ["Dana", "Priya", "Ruth", "Luz"],
    "relative": ["grandma", "aunt", "mom"], "bake": ["cinnamon rolls", "apple strudel", "baklava", "pierogi"],
    "country": ["Poland", "Greece", "Austria", "Mexico"],
    "bodypart": ["ankle", "wrist", "knee", "shoulder"], "sport": ["soccer", "volleyball", "tennis", "basketball"],
    "weeks": ["two", "three", "six"],
    "hike": ["Angel's Landing", "Half Dome", "Mount Si", "Old Rag"],
    "view": ["the whole valley", "the ocean", "three lakes", "the city"],
    "pet": ["puppy", "kitten", "rescue dog"], "petname": ["Oscar", "Biscuit", "Mochi", "Pepper"],
    "day": ["Monday", "Tuesday"], "beachact": ["swim", "surf", "do yoga on the sand", "walk the dog"],
    "program": ["nursing", "graphic design", "master's in psychology", "culinary arts"],
    "month": ["September", "January", "August"],
    "instrument": ["violin", "cello", "acoustic guitar", "piano"],
    "book": ["Charlotte's Web", "The Night Circus", "Becoming", "Project Hail Mary"],
    "plot": ["a friendship that survives everything", "a magical competition between two illusionists",
             "growing up and finding your voice", "a lone astronaut saving the world"],
    "topic": ["loyalty", "imagination", "ambition", "science"],
}
RELATIVE = ["yesterday", "last weekend", "last Friday", "this past Saturday", "two days ago", "last week"]
THEMES = {"family": "What activities has {who} done with the family?", "art": "What creative projects has {who} "
          "worked on?", "community": "What events or gatherings has {who} been part of?",
          "health": "What physical setbacks or challenges has {who} gone through?",
          "outdoors": "What outdoor adventures has {who} had?", "career": "What are {who}'s plans for the future?"}
SMALL_TALK = [
    "That's so true. It's important to take care of ourselves and do things that make us happy.",
    "I totally get that. Life has been a whirlwind lately but I'm trying to slow down and enjoy the little things.",
    "Thanks so much, that means a lot coming from you. You've always been so supportive.",
    "Haha, for sure!", "Wow, that's awesome!", "Same here.", "Oh really?", "Aw, I'm so happy for you!",
    "Yeah, the kids keep me busy but I wouldn't have it any other way.",
    "Totally. Having people around who love you makes all the difference.",
    "It's been a long week honestly, work has been nonstop.", "Love that for you!",
    "Me too! We should catch up more often, I miss our chats.",
    "That's a great way to look at it. Keep going, you're doing amazing.",
]
OPENERS = ["Hey {other}! Good to see you! How have you been?", "Hi {other}, long time no talk! What's new with you?",
           "Hey {other}! Sorry it's been a while, things have been hectic."]
CLOSERS = ["Anyway, I should get going. Talk soon, take care!", "Bye {other}! Let's catch up again soon.",
           "Thanks for the chat, it was great talking to you!"]


def when_text(at: datetime) -> str:
    """The LoCoMo session date form: '1:56 pm on 8 May, 2023'."""
    hour = at.hour % 12 or 12
    return f"{hour}:{at.minute:02d} {'am' if at.hour < 12 else 'pm'} on {at.day} {_MONTHS[at.month - 1]}, {at.year}"


def parse_when(text: str) -> datetime:
    """'1:56 pm on 8 May, 2023' -> an aware UTC datetime (the set gives no zone)."""
    m = _WHEN.match(text)
    if not m:
        raise ValueError(f"not a LoCoMo session date: {text!r}")
    h, minute, ap, day, month, year = m.groups()
    hour = int(h) % 12 + (12 if ap.lower() == "pm" else 0)
    month_no = next(i for i, name in enumerate(_MONTHS, 1) if name.lower().startswith(month.lower()[:3]))
    return datetime(int(year), month_no, int(day), hour, int(minute), tzinfo=UTC)


def generate(seed: int, conversations: int, sessions: int) -> list[dict[str, Any]]:
    """`conversations` samples in the LoCoMo format, `sessions` sessions each, dated 1-3 weeks apart."""
    rng = random.Random(seed)
    out = []
    for c in range(conversations):
        a, b = PAIRS[c % len(PAIRS)]
        conv: dict[str, Any] = {"speaker_a": a, "speaker_b": b}
        qa: list[dict[str, Any]] = []
        themed: dict[tuple[str, str], list[str]] = {}
        at = datetime(2023, 1, 9, 13, 0, tzinfo=UTC) + timedelta(days=rng.randint(0, 120))
        used: dict[str, set[int]] = {a: set(), b: set()}  # each speaker tells every event once before repeats
        for s in range(1, sessions + 1):
            at += timedelta(days=rng.randint(6, 21), hours=rng.randint(-3, 3), minutes=rng.randint(0, 59))
            conv[f"session_{s}_date_time"] = when_text(at)
            lines: list[tuple[str, str]] = []
            first, second = (a, b) if rng.random() < 0.5 else (b, a)
            lines.append((first, rng.choice(OPENERS).format(other=second)))
            lines.append((second, rng.choice(SMALL_TALK[:3] + OPENERS[1:]).format(other=first)))
            roles: list[tuple[int, dict[str, Any], str, dict[str, int]]] = []
            for _ in range(rng.randint(2, 3)):
                teller = rng.choice((a, b))
                other = b if teller == a else a
                here = {r[0] for r in roles}
                free = [i for i in range(len(EVENTS)) if i not in used[teller] | here]
                if not free:
                    used[teller] = set()
                    free = [i for i in range(len(EVENTS)) if i not in here]
                e = rng.choice(free)
                used[teller].add(e)
                ev = EVENTS[e]
                rel = rng.choice(RELATIVE)
                values = {k: rng.choice(v) for k, v in SLOTS.items()} | {"rel": rel, "rel_cap": rel.capitalize(),
                                                                         "other": other, "who": teller}
                at_line: dict[str, int] = {"tell": len(lines)}
                lines.append((teller, ev["tell"].format(**values)))
                lines.append((other, ev["reply"].format(**values)))
                if rng.random() < 0.3:
                    lines.append((teller, rng.choice(SMALL_TALK[3:8])))
                at_line["answer"] = len(lines)
                lines.append((teller, ev["answer"].format(**values)))
                for _ in range(rng.randint(0, 3)):
                    lines.append((rng.choice((a, b)), rng.choice(SMALL_TALK)))
                roles.append((e, values, teller, at_line))
            lines.append((rng.choice((a, b)), rng.choice(CLOSERS).format(other=rng.choice((a, b)))))
            conv[f"session_{s}"] = [{"speaker": sp, "dia_id": f"D{s}:{i + 1}", "text": text}
                                    for i, (sp, text) in enumerate(lines)]
            for e, values, teller, at_line in roles:
                ev = EVENTS[e]
                for category, text, parts in ev["qs"]:
                    qa.append({"question": text.format(**values),
                               "answer": at.strftime("%-d %B %Y") if category == 2 else "",
                               "evidence": [f"D{s}:{at_line[p] + 1}" for p in parts], "category": category})
                themed.setdefault((teller, ev["theme"]), []).append(f"D{s}:{at_line['tell'] + 1}")
        for (who, theme), evidence in sorted(themed.items()):
            if len(evidence) >= 2 and theme in THEMES:
                qa.append({"question": THEMES[theme].format(who=who), "answer": "", "evidence": evidence,
                           "category": 1})
        out.append({"sample_id": f"gen-{seed}-{c + 1}", "conversation": conv, "qa": qa})
    return out


def samples(path: Path, chosen: Sequence[str] = ()) -> list[dict[str, Any]]:
    """A LoCoMo-format file (a list of samples, or one sample); `chosen` picks samples by 1-based position
    or by sample_id (all when empty)."""
    data = json.loads(Path(path).read_text())
    found = data if isinstance(data, list) else [data]
    if not chosen:
        return found
    out = []
    for c in chosen:
        hit = [s for i, s in enumerate(found, 1) if c == str(i) or c == str(s.get("sample_id"))]
        if not hit:
            raise ValueError(f"no sample {c!r} in {Path(path).name} ({len(found)} samples)")
        out += hit
    return out


@dataclass(frozen=True, slots=True)
class Turn:
    dia_id: str
    session: int
    speaker: str
    text: str  # the utterance alone
    at: datetime  # the session's date and time


@dataclass(frozen=True, slots=True)
class Question:
    text: str
    evidence: tuple[str, ...]  # dia_ids
    kind: str


def turns(sample: dict[str, Any], *, captions: bool = True) -> list[Turn]:
    """Every turn in session order. A shared image's caption (`blip_caption`) is appended to the text as
    " [shares <caption>]" (an agent storing the chat would say what was shown), unless `captions` is False."""
    conv = sample["conversation"]
    out = []
    numbers = sorted(int(k.split("_")[1]) for k in conv if re.fullmatch(r"session_\d+", k))
    for s in numbers:
        at = parse_when(conv[f"session_{s}_date_time"])
        for t in conv[f"session_{s}"]:
            shared = t.get("blip_caption") if captions else None
            text = t["text"] + (f" [shares {shared}]" if shared else "")
            out.append(Turn(dia_id=dia_id(t["dia_id"]), session=s, speaker=t["speaker"], text=text, at=at))
    return out


_DIA = re.compile(r"D\s*:?\s*(\d+)\s*:\s*(\d+)", re.IGNORECASE)


def dia_id(text: str) -> str:
    """'D3:5' as written in the set; also read from 'D3:05' and 'D:3:5' (both occur in evidence lists)."""
    m = _DIA.fullmatch(text.strip())
    return f"D{int(m.group(1))}:{int(m.group(2))}" if m else text.strip()


def evidence_of(raw: Any) -> list[str]:
    """A question's evidence dia_ids: a list of ids, some of them several in one string ('D8:6; D9:17')."""
    items = raw if isinstance(raw, list) else [raw] if isinstance(raw, str) else []
    return [dia_id(m.group(0)) for item in items if isinstance(item, str) for m in _DIA.finditer(item)]


def questions(sample: dict[str, Any], left_out: Counter[str] | None = None) -> list[Question]:
    """The questions that can be scored: category 1-4 with at least one evidence turn in the conversation.
    Those left out are counted in `left_out` by reason (adversarial, no evidence, unknown evidence ids)."""
    known = {t.dia_id for t in turns(sample)}
    out = []
    for q in sample["qa"]:
        try:
            kind = KINDS.get(int(q.get("category", 0)))
        except (TypeError, ValueError):
            kind = None
        given = evidence_of(q.get("evidence"))
        evidence = tuple(dict.fromkeys(e for e in given if e in known))
        reason = ("adversarial" if q.get("category") == 5 else "no category" if not kind
                  else "no evidence" if not given else "evidence not in the conversation" if not evidence else None)
        if reason is None:
            out.append(Question(text=q["question"], evidence=evidence, kind=kind or ""))
        elif left_out is not None:
            left_out[reason] += 1
        if left_out is not None and len(evidence) < len(given) and evidence:
            left_out["evidence ids not in the conversation (ids dropped, question kept)"] += len(given) - len(evidence)
    return out
