"""llama2.c tokenizer.bin reader, run.c's decode rules and BPE encode."""

import os
import struct
from pathlib import Path

import numpy as np
import pytest

from orchestrator.errors import InputError
from orchestrator.model import load_tokenizer


def shared_models_dir() -> Path | None:
    env = os.environ.get("ORCH_SHARED_MODELS")
    d = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "models"
    return d if d.is_dir() else None


@pytest.fixture(scope="module")
def llama_tok():
    d = shared_models_dir()
    if d is None or not (d / "llama2c-tokenizer.bin").is_file():
        pytest.skip("llama2c-tokenizer.bin not found: needs ../shared/models next to the repo or ORCH_SHARED_MODELS")
    return load_tokenizer(d / "llama2c-tokenizer.bin", 32000)


def write_tokenizer(path, pieces, max_len=None, scores=None):
    max_len = max(len(p) for p in pieces) if max_len is None else max_len
    with open(path, "wb") as f:
        f.write(struct.pack("<i", max_len))
        for i, p in enumerate(pieces):
            f.write(struct.pack("<fi", 0.0 if scores is None else scores[i], len(p)))
            f.write(p)


# A small vocabulary laid out like Llama's: <unk>, BOS, EOS, 256 byte tokens, then pieces.
BASE = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [f"<0x{b:02X}>".encode() for b in range(256)]
EXTRA = {
    b" ": -1.0,
    b"a": -1.0,
    b"b": -1.0,
    b"c": -1.0,
    b" a": 5.0,
    b"ab": 10.0,
    b"bc": 1.0,
    b" ab": 3.0,
    b"abc": 2.0,
    "é".encode(): -1.0,
    b"x": -1.0,
    b"y": -1.0,
    b"xy": 1.0,
    b"yx": 1.0,
}


@pytest.fixture
def small_tok(tmp_path):
    pieces = BASE + list(EXTRA)
    scores = [0.0] * len(BASE) + list(EXTRA.values())
    path = tmp_path / "tok.bin"
    write_tokenizer(path, pieces, scores=scores)
    tok = load_tokenizer(path, len(pieces))
    return tok, {p: i for i, p in enumerate(pieces)}


def test_reads_pieces_scores_and_max_length(small_tok):
    tok, ids = small_tok
    assert tok.vocab_size == len(BASE) + len(EXTRA)
    assert tok.vocab[ids[b" ab"]] == b" ab"
    assert tok.scores[ids[b"ab"]] == np.float32(10.0)
    assert tok.max_token_length == len(b"\n</s>\n")


def test_bpe_merges_best_scoring_pair_first(small_tok):
    tok, ids = small_tok
    # [BOS, ' ', a, b, c] -> 'ab'(10) -> ' ab'(3) beats 'abc'(2) -> [BOS, ' ab', c]
    assert tok.encode("abc") == [1, ids[b" ab"], ids[b"c"]]
    assert tok.encode("abc", bos=False, eos=True) == [ids[b" ab"], ids[b"c"], 2]


def test_bpe_ties_merge_leftmost_pair(small_tok):
    tok, ids = small_tok
    # 'xy' and 'yx' both score 1: the leftmost pair merges first, leaving no further merge
    assert tok.encode("xyx") == [1, ids[b" "], ids[b"xy"], ids[b"x"]]


def test_empty_text_gets_no_dummy_prefix(small_tok):
    tok, _ = small_tok
    assert tok.encode("") == [1]
    assert tok.encode("", bos=False) == []
    assert tok.encode("", eos=True) == [1, 2]


def test_codepoints_and_byte_fallback(small_tok):
    tok, ids = small_tok
    assert tok.encode("é", bos=False) == [ids[b" "], ids["é".encode()]]
    # 'ü' is not a piece: its UTF-8 bytes C3 BC become byte tokens 0xC3+3, 0xBC+3
    assert tok.encode("ü", bos=False) == [ids[b" "], 0xC3 + 3, 0xBC + 3]
    assert tok.decode(tok.encode("aüé")) == "aüé"  # BOS strips the dummy prefix space


def test_decode_piece_rules(small_tok):
    tok, ids = small_tok
    assert tok.decode_piece(1, ids[b" ab"]) == b"ab"  # after BOS the leading space goes
    assert tok.decode_piece(5, ids[b" ab"]) == b" ab"
    assert tok.decode_piece(None, 3 + 0x41) == b"A"  # '<0x41>' is the raw byte
    assert tok.decode_piece(1, 3 + 0x0A) == b"\n"
    assert tok.decode([1, ids[b" a"], ids[b" ab"], 3 + 0x21]) == "a ab!"
    assert tok.decode([ids[b" a"]], prev_token=1) == "a"
    with pytest.raises(InputError, match="not an id"):
        tok.decode_piece(None, tok.vocab_size)


def test_vocab_without_space_piece_cannot_encode(tmp_path):
    path = tmp_path / "t.bin"
    write_tokenizer(path, BASE + [b"a"])
    tok = load_tokenizer(path, len(BASE) + 1)
    with pytest.raises(InputError, match="' ' piece"):
        tok.encode("a")


def entries(pieces):
    return b"".join(struct.pack("<fi", 0.0, len(p)) + p for p in pieces)


