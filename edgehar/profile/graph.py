"""One picture of a model graph for profiling, whatever file it came from.

`read_tflite` (tflite_graph.py) and `read_onnx` (onnx_graph.py) both produce a `Graph`: its
inputs/outputs, its layers in execution order with the shapes of every tensor they touch, and
which tensors are constants. MACs, parameter counts and per-layer tables are computed from this
picture only, so the two formats are counted by the same arithmetic (macs.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod


@dataclass
class Tensor:
    """A tensor as the graph declares it. `shape` is concrete (dynamic dims resolved to 1);
    `dynamic_dims` names the axes that were dynamic in the file."""

    name: str
    shape: tuple[int, ...] | None  # None: the file does not say
    dtype: str  # numpy-style name: float32, int8, float16, int32, ...
    const: bool = False  # weights, biases, shape vectors: data stored in the file
    nbytes: int = 0  # bytes of stored data when const
    quantization: dict | None = None  # {"scale": [...], "zero_point": [...], "axis": int}
    dynamic_dims: tuple[int, ...] = ()
    key: str = ""  # identifies the stored data: tensors sharing one buffer share a key

    @property
    def elements(self) -> int | None:
        return None if self.shape is None else int(prod(self.shape))

    def io_dict(self) -> dict:
        """The JSON form used for the report's `inputs` / `outputs`."""
        out = {"name": self.name, "shape": None if self.shape is None else list(self.shape),
               "dtype": self.dtype, "quantization": self.quantization}
        if self.dynamic_dims:
            out["dynamic_dims"] = list(self.dynamic_dims)
        return out


@dataclass
class Layer:
    """One operator node. `inputs` keeps positional slots (None for an omitted optional input)
    because MAC rules read operands by position (weights at 1, bias at 2, ...)."""

    index: int
    op: str  # TFLite builtin name (CONV_2D) or ONNX op_type (Conv), as the file spells it
    name: str
    inputs: list[Tensor | None]
    outputs: list[Tensor]
    attrs: dict = field(default_factory=dict)


@dataclass
class Graph:
    format: str  # "tflite" | "onnx"
    path: str
    file_bytes: int
    inputs: list[Tensor]
    outputs: list[Tensor]
    layers: list[Layer]
    producer: str = ""
    notes: list[str] = field(default_factory=list)

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for layer in self.layers:
            counts[layer.op] = counts.get(layer.op, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
