"""Non-speech audio for the speech gate: generated signals, fluidsynth music, packaged sounds.

Everything here is made locally or read from files that Debian packages install, so the data
can be rebuilt with one command (`edge-train gate data`) and nothing generated enters the repo.
Three sources, each split into a training and a disjoint TEST part:

- ``synthetic``: tones, sweeps, DTMF, square/saw melodies, chords, noise colours, clicks,
  mains hum, near-silence and mixtures. Train and test come from different generator seeds,
  and the test draws from ranges that the training draws never used for a few parameters.
- ``music``: General MIDI files shipped by Debian packages, rendered with fluidsynth. Train
  and test use different MIDI files (by a hash of the file name) and different soundfonts.
- ``sfx``: sound effects of desktop sound themes and games. Different files for train and test.

Files of these packages that hold speech (spoken channel names, game voice samples) are
excluded by name: a spoken "excellent!" is speech and must not be taught as "no speech".
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from host_training.augment import coloured_noise
from host_training.voice_screen import SCREEN_FILE, read_screen, voice_keys

SAMPLE_RATE = 16000
SPLITS = ("train", "test")
# New kinds go last: each split's clips are drawn in this order from one stream, so the clips
# of the kinds before them stay the same.
SYNTHETIC_KINDS = ("tone", "chirp", "dtmf", "melody", "chord", "noise", "click", "hum",
                   "silence", "mixture", "knock", "blip")
# Kinds that are often one short event: half their clips are 0.1-1 s long, which the board
# repeat-pads to a window, as it pads a spoken letter (a key press every 0.3 s is a
# syllable-rate rhythm).
SHORT_EVENT_KINDS = ("knock", "blip")
SHORT_EVENT_SECONDS = (0.1, 1.0)
# Seeds of the generators per split: the test set is never drawn from the training stream.
SPLIT_SEEDS = {"train": 1101, "test": 2202}
CLIP_SECONDS = (0.4, 6.0)
MIDI_SEARCH = (Path("/usr/share"),)
SOUND_SEARCH = (Path("/usr/share/sounds"), Path("/usr/share/games"))
INSTALLED_ROOT = Path("/usr/share")  # keys of installed sound files are relative to it
# Sound packages unpacked by `edge-train gate packages` (apt-get download + dpkg -x, nothing
# installed): one folder per package. Whole packages are either training or TEST packages, so
# the test set holds sounds of games and themes that training never heard. The TEST packages
# were picked blind, by a hash of the package name (the first byte of sha1 below 77 of 256),
# before any gate scored them.
DEFAULT_SOUND_PACKAGES = Path("cache/sound-packages")
TRAIN_SOUND_PACKAGES = (
    "a7xpg-data", "abe-data", "amphetamine-data", "ballz-data", "biniax2-data",
    "briquolo-data", "btanks-data", "caveexpress-data", "ceferino-data", "cuyo-data",
    "eiskaltdcpp-sounds", "extremetuxracer-data", "foobillardplus-data", "freegish-data",
    "gamine-data", "gnujump-data", "gunroar-data", "hannah-data", "jigzo-data",
    "lincity-ng-data", "meritous-data", "moon-lander-data", "mu-cade-data", "netpanzer-data",
    "njam-data", "orbital-eunuchs-sniper-data", "pax-britannica-data", "pekka-kana-2-data",
    "pink-pony-data", "raincat-data", "ri-li-data", "sound-icons", "starfighter-data",
    "stormbaancoureur-data", "tecnoballz-data", "titanion-data", "val-and-rick-data",
    "zaz-data",
)
TEST_SOUND_PACKAGES = (
    "alienblaster-data", "bomberclone-data", "brainparty-data", "bucklespring-data",
    "enigma-data", "heroes-sound-effects", "lbreakouthd-data", "lomiri-sounds", "pachi-data",
    "parsec47-data", "phlipple-data", "psi-plus-sounds", "rrootage-data", "sdl-ball-data",
    "torus-trooper-data", "tumiki-fighters-data", "xmoto-data",
)
# Installed (apt install) packages whose sound files are split file by file, by a hash of the
# file name, as the first gate was built: sound-theme-freedesktop, oxygen-sounds,
# deepin-sound-theme, yaru-theme-sound, lbreakout2-data, chromium-bsu-data, ltris,
# frozen-bubble-data (and the MIDI packages of the music, whose sounds are few).
SOUND_SUFFIXES = (".ogg", ".oga", ".wav", ".flac")
MIDI_SUFFIXES = (".mid", ".midi")
# Soundfonts from fluid-soundfont-gm (train) and timgm6mb-soundfont (test).
SOUNDFONTS = {
    "train": ("/usr/share/sounds/sf2/FluidR3_GM.sf2",),
    "test": ("/usr/share/sounds/sf2/TimGM6mb.sf2", "/usr/share/sounds/sf2/default-GM.sf2"),
}
# Sound files in these packages that are (or may be) spoken words.
SPEECH_NAME_PARTS = (
    "audio-channel-", "damn", "dammit", "excellent", "verygood", "wontgiveup", "hurry", "noh",
    "chatted", "lose", "voice", "speech", "talk", "say", "hello", "welcome",
)
MIDI_RENDER_TIMEOUT = 120.0
MIDI_MAX_SECONDS = 90.0


@dataclass(frozen=True)
class NonSpeechClip:
    split: str
    kind: str  # a SYNTHETIC_KINDS name, "music" or "sfx"
    source: str  # the generator and its seed, or the file it was cut from
    path: Path


def file_split(path: Path, test_share: float = 0.25) -> str:
    """Train or test for a source file, fixed by its name (not its folder, not the run)."""
    digest = hashlib.sha1(path.name.encode("utf-8", "surrogateescape")).digest()
    return "test" if digest[0] < 256 * test_share else "train"


# --- generated signals --------------------------------------------------------------------

def _envelope(length: int, rng: np.random.Generator) -> np.ndarray:
    attack = max(1, int(rng.uniform(0.002, 0.05) * SAMPLE_RATE))
    release = max(1, int(rng.uniform(0.01, 0.2) * SAMPLE_RATE))
    env = np.ones(length)
    env[:attack] = np.linspace(0.0, 1.0, min(attack, length))[: min(attack, length)]
    env[-release:] *= np.linspace(1.0, 0.0, min(release, length))
    return env


def _oscillator(phase: np.ndarray, shape: str) -> np.ndarray:
    if shape == "sine":
        return np.sin(phase)
    if shape == "square":
        return np.sign(np.sin(phase))
    if shape == "saw":
        return 2.0 * ((phase / (2 * np.pi)) % 1.0) - 1.0
    return 2.0 * np.abs(2.0 * ((phase / (2 * np.pi)) % 1.0) - 1.0) - 1.0  # triangle


def _note(freq: float, length: int, shape: str, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(length) / SAMPLE_RATE
    return _oscillator(2 * np.pi * freq * t, shape) * _envelope(length, rng)


def tone(n: int, rng: np.random.Generator, test: bool) -> np.ndarray:
    low, high = (90.0, 3500.0) if not test else (60.0, 5000.0)
    t = np.arange(n) / SAMPLE_RATE
    out = np.zeros(n)
    for _ in range(int(rng.integers(1, 4))):
        freq = float(np.exp(rng.uniform(np.log(low), np.log(high))))
        vibrato = 0.0
        if rng.random() < 0.3:
            vibrato = rng.uniform(0, 8) * np.sin(2 * np.pi * rng.uniform(3, 7) * t)
        out += rng.uniform(0.2, 1.0) * np.sin(2 * np.pi * freq * t + vibrato)
    if rng.random() < 0.4:  # beeps: the tone switched on and off
        period = rng.uniform(0.1, 1.0)
        out *= ((t % period) < period * rng.uniform(0.2, 0.8))
    return out


def chirp(n: int, rng: np.random.Generator, test: bool) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    f0, f1 = np.exp(rng.uniform(np.log(50.0), np.log(7000.0), size=2))
    sweep = rng.uniform(0.1, max(0.2, n / SAMPLE_RATE))
    local = t % sweep
    if rng.random() < 0.5:  # linear
        phase = 2 * np.pi * (f0 * local + (f1 - f0) * local**2 / (2 * sweep))
    else:  # exponential
        k = (f1 / f0) ** (1.0 / sweep)
        if abs(k - 1) > 1e-6:
            phase = 2 * np.pi * f0 * (k**local - 1) / np.log(k)
        else:
            phase = 2 * np.pi * f0 * local
    shape = "sine" if test or rng.random() < 0.7 else str(rng.choice(["square", "saw"]))
    return _oscillator(phase, shape)


DTMF_LOW = (697.0, 770.0, 852.0, 941.0)
DTMF_HIGH = (1209.0, 1336.0, 1477.0, 1633.0)


def dtmf(n: int, rng: np.random.Generator, test: bool) -> np.ndarray:
    out = np.zeros(n)
    position = int(rng.uniform(0, 0.2) * SAMPLE_RATE)
    while position < n:
        length = int(rng.uniform(0.04, 0.25) * SAMPLE_RATE)
        gap = int(rng.uniform(0.03, 0.3) * SAMPLE_RATE)
        t = np.arange(min(length, n - position)) / SAMPLE_RATE
        low, high = rng.choice(DTMF_LOW), rng.choice(DTMF_HIGH)
        out[position : position + t.shape[0]] = (np.sin(2 * np.pi * low * t)
                                                 + np.sin(2 * np.pi * high * t))
        position += length + gap
    return out


def _scale_freqs(rng: np.random.Generator) -> np.ndarray:
    root = rng.uniform(110.0, 440.0)
    steps = np.array([0, 2, 4, 5, 7, 9, 11, 12, 14, 16])
    return root * 2.0 ** (steps / 12.0)


def melody(n: int, rng: np.random.Generator, test: bool) -> np.ndarray:
    freqs = _scale_freqs(rng)
    shape = str(rng.choice(["square", "saw", "triangle", "sine"]))
    out = np.zeros(n)
    position = 0
    while position < n:
        length = min(int(rng.uniform(0.08, 0.5) * SAMPLE_RATE), n - position)
        if rng.random() < 0.85:
            out[position : position + length] = _note(float(rng.choice(freqs)), length, shape, rng)
        position += length
    return out


def chord(n: int, rng: np.random.Generator, test: bool) -> np.ndarray:
    freqs = _scale_freqs(rng)
    shape = str(rng.choice(["sine", "saw", "square", "triangle"]))
    out = np.zeros(n)
    position = 0
    while position < n:
        length = min(int(rng.uniform(0.3, 2.0) * SAMPLE_RATE), n - position)
        base = rng.choice(len(freqs) - 4, size=1)[0]
        picks = base + np.array([0, 2, 4, 7][: int(rng.integers(3, 5))])
        for index in picks:
            out[position : position + length] += _note(float(freqs[min(index, len(freqs) - 1)]),
                                                       length, shape, rng)
        position += length
    return out


def noise(n: int, rng: np.random.Generator, test: bool) -> np.ndarray:
    exponent = float(rng.choice([0.0, 1.0, 2.0, rng.uniform(-1.0, 2.5)]))
    out = coloured_noise(n, exponent, rng).astype(np.float64)
    if rng.random() < 0.35:  # amplitude-modulated noise (a speech-like envelope, no voice)
        t = np.arange(n) / SAMPLE_RATE
        out *= 0.55 + 0.45 * np.sin(2 * np.pi * rng.uniform(1.5, 8.0) * t + rng.uniform(0, 6))
    return out


def click(n: int, rng: np.random.Generator, test: bool) -> np.ndarray:
    out = np.zeros(n)
    regular = rng.random() < 0.5
    period = rng.uniform(0.05, 1.0)
    position = int(rng.uniform(0, period) * SAMPLE_RATE)
    decay = np.exp(-np.arange(int(0.02 * SAMPLE_RATE)) / (rng.uniform(0.0003, 0.004) * SAMPLE_RATE))
    while position < n:
        if rng.random() < 0.5:
            burst = rng.standard_normal(decay.shape[0]) * decay
        else:
            burst = decay * np.sin(2 * np.pi * rng.uniform(500, 5000)
                                   * np.arange(decay.shape[0]) / SAMPLE_RATE)
        end = min(n, position + burst.shape[0])
        out[position:end] += burst[: end - position] * rng.uniform(0.3, 1.0)
        position += int((period if regular else rng.exponential(period)) * SAMPLE_RATE) + 1
    return out


def hum(n: int, rng: np.random.Generator, test: bool) -> np.ndarray:
    mains = float(rng.choice([50.0, 60.0])) * rng.uniform(0.99, 1.01)
    t = np.arange(n) / SAMPLE_RATE
    out = np.zeros(n)
    for harmonic in range(1, int(rng.integers(2, 16))):
        out += rng.uniform(0.0, 1.0) / harmonic**rng.uniform(0.3, 1.5) * np.sin(
            2 * np.pi * mains * harmonic * t + rng.uniform(0, 6))
    if rng.random() < 0.3:  # buzz: a clipped, rectified hum
        out = np.clip(np.abs(out), 0, rng.uniform(0.2, 1.0))
    return out + 0.01 * rng.standard_normal(n)


def silence(n: int, rng: np.random.Generator, test: bool) -> np.ndarray:
    """Near silence: dither or a faint noise floor, sometimes with a DC offset."""
    out = coloured_noise(n, float(rng.uniform(0.0, 2.0)), rng) * 10 ** (rng.uniform(-95, -60) / 20)
    return out + (rng.uniform(-0.01, 0.01) if rng.random() < 0.3 else 0.0)


def _events(n: int, rng: np.random.Generator, event: Callable[[], np.ndarray]) -> np.ndarray:
    """``event()`` once at the start, or repeated at a regular or irregular pace (typing,
    taps, a game's blips)."""
    out = np.zeros(n)
    position = int(rng.uniform(0.0, 0.05) * SAMPLE_RATE)
    single = rng.random() < 0.4
    period = rng.uniform(0.08, 0.8)
    regular = rng.random() < 0.4
    while position < n:
        sound = event()
        end = min(n, position + sound.shape[0])
        out[position:end] += sound[: end - position] * rng.uniform(0.4, 1.0)
        if single:
            break
        step = period if regular else rng.uniform(0.3, 1.7) * period
        position += int(step * SAMPLE_RATE) + 1
    if rng.random() < 0.7:  # a recording's noise floor between the events
        floor = coloured_noise(n, float(rng.uniform(0.0, 2.0)), rng).astype(np.float64)
        out += floor / (np.max(np.abs(floor)) + 1e-12) * np.max(np.abs(out)) * 10 ** (
            rng.uniform(-60, -25) / 20)
    return out


def knock(n: int, rng: np.random.Generator, test: bool) -> np.ndarray:
    """Mechanical clicks that ring: key presses, taps, switches, knocks. A short noise burst
    excites a few damped resonances (a key's plastic, a table's wood)."""
    count = int(rng.integers(1, 5))
    freqs = np.exp(rng.uniform(np.log(150.0), np.log(6000.0), size=count))
    decays = rng.uniform(0.004, 0.08, size=count)
    gains = rng.uniform(0.2, 1.0, size=count)

    def event() -> np.ndarray:
        length = int(0.25 * SAMPLE_RATE)
        t = np.arange(length) / SAMPLE_RATE
        burst_length = max(2, int(rng.uniform(0.0005, 0.006) * SAMPLE_RATE))
        out = np.zeros(length)
        out[:burst_length] = rng.standard_normal(burst_length) * rng.uniform(0.1, 1.0)
        jitter = rng.uniform(0.97, 1.03, size=count)  # no two presses quite alike
        for freq, decay, gain, shift in zip(freqs, decays, gains, jitter, strict=True):
            out += gain * np.exp(-t / decay) * np.sin(2 * np.pi * freq * shift * t
                                                      + rng.uniform(0, 6))
        return out

    return _events(n, rng, event)


def blip(n: int, rng: np.random.Generator, test: bool) -> np.ndarray:
    """Short pitched sounds that glide, rich in harmonics: a game's blips, whoops and jingles
    (a voice glides too, but has no steady spectrum envelope like these)."""
    shape = str(rng.choice(["sine", "square", "saw", "triangle"]))
    low, high = (100.0, 1600.0) if not test else (80.0, 2400.0)

    def event() -> np.ndarray:
        length = max(2, int(rng.uniform(0.05, 0.6) * SAMPLE_RATE))
        t = np.arange(length) / SAMPLE_RATE
        start = float(np.exp(rng.uniform(np.log(low), np.log(high))))
        end = start * float(np.exp(rng.uniform(np.log(0.4), np.log(2.5))))
        freq = start * (end / start) ** (t / t[-1])
        if rng.random() < 0.3:  # a wobble
            freq = freq * (1 + rng.uniform(0.01, 0.06) * np.sin(2 * np.pi * rng.uniform(4, 12)
                                                                 * t))
        phase = 2 * np.pi * np.cumsum(freq) / SAMPLE_RATE
        return _oscillator(phase, shape) * _envelope(length, rng)

    return _events(n, rng, event)


GENERATORS: dict[str, Callable[[int, np.random.Generator, bool], np.ndarray]] = {
    "tone": tone, "chirp": chirp, "dtmf": dtmf, "melody": melody, "chord": chord,
    "noise": noise, "click": click, "hum": hum, "silence": silence,
    "knock": knock, "blip": blip,
}
# What a mixture draws from: the kinds of the first set, a mixture itself included (fixed, so
# its clips stay the same as they were before later kinds were added).
MIXABLE_KINDS = ("tone", "chirp", "dtmf", "melody", "chord", "noise", "click", "hum", "mixture")


def mixture(n: int, rng: np.random.Generator, test: bool) -> np.ndarray:
    kinds = rng.choice(list(MIXABLE_KINDS), size=2, replace=False)
    first, second = (_normalized(GENERATORS[str(k)](n, rng, test)) for k in kinds)
    return first + second * 10 ** (rng.uniform(-20, 0) / 20)


GENERATORS["mixture"] = mixture


def _normalized(audio: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return audio / peak if peak > 0 else audio


def synthetic_clip(kind: str, rng: np.random.Generator, test: bool = False,
                   seconds: float | None = None) -> np.ndarray:
    """One generated clip of ``kind`` at 16 kHz, peak between -30 and -1 dBFS (silence lower)."""
    if seconds is None:
        short = kind in SHORT_EVENT_KINDS and rng.random() < 0.5
        seconds = float(rng.uniform(*(SHORT_EVENT_SECONDS if short else CLIP_SECONDS)))
    n = max(1, int(seconds * SAMPLE_RATE))
    audio = GENERATORS[kind](n, rng, test)
    if kind != "silence":
        audio = _normalized(audio) * 10 ** (rng.uniform(-30, -1) / 20)
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


# --- packaged files -----------------------------------------------------------------------

def _find(roots: tuple[Path, ...], suffixes: tuple[str, ...]) -> list[Path]:
    found: set[Path] = set()
    for root in roots:
        if root.is_dir():
            for path in root.rglob("*"):
                if path.suffix.lower() in suffixes and path.is_file() and "/sf2/" not in str(path):
                    found.add(path.resolve())
    return sorted(found)


def midi_files(roots: tuple[Path, ...] = MIDI_SEARCH) -> list[Path]:
    return _find(roots, MIDI_SUFFIXES)


def is_speech_name(path: Path) -> bool:
    name = path.name.lower()
    return any(part in name for part in SPEECH_NAME_PARTS)


@dataclass(frozen=True)
class SoundFile:
    key: str  # the path relative to INSTALLED_ROOT, or "<package>/<path in the package>"
    path: Path
    split: str
    package: str  # "" for installed files (their split is by file name)


def _key_of(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def sound_files(roots: tuple[Path, ...] = SOUND_SEARCH,
                packages_root: Path | None = DEFAULT_SOUND_PACKAGES) -> list[SoundFile]:
    """Every packaged sound file, with its split; spoken ones by name are left out here, the
    ones the voice screen flags are left out by ``build_nonspeech``."""
    found = [SoundFile(_key_of(p, INSTALLED_ROOT) if p.is_relative_to(INSTALLED_ROOT)
                       else str(p), p, file_split(p), "")
             for p in _find(roots, SOUND_SUFFIXES) if not is_speech_name(p)]
    if packages_root is not None and packages_root.is_dir():
        root = packages_root.resolve()
        for split, packages in (("train", TRAIN_SOUND_PACKAGES), ("test", TEST_SOUND_PACKAGES)):
            for package in packages:
                for path in _find((root / package,), SOUND_SUFFIXES):
                    if not is_speech_name(path):
                        found.append(SoundFile(_key_of(path, root), path, split, package))
    return found


def fetch_sound_packages(out: Path, log: Callable[[str], None] = print) -> list[str]:
    """Downloads the sound packages with apt-get and unpacks each into ``out/<package>/``
    (dpkg -x: nothing is installed). Returns the packages that could not be had."""
    missing = []
    debs = out / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    for package in TRAIN_SOUND_PACKAGES + TEST_SOUND_PACKAGES:
        target = out / package
        if target.is_dir():
            continue
        result = subprocess.run(["apt-get", "download", package], cwd=debs,
                                capture_output=True, text=True)
        archives = sorted(debs.glob(f"{package}_*.deb"))
        if result.returncode != 0 or not archives:
            log(f"  {package}: apt-get download failed: {result.stderr.strip()[:120]}")
            missing.append(package)
            continue
        partial = out / f".partial-{package}"
        shutil.rmtree(partial, ignore_errors=True)
        subprocess.run(["dpkg", "-x", str(archives[-1]), str(partial)], check=True)
        partial.replace(target)
        log(f"  {package}: unpacked")
    return missing


def fluidsynth_available() -> bool:
    return shutil.which("fluidsynth") is not None and any(
        Path(sf).is_file() for fonts in SOUNDFONTS.values() for sf in fonts)


def render_midi(midi: Path, soundfont: Path, rate: int = SAMPLE_RATE,
                timeout: float = MIDI_RENDER_TIMEOUT) -> np.ndarray:
    """Renders a MIDI file with fluidsynth to mono float32 at ``rate`` (raises on failure)."""
    import soundfile

    from edge_runtime.audio import load_audio

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "render.wav"
        subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(rate), "-F", str(out),
                        "-T", "wav", str(soundfont), str(midi)],
                       check=True, timeout=timeout, capture_output=True)
        if not out.is_file() or soundfile.info(str(out)).frames == 0:
            raise RuntimeError(f"{midi}: fluidsynth rendered nothing")
        return load_audio(out, rate)


def _crops(audio: np.ndarray, count: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """``count`` random segments (CLIP_SECONDS long, or the whole clip if shorter)."""
    for _ in range(count):
        length = int(rng.uniform(*CLIP_SECONDS) * SAMPLE_RATE)
        if audio.shape[0] <= length:
            yield audio
        else:
            start = int(rng.integers(0, audio.shape[0] - length + 1))
            yield audio[start : start + length]


def _name_seed(path: Path) -> int:
    """A generator seed fixed by a source file's name: crops do not change between builds."""
    return int.from_bytes(hashlib.sha1(path.name.encode()).digest()[:4], "big")


def _audible(audio: np.ndarray) -> bool:
    return audio.size > 0 and float(np.max(np.abs(audio))) > 10 ** (-60 / 20)


# --- building the set ---------------------------------------------------------------------

@dataclass(frozen=True)
class BuildCounts:
    synthetic_per_kind: dict[str, int]  # split -> clips per synthetic kind
    music_crops: dict[str, int]  # split -> clips cut from each rendered MIDI file
    sfx_crops: dict[str, int]  # split -> clips cut from each sound file (fewer if it is short)


DEFAULT_COUNTS = BuildCounts(
    synthetic_per_kind={"train": 300, "test": 40},
    music_crops={"train": 12, "test": 5},
    sfx_crops={"train": 6, "test": 3},
)
MANIFEST = "manifest.tsv"


def _write(path: Path, audio: np.ndarray) -> None:
    import soundfile

    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".partial-{path.name}")
    soundfile.write(str(temporary), np.clip(audio, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16",
                    format="FLAC")
    temporary.replace(path)


def write_generated(out: Path, counts: BuildCounts = DEFAULT_COUNTS,
                    log: Callable[[str], None] = print) -> list[NonSpeechClip]:
    """The generated clips of both splits, under ``out/<split>/<kind>/``."""
    clips: list[NonSpeechClip] = []
    for split in SPLITS:
        rng = np.random.default_rng(SPLIT_SEEDS[split])
        for kind in SYNTHETIC_KINDS:
            for index in range(counts.synthetic_per_kind[split]):
                path = out / split / kind / f"{kind}-{index:05d}.flac"
                _write(path, synthetic_clip(kind, rng, test=split == "test"))
                clips.append(NonSpeechClip(split, kind, f"generator {kind} seed "
                                           f"{SPLIT_SEEDS[split]}", path))
        log(f"{split}: {len(SYNTHETIC_KINDS) * counts.synthetic_per_kind[split]} generated clips")
    return clips


def build_nonspeech(out: Path, counts: BuildCounts = DEFAULT_COUNTS,
                    log: Callable[[str], None] = print,
                    packages_root: Path | None = DEFAULT_SOUND_PACKAGES,
                    voice_screen: Path = SCREEN_FILE) -> list[NonSpeechClip]:
    """Writes every clip as 16 kHz FLAC under ``out/<split>/<kind>/`` plus ``manifest.tsv``."""
    from edge_runtime.audio import load_audio
    from edge_runtime.errors import AudioError

    screened = ({r.key for r in read_screen(voice_screen)} if voice_screen.is_file()
                else None)

    clips = write_generated(out, counts, log)

    if fluidsynth_available():
        midis = midi_files()
        log(f"rendering {len(midis)} MIDI files with fluidsynth")
        for number, midi in enumerate(midis):
            split = file_split(midi)
            fonts = [Path(f) for f in SOUNDFONTS[split] if Path(f).is_file()]
            if not fonts:
                continue
            rng = np.random.default_rng(_name_seed(midi))
            font = fonts[number % len(fonts)]
            try:
                audio = render_midi(midi, font)[: int(MIDI_MAX_SECONDS * SAMPLE_RATE)]
            except (subprocess.SubprocessError, RuntimeError, OSError, AudioError) as error:
                log(f"  skipped {midi.name}: {str(error).splitlines()[0][:120]}")
                continue
            for index, crop in enumerate(_crops(audio, counts.music_crops[split], rng)):
                if not _audible(crop):
                    continue
                path = out / split / "music" / f"{midi.stem}-{number:03d}-{index:02d}.flac"
                _write(path, crop)
                clips.append(NonSpeechClip(split, "music", f"{midi} ({font.name})", path))
    else:
        log("fluidsynth or a GM soundfont is missing: no music clips "
            "(apt install fluidsynth fluid-soundfont-gm timgm6mb-soundfont)")

    sounds = sound_files(packages_root=packages_root)
    voices = voice_keys(voice_screen)
    spoken = [s for s in sounds if s.key in voices]
    sounds = [s for s in sounds if s.key not in voices]
    log(f"cutting {len(sounds)} sound files ({len(spoken)} left out: the voice screen "
        f"{voice_screen} hears speech in them)")
    unscreened = [s.key for s in sounds if screened is not None and s.key not in screened]
    if unscreened:
        log(f"  warning: {len(unscreened)} sound files were never screened for voices "
            f"(`edge-train gate screen`), e.g. {unscreened[0]}")
    for number, found in enumerate(sounds):
        sound, split = found.path, found.split
        rng = np.random.default_rng(_name_seed(sound))
        try:
            audio = load_audio(sound, SAMPLE_RATE)
        except AudioError as error:
            log(f"  skipped {found.key}: {error}")
            continue
        seconds = audio.shape[0] / SAMPLE_RATE
        crops = max(1, min(counts.sfx_crops[split], int(seconds / 1.5)))
        for index, crop in enumerate(_crops(audio, crops, rng)):
            if not _audible(crop):
                continue
            path = out / split / "sfx" / f"{sound.stem}-{number:03d}-{index:02d}.flac"
            _write(path, crop)
            clips.append(NonSpeechClip(split, "sfx", found.key, path))

    lines = ["split\tkind\tsource\tpath"] + [
        f"{c.split}\t{c.kind}\t{c.source}\t{c.path.relative_to(out)}" for c in clips]
    (out / MANIFEST).write_text("\n".join(lines) + "\n", encoding="utf-8")
    for split in SPLITS:
        kinds: dict[str, int] = {}
        for clip in clips:
            if clip.split == split:
                kinds[clip.kind] = kinds.get(clip.kind, 0) + 1
        log(f"{split}: {sum(kinds.values())} clips "
            + ", ".join(f"{k} {v}" for k, v in kinds.items()))
    return clips


def read_manifest(root: Path, split: str) -> list[NonSpeechClip]:
    """The clips of one split of a set written by ``build_nonspeech``."""
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: not found; build it with `edge-train gate data`")
    clips = []
    for line in manifest.read_text(encoding="utf-8").splitlines()[1:]:
        fields = line.split("\t")
        if len(fields) == 4 and fields[0] == split:
            clips.append(NonSpeechClip(fields[0], fields[1], fields[2], root / fields[3]))
    return clips
