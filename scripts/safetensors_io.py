"""Minimal safetensors reader/writer for torch tensors (no dependency beyond torch and numpy).

The C++ side reads these files memory-mapped and never unpickles; this module is what the converter
and the test-fixture scripts use to write them.
"""
import json
import struct

import numpy as np
import torch

_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}
_NAMES = {v: k for k, v in _DTYPES.items()}


def _raw_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().cpu().contiguous()
    if t.dtype in (torch.bfloat16, torch.float16):
        return t.view(torch.int16).numpy().tobytes()
    if t.dtype == torch.bool:
        return t.to(torch.uint8).numpy().tobytes()
    return t.numpy().tobytes()


def save(path, tensors, metadata=None):
    """Writes {key: tensor} with the keys sorted, data 8-byte aligned."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs, offset = [], 0
    for key in sorted(tensors):
        t = tensors[key]
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{key}: not a tensor ({type(t).__name__})")
        if t.dtype not in _DTYPES:
            raise TypeError(f"{key}: dtype {t.dtype} cannot be stored in safetensors")
        blob = _raw_bytes(t)
        header[key] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def load(path):
    """Reads every tensor of a safetensors file (for tests and round trips)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        b, e = info["data_offsets"]
        dtype = _NAMES[info["dtype"]]
        raw = np.frombuffer(data[b:e], dtype=np.uint8).copy()
        if dtype in (torch.bfloat16, torch.float16):
            t = torch.from_numpy(raw.view(np.int16)).view(dtype)
        elif dtype == torch.bool:
            t = torch.from_numpy(raw).to(torch.bool)
        else:
            t = torch.from_numpy(raw.view(torch.empty(0, dtype=dtype).numpy().dtype))
        out[key] = t.reshape(info["shape"])
    return out
