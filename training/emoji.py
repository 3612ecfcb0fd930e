"""Emoji become words inside tokenizer.json, so the Python trainer and the Rust server read them alike.

The MiniLM WordPiece vocabulary has no emoji: "😡", "👎" and "😭" all become [UNK], and a tweet that says
its mood only with emoji reads as empty. The base model already knows "pouting face" and "thumbs down", so
each common emoji is rewritten to its Unicode name before the BERT normaliser runs. The rewrite is part of
the tokenizer's normaliser chain, which means the artifact contract is unchanged: the server loads
tokenizer.json and applies the same rules, and the parity test covers it.

The set is the Unicode "emoticons" block plus the faces, hearts and hands that tweets use most. Names come
from `unicodedata`, with a few historical names replaced by the names people know (U+2764 is "heavy black
heart" in Unicode but shows as a red heart).
"""

from __future__ import annotations

import unicodedata

# Names that read better than Unicode's for the way the symbol is drawn today.
RENAMED = {
    "\u2764": "red heart",
    "\u2665": "heart",
    "\u263a": "smiling face",
    "\u2639": "frowning face",
    "\U0001f621": "enraged face",
    "\U0001f624": "face with steam from nose",
    "\U0001f62c": "grimacing face",
    "\U0001f92c": "face with symbols on mouth",
    "\U0001f595": "middle finger",
    "\U0001f44e": "thumbs down",
    "\U0001f44d": "thumbs up",
    "\U0001f64f": "folded hands",
    "\U0001f64c": "raising hands",
    "\U0001f44c": "ok hand",
    "\U0001f44f": "clapping hands",
    "\U0001f4af": "hundred points",
    "\U0001f4a9": "pile of poo",
    "\U0001f926": "face palm",
    "\U0001f937": "shrug",
    "\U0001f62d": "loudly crying face",
}

EXTRA = (
    # hearts and hands
    "\u2764\u2665\U0001f493\U0001f494\U0001f495\U0001f496\U0001f497\U0001f498\U0001f499\U0001f49a\U0001f49b"
    "\U0001f49c\U0001f5a4\U0001f9e1\U0001f90d\U0001f90e\U0001f44d\U0001f44e\U0001f44f\U0001f44c\U0001f44a"
    "\U0001f64f\U0001f64c\U0001f595\u270c\U0001f4aa"
    # other symbols with a mood
    "\u263a\u2639\U0001f525\U0001f4af\U0001f389\U0001f38a\u2728\U0001f4a9\U0001f480\U0001f440\U0001f4a4"
    "\U0001f926\U0001f937\u2705\u274c"
)
FACE_RANGES = ((0x1F600, 0x1F64F), (0x1F910, 0x1F92F), (0x1F970, 0x1F976), (0x1F97A, 0x1F97A))
# Skin tones and the emoji presentation selector carry no mood; a joiner separates two symbols.
DROPPED = "".join(chr(c) for c in range(0x1F3FB, 0x1F400)) + "\ufe0f"
JOINER = "\u200d"


def emoji_words() -> dict[str, str]:
    """Each rewritten emoji and its words, in a stable order."""
    chars = [chr(c) for lo, hi in FACE_RANGES for c in range(lo, hi + 1)] + list(EXTRA)
    words: dict[str, str] = {}
    for ch in chars:
        name = RENAMED.get(ch) or unicodedata.name(ch, "").lower()
        if name and ch not in words:
            words[ch] = name.replace("-", " ")
    return words


def with_emoji_words(tokenizer):
    """Puts the emoji rewrite in front of the tokenizer's own normaliser (in place; returns it)."""
    from tokenizers import normalizers

    steps = [normalizers.Replace(ch, "") for ch in DROPPED]
    steps.append(normalizers.Replace(JOINER, " "))
    steps += [normalizers.Replace(ch, f" {name} ") for ch, name in emoji_words().items()]
    if tokenizer.normalizer is not None:
        steps.append(tokenizer.normalizer)
    tokenizer.normalizer = normalizers.Sequence(steps)
    return tokenizer
