"""The dialogue evaluation reads the real LoCoMo file as it is: captions, odd evidence ids, unscorable questions."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from bench import locomo_like


def _sample(sample_id: str = "conv-26") -> dict[str, object]:
    return {
        "sample_id": sample_id,
        "conversation": {
            "speaker_a": "Caroline", "speaker_b": "Melanie",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [
                {"speaker": "Caroline", "dia_id": "D1:1", "text": "Hey Mel!"},
                {"speaker": "Melanie", "dia_id": "D1:2", "text": "Look what I painted!",
                 "img_url": ["https://example.invalid/x.jpg"], "blip_caption": "a photo of a lake at sunrise"},
            ],
            "session_2_date_time": "10:37 am on 27 June, 2023",
            "session_2": [{"speaker": "Caroline", "dia_id": "D2:1", "text": "I went camping!"}],
        },
        "qa": [
            {"question": "What did Melanie paint?", "answer": "a sunrise", "evidence": ["D1:2"], "category": 4},
            {"question": "Where did they go?", "answer": 2023, "evidence": ["D1:2; D2:1"], "category": 1},
            {"question": "When did Caroline camp?", "answer": "June 2023", "evidence": ["D2:01"], "category": 2},
            {"question": "What did Caroline paint?", "evidence": ["D1:2"], "category": 5,
             "adversarial_answer": "a sunrise"},
            {"question": "Who said hello?", "answer": "Caroline", "evidence": [], "category": 4},
            {"question": "What did Melanie cook?", "answer": "soup", "evidence": ["D9:9"], "category": 4},
        ],
    }


def test_a_shared_images_caption_is_said_in_the_turn_unless_captions_are_left_out():
    with_captions = {t.dia_id: t.text for t in locomo_like.turns(_sample())}
    without = {t.dia_id: t.text for t in locomo_like.turns(_sample(), captions=False)}
    assert with_captions["D1:2"] == "Look what I painted! [shares a photo of a lake at sunrise]"
    assert without["D1:2"] == "Look what I painted!"


def test_evidence_written_several_in_one_string_or_with_a_leading_zero_is_read():
    qs = {q.text: q.evidence for q in locomo_like.questions(_sample())}
    assert qs["Where did they go?"] == ("D1:2", "D2:1")
    assert qs["When did Caroline camp?"] == ("D2:1",)


def test_adversarial_questions_and_questions_without_evidence_are_left_out_and_counted():
    left_out: Counter[str] = Counter()
    qs = locomo_like.questions(_sample(), left_out)
    assert [q.kind for q in qs] == ["single-hop", "multi-hop", "temporal"]
    assert left_out == Counter({"adversarial": 1, "no evidence": 1, "evidence not in the conversation": 1})


def test_samples_are_chosen_by_position_or_by_sample_id(tmp_path: Path):
    path = tmp_path / "locomo.json"
    path.write_text(json.dumps([_sample("conv-26"), _sample("conv-30")]))
    assert [s["sample_id"] for s in locomo_like.samples(path)] == ["conv-26", "conv-30"]
    assert [s["sample_id"] for s in locomo_like.samples(path, ["2"])] == ["conv-30"]
    assert [s["sample_id"] for s in locomo_like.samples(path, ["conv-30", "1"])] == ["conv-30", "conv-26"]
    with pytest.raises(ValueError, match="no sample '3'"):
        locomo_like.samples(path, ["3"])
