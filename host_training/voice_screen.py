"""Screening packaged sound files for human voices before they are taught as "no speech".

Game and desktop sound packages hold voice lines ("excellent!", announcers, spoken channel
names). A voice line is speech: taught as "no speech" it would teach the gate to reject people.
Each file is transcribed by Whisper tiny.en (the teacher's CTranslate2 model, host only: the
`teacher` extra) and a file is flagged as a voice when Whisper's no-speech probability is low
and it decodes at least one word. Flagged files are excluded from the non-speech set (both
splits), as are files whose names say they are spoken (``nonspeech.is_speech_name``). The
screen errs on the side of excluding: a sound effect lost from the data costs little, a voice
line taught as "no speech" costs a bona fide speaker.

The result is a TSV (``path``, ``no_speech_prob``, ``words``, ``voice``, ``text``) that
`edge-train gate data` reads; the TSV committed beside this module is the one the shipped gate
was built with (paths relative to the sound roots they were found under).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NO_SPEECH_LIMIT = 0.5  # Whisper's own no-speech probability: below it, Whisper hears speech
SCREEN_SECONDS = 30.0  # Whisper's window: longer files are screened on their first 30 s
MIN_SCREEN_SECONDS = 2.0  # shorter files are zero-padded to this
PROMPT = ["<|startoftranscript|>", "<|notimestamps|>"]
SCREEN_FILE = Path(__file__).with_name("nonspeech_voice_screen.tsv")
_WORD = re.compile(r"[A-Za-z]+")
# What Whisper writes for a sound without speech (its well-known hallucinations): no words.
NOT_WORDS = frozenset({"you", "thank you", "thanks for watching"})


@dataclass(frozen=True)
class Screened:
    key: str  # the file's path relative to its sound root (stable across machines)
    no_speech_prob: float
    text: str

    @property
    def words(self) -> int:
        words = _WORD.findall(self.text)
        return 0 if " ".join(words).lower() in NOT_WORDS else len(words)

    @property
    def voice(self) -> bool:
        return self.no_speech_prob < NO_SPEECH_LIMIT and self.words > 0


def _decode(tokens: list[str]) -> str:
    """Whisper's byte-level BPE tokens to text (enough to read words: no tokenizer needed)."""
    text = "".join(t for t in tokens if not t.startswith("<|"))
    return text.replace("\u0120", " ").replace("\u010a", " ").strip()


class Transcriber:
    def __init__(self, threads: int = 2) -> None:
        from host_training.teacher.encoder import RUNTIME_PACKAGE, import_or_explain, model_dir

        ct2 = import_or_explain("ctranslate2", RUNTIME_PACKAGE)
        self._ct2 = ct2
        self._model = ct2.models.Whisper(str(model_dir()), device="cpu", compute_type="int8",
                                         intra_threads=threads)

    def screen(self, audio: np.ndarray) -> tuple[float, str]:
        from host_training.teacher.mel import SAMPLE_RATE, SAMPLES_PER_ENCODER_FRAME, log_mel

        clip = np.asarray(audio[: int(SCREEN_SECONDS * SAMPLE_RATE)], dtype=np.float32)
        # Unpadded (at least MIN_SCREEN_SECONDS), as the teacher encodes: about 8x less CPU
        # than Whisper's 30-s window for the short files most sounds are. Measured on
        # lbreakout2's sounds: its four voice lines scored 0.06-0.35, its effects 0.5-0.95.
        samples = max(clip.shape[0], int(MIN_SCREEN_SECONDS * SAMPLE_RATE))
        samples = -(-samples // SAMPLES_PER_ENCODER_FRAME) * SAMPLES_PER_ENCODER_FRAME
        features = self._ct2.StorageView.from_array(log_mel(clip, samples)[None])
        result = self._model.generate(features, [PROMPT], beam_size=1, max_length=48,
                                      return_no_speech_prob=True)[0]
        return float(result.no_speech_prob), _decode(result.sequences[0])


def screen_files(files: Iterable[tuple[str, Path]], out: Path,
                 log: Callable[[str], None] = print) -> list[Screened]:
    """Screens (key, path) pairs; rows already in ``out`` are kept (the run resumes)."""
    from edge_runtime.audio import load_audio
    from edge_runtime.errors import AudioError

    done = {s.key: s for s in read_screen(out)} if out.is_file() else {}
    transcriber: Transcriber | None = None
    rows = list(done.values())
    todo = [(k, p) for k, p in files if k not in done]
    for number, (key, path) in enumerate(todo, 1):
        try:
            audio = load_audio(path, 16000)
        except AudioError as error:
            log(f"  skipped {key}: {error}")
            continue
        transcriber = transcriber or Transcriber()
        prob, text = transcriber.screen(audio)
        rows.append(Screened(key, prob, text))
        if number % 50 == 0 or number == len(todo):
            log(f"  screened {number}/{len(todo)}; voices so far "
                f"{sum(r.voice for r in rows)}")
            write_screen(out, rows)
    write_screen(out, rows)
    return rows


def write_screen(path: Path, rows: list[Screened]) -> None:
    lines = ["path\tno_speech_prob\twords\tvoice\ttext"] + [
        f"{r.key}\t{r.no_speech_prob:.4f}\t{r.words}\t{int(r.voice)}\t"
        f"{r.text.replace(chr(9), ' ')[:200]}" for r in sorted(rows, key=lambda r: r.key)]
    temporary = path.with_name(f".partial-{path.name}")
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    temporary.replace(path)


def read_screen(path: Path) -> list[Screened]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        fields = line.split("\t")
        if len(fields) >= 4:
            rows.append(Screened(fields[0], float(fields[1]),
                                 fields[4] if len(fields) > 4 else ""))
    return rows


def voice_keys(path: Path = SCREEN_FILE) -> set[str]:
    """Keys of the files the screen flagged as voices (empty if there is no screen file)."""
    return {r.key for r in read_screen(path) if r.voice} if path.is_file() else set()
