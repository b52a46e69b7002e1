"""Polyphase resampling in NumPy: the filter and the arithmetic of scipy.signal.resample_poly,
without importing scipy on the board (scipy.signal alone took classify on a 48 kHz file from
about 60 MB to 140 MB of resident memory).

The filter is resample_poly's default: a linear-phase low-pass FIR of 2 * 10 * max(up, down) + 1
taps with a Kaiser window (beta 5), cut-off at the lower Nyquist frequency, unit DC gain per
output phase. Each output sample is a dot product of one phase of that filter with the input,
summed in float64 in a fixed order, so the same output sample comes out bit for bit the same
whatever block of input it was computed in.
"""

from __future__ import annotations

import numpy as np

KAISER_BETA = 5.0
HALF_LENGTH_PER_RATE = 10  # half the filter length, in units of max(up, down)
# Outputs computed at once: bounds the temporary arrays (a few hundred KB) for any input.
OUTPUT_BLOCK = 1 << 13


def design_filter(up: int, down: int) -> np.ndarray:
    """The low-pass FIR (float64) resample_poly designs for these factors."""
    max_rate = max(up, down)
    half_length = HALF_LENGTH_PER_RATE * max_rate
    cutoff = 1.0 / max_rate  # relative to the Nyquist frequency
    taps = np.arange(-half_length, half_length + 1, dtype=np.float64)
    h = cutoff * np.sinc(cutoff * taps)
    h *= np.kaiser(2 * half_length + 1, KAISER_BETA)
    return h / h.sum()


class PolyphaseResampler:
    """Resamples 1-D signals by ``up / down`` (coprime) with a fixed filter."""

    def __init__(self, up: int, down: int, h: np.ndarray | None = None) -> None:
        self.up, self.down = up, down
        h = design_filter(up, down) if h is None else np.asarray(h, dtype=np.float64)
        half_length = (h.shape[0] - 1) // 2
        # As resample_poly: zeros in front put output sample 0 at the filter's centre.
        pre_pad = down - half_length % down
        self._first_output = (half_length + pre_pad) // down
        padded = np.concatenate([np.zeros(pre_pad), h * up])
        self._taps = -(-padded.shape[0] // up)  # taps per phase
        phases = np.zeros(self._taps * up)
        phases[: padded.shape[0]] = padded
        self._by_tap = phases.reshape(self._taps, up)  # [tap, phase]: h[phase + tap * up]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``x`` resampled, ceil(len(x) * up / down) samples of float32, as resample_poly
        gives them (zero padding beyond both ends)."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        n_out = -(-x.shape[0] * self.up // self.down)
        out = np.empty(n_out, dtype=np.float32)
        # x[j] sits at padded[j + taps - 1]; the zeros behind cover the last outputs' reach.
        last_base = ((self._first_output + n_out) * self.down) // self.up + 1
        padded = np.zeros(self._taps - 1 + max(x.shape[0], last_base + 1))
        padded[self._taps - 1 : self._taps - 1 + x.shape[0]] = x
        for start in range(0, n_out, OUTPUT_BLOCK):
            stop = min(start + OUTPUT_BLOCK, n_out)
            t = np.arange(start + self._first_output, stop + self._first_output) * self.down
            phase = t % self.up
            index = t // self.up + (self._taps - 1)
            total = np.zeros(stop - start)
            for tap in range(self._taps):
                total += self._by_tap[tap, phase] * padded[index - tap]
            out[start:stop] = total
        return out
