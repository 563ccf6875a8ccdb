"""llama2.c's tokenizer.bin: reader, decoder and the BPE encoder of run.c.

File layout (little-endian): int32 max_token_length, then for each of vocab_size tokens
float32 score, int32 length, `length` bytes. The file does not store vocab_size: the caller
gives the model's, and the file must hold exactly that many entries.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import numpy as np

from orchestrator.errors import InputError
from orchestrator.model.config import MAX_VOCAB

BOS = 1
EOS = 2
BYTE_TOKEN_OFFSET = 3  # ids 0..2 are <unk>, <s>, </s>; raw byte b is token b + 3
MAX_TOKEN_LENGTH = 1024  # longer is a corrupt header; real vocabularies stay under ~100 bytes

_BYTE_PIECE = re.compile(rb"<0x([0-9A-Fa-f]{2})>")


class Tokenizer:
    def __init__(self, vocab: list[bytes], scores: np.ndarray, max_token_length: int):
        if len(vocab) != len(scores):
            raise InputError(f"tokenizer has {len(vocab)} pieces but {len(scores)} scores")
        self.vocab = vocab
        self.scores = np.asarray(scores, dtype=np.float32)
        self.max_token_length = max_token_length
        self._score_list = [float(s) for s in self.scores]
        # run.c bsearches a sorted copy; with distinct pieces that is a plain lookup. If a piece
        # repeats, the lowest id wins (run.c's choice there is unspecified).
        self._ids: dict[bytes, int] = {}
        for i, piece in enumerate(vocab):
            self._ids.setdefault(piece, i)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @classmethod
    def from_file(cls, path: str | os.PathLike, vocab_size: int) -> "Tokenizer":
        return load_tokenizer(path, vocab_size)

    def piece_id(self, piece: bytes) -> int:
        """Id of an exact piece, or -1."""
        return self._ids.get(piece, -1)

    def _check_id(self, token) -> int:
        if isinstance(token, bool) or not isinstance(token, (int, np.integer)) or not 0 <= token < self.vocab_size:
            raise InputError(f"token {token!r} is not an id in [0, {self.vocab_size})")
        return int(token)

    def decode_piece(self, prev_token: int | None, token: int) -> bytes:
        """Bytes run.c prints for `token` after `prev_token`: after BOS a leading space is dropped
        (sentencepiece), and pieces '<0xXX>' stand for the raw byte XX."""
        piece = self.vocab[self._check_id(token)]
        if prev_token == BOS and piece[:1] == b" ":
            piece = piece[1:]
        m = _BYTE_PIECE.fullmatch(piece)
        if m:
            return bytes([int(m.group(1), 16)])
        return piece

    def decode(self, ids, prev_token: int | None = None) -> str:
        """Text of a token sequence. BOS (1) is not text: it is skipped, but it still strips the
        leading space of the piece after it, as in run.c. Byte tokens are joined before UTF-8
        decoding, so multi-byte characters split over byte tokens come out whole; invalid UTF-8
        becomes U+FFFD. `prev_token` is the token before ids[0] (e.g. the prompt's last)."""
        out = []
        prev = prev_token
        for token in ids:
            token = self._check_id(token)
            if token != BOS:
                out.append(self.decode_piece(prev, token))
            prev = token
        return b"".join(out).decode("utf-8", errors="replace")

    def encode(self, text: str, bos: bool = True, eos: bool = False) -> list[int]:
        """run.c's encode(): optional BOS, a dummy-prefix ' ' token if text is non-empty, one token
        per UTF-8 code point (bytes + 3 when the code point is not a piece), then repeatedly merge
        the adjacent pair whose concatenation is the highest-scoring piece (leftmost on ties)."""
        if not isinstance(text, str):
            raise InputError(f"text to encode must be a str, got {type(text).__name__}")
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InputError(f"text is not encodable as UTF-8 ({e.reason} at index {e.start})") from None
        tokens: list[int] = []
        if bos:
            tokens.append(BOS)
        if data:
            space = self.piece_id(b" ")
            if space < 0:
                raise InputError("tokenizer has no ' ' piece for the dummy prefix; is this a llama2.c tokenizer.bin?")
            tokens.append(space)
        for ch in text:
            cp = ch.encode("utf-8")
            tid = self.piece_id(cp)
            if tid >= 0:
                tokens.append(tid)
                continue
            for b in cp:
                tid = b + BYTE_TOKEN_OFFSET
                if tid >= self.vocab_size:
                    raise InputError(f"byte 0x{b:02X} of {ch!r} has no token: vocab of {self.vocab_size} lacks byte fallback")
                tokens.append(tid)

        vocab, scores, ids = self.vocab, self._score_list, self._ids
        while True:
            best_score = -1e10
            best_id = -1
            best_idx = -1
            for i in range(len(tokens) - 1):
                tid = ids.get(vocab[tokens[i]] + vocab[tokens[i + 1]], -1)
                if tid != -1 and scores[tid] > best_score:
                    best_score = scores[tid]
                    best_id = tid
                    best_idx = i
            if best_idx == -1:
                break
            tokens[best_idx : best_idx + 2] = [best_id]
        if eos:
            tokens.append(EOS)
        return tokens


def load_tokenizer(path: str | os.PathLike, vocab_size: int) -> Tokenizer:
    """Read a llama2.c tokenizer.bin holding exactly `vocab_size` tokens (the model's vocab)."""
    path = Path(path)
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)) or not 0 < vocab_size <= MAX_VOCAB:
        raise InputError(f"tokenizer vocab_size must be in 1..{MAX_VOCAB}, got {vocab_size!r}")
    vocab_size = int(vocab_size)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise InputError(f"{path}: not a regular file; expected a llama2.c tokenizer.bin")
        # Bound what we read by what any valid file of this vocab could hold.
        if size > 4 + vocab_size * (8 + MAX_TOKEN_LENGTH):
            raise InputError(
                f"{path}: {size} bytes is more than a {vocab_size}-token tokenizer can hold; wrong file or wrong vocab_size"
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such tokenizer file") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read tokenizer: {e.strerror}") from None

    if len(data) < 4:
        raise InputError(f"{path}: {len(data)} bytes is too small for a tokenizer header (4 bytes)")
    (max_len,) = struct.unpack_from("<i", data, 0)
    if not 0 < max_len <= MAX_TOKEN_LENGTH:
        raise InputError(f"{path}: max_token_length {max_len} is not in 1..{MAX_TOKEN_LENGTH}; not a llama2.c tokenizer.bin")

    vocab: list[bytes] = []
    scores = np.empty(vocab_size, dtype=np.float32)
    off = 4
    end = len(data)
    for i in range(vocab_size):
        if off + 8 > end:
            raise InputError(
                f"{path}: file ends after {i} tokens but the model's vocab is {vocab_size}; "
                f"the file is truncated or belongs to a smaller vocabulary"
            )
        score, length = struct.unpack_from("<fi", data, off)
        off += 8
        if not 0 <= length <= max_len:
            raise InputError(f"{path}: token {i} has length {length}, outside 0..max_token_length {max_len}; the file is corrupt")
        if off + length > end:
            raise InputError(f"{path}: file ends inside token {i} ({end - off} of {length} bytes); the file is truncated")
        if not np.isfinite(score):
            raise InputError(f"{path}: token {i} has a non-finite score; the file is corrupt")
        scores[i] = score
        vocab.append(data[off : off + length])
        off += length
    if off != end:
        extra = _count_entries(data, off, max_len)
        what = f"{extra} more tokens" if extra is not None else f"{end - off} trailing bytes"
        raise InputError(
            f"{path}: file holds {what} after the model's {vocab_size}; the tokenizer does not match this model's vocab"
        )
    return Tokenizer(vocab, scores, max_len)


def _count_entries(data: bytes, off: int, max_len: int) -> int | None:
    """How many well-formed entries fill data[off:] exactly, or None if it is not entries."""
    n = 0
    while off < len(data):
        if off + 8 > len(data):
            return None
        (length,) = struct.unpack_from("<i", data, off + 4)
        if not 0 <= length <= max_len:
            return None
        off += 8 + length
        n += 1
    return n if off == len(data) else None
