"""Reference encoder for the numpy tests: distributed-llama's converter rules (converter/writer.py),
expressed in numpy float32 arithmetic, so that numpy's own float16 conversion and rounding judge ours.

usage: dllama_numpy.py INPUT.f32 OUTPUT_PREFIX   (writes OUTPUT_PREFIX.q40, .q80, .f16)
"""
import sys

import numpy as np


def q40(x: np.ndarray) -> bytes:
    groups = x.reshape(-1, 32)
    gmax = groups.max(axis=1)
    gmin = groups.min(axis=1)
    deltas = np.divide(np.where(-gmin > gmax, gmin, gmax), np.float32(-8))
    with np.errstate(divide="ignore"):
        ids = np.where(deltas != 0, np.float32(1.0) / deltas, np.float32(0)).astype(np.float32)
    codes = np.clip(groups * ids[:, np.newaxis] + np.float32(8.5), 0, 15).astype(np.int32)
    packed = ((codes[:, :16] & 0xF) | ((codes[:, 16:] & 0xF) << 4)).astype(np.uint8)
    scales = deltas.astype(np.float16).view(np.uint8).reshape(-1, 2)
    return np.concatenate([scales, packed], axis=1).tobytes()


def q80(x: np.ndarray) -> bytes:
    groups = x.reshape(-1, 32)
    gmax = groups.max(axis=1)
    gmin = groups.min(axis=1)
    deltas = np.where(-gmin > gmax, -gmin, gmax) / np.float32(127)
    with np.errstate(divide="ignore"):
        ids = np.where(deltas != 0, np.float32(1.0) / deltas, np.float32(0)).astype(np.float32)
    values = np.round(groups * ids[:, np.newaxis]).astype(np.int8).view(np.uint8)
    scales = deltas.astype(np.float16).view(np.uint8).reshape(-1, 2)
    return np.concatenate([scales, values], axis=1).tobytes()


def main() -> None:
    x = np.fromfile(sys.argv[1], dtype="<f4")
    prefix = sys.argv[2]
    with np.errstate(over="ignore"):
        outputs = {"q40": q40(x), "q80": q80(x), "f16": x.astype(np.float16).tobytes()}
    for name, data in outputs.items():
        with open(f"{prefix}.{name}", "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
