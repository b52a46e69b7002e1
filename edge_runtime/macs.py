"""Multiply-accumulates and activation memory of a .tflite model, read from the file itself.

A minimal reader of the TFLite flatbuffer (stdlib only: no interpreter, no TensorFlow, no
flatbuffers package) that walks the first subgraph's operators and tensor shapes. MACs are
counted for the ops that do multiply-accumulate work (convolutions, fully connected, batch
matmul); elementwise ops, pooling and reductions are listed but count zero MACs, which is the
usual convention and what a "MAC/s vs hardware limit" comparison needs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

# BuiltinOperator codes from tensorflow/lite/schema/schema.fbs (stable across versions).
BUILTIN_NAMES = {
    0: "ADD", 1: "AVERAGE_POOL_2D", 2: "CONCATENATION", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D",
    6: "DEQUANTIZE", 9: "FULLY_CONNECTED", 14: "LOGISTIC", 17: "MAX_POOL_2D", 18: "MUL",
    19: "RELU", 22: "RESHAPE", 25: "SOFTMAX", 28: "TANH", 39: "TRANSPOSE", 40: "MEAN",
    41: "SUB", 49: "SQUEEZE", 67: "TRANSPOSE_CONV", 83: "PACK", 98: "LEAKY_RELU",
    114: "QUANTIZE", 117: "HARD_SWISH", 126: "BATCH_MATMUL", 111: "ELU",
}
# TensorType enum -> bytes per element (STRING and unknown types count as 0).
TENSOR_TYPES = {
    0: ("float32", 4), 1: ("float16", 2), 2: ("int32", 4), 3: ("uint8", 1), 4: ("int64", 8),
    6: ("bool", 1), 7: ("int16", 2), 9: ("int8", 1), 10: ("float64", 8), 16: ("uint32", 4),
}


class _Table:
    """A flatbuffer table at ``pos`` in ``buf``: fields are looked up through its vtable."""

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf = buf
        self.pos = pos
        self.vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vtable_size = struct.unpack_from("<H", buf, self.vtable)[0]

    def _field(self, index: int) -> int | None:
        entry = 4 + 2 * index
        if entry >= self.vtable_size:
            return None
        offset = struct.unpack_from("<H", self.buf, self.vtable + entry)[0]
        return self.pos + offset if offset else None

    def scalar(self, index: int, fmt: str, default: int = 0) -> int:
        pos = self._field(index)
        return default if pos is None else struct.unpack_from("<" + fmt, self.buf, pos)[0]

    def _vector(self, index: int) -> tuple[int, int] | None:
        pos = self._field(index)
        if pos is None:
            return None
        start = pos + struct.unpack_from("<I", self.buf, pos)[0]
        return start + 4, struct.unpack_from("<I", self.buf, start)[0]

    def ints(self, index: int, fmt: str = "i") -> list[int]:
        vector = self._vector(index)
        if vector is None:
            return []
        start, count = vector
        return list(struct.unpack_from(f"<{count}{fmt}", self.buf, start))

    def vector_length(self, index: int) -> int:
        vector = self._vector(index)
        return 0 if vector is None else vector[1]

    def tables(self, index: int) -> list[_Table]:
        vector = self._vector(index)
        if vector is None:
            return []
        start, count = vector
        return [
            _Table(self.buf, start + 4 * i + struct.unpack_from("<I", self.buf, start + 4 * i)[0])
            for i in range(count)
        ]


@dataclass(frozen=True)
class TensorInfo:
    shape: tuple[int, ...]
    dtype: str
    nbytes: int
    constant: bool


@dataclass(frozen=True)
class OpInfo:
    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    macs: int


@dataclass(frozen=True)
class ModelGraph:
    """The first subgraph of a .tflite: its tensors and operators in execution order."""

    tensors: tuple[TensorInfo, ...]
    ops: tuple[OpInfo, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    macs_by_op: dict[str, int] = field(default_factory=dict)

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.ops)

    @property
    def constant_bytes(self) -> int:
        """Bytes of weights and other constant tensors."""
        return sum(t.nbytes for t in self.tensors if t.constant)

    @property
    def activation_bytes(self) -> int:
        """Sum of all non-constant tensors: what a runtime without buffer reuse would need."""
        return sum(t.nbytes for t in self.tensors if not t.constant)

    @property
    def peak_live_activation_bytes(self) -> int:
        """Largest total of activations alive at once, running the ops in file order.

        A lower bound of the interpreter's tensor arena (which also holds kernel scratch
        buffers and pads for alignment); LiteRT's Python API does not report its arena size.
        """
        last_use: dict[int, int] = {}
        first_def: dict[int, int] = {index: -1 for index in self.inputs}
        for step, op in enumerate(self.ops):
            for index in op.inputs:
                if index >= 0:
                    last_use[index] = step
            for index in op.outputs:
                first_def.setdefault(index, step)
        for index in self.outputs:
            last_use[index] = len(self.ops)
        peak = 0
        for step in range(len(self.ops)):
            live = sum(
                self.tensors[index].nbytes
                for index, born in first_def.items()
                if not self.tensors[index].constant and born <= step <= last_use.get(index, born)
            )
            peak = max(peak, live)
        return peak


def _product(values: tuple[int, ...]) -> int:
    total = 1
    for value in values:
        total *= max(int(value), 1)
    return total


def op_macs(name: str, inputs: list[TensorInfo | None], outputs: list[TensorInfo]) -> int:
    """Multiply-accumulates of one op from its tensor shapes (NHWC, TFLite weight layouts)."""
    if not outputs or len(inputs) < 2 or inputs[1] is None:
        return 0
    out = outputs[0].shape
    weights = inputs[1].shape
    if name == "CONV_2D" and len(weights) == 4:
        # weights (Cout, kh, kw, Cin): every output element needs kh*kw*Cin products.
        return _product(out) * weights[1] * weights[2] * weights[3]
    if name == "DEPTHWISE_CONV_2D" and len(weights) == 4:
        # weights (1, kh, kw, Cout): one kh*kw filter per output channel.
        return _product(out) * weights[1] * weights[2]
    if name == "FULLY_CONNECTED" and len(weights) == 2:
        # weights (units, in): each of the output's rows * units elements needs `in` products.
        return _product(out) * weights[1]
    if name == "TRANSPOSE_CONV" and len(inputs) >= 3 and inputs[2] is not None:
        # inputs: (output_shape, weights (Cout, kh, kw, Cin), data): each input element is
        # scattered through the whole kh*kw*Cout filter.
        kernel = inputs[1].shape
        return _product(inputs[2].shape) * kernel[0] * kernel[1] * kernel[2]
    if name == "BATCH_MATMUL" and inputs[0] is not None and len(inputs[0].shape) >= 2:
        return _product(out) * inputs[0].shape[-1]
    return 0


def read_graph(path: str | Path) -> ModelGraph:
    """Parses a .tflite file; raises ValueError if it is not a TFLite flatbuffer."""
    buf = Path(path).read_bytes()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ValueError(f"{path}: not a TFLite flatbuffer (no TFL3 identifier)")
    try:
        model = _Table(buf, struct.unpack_from("<I", buf, 0)[0])
        codes = []
        for code in model.tables(1):
            # Codes above 127 live in builtin_code; deprecated_builtin_code holds 127 then.
            codes.append(max(code.scalar(0, "b"), code.scalar(3, "i")))
        buffers_with_data = {i for i, b in enumerate(model.tables(4))
                             if b.vector_length(0) > 0 or b.scalar(2, "Q") > 0}
        subgraph = model.tables(2)[0]
        tensors = []
        for tensor in subgraph.tables(0):
            shape = tuple(tensor.ints(0))
            dtype, width = TENSOR_TYPES.get(tensor.scalar(1, "b"), ("other", 0))
            buffer_index = tensor.scalar(2, "I")
            tensors.append(TensorInfo(shape, dtype, _product(shape) * width,
                                      buffer_index in buffers_with_data))
        ops = []
        macs_by_op: dict[str, int] = {}
        for operator in subgraph.tables(3):
            code = codes[operator.scalar(0, "I")]
            name = BUILTIN_NAMES.get(code, f"BUILTIN_{code}")
            inputs = tuple(operator.ints(1))
            outputs = tuple(operator.ints(2))
            macs = op_macs(name, [tensors[i] if i >= 0 else None for i in inputs],
                           [tensors[i] for i in outputs])
            macs_by_op[name] = macs_by_op.get(name, 0) + macs
            ops.append(OpInfo(name, inputs, outputs, macs))
        return ModelGraph(tuple(tensors), tuple(ops), tuple(subgraph.ints(1)),
                          tuple(subgraph.ints(2)), macs_by_op)
    except (struct.error, IndexError) as error:
        raise ValueError(f"{path}: truncated or corrupt TFLite flatbuffer ({error})") from None
