"""The shipped speech gate on its held-out data: what the model card promises, checked.

The non-speech TEST split of `edge-train gate data` (generated signals, music, and sound
effects of packages and files that training never saw) must have no clip accepted as bona fide,
and bona fide speech of spoofmix eval (letters and digits included) and of the extra corpus's
dev split must be called ``nospeech`` at most 1 % of the time, all decided exactly as
`edge-detect classify` decides.
Slow (a few minutes): `pytest -m slow tests/test_gate_heldout.py`. They skip, naming the
command, when the data is not on this machine; they fail when the shipped models break a
promise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_runtime.clip import ClipScorer
from edge_runtime.model import SpoofModel
from edge_runtime.speech_presence import BONAFIDE, NOSPEECH, SpeechPresence
from host_training.gate_cli import DEFAULT_NONSPEECH
from host_training.nonspeech import MANIFEST, read_manifest
from host_training.waveforms import load_clip

REPO = Path(__file__).resolve().parent.parent
MIN_TEST_CLIPS = 500
MAX_BONAFIDE_NOSPEECH = 0.01

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scorer() -> ClipScorer:
    model = SpoofModel()
    return ClipScorer(model, speech=SpeechPresence.load(model.frontend_config))


def test_no_held_out_non_speech_clip_is_accepted_as_bona_fide(scorer: ClipScorer) -> None:
    root = REPO / DEFAULT_NONSPEECH
    if not (root / MANIFEST).is_file():
        pytest.skip(f"{root / MANIFEST} is missing: build it with `edge-train gate data`")
    clips = read_manifest(root, "test")
    assert len(clips) >= MIN_TEST_CLIPS
    assert {c.kind for c in clips} >= {"tone", "dtmf", "noise", "silence", "music", "sfx"}
    rate = scorer.frontend.config.sample_rate
    accepted = []
    for clip in clips:
        result = scorer.score_blocks([load_clip(clip.path, rate)], str(clip.path))
        if result.label == BONAFIDE:
            accepted.append(f"{clip.kind} {clip.source} (speech {result.speech:.3f})")
    assert accepted == [], f"{len(accepted)} of {len(clips)} accepted: {accepted}"


SPEECH_SPLITS = [("spoofmix", "eval"), ("extra", "dev")]  # extra: the corpus at ../data/extra


@pytest.mark.parametrize(("corpus", "split"), SPEECH_SPLITS)
def test_bona_fide_speech_is_rarely_called_no_speech(scorer: ClipScorer, corpus: str,
                                                     split: str) -> None:
    from host_training.datasets import DatasetError, default_data_root, load_split
    from host_training.gate_cli import DEFAULT_EXTRA
    from host_training.waveforms import load_waveforms

    root = default_data_root() if corpus == "spoofmix" else REPO / DEFAULT_EXTRA
    try:
        utterances = [u for u in load_split(root, split) if not u.is_spoof]
    except (DatasetError, FileNotFoundError) as error:
        pytest.skip(f"{corpus} {split} is not on this machine: {error}")
    rate = scorer.frontend.config.sample_rate
    waves = load_waveforms(utterances, rate, REPO / "cache")
    labels = [scorer.score_blocks([w], str(u.path)).label for u, w in
              zip(utterances, waves, strict=True)]
    rejected = np.mean([label == NOSPEECH for label in labels])
    assert len(utterances) >= 200
    assert rejected <= MAX_BONAFIDE_NOSPEECH, f"{rejected:.2%} of bona fide called nospeech"
