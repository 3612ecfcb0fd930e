"""The word-level tokenizer used by Naive Bayes and the LSTM (HF tokenizers JSON).

All text normalisation lives in the tokenizer.json so that training (Python `tokenizers`) and
serving (Rust `tokenizers`, onig regex backend) see the same tokens.
"""

from __future__ import annotations

from collections import Counter

from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

PAD, UNK, URL, USER = "<pad>", "<unk>", "<url>", "<user>"
SPECIAL_TOKENS = [PAD, UNK, URL, USER]  # <pad> is id 0, <unk> id 1

HTML_ENTITIES = [("&amp;", "&"), ("&quot;", '"'), ("&lt;", "<"), ("&gt;", ">"), ("&#39;", "'")]
URL_PATTERN = r"(?:https?://|www\.)\S+"
USER_PATTERN = r"@\w+"
# One token per match, tried in this order: placeholders, emoticons (after lowercasing, so `:D`
# is `:d`), heart, runs of ! ? . (intensity carries sentiment), words with inner apostrophes,
# then any other single symbol (emoji included).
TOKEN_PATTERN = (
    r"<url>|<user>"
    r"|[:;=][-'^]?[)(\]\[dpo/\\|*]+"
    r"|[)(][-']?[:;=]"
    r"|<3"
    r"|!+|\?+|\.+"
    r"|\w+(?:'\w+)*"
    r"|[^\w\s]"
)


def normalizer():
    steps = [normalizers.NFKC()]
    # Entities are decoded before URLs and mentions are replaced, so `&lt;3` becomes the heart `<3`.
    steps += [normalizers.Replace(src, dst) for src, dst in HTML_ENTITIES]
    steps += [
        normalizers.Replace(Regex(URL_PATTERN), f" {URL} "),
        normalizers.Replace(Regex(USER_PATTERN), f" {USER} "),
        normalizers.Lowercase(),
    ]
    return normalizers.Sequence(steps)


def pre_tokenizer():
    return pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Split(Regex(TOKEN_PATTERN), behavior="isolated"),
    ])


def build(texts, *, vocab_size: int = 50000, min_frequency: int = 2, max_tokens: int = 128,
          pad_direction: str = "right") -> Tokenizer:
    """Build a WordLevel vocabulary from `texts`; padding and truncation settings go into the JSON.

    The vocabulary is counted here rather than by the library trainer so that ids are contiguous
    and ordered: the special tokens first, then tokens by falling frequency (ties by token).
    """
    norm, pre = normalizer(), pre_tokenizer()
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(piece for piece, _ in pre.pre_tokenize_str(norm.normalize_str(text)))
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    ranked = sorted((t for t, c in counts.items() if c >= min_frequency and t not in vocab), key=lambda t: (-counts[t], t))
    for t in ranked[: max(0, vocab_size - len(vocab))]:
        vocab[t] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.normalizer = norm
    tok.pre_tokenizer = pre
    tok.enable_padding(direction=pad_direction, pad_id=0, pad_token=PAD)
    tok.enable_truncation(max_length=max_tokens)
    return tok


def encode_ids(tok: Tokenizer, texts) -> list[list[int]]:
    """Token ids without padding (the tokenizer's batch padding is for serving)."""
    padding = tok.padding
    tok.no_padding()
    try:
        return [e.ids for e in tok.encode_batch(list(texts))]
    finally:
        if padding:
            tok.enable_padding(direction=padding["direction"], pad_id=padding["pad_id"], pad_token=padding["pad_token"])
