"""Reading and writing CTranslate2's model.bin: the one home of that file format.

Layout (ctranslate2 src/models/model.cc, binary version 6): uint32 version, string spec name,
uint32 spec revision, uint32 variable count, then per variable: string name, uint8 rank,
uint32 dims[rank], uint8 dtype, uint32 byte count, raw little-endian data; then uint32 alias
count and (alias, target) string pairs. A string is a uint16 length (with its trailing NUL)
and the bytes. Only what Whisper tiny.en's file holds is needed: float16/float32/int8/int16/
int32 variables.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_runtime.atomic import atomic_output

SUPPORTED_VERSION = 6
# ctranslate2's DataType enum, in order.
DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
DTYPE_IDS = {np.dtype(t): i for i, t in DTYPES.items()}


class ModelFormatError(ValueError):
    """model.bin is not a CTranslate2 file this reader understands."""


@dataclass
class Ct2Model:
    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    aliases: list[tuple[str, str]] = field(default_factory=list)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.offset = data, 0

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += struct.calcsize("<" + fmt)
        return values

    def string(self) -> str:
        (length,) = self.take("H")
        text = self.data[self.offset:self.offset + length]
        self.offset += length
        return text.rstrip(b"\0").decode()

    def array(self, dims: tuple[int, ...], dtype_id: int, n_bytes: int) -> np.ndarray:
        if dtype_id not in DTYPES:
            raise ModelFormatError(f"unsupported variable type {dtype_id}")
        raw = self.data[self.offset:self.offset + n_bytes]
        if len(raw) != n_bytes:
            raise struct.error("variable data cut short")
        self.offset += n_bytes
        return np.frombuffer(raw, dtype=DTYPES[dtype_id]).reshape(dims)


def read_model(path: Path) -> Ct2Model:
    reader = _Reader(Path(path).read_bytes())
    try:
        (version,) = reader.take("I")
        if version != SUPPORTED_VERSION:
            raise ModelFormatError(f"{path}: model.bin version {version}, "
                                   f"this reader knows {SUPPORTED_VERSION}")
        spec = reader.string()
        (revision,) = reader.take("I")
        (count,) = reader.take("I")
        variables = {}
        for _ in range(count):
            name = reader.string()
            (rank,) = reader.take("B")
            dims = reader.take(f"{rank}I") if rank else ()
            dtype_id, n_bytes = reader.take("BI")
            variables[name] = reader.array(dims, dtype_id, n_bytes)
        (n_aliases,) = reader.take("I")
        aliases = [(reader.string(), reader.string()) for _ in range(n_aliases)]
    except struct.error as error:
        raise ModelFormatError(f"{path}: truncated model.bin") from error
    return Ct2Model(spec, revision, variables, aliases)


def _string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def write_model(model: Ct2Model, path: Path) -> None:
    parts = [struct.pack("<I", SUPPORTED_VERSION), _string(model.spec),
             struct.pack("<II", model.revision, len(model.variables))]
    for name, value in model.variables.items():
        value = np.asarray(value)  # not ascontiguousarray: it makes scalars 1-d
        parts += [_string(name), struct.pack("<B", value.ndim),
                  struct.pack(f"<{value.ndim}I", *value.shape) if value.ndim else b"",
                  struct.pack("<BI", DTYPE_IDS[value.dtype], value.nbytes),
                  value.tobytes(order="C")]
    parts.append(struct.pack("<I", len(model.aliases)))
    for alias, target in model.aliases:
        parts += [_string(alias), _string(target)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as temporary:
        Path(temporary).write_bytes(b"".join(parts))
