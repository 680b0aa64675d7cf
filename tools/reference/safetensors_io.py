"""safetensors written and read by hand (the safetensors package is not available).

The format: a u64-LE header length N, N bytes of JSON header, then the raw
little-endian, row-major data of every tensor. The header maps each tensor name
to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into the data
part) and may hold "__metadata__", a map of strings.

safetensors_bytes writes the header compactly, padded with spaces to a multiple
of 8, the tensors sorted by name and the metadata last: the fixtures of
tools/reference are written byte for byte this way. read_safetensors checks
what it reads (header length, dtypes, offsets inside the file, sizes) and
raises ValueError with the file's name and the key at fault.

Used by make_fixtures.py, make_optim_fixture.py and tools/import_fairseq.py.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import torch

# safetensors dtype <-> torch dtype; BF16 has no numpy dtype and goes through int16.
TORCH_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
DTYPE_NAMES = {t: name for name, t in TORCH_DTYPES.items()}
_NUMPY = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<i2", "I64": "<i8", "I32": "<i4",
          "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}

# The largest header read_safetensors accepts (the format's own limit is 100 MB).
MAX_HEADER_BYTES = 100 << 20


def tensor_bytes(t: torch.Tensor) -> bytes:
    """The row-major little-endian bytes of t (any dtype of TORCH_DTYPES)."""
    t = t.detach().contiguous().cpu()
    if t.dtype not in DTYPE_NAMES:
        raise ValueError(f"dtype {t.dtype} has no safetensors name")
    name = DTYPE_NAMES[t.dtype]
    if name == "BF16":
        t = t.view(torch.int16)
    return t.numpy().astype(_NUMPY[name], copy=False).tobytes()


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """u64-LE header length N, N bytes of JSON header padded with spaces to a multiple
    of 8, then the row-major little-endian data of the tensors sorted by name."""
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        data = tensor_bytes(t)
        header[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    header["__metadata__"] = dict(metadata)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def read_safetensors(blob: bytes, source: str = "safetensors") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors (each a copy) and metadata of a safetensors file's bytes.
    Raises ValueError naming `source` and the key for anything malformed."""
    if len(blob) < 8:
        raise ValueError(f"{source}: {len(blob)} bytes, too short for a safetensors header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > MAX_HEADER_BYTES or 8 + n > len(blob):
        raise ValueError(f"{source}: header of {n} bytes does not fit the file's {len(blob)} bytes")
    try:
        header = json.loads(blob[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{source}: the header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{source}: the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    data = blob[8 + n:]
    out = {}
    for name, info in header.items():
        try:
            dtype, shape, (begin, end) = info["dtype"], [int(d) for d in info["shape"]], info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{source}: tensor '{name}' has no valid dtype, shape and data_offsets") from None
        if dtype not in TORCH_DTYPES:
            raise ValueError(f"{source}: tensor '{name}' has dtype {dtype}, expected one of "
                             f"{', '.join(TORCH_DTYPES)}")
        count = 1
        for d in shape:
            count *= d
        size = count * torch.empty(0, dtype=TORCH_DTYPES[dtype]).element_size()
        if not (0 <= begin <= end <= len(data)) or end - begin != size:
            raise ValueError(f"{source}: tensor '{name}' ({dtype} {shape}) has data_offsets "
                             f"[{begin}, {end}], expected {size} bytes inside the {len(data)} of data")
        array = np.frombuffer(data[begin:end], dtype=_NUMPY[dtype]).reshape(shape)
        t = torch.from_numpy(array.copy())
        out[name] = t.view(torch.bfloat16) if dtype == "BF16" else t
    return out, metadata
