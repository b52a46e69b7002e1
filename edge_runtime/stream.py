"""Streaming features: each STFT frame is computed once, windows come from a ring of frames.

``StreamingFrontend.push(chunk)`` transforms only the new audio (plus the n_fft - hop samples
of overlap it needs from the previous chunk) and appends the new log-band frames to a ring that
holds one model window. ``window()`` returns the normalised features of the latest window, which
equal ``Frontend.window_features`` on the same samples: cost per second of audio does not depend
on the window length or the hop between scored windows.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from edge_runtime.audio import fit_to_window
from edge_runtime.defaults import DEFAULT_HOP_SECONDS
from edge_runtime.frontend import Frontend, FrontendConfig
from edge_runtime.speech_presence import (
    BONAFIDE,
    NOSPEECH,
    SPOOF,
    GateSchedule,
    SpeechPresence,
    gate_stride,
)

if TYPE_CHECKING:
    from edge_runtime.config import Profile
    from edge_runtime.verify import OwnerCheck, OwnerVerifier


class FrameRing:
    """Fixed-capacity ring of (bands,) frames; ``latest()`` returns them oldest first."""

    def __init__(self, capacity: int, bands: int) -> None:
        self._data = np.zeros((capacity, bands), dtype=np.float32)
        self._capacity = capacity
        self._next = 0
        self.count = 0

    def extend(self, frames: np.ndarray) -> None:
        if frames.shape[0] >= self._capacity:
            self._data[:] = frames[-self._capacity :]
            self._next = 0
        else:
            end = self._next + frames.shape[0]
            if end <= self._capacity:
                self._data[self._next : end] = frames
            else:
                split = self._capacity - self._next
                self._data[self._next :] = frames[:split]
                self._data[: end - self._capacity] = frames[split:]
            self._next = end % self._capacity
        self.count = min(self._capacity, self.count + frames.shape[0])

    @property
    def full(self) -> bool:
        return self.count == self._capacity

    def latest(self) -> np.ndarray:
        if not self.full:
            return self._data[: self.count].copy()
        return np.concatenate([self._data[self._next :], self._data[: self._next]])


class StreamingFrontend:
    """Incremental front end over a stream of float32 mono chunks at the config's rate.

    With ``gate_frontend`` (the speech gate's, which shares this STFT), a second ring holds the
    gate's bands, pooled from the same power frames.
    """

    def __init__(self, config: FrontendConfig | None = None,
                 gate_frontend: Frontend | None = None) -> None:
        self.frontend = Frontend(config)
        self.config = self.frontend.config
        if gate_frontend is not None and not self.frontend.shares_stft(gate_frontend.config):
            raise ValueError("the gate's front end does not share this STFT")
        self.gate_frontend = gate_frontend
        self._ring = FrameRing(self.config.frames_per_window, self.config.n_bands)
        self._gate_ring = self._new_gate_ring()
        self._pending = np.zeros(0, dtype=np.float32)  # samples not yet fully framed
        self.samples_seen = 0
        self.frames_seen = 0

    def _new_gate_ring(self) -> FrameRing | None:
        if self.gate_frontend is None:
            return None
        return FrameRing(self.config.frames_per_window, self.gate_frontend.config.n_bands)

    def push(self, chunk: np.ndarray) -> int:
        """Adds audio; returns how many new feature frames it completed."""
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        self.samples_seen += chunk.shape[0]
        buffer = np.concatenate([self._pending, chunk]) if self._pending.size else chunk
        power = self.frontend.power_frames(buffer)
        count = power.shape[0]
        if count:
            if self._gate_ring is not None and self.gate_frontend is not None:
                self._gate_ring.extend(self.gate_frontend.log_bands(power))
            self._ring.extend(self.frontend.log_bands(power))
            self.frames_seen += count
            buffer = buffer[count * self.config.hop_length :]
        self._pending = buffer.copy()
        return count

    @property
    def ready(self) -> bool:
        """True once a whole window of frames has arrived."""
        return self._ring.full

    def window(self) -> np.ndarray:
        """Normalised features of the latest full window, (frames, bands)."""
        if not self.ready:
            raise RuntimeError("not enough audio for one window yet")
        return self.frontend.normalize(self._ring.latest())

    def gate_window(self) -> np.ndarray:
        """The speech gate's normalised features of the latest full window."""
        return self.gate_normalize(self.gate_frames())

    def gate_frames(self) -> np.ndarray:
        """A copy of the speech gate's log-band frames of the latest full window, not yet
        normalised (cheap to keep for a window the gate may have to judge later)."""
        if self._gate_ring is None or self.gate_frontend is None:
            raise RuntimeError("this stream has no speech gate front end")
        if not self.ready:
            raise RuntimeError("not enough audio for one window yet")
        return self._gate_ring.latest()

    def gate_normalize(self, frames: np.ndarray) -> np.ndarray:
        if self.gate_frontend is None:
            raise RuntimeError("this stream has no speech gate front end")
        return self.gate_frontend.normalize(frames)

    def latest_frames(self) -> np.ndarray:
        """Raw log-band frames currently in the ring (fewer than a window at the start)."""
        return self._ring.latest()

    def reset(self) -> None:
        self._ring = FrameRing(self.config.frames_per_window, self.config.n_bands)
        self._gate_ring = self._new_gate_ring()
        self._pending = np.zeros(0, dtype=np.float32)


# --- live detection: ring of audio, speech gate, smoothing, decisions per utterance ---------

GATE_BLOCK_SECONDS = 0.01  # the gate judges 10 ms blocks (a webrtcvad frame size too)
# With an owner, the utterance's voice is embedded this long before its hangover ends (once
# this much less than the hangover of silence has passed): the decision then finds the work
# done, and the lock waits for the embedder only when it takes longer than this.
OWNER_CHECK_LEAD_SECONDS = 0.3


class AudioRing:
    """The last ``capacity`` samples of a stream (for clips and short-utterance scoring)."""

    def __init__(self, capacity: int) -> None:
        self._data = np.zeros(capacity, dtype=np.float32)
        self._capacity = capacity
        self._next = 0
        self.total = 0  # samples ever written

    def extend(self, samples: np.ndarray) -> None:
        samples = samples[-self._capacity :]
        end = self._next + samples.shape[0]
        if end <= self._capacity:
            self._data[self._next : end] = samples
        else:
            split = self._capacity - self._next
            self._data[self._next :] = samples[:split]
            self._data[: end - self._capacity] = samples[split:]
        self._next = end % self._capacity
        self.total += samples.shape[0]

    def since(self, start: int) -> np.ndarray:
        """Samples from absolute index ``start`` to now (clipped to what the ring still holds)."""
        count = min(self.total - max(start, 0), self.total, self._capacity)
        if count <= 0:
            return np.zeros(0, dtype=np.float32)
        first = (self._next - count) % self._capacity
        if first + count <= self._capacity:
            return self._data[first : first + count].copy()
        return np.concatenate([self._data[first:], self._data[: (first + count) % self._capacity]])


class SpeechGate:
    """Energy gate on 10 ms blocks: speech = above an absolute floor and above the noise floor.

    The noise floor follows quiet blocks at once and rises slowly (about 10 s time constant)
    through loud ones, so steady fan or street noise stops counting as speech after a while
    while pauses between words keep it honest. ``kind="webrtcvad"`` asks webrtcvad instead
    (only if that package is installed); ``kind="off"`` calls every block speech.
    """

    def __init__(self, sample_rate: int, kind: str = "energy", threshold_db: float = -50.0,
                 margin_db: float = 10.0, vad_mode: int = 2) -> None:
        from edge_runtime.errors import ConfigError

        self.sample_rate = sample_rate
        self.block = round(GATE_BLOCK_SECONDS * sample_rate)
        self.kind = kind
        self.threshold_db = threshold_db
        self.margin_db = margin_db
        self.noise_db = threshold_db - margin_db
        self._pending = np.zeros(0, dtype=np.float32)
        self._vad = None
        if kind == "webrtcvad":
            try:
                import webrtcvad  # optional: used only where it is installed
            except ImportError:
                raise ConfigError(
                    "gate.kind: 'webrtcvad' needs the webrtcvad package (pip install "
                    "webrtcvad-wheels), or use kind = 'energy'"
                ) from None
            if sample_rate not in (8000, 16000, 32000, 48000):
                raise ConfigError(f"gate.kind: webrtcvad cannot run at {sample_rate} Hz")
            self._vad = webrtcvad.Vad(vad_mode)
        elif kind not in ("energy", "off"):
            raise ConfigError(f"gate.kind: unknown gate {kind!r}")

    def block_is_speech(self, block: np.ndarray) -> bool:
        if self.kind == "off":
            return True
        if self._vad is not None:
            pcm = (np.clip(block, -1.0, 1.0) * 32767).astype("<i2").tobytes()
            return bool(self._vad.is_speech(pcm, self.sample_rate))
        level = 10.0 * np.log10(float(np.mean(block.astype(np.float64) ** 2)) + 1e-12)
        speech = level >= self.threshold_db and level >= self.noise_db + self.margin_db
        if level < self.noise_db:
            self.noise_db = level
        else:
            self.noise_db += 0.001 * (level - self.noise_db)
        return bool(speech)


class ScoreSmoother:
    """Turns the window scores of one utterance into a smoothed score and a decision.

    ``mean``: moving average of the last n window scores. ``k_of_n``: the k-th highest of the
    last n scores, i.e. "at least k of the last n windows reached the threshold". The utterance
    score is the highest smoothed value seen once the rule has enough windows; an utterance
    with fewer windows than the rule needs is judged on all of them (mean of all, or all must
    reach the threshold), so a short spoof is never waved through. Decision: spoof iff the
    utterance score >= threshold.
    """

    def __init__(self, threshold: float, method: str = "mean", n: int = 3, k: int = 2) -> None:
        if method not in ("mean", "k_of_n"):
            raise ValueError(f"unknown smoothing method {method!r}")
        if not 1 <= k <= n:
            raise ValueError("need 1 <= k <= n")
        self.threshold = threshold
        self.method = method
        self.n = n
        self.k = k
        self.reset()

    def reset(self) -> None:
        self.scores: list[float] = []
        self._peak: float | None = None

    def _rule(self, recent: list[float], need: int) -> float:
        if self.method == "mean":
            return float(np.mean(recent))
        return sorted(recent, reverse=True)[need - 1]

    def add(self, score: float) -> float | None:
        """Adds a window score; returns the smoothed score once the rule has enough windows."""
        self.scores.append(float(score))
        recent = self.scores[-self.n :]
        need = self.n if self.method == "mean" else self.k
        if len(recent) < need:
            return None
        value = self._rule(recent, self.k)
        self._peak = value if self._peak is None else max(self._peak, value)
        return value

    @property
    def utterance_score(self) -> float | None:
        if not self.scores:
            return None
        if self._peak is not None:
            return self._peak
        # Fewer windows than the rule needs: all of them must agree.
        return float(np.mean(self.scores)) if self.method == "mean" else min(self.scores)

    def decision(self) -> str | None:
        score = self.utterance_score
        if score is None:
            return None
        return SPOOF if score >= self.threshold else BONAFIDE


@dataclass(frozen=True)
class DetectionEvent:
    """One line of output: a scored window (decision None) or an utterance's decision."""

    t: float  # stream time (s) at the end of the audio the event is about
    score: float | None
    speech: bool
    decision: str | None = None  # "spoof" / "bonafide" / "nospeech" on decision events
    smoothed: float | None = None
    utterance: tuple[float, float] | None = None  # start, end (s) on decision events
    windows: int = 0
    clip: np.ndarray | None = field(default=None, repr=False, compare=False)
    # Speech gate: the window's speech probability, or the utterance's mean on a decision.
    speech_score: float | None = None
    # With an owner: the utterance's cosine similarity to the owner's voice and its speaker
    # score (what the owner's threshold is compared to), where the voice was checked; None
    # where it was not, or the embedder found no voice to describe.
    similarity: float | None = None
    speaker_score: float | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "t": round(self.t, 3),
            "score": None if self.score is None else round(self.score, 6),
            "speech": self.speech,
            "decision": self.decision,
        }
        if self.speech_score is not None:
            data["speech_score"] = round(self.speech_score, 6)
        if self.decision is None:
            data["smoothed"] = None if self.smoothed is None else round(self.smoothed, 6)
        else:
            data["utterance"] = [round(v, 3) for v in self.utterance or (self.t, self.t)]
            data["windows"] = self.windows
            if self.similarity is not None:
                data["similarity"] = round(self.similarity, 6)
            if self.speaker_score is not None:
                data["speaker_score"] = round(self.speaker_score, 6)
        return data


