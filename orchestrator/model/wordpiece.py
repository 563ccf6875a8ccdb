"""WordPiece tokenizer of BERT-family encoders: BERT's basic tokenizer (clean, lower-case, strip accents,
split on whitespace and punctuation, isolate CJK characters) followed by greedy longest-match-first
WordPiece with '##' continuations, as Hugging Face's BertTokenizer does.

The vocabulary comes from a `vocab.txt` (one token per line, line number = id) or a Hugging Face
`tokenizer.json` whose model is WordPiece. Anything else is refused with a message naming the file.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import InputError

MAX_VOCAB_FILE_BYTES = 64 << 20
MAX_INPUT_CHARS_PER_WORD = 100
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")


def _is_whitespace(ch: str) -> bool:
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def _is_control(ch: str) -> bool:
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch).startswith("C")


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    # ASCII non-letters/digits count as punctuation even where Unicode says otherwise ($, ^, `)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F
            or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def basic_tokenize(text: str, lower_case: bool = True, strip_accents: bool | None = None) -> list[str]:
    """BERT's BasicTokenizer: the words and punctuation marks WordPiece then splits further."""
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or _is_control(ch):
            continue
        if _is_whitespace(ch):
            out.append(" ")
        elif _is_cjk(cp):
            out.append(f" {ch} ")
        else:
            out.append(ch)
    words = []
    for tok in "".join(out).split():
        if lower_case:
            tok = tok.lower()
        if strip_accents or (strip_accents is None and lower_case):
            tok = "".join(c for c in unicodedata.normalize("NFD", tok) if unicodedata.category(c) != "Mn")
        cur = ""
        for ch in tok:
            if _is_punctuation(ch):
                if cur:
                    words.append(cur)
                    cur = ""
                words.append(ch)
            else:
                cur += ch
        if cur:
            words.append(cur)
    return words


@dataclass
class WordPieceTokenizer:
    vocab: dict[str, int]
    lower_case: bool = True
    strip_accents: bool | None = None
    source: str = ""

    def __post_init__(self):
        missing = [s for s in SPECIALS if s not in self.vocab]
        if missing:
            raise InputError(f"{self.source or 'vocabulary'}: lacks the special tokens {', '.join(missing)} a BERT "
                             "vocabulary has; give the model's own vocab.txt or tokenizer.json")
        self.ids = {v: k for k, v in self.vocab.items()}
        self.cls_id, self.sep_id = self.vocab["[CLS]"], self.vocab["[SEP]"]
        self.pad_id, self.unk_id = self.vocab["[PAD]"], self.vocab["[UNK]"]

    @property
    def vocab_size(self) -> int:
        return max(self.vocab.values()) + 1

    def wordpiece(self, word: str) -> list[int]:
        if len(word) > MAX_INPUT_CHARS_PER_WORD:
            return [self.unk_id]
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            found = None
            while start < end:
                sub = word[start:end] if start == 0 else "##" + word[start:end]
                if sub in self.vocab:
                    found = self.vocab[sub]
                    break
                end -= 1
            if found is None:
                return [self.unk_id]  # BERT maps the whole word to [UNK] when any part is unknown
            pieces.append(found)
            start = end
        return pieces

    def encode(self, text: str) -> list[int]:
        """[CLS] word pieces [SEP]: the ids BERT-family encoders take for one text."""
        if not isinstance(text, str):
            raise InputError(f"text must be a string, got {type(text).__name__}")
        ids = [self.cls_id]
        for w in basic_tokenize(text, self.lower_case, self.strip_accents):
            ids.extend(self.wordpiece(w))
        ids.append(self.sep_id)
        return ids

    def decode(self, ids) -> str:
        return " ".join(self.ids.get(int(i), "[UNK]") for i in ids).replace(" ##", "")


def load_wordpiece(path: str | Path, lower_case: bool = True, strip_accents: bool | None = None) -> WordPieceTokenizer:
    """A WordPiece tokenizer from vocab.txt or a Hugging Face tokenizer.json (detected by content)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise InputError(f"{path}: cannot read the tokenizer file ({e.strerror})") from None
    if size > MAX_VOCAB_FILE_BYTES:
        raise InputError(f"{path}: {size} bytes is too large for a tokenizer file; give vocab.txt or tokenizer.json")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: unknown tokenizer file format (not UTF-8 text); give a WordPiece vocab.txt "
                         "or a Hugging Face tokenizer.json") from None
    head = text.lstrip()[:1]
    if head == "{":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}: looks like JSON but does not parse ({e.msg} at line {e.lineno}); give a "
                             "Hugging Face tokenizer.json or a vocab.txt") from None
        model = d.get("model") if isinstance(d, dict) else None
        if not isinstance(model, dict) or model.get("type") != "WordPiece" or not isinstance(model.get("vocab"), dict):
            kind = model.get("type") if isinstance(model, dict) else None
            raise InputError(f"{path}: unknown tokenizer file format: a tokenizer.json whose model is "
                             f"{kind or 'missing'}, not WordPiece; orch runs BERT-family WordPiece vocabularies")
        vocab = model["vocab"]
        if not all(isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and 0 <= v < (1 << 22)
                   for k, v in vocab.items()):
            raise InputError(f"{path}: the WordPiece vocabulary must map strings to ids in 0..2^22")
        norm = d.get("normalizer") if isinstance(d.get("normalizer"), dict) else {}
        if norm.get("type") == "BertNormalizer":
            lower_case = bool(norm.get("lowercase", lower_case))
            strip_accents = norm.get("strip_accents", strip_accents)
        if len(set(vocab.values())) != len(vocab):
            raise InputError(f"{path}: two tokens share one id; the vocabulary is corrupt")
        return WordPieceTokenizer(dict(vocab), lower_case, strip_accents, str(path))
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [ln.rstrip("\r") for ln in lines]
    if not lines or any(ln.strip() != ln or not ln for ln in lines) or len(lines) > (1 << 22):
        raise InputError(f"{path}: unknown tokenizer file format: neither a Hugging Face tokenizer.json nor a "
                         "vocab.txt with one token per line")
    vocab = {}
    for i, tok in enumerate(lines):
        vocab.setdefault(tok, i)  # first occurrence wins, as BERT's load_vocab
    return WordPieceTokenizer(vocab, lower_case, strip_accents, str(path))
