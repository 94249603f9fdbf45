"""The KJV corpus of glm-dllama's reference model: chapters from Debian's `bible` program (bible-kjv) and the
train / held-out split. train.py trains on the first and evaluates on the second; calibration.py draws an
imatrix calibration text from the training chapters only, so that it never overlaps the evaluation text."""
from __future__ import annotations

import re
import subprocess
import sys

EXCERPT_FILE = 'heldout-excerpt.txt'

HELD_OUT_EVERY = 20  # chapters 19, 39, 59, ... (0-based, in canonical order) are held out
EXCERPT_MAX_BYTES = 48 * 1024


def read_bible() -> list[tuple[str, list[str]]]:
    """All 1189 chapters of the KJV from Debian's `bible` program, as (heading, verses) with lines unwrapped."""
    try:
        raw = subprocess.run(['bible', 'Gen1:1-Rev22:21'], check=True, capture_output=True, text=True).stdout
    except FileNotFoundError:
        sys.exit('train.py: the `bible` program is missing; apt-get install -y bible-kjv bible-kjv-text')
    chapters: list[tuple[str, list[str]]] = []
    verse_start = re.compile(r'^\s+\d+ (.*)$')
    previous_blank = True
    for line in raw.split('\n'):
        blank = not line.strip()
        m = verse_start.match(line)
        if blank:
            pass
        elif m:
            chapters[-1][1].append(m.group(1).strip())
        elif previous_blank:  # a chapter heading such as "1 Kings 3" stands between blank lines
            chapters.append((line.strip(), []))
        elif chapters and chapters[-1][1]:  # a wrapped continuation of the last verse
            chapters[-1][1][-1] += ' ' + line.strip()
        else:
            sys.exit(f'train.py: unexpected line in the bible output: {line!r}')
        previous_blank = blank
    if len(chapters) != 1189:
        sys.exit(f'train.py: expected 1189 chapters from `bible`, got {len(chapters)}')
    return chapters


def chapter_text(chapter: tuple[str, list[str]]) -> str:
    heading, verses = chapter
    return heading + '\n\n' + '\n'.join(verses) + '\n'


def split_corpus(chapters):
    train = [c for i, c in enumerate(chapters) if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1]
    held = [c for i, c in enumerate(chapters) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    return train, held


def held_out_excerpt(held) -> str:
    """The first whole held-out chapters that fit in EXCERPT_MAX_BYTES (committed; used by tests and the demo)."""
    out = ''
    for c in held:
        t = chapter_text(c) + '\n'
        if len((out + t).encode()) > EXCERPT_MAX_BYTES:
            break
        out += t
    return out