class WindowScorer(Protocol):
    """What LiveDetector needs of a model (SpoofModel, or a float model on the host)."""

    def score_window(self, features: np.ndarray) -> float: ...


class LiveDetector:
    """Chunks of mono float32 audio in, DetectionEvents out.

    Per 10 ms block: the gate judges it, the utterance state machine advances; the streaming
    front end takes the blocks a hop at a time (``_frame_pending``). Every ``hop`` seconds, if
    an utterance is open and a whole window has arrived, the latest window is scored. An
    utterance closes after ``hangover`` seconds of silence, at ``max_utterance`` seconds or at
    the end of the stream, and gets one decision.
    Results do not depend on how the audio is cut into chunks.

    With ``speech`` (the speech gate), the scored windows its schedule picks get a speech
    probability (the first of an utterance, then one window length apart, the end-aligned last
    one, and at the decision the last scored window if it was not gated, so gated windows
    cover the whole utterance), and an utterance whose mean speech probability is below the
    gate's threshold is decided "nospeech" whatever its spoof score: the energy gate opens
    utterances for any loud sound, the speech gate says whether one held speech.

    With ``owner`` (an enrolled owner and the speaker embedder), an utterance that may be the
    owner's is "notowner" unless its voice matches the owner's (``OwnerVerifier.label``). The
    voice is the utterance up to its last speech block (the hangover is silence). It is
    embedded ``OWNER_CHECK_LEAD_SECONDS`` before the hangover would close the utterance, so the
    decision finds the check done; if speech comes back, the check is made again at the next
    pause. An utterance cut at ``max_utterance`` or by the end of the stream is embedded at its
    decision.
    """

    def __init__(self, model: WindowScorer, frontend_config: FrontendConfig, threshold: float,
                 hop_seconds: float = DEFAULT_HOP_SECONDS, gate: SpeechGate | None = None,
                 smoother: ScoreSmoother | None = None, min_speech: float = 0.2,
                 hangover: float = 0.8, max_utterance: float = 10.0,
                 keep_clips: bool = False, speech: SpeechPresence | None = None,
                 owner: OwnerVerifier | None = None) -> None:
        self.model = model
        self.speech = speech
        self.owner = owner
        self.stream = StreamingFrontend(frontend_config,
                                        speech.frontend if speech is not None else None)
        self._speech_scores: list[float] = []
        # The gate's frames of the last scored window when the schedule skipped it: judged at
        # the decision if no gated window came after it.
        self._ungated_frames: np.ndarray | None = None
        self.config = self.stream.config
        rate = self.config.sample_rate
        self.threshold = threshold
        self.gate = gate or SpeechGate(rate)
        if self.gate.sample_rate != rate:
            raise ValueError("the gate runs at a different rate from the model")
        self.block = self.gate.block
        if self.config.hop_length % self.block and self.block % self.config.hop_length:
            raise ValueError("gate blocks and front-end hops must nest")
        # Hops are whole gate blocks so scoring happens on block boundaries.
        self.hop_blocks = max(1, round(hop_seconds * rate / self.block))
        self._gate_schedule = (GateSchedule(gate_stride(self.config.window_samples,
                                                        self.hop_blocks * self.block))
                               if speech is not None else None)
        self.smoother = smoother or ScoreSmoother(threshold)
        self.min_blocks = max(1, round(min_speech * rate / self.block))
        self.hangover_blocks = max(1, round(hangover * rate / self.block))
        self.max_blocks = max(1, round(max_utterance * rate / self.block))
        self.keep_clips = keep_clips
        self.audio = AudioRing(self.config.window_samples + self.max_blocks * self.block
                               + self.hangover_blocks * self.block)
        self._recent: deque[bool] = deque(maxlen=2 * self.min_blocks)
        self._pending = np.zeros(0, dtype=np.float32)
        # Blocks not yet framed by the streaming front end (at most one hop: _frame_pending).
        self._unframed = np.zeros(self.hop_blocks * self.block, dtype=np.float32)
        self._unframed_count = 0
        self._blocks = 0  # blocks since the stream (or the last reset) began
        self._origin = 0  # absolute sample index of block 0
        self._in_utterance = False
        self._start_block = 0
        self._last_speech_block = 0
        self.windows_scored = 0
        self._last_scored_block = -1
        lead_blocks = round(OWNER_CHECK_LEAD_SECONDS * rate / self.block)
        self._owner_check_after = max(1, self.hangover_blocks - lead_blocks)
        # (first sample, end sample, check) of the last early owner check.
        self._owner_early: tuple[int, int, OwnerCheck] | None = None
        self.owner_checks_at_decision = 0  # owner checks the decision had to wait for

    @property
    def rate(self) -> int:
        return self.config.sample_rate

    def _time(self, block: int) -> float:
        return (self._origin + block * self.block) / self.rate

    def push(self, chunk: np.ndarray) -> list[DetectionEvent]:
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        data = np.concatenate([self._pending, chunk]) if self._pending.size else chunk
        whole = data.shape[0] // self.block
        events: list[DetectionEvent] = []
        for index in range(whole):
            events.extend(self._step(data[index * self.block : (index + 1) * self.block]))
        self._pending = data[whole * self.block :].copy()
        return events

    def _step(self, block: np.ndarray) -> list[DetectionEvent]:
        events: list[DetectionEvent] = []
        speech = self.gate.block_is_speech(block)
        self._unframed[self._unframed_count * self.block :
                       (self._unframed_count + 1) * self.block] = block
        self._unframed_count += 1
        self.audio.extend(block)
        self._blocks += 1
        if self._blocks % self.hop_blocks == 0:
            self._frame_pending()
        self._recent.append(speech)
        if speech:
            self._last_speech_block = self._blocks
        if not self._in_utterance:
            if sum(self._recent) >= self.min_blocks:
                self._in_utterance = True
                first = len(self._recent) - list(self._recent).index(True)
                self._start_block = self._blocks - first
                self._reset_scores()
        if not self._in_utterance:
            return events
        if self._blocks % self.hop_blocks == 0 and self.stream.ready:
            events.append(self._score_latest(speech))
        silent_for = self._blocks - self._last_speech_block
        if (self.owner is not None and silent_for == self._owner_check_after
                and silent_for < self.hangover_blocks):
            # Not when the decision so far cannot be the owner's (a spoof at the detector's
            # threshold without an owner spoof threshold). An utterance shorter than the
            # detector's window has no scores yet: checked all the same.
            so_far = self.smoother.decision()
            if so_far is None or self.owner.needs_check(so_far):
                start, end = self._voice_span()
                self._owner_early = (start, end, self._owner_check(start, end))
        if silent_for >= self.hangover_blocks:
            events.extend(self._decide(speech=False))
        elif self._blocks - self._start_block >= self.max_blocks:
            events.extend(self._decide(speech=True))
            # Speech goes on: the next utterance starts where this one was cut.
            self._in_utterance = True
            self._start_block = self._blocks
            self._reset_scores()
        return events

    def _frame_pending(self) -> None:
        """Hands the blocks taken since the last call to the streaming front end in one push.

        Framing a hop's blocks at once gives the same frames as block by block (the stream
        does not depend on how audio is cut), for one call per hop instead of one per 10 ms
        block; the stream is brought up to date on the hop grid, where windows are scored, and
        before every decision."""
        if self._unframed_count:
            self.stream.push(self._unframed[: self._unframed_count * self.block])
            self._unframed_count = 0

    def _reset_scores(self) -> None:
        self.smoother.reset()
        self._speech_scores = []
        self._ungated_frames = None
        if self._gate_schedule is not None:
            self._gate_schedule.reset()

    def _score_latest(self, speech: bool, last: bool = False) -> DetectionEvent:
        score = self.model.score_window(self.stream.window())
        speech_score = None
        if self.speech is not None and self._gate_schedule is not None:
            if self._gate_schedule.due(last):
                speech_score = self.speech.score_features(self.stream.gate_window())
                self._speech_scores.append(speech_score)
                self._ungated_frames = None
            else:
                self._ungated_frames = self.stream.gate_frames()
        self.windows_scored += 1
        self._last_scored_block = self._blocks
        smoothed = self.smoother.add(score)
        return DetectionEvent(t=self._time(self._blocks), score=score, speech=speech,
                              smoothed=smoothed, speech_score=speech_score)

    def _decide(self, speech: bool) -> list[DetectionEvent]:
        events: list[DetectionEvent] = []
        self._frame_pending()
        if not self.smoother.scores:
            # Shorter than one hop, or the stream is shorter than one window: score what there
            # is, repeat-padded like a short clip offline (ClipScorer does the same).
            if self.stream.ready:
                events.append(self._score_latest(speech))
            else:
                audio = self.audio.since(self._origin)
                if audio.shape[0] >= self.config.n_fft:
                    padded = fit_to_window(audio, self.config.window_samples)
                    frontend = self.stream.frontend
                    power = frontend.power_frames(padded)
                    speech_score = None
                    if self.speech is not None:
                        speech_score = self.speech.score_power(power)
                        self._speech_scores.append(speech_score)
                    score = self.model.score_window(
                        frontend.normalize(frontend.log_bands(power)))
                    self.windows_scored += 1
                    self.smoother.add(score)
                    events.append(DetectionEvent(t=self._time(self._blocks), score=score,
                                                 speech=speech, speech_score=speech_score))
        if self.speech is not None and self._ungated_frames is not None:
            # The utterance ended on a window the schedule skipped: judge it now, so the gated
            # windows cover the utterance to its last scored sample.
            self._speech_scores.append(self.speech.score_features(
                self.stream.gate_normalize(self._ungated_frames)))
            self._ungated_frames = None
        decision = self.smoother.decision()
        self._in_utterance = False
        self._recent.clear()
        if decision is None:
            return events
        utterance_speech = None
        if self.speech is not None:
            utterance_speech = float(np.mean(self._speech_scores))
            if not self.speech.is_speech(self._speech_scores):
                decision = NOSPEECH
        start = self._start_block * self.block + self._origin
        similarity = speaker_score = None
        if self.owner is not None and self.owner.needs_check(decision):
            voice_start, voice_end = self._voice_span()
            early = self._owner_early
            if early is not None and early[:2] == (voice_start, voice_end):
                check = early[2]
            else:
                self.owner_checks_at_decision += 1
                check = self._owner_check(voice_start, voice_end)
            similarity, speaker_score = check.similarity, check.speaker_score
            decision = self.owner.label(decision, check, self.smoother.utterance_score)
        self._owner_early = None
        clip = self.audio.since(start) if self.keep_clips else None
        events.append(DetectionEvent(
            t=self._time(self._blocks), score=self.smoother.utterance_score, speech=speech,
            decision=decision, utterance=(self._time(self._start_block), self._time(self._blocks)),
            windows=len(self.smoother.scores), clip=clip, speech_score=utterance_speech,
            similarity=similarity, speaker_score=speaker_score,
        ))
        self._reset_scores()
        return events

    def _voice_span(self) -> tuple[int, int]:
        """Absolute samples of the open utterance up to the end of its last speech block."""
        start = self._start_block * self.block + self._origin
        end = max(start, self._origin + self._last_speech_block * self.block)
        return start, end

    def _owner_check(self, start: int, end: int) -> OwnerCheck:
        assert self.owner is not None
        return self.owner.check(self.audio.since(start)[: end - start], "utterance")

    def flush(self) -> list[DetectionEvent]:
        """End of stream: the open utterance, if any, gets its decision now."""
        if self._pending.size:
            # Less than a gate block is left over: too short to judge or frame, but it is
            # part of the clip (a short stream is repeat-padded from all of its samples).
            self.audio.extend(self._pending)
            self._pending = np.zeros(0, dtype=np.float32)
        if not self._in_utterance:
            return []
        self._frame_pending()
        events: list[DetectionEvent] = []
        if (self.smoother.scores and self.stream.ready
                and self._last_scored_block != self._blocks):
            # The end of the stream is not on the hop grid: one more window, aligned to the
            # end, so the last words are scored too (as ClipScorer aligns its last window).
            events.append(self._score_latest(True, last=True))
        return events + self._decide(speech=True)

    @property
    def in_utterance(self) -> bool:
        return self._in_utterance

    def reset(self) -> None:
        """After a gap in the audio (device reconnect): drop the open utterance and the frames."""
        self._origin = self.audio.total  # the next sample lands here in the ring
        self.stream.reset()
        self._unframed_count = 0
        self._pending = np.zeros(0, dtype=np.float32)
        self._blocks = 0
        self._recent.clear()
        self._in_utterance = False
        self._owner_early = None
        self._reset_scores()


def detector_from_profile(profile: Profile, model: WindowScorer, frontend_config: FrontendConfig,
                          threshold: float, keep_clips: bool = False,
                          speech: SpeechPresence | None = None,
                          owner: OwnerVerifier | None = None) -> LiveDetector:
    """A LiveDetector with a profile's gate, hop, smoothing and utterance settings."""
    rate = frontend_config.sample_rate
    gate = SpeechGate(rate, kind=profile.gate.kind, threshold_db=profile.gate.threshold_db,
                      margin_db=profile.gate.margin_db, vad_mode=profile.gate.vad_mode)
    smoother = ScoreSmoother(threshold, method=profile.smoothing.method,
                             n=profile.smoothing.n, k=profile.smoothing.k)
    return LiveDetector(model, frontend_config, threshold, hop_seconds=profile.stream.hop,
                        gate=gate, smoother=smoother, min_speech=profile.gate.min_speech,
                        hangover=profile.gate.hangover,
                        max_utterance=profile.stream.max_utterance, keep_clips=keep_clips,
                        speech=speech, owner=owner)