@pytest.mark.parametrize(
    "content,vocab,needle",
    [
        (b"", 3, "too small"),
        (struct.pack("<i", 0) + entries([b"a"]), 1, "max_token_length 0"),
        (struct.pack("<i", -5) + entries([b"a"]), 1, "max_token_length -5"),
        (struct.pack("<i", 1 << 30) + entries([b"a"]), 1, "max_token_length"),
        (struct.pack("<i", 4) + entries([b"ab", b"cd"]), 3, "ends after 2 tokens"),
        (struct.pack("<i", 4) + entries([b"ab", b"cd"])[:-1], 2, "ends inside token 1"),
        (struct.pack("<i", 4) + entries([b"ab", b"cd"])[:-3], 2, "ends after 1 tokens"),
        (struct.pack("<i", 4) + entries([b"ab", b"cd", b"ef"]), 2, "1 more tokens"),
        (struct.pack("<i", 4) + entries([b"ab"]) + b"\x01\x02", 1, "2 trailing bytes"),
        (struct.pack("<i", 2) + entries([b"abc"]), 1, "length 3"),
        (struct.pack("<i", 4) + struct.pack("<fi", 0.0, -1), 1, "length -1"),
        (struct.pack("<i", 4) + struct.pack("<fi", float("nan"), 1) + b"a", 1, "non-finite score"),
    ],
)
def test_bad_tokenizer_files(tmp_path, content, vocab, needle):
    path = tmp_path / "t.bin"
    path.write_bytes(content)
    with pytest.raises(InputError) as e:
        load_tokenizer(path, vocab)
    msg = str(e.value)
    assert needle in msg and "\n" not in msg


@pytest.mark.parametrize("vocab", [0, -1, 1 << 23, 2.5, True])
def test_bad_vocab_size_argument(tmp_path, vocab):
    path = tmp_path / "t.bin"
    write_tokenizer(path, [b"a"])
    with pytest.raises(InputError, match="vocab_size"):
        load_tokenizer(path, vocab)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such"):
        load_tokenizer(tmp_path / "none.bin", 10)
    with pytest.raises(InputError, match="not a regular file"):
        load_tokenizer(tmp_path, 10)


# Expected ids from llama2.c's test.c, which took them from Meta's sentencepiece tokenizer.
LLAMA_CASES = [
    ("", [1]),
    ("I believe the meaning of life is", [1, 306, 4658, 278, 6593, 310, 2834, 338]),
    (
        "Simply put, the theory of relativity states that ",
        [1, 3439, 17632, 1925, 29892, 278, 6368, 310, 14215, 537, 5922, 393, 29871],
    ),
    (
        "A brief message congratulating the team on the launch:\n\n        Hi everyone,\n\n        I just ",
        [1, 319, 11473, 2643, 378, 629, 271, 18099, 278, 3815, 373, 278, 6826, 29901, 13, 13, 4706, 6324,
         14332, 29892, 13, 13, 4706, 306, 925, 29871],
    ),
    (
        "Translate English to French:\n\n        sea otter => loutre de mer\n        peppermint => menthe poivrée\n"
        "        plush girafe => girafe peluche\n        cheese =>",
        [1, 4103, 9632, 4223, 304, 5176, 29901, 13, 13, 4706, 7205, 4932, 357, 1149, 301, 449, 276, 316, 2778,
         13, 4706, 1236, 407, 837, 524, 1149, 6042, 354, 772, 440, 29878, 1318, 13, 4706, 715, 1878, 330, 3055,
         1725, 1149, 330, 3055, 1725, 4639, 28754, 13, 4706, 923, 968, 1149],
    ),
]


@pytest.mark.parametrize("text,ids", LLAMA_CASES, ids=[f"prompt{i}" for i in range(len(LLAMA_CASES))])
def test_llama_tokenizer_matches_sentencepiece_ids(llama_tok, text, ids):
    assert llama_tok.encode(text) == ids
    assert llama_tok.decode(ids) == text


def test_llama_tokenizer_special_and_byte_pieces(llama_tok):
    assert llama_tok.vocab[1] == b"\n<s>\n" and llama_tok.vocab[2] == b"\n</s>\n"
    assert llama_tok.decode_piece(5, 3 + 0x0A) == b"\n"
    assert llama_tok.piece_id("🦙".encode()) == -1  # precondition: not a piece, so bytes are used
    ids = llama_tok.encode("llama 🦙!", bos=False)
    assert [i for i in ids if 3 <= i < 259] == [b + 3 for b in "🦙".encode()]
    assert llama_tok.decode(ids) == " llama 🦙!"


def test_llama_tokenizer_wrong_vocab_size_is_refused():
    d = shared_models_dir()
    if d is None or not (d / "llama2c-tokenizer.bin").is_file():
        pytest.skip("llama2c-tokenizer.bin not found")
    with pytest.raises(InputError, match="holds 488 more tokens"):
        load_tokenizer(d / "llama2c-tokenizer.bin", 31512)
    with pytest.raises(InputError, match="ends after 32000 tokens"):
        load_tokenizer(d / "llama2c-tokenizer.bin", 32001)
