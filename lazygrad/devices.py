"""`lazygrad.device`: where a tensor lives. Only "cpu" runs kernels in this build;
"cuda" is recognised by name and refused with a clear error until a GPU is usable."""
from __future__ import annotations


class device:
    __slots__ = ("type", "index")

    def __init__(self, type_or_str="cpu", index: int | None = None):
        if isinstance(type_or_str, device):
            type_or_str, index = type_or_str.type, type_or_str.index
        text = str(type_or_str)
        if ":" in text:
            text, idx = text.split(":", 1)
            index = int(idx)
        if text not in ("cpu", "cuda"):
            raise RuntimeError(f"Expected one of cpu, cuda device type at start of device string: {type_or_str}")
        self.type = text
        self.index = index

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        return f"device(type='{self.type}')" if self.index is None else f"device(type='{self.type}', index={self.index})"

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, device) and self.type == other.type and (self.index or 0) == (other.index or 0)

    def __hash__(self) -> int:
        return hash((self.type, self.index or 0))


CPU = device("cpu")


def normalize(dev) -> device:
    if dev is None:
        return CPU
    d = device(dev)
    if d.type == "cuda":
        from . import cuda
        cuda.require("to")
    return d
