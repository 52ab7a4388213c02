"""A retrieval question and its known answers (memory ids): what bench/eval_retrieval.py asks, from its
hand-made persona or from the synthetic one (bench/eval_synth.py). A leaf, so neither imports the other."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Question:
    text: str
    category: str
    answers: frozenset[int]
