#!/usr/bin/python3
"""Writes the imatrix calibration text of glm-dllama's reference model: every CALIBRATION_EVERY-th training
chapter of the KJV (so the text spans the whole Bible), up to CALIBRATION_MAX_BYTES. Only training chapters
are used, so the text never overlaps the held-out evaluation text (heldout-excerpt.txt).

Usage (from the repository root; needs Debian's bible-kjv):
    python3 scripts/train-reference/calibration.py [--out DIR]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from corpus import chapter_text, read_bible, split_corpus

REPO = Path(__file__).resolve().parents[2]
CALIBRATION_FILE = 'calibration-excerpt.txt'
CALIBRATION_EVERY = 87
CALIBRATION_MAX_BYTES = 64 * 1024


def calibration_excerpt(train) -> str:
    out = ''
    for c in train[::CALIBRATION_EVERY]:
        t = chapter_text(c) + '\n'
        if len((out + t).encode()) > CALIBRATION_MAX_BYTES:
            break
        out += t
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', type=Path, default=REPO / 'models' / 'reference' / 'glm45-kjv-tiny')
    args = parser.parse_args()
    train, _ = split_corpus(read_bible())
    text = calibration_excerpt(train)
    (args.out / CALIBRATION_FILE).write_text(text)
    print(f'wrote {args.out / CALIBRATION_FILE}: {len(text.encode())} bytes')


if __name__ == '__main__':
    main()
