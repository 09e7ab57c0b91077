"""Generate a tiny, randomly initialised vision-language model for llama.cpp's ``llama-server``.

No model hub is reachable from the test machines, so the weights are made here from a seed: the
answers are gibberish, but every request runs the server's real path (image decode → vision encoder
→ projector → language model → sampler → HTTP/SSE).

Two GGUF files come out:

* a text model, architecture ``llama`` (hidden 128, 2 layers, 2 heads, FFN 256) with a
  SentencePiece-style vocab of 408 tokens: 5 special tokens, the 256 byte tokens (so any text
  tokenises) and 147 printable word pieces, plus a ChatML chat template;
* a vision projector (``mmproj``), architecture ``clip``, LLaVA-1.5 style ``mlp`` projector:
  32-px images cut into 8-px patches, so every image costs :data:`IMAGE_TOKENS` prompt tokens.

The output head can only reach the word pieces, so generation never ends early: every answer has
``finish_reason == "length"`` and ``usage.completion_tokens == max_tokens``.

:func:`generate_idefics3` writes a SmolVLM-style (``idefics3``) model whose image cost depends on
the image's size: the same text model with the tile marker tokens added to its vocab, and two
projector files, one that tiles the image as sent and one that first resizes every image to a fixed
longest edge (see :func:`idefics3_image_tokens`).

Run ``python -m tests.servers.tiny_vlm OUT_DIR [SEED]`` to write (or find) the files and print
their paths (``--idefics3`` before OUT_DIR for the SmolVLM-style ones).
Key and tensor names follow llama.cpp's ``tools/mtmd/clip-impl.h`` and ``src/models/llama.cpp``.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import gguf
import numpy as np
import numpy.typing as npt

#: Bump whenever the generated files change, so cached files of an older layout are not reused.
GENERATOR_VERSION = 2

#: Prompt tokens one image costs: (IMAGE_SIZE / PATCH_SIZE) ** 2 patches, one token each.
IMAGE_TOKENS = 16

# Text model.
N_EMBD = 128
N_LAYER = 2
N_HEAD = 2
N_FF = 256
N_CTX_TRAIN = 4096
RMS_EPS = 1e-5

# Vision encoder + projector.
IMAGE_SIZE = 32
PATCH_SIZE = 8
V_EMBD = 64
V_LAYER = 3
V_HEAD = 4
# Must differ from V_EMBD: clip.cpp takes an FFN whose down-projection has V_EMBD inputs for an old
# file with swapped up/down tensors, and swaps them back.
V_FF = 128
V_EPS = 1e-6

# How the random weights are steered, so that the gibberish still behaves like a model's answer:
#
# * BIAS_DIM of the text residual stream holds BIAS_VALUE in every token embedding and no layer
#   writes to it, so after the final RMS norm it is always clearly positive. The output head uses
#   it as a bias: +BIAS_LOGIT for word pieces and -BIAS_LOGIT for everything else (EOS, EOT, bytes),
#   so only words are ever sampled and every answer runs to max_tokens.
# * IMAGE_DIM holds IMAGE_MARK in every image embedding (the projector writes it) and 0 in token
#   embeddings. In layer 0, head 0 (the "image head") has one query/key channel pair that
#   multiplies a text position's BIAS_DIM with a key position's IMAGE_DIM, so it attends mostly to
#   the image; its output is scaled by IMAGE_HEAD_GAIN, so different images give clearly different
#   answers. The pair is the head's slowest RoPE pair (~1e-4 rad per position), so the boost
#   hardly depends on distance.
# * Random weights read only the other ("content") dimensions: the markers are the same in every
#   text (or image) position and would add one vector everywhere, making a few words always win.
# * The output head subtracts REPEAT_PENALTY x each word's own embedding, which makes the word just
#   written less likely next (fewer "fish fish fish" answers at temperature 0).
BIAS_DIM = 0
BIAS_VALUE = 4.0
BIAS_LOGIT = 12.0
IMAGE_DIM = 1
IMAGE_MARK = 3.0
IMAGE_ATTN_GAIN = 2.5
IMAGE_HEAD_GAIN = 8.0
REPEAT_PENALTY = 0.05
# Scale of the projector's output: image embeddings a few times larger than token embeddings.
PROJ_GAIN = 4.0

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>")
UNK_ID, BOS_ID, EOS_ID, IM_START_ID, IM_END_ID = range(len(SPECIAL_TOKENS))

# Printable word pieces, the only tokens the model can emit. "▁" is SentencePiece's space marker.
_WORD_TEXT = (
    "the a an and or but of to in on at by for with from up down over under near far "
    "cat dog bird fish tree leaf rock sand sea sky sun moon star cloud rain snow wind fire "
    "red blue green yellow white black gray pink orange purple bright dark light shadow "
    "big small tall short round flat soft hard warm cold fast slow old new quiet loud "
    "run walk jump sit look see hear find make take give hold turn open close move stop "
    "room door window table chair wall floor lamp book cup plate box bag hat shoe coat "
    "face hand eye hair smile person child man woman group crowd camera screen frame "
    "picture image scene view corner edge center left right top bottom front back side "
    "one two three four five many few some every no this that here there now then again"
)
WORDS: tuple[str, ...] = tuple(_WORD_TEXT.split())

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

F32 = npt.NDArray[np.float32]


def _normal(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> F32:
    return rng.normal(0.0, std, size=shape).astype(np.float32)


def _content_weights(rng: np.random.Generator, shape: tuple[int, int], std: float, content: list[int]) -> F32:
    """Random (out, in) weights that read only the ``content`` input dimensions."""
    weights = np.zeros(shape, dtype=np.float32)
    weights[:, content] = _normal(rng, (shape[0], len(content)), std)
    return weights


def _balanced_mlp(
    rng: np.random.Generator, n_in: int, n_hidden: int, n_out: int, gain: float
) -> tuple[F32, F32]:
    """(up, down) weights of a GELU MLP whose hidden units come in sign-flipped pairs.

    GELU(z) - GELU(-z) == z, so down @ GELU(up @ x) is linear in x. Random weights would add
    GELU's positive mean, one offset that looks the same for every image and drowns the image.
    """
    half = n_hidden // 2
    w_in = _normal(rng, (half, n_in), n_in**-0.5)
    w_out = _normal(rng, (n_out, half), gain * half**-0.5)
    return np.concatenate([w_in, -w_in]), np.concatenate([w_out, -w_out], axis=1)


def _vocab(extra: Sequence[tuple[str, int]] = ()) -> tuple[list[str], list[float], list[int]]:
    """Tokens, SentencePiece scores and token types, in id order; ``extra`` (text, type) go last."""
    tokens = list(SPECIAL_TOKENS)
    types = [int(gguf.TokenType.UNKNOWN)] + [int(gguf.TokenType.CONTROL)] * (len(tokens) - 1)
    scores = [0.0] * len(tokens)
    for byte in range(256):
        tokens.append(f"<0x{byte:02X}>")
        types.append(int(gguf.TokenType.BYTE))
        scores.append(0.0)
    for rank, word in enumerate(WORDS):
        tokens.append("\u2581" + word)
        types.append(int(gguf.TokenType.NORMAL))
        scores.append(-float(rank + 1))
    for text, token_type in extra:
        tokens.append(text)
        types.append(token_type)
        scores.append(0.0)
    return tokens, scores, types


def _write_atomically(writer: gguf.GGUFWriter, tmp_path: Path, final_path: Path) -> None:
    writer.write_header_to_file(path=tmp_path)
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    # Rename only complete files, so concurrent test workers never read a half-written model.
    os.replace(tmp_path, final_path)


def _tmp_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.{os.getpid()}.tmp")


def _write_text_model(
    path: Path,
    rng: np.random.Generator,
    extra_tokens: Sequence[tuple[str, int]] = (),
    name: str = f"tiny-vlm text v{GENERATOR_VERSION}",
) -> None:
    tokens, scores, types = _vocab(extra_tokens)
    n_vocab = len(tokens)
    is_word = np.array([t == int(gguf.TokenType.NORMAL) for t in types])
    head_dim = N_EMBD // N_HEAD
    content = [d for d in range(N_EMBD) if d not in (BIAS_DIM, IMAGE_DIM)]

    tmp = _tmp_path(path)
    w = gguf.GGUFWriter(tmp, arch="llama")
    w.add_name(name)
    w.add_file_type(int(gguf.LlamaFileType.ALL_F32))
    w.add_context_length(N_CTX_TRAIN)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD)
    w.add_rope_dimension_count(head_dim)
    w.add_layer_norm_rms_eps(RMS_EPS)
    w.add_vocab_size(n_vocab)

    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(BOS_ID)
    w.add_eos_token_id(EOS_ID)
    w.add_eot_token_id(IM_END_ID)
    w.add_unk_token_id(UNK_ID)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    # The server tokenises the text before and after an image separately; with SentencePiece's
    # space prefix the text after an image would gain a "▁" (3 byte tokens here), and an image
    # would cost more than IMAGE_TOKENS when it comes before the prompt.
    w.add_add_space_prefix(False)
    w.add_chat_template(CHATML_TEMPLATE)

    # Numpy shapes are (out, in); gguf stores them reversed, as ggml's [in, out].
    embd = _normal(rng, (n_vocab, N_EMBD), 1.0)
    embd[:, BIAS_DIM] = BIAS_VALUE
    embd[:, IMAGE_DIM] = 0.0
    w.add_tensor("token_embd.weight", embd)

    std = N_EMBD**-0.5
    for il in range(N_LAYER):
        p = f"blk.{il}"
        wq = _content_weights(rng, (N_EMBD, N_EMBD), std, content)
        wk = _content_weights(rng, (N_EMBD, N_EMBD), std, content)
        wv = _content_weights(rng, (N_EMBD, N_EMBD), std, content)
        wo = _normal(rng, (N_EMBD, N_EMBD), std)
        wo[BIAS_DIM, :] = 0.0  # nothing writes to the bias dimension
        if il == 0:
            # Head 0 of layer 0 is the image head (see BIAS_DIM / IMAGE_DIM above).
            slow = head_dim - 2  # first channel of head 0's slowest RoPE pair
            wq[slow : slow + 2, :] = 0.0
            wk[slow : slow + 2, :] = 0.0
            wq[slow, BIAS_DIM] = IMAGE_ATTN_GAIN
            wk[slow, IMAGE_DIM] = IMAGE_ATTN_GAIN
            wo[:, :head_dim] *= IMAGE_HEAD_GAIN
        gate = _content_weights(rng, (N_FF, N_EMBD), std, content)
        up = _content_weights(rng, (N_FF, N_EMBD), std, content)
        down = _normal(rng, (N_EMBD, N_FF), N_FF**-0.5)
        down[BIAS_DIM, :] = 0.0
        w.add_tensor(f"{p}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(f"{p}.attn_q.weight", wq)
        w.add_tensor(f"{p}.attn_k.weight", wk)
        w.add_tensor(f"{p}.attn_v.weight", wv)
        w.add_tensor(f"{p}.attn_output.weight", wo)
        w.add_tensor(f"{p}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(f"{p}.ffn_gate.weight", gate)
        w.add_tensor(f"{p}.ffn_up.weight", up)
        w.add_tensor(f"{p}.ffn_down.weight", down)

    w.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    head = _normal(rng, (n_vocab, N_EMBD), 3.0 * std)
    head[:, BIAS_DIM] = np.where(is_word, BIAS_LOGIT, -BIAS_LOGIT)
    head[~is_word, 1:] = 0.0
    head[:, 1:] -= REPEAT_PENALTY * embd[:, 1:]
    w.add_tensor("output.weight", head)

    _write_atomically(w, tmp, path)


def _write_mmproj(path: Path, rng: np.random.Generator) -> None:
    n_patches = (IMAGE_SIZE // PATCH_SIZE) ** 2
    assert n_patches == IMAGE_TOKENS

    tmp = _tmp_path(path)
    w = gguf.GGUFWriter(tmp, arch="clip")
    w.add_type(gguf.GGUFType.MMPROJ)
    w.add_name(f"tiny-vlm mmproj v{GENERATOR_VERSION}")
    w.add_file_type(int(gguf.LlamaFileType.ALL_F32))
    w.add_bool("clip.has_vision_encoder", True)
    w.add_string("clip.projector_type", "mlp")
    w.add_bool("clip.use_gelu", True)
    w.add_uint32("clip.vision.image_size", IMAGE_SIZE)
    w.add_uint32("clip.vision.patch_size", PATCH_SIZE)
    w.add_uint32("clip.vision.embedding_length", V_EMBD)
    w.add_uint32("clip.vision.feed_forward_length", V_FF)
    w.add_uint32("clip.vision.block_count", V_LAYER)
    w.add_uint32("clip.vision.attention.head_count", V_HEAD)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", V_EPS)
    w.add_uint32("clip.vision.projection_dim", N_EMBD)
    w.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    w.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])

    ones = np.ones(V_EMBD, dtype=np.float32)
    zeros = np.zeros(V_EMBD, dtype=np.float32)
    # Conv kernel (out channels, in channels, kh, kw); pixels arrive normalised to [-1, 1].
    patch_std = (3 * PATCH_SIZE * PATCH_SIZE) ** -0.5
    w.add_tensor("v.patch_embd.weight", _normal(rng, (V_EMBD, 3, PATCH_SIZE, PATCH_SIZE), patch_std))
    w.add_tensor("v.patch_embd.bias", _normal(rng, (V_EMBD,), 0.1))
    # No class embedding, so the 16 patches are the 16 positions (and the 16 image tokens).
    w.add_tensor("v.position_embd.weight", _normal(rng, (n_patches, V_EMBD), 0.1))
    w.add_tensor("v.pre_ln.weight", ones)
    w.add_tensor("v.pre_ln.bias", zeros)
    # LLaVA takes the features of the second-to-last block, so the last block is loaded, not run.
    for il in range(V_LAYER):
        p = f"v.blk.{il}"
        w.add_tensor(f"{p}.ln1.weight", ones)
        w.add_tensor(f"{p}.ln1.bias", zeros)
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            w.add_tensor(f"{p}.{name}.weight", _normal(rng, (V_EMBD, V_EMBD), V_EMBD**-0.5))
            w.add_tensor(f"{p}.{name}.bias", zeros)
        w.add_tensor(f"{p}.ln2.weight", ones)
        w.add_tensor(f"{p}.ln2.bias", zeros)
        up, down = _balanced_mlp(rng, V_EMBD, V_FF, V_EMBD, 1.0)
        w.add_tensor(f"{p}.ffn_up.weight", up)
        w.add_tensor(f"{p}.ffn_up.bias", np.zeros(V_FF, dtype=np.float32))
        w.add_tensor(f"{p}.ffn_down.weight", down)
        w.add_tensor(f"{p}.ffn_down.bias", zeros)

    # LLaVA-1.5 projector: linear -> GELU -> linear into the text model's embedding space.
    mm0, mm2 = _balanced_mlp(rng, V_EMBD, N_EMBD, N_EMBD, PROJ_GAIN)
    mm2[IMAGE_DIM, :] = 0.0
    mm2_bias = np.zeros(N_EMBD, dtype=np.float32)
    mm2_bias[IMAGE_DIM] = IMAGE_MARK  # lets the text model's image head find image positions
    w.add_tensor("mm.0.weight", mm0)
    w.add_tensor("mm.0.bias", np.zeros(N_EMBD, dtype=np.float32))
    w.add_tensor("mm.2.weight", mm2)
    w.add_tensor("mm.2.bias", mm2_bias)

    _write_atomically(w, tmp, path)


def model_paths(out_dir: Path, seed: int = 0) -> tuple[Path, Path]:
    """Where :func:`generate` puts the files for ``seed`` (version and seed are in the names)."""
    stem = f"tiny-vlm-v{GENERATOR_VERSION}-seed{seed}"
    return out_dir / f"{stem}.gguf", out_dir / f"{stem}-mmproj.gguf"


def generate(out_dir: Path, seed: int = 0) -> tuple[Path, Path]:
    """Write (or reuse) the text model and the vision projector; return ``(text_gguf, mmproj_gguf)``.

    The same ``seed`` always gives byte-identical files. Files already in ``out_dir`` are reused
    only when their names say they come from this generator version and seed.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    text_path, mmproj_path = model_paths(out_dir, seed)
    # Separate streams, so a change to one file's layout does not reshuffle the other's weights.
    if not text_path.is_file():
        _write_text_model(text_path, np.random.default_rng([seed, 0]))
    if not mmproj_path.is_file():
        _write_mmproj(mmproj_path, np.random.default_rng([seed, 1]))
    return text_path, mmproj_path


# -- SmolVLM-style (idefics3) projector: what an image costs depends on its size -----------------
#
# llama.cpp cuts an image for an idefics3 projector into TILE_SIZE tiles plus one overview tile,
# each costing TILE_TOKENS, framed by a few marker tokens (tools/mtmd/mtmd-image.cpp and mtmd.cpp).
# How many tiles depends on whether the mmproj file has "clip.vision.preproc_image_size":
#
# * without it (older files), the grid follows the size of the image sent: each side is rounded to
#   the nearest multiple of TILE_SIZE (at least one tile), so a smaller image costs fewer tiles;
# * with it, every image is first resized so its longest edge is that size (upscaled if smaller),
#   and each side is rounded up to whole tiles: only the aspect ratio counts.
#
# The tile and token sizes are SmolVLM's (512-px tiles, 64 tokens each), so the counts read like a
# real model's; the encoder is tiny (width 32, one block, 32-px patches merged 2x2 into one token).

#: Bump whenever the idefics3 files change (they are cached apart from the LLaVA-style files).
IDEFICS3_VERSION = 1

TILE_SIZE = 512
TILE_PATCH = 32
#: Pixel-shuffle factor per side ("clip.vision.projector.scale_factor").
TILE_MERGE = 2
#: Prompt tokens each tile (and the overview) costs, markers aside.
TILE_TOKENS = (TILE_SIZE // TILE_PATCH // TILE_MERGE) ** 2
#: "clip.vision.preproc_image_size" in the file that has the key (SmolVLM-500M's file says 2048;
#: smaller here, so the server's resize of every image stays cheap on a CI machine).
LONGEST_EDGE = 1024

S_EMBD = 32
S_LAYER = 1
S_HEAD = 2
# Not S_EMBD, for the same reason as V_FF.
S_FF = 64

# llama.cpp looks these up by text to frame the tiles; a vocab without them gives invalid token ids.
# SmolVLM's vocab has "<row_R_col_C>" for grids up to 6x6; bigger grids spell them out in bytes.
_IDEFICS3_TOKENS: tuple[tuple[str, int], ...] = (
    ("\n\n", int(gguf.TokenType.USER_DEFINED)),
    ("<fake_token_around_image>", int(gguf.TokenType.CONTROL)),
    ("<global-img>", int(gguf.TokenType.CONTROL)),
    *((f"<row_{r}_col_{c}>", int(gguf.TokenType.CONTROL)) for r in range(1, 7) for c in range(1, 7)),
)


def _round_half_up(x: float) -> int:
    """C's ``std::round`` for the non-negative values here (Python's ``round`` rounds half to even)."""
    return math.floor(x + 0.5)


def idefics3_grid(width: int, height: int, longest_edge: int | None = None) -> tuple[int, int]:
    """(columns, rows) of tiles llama.cpp cuts a ``width`` x ``height`` image into (overview aside).

    ``longest_edge`` is the file's ``clip.vision.preproc_image_size``, None for a file without it.
    Mirrors ``mtmd_image_preprocessor_idefics3::preprocess`` in this llama.cpp.
    """
    if longest_edge is None:
        return (
            max(1, _round_half_up(width / TILE_SIZE)),
            max(1, _round_half_up(height / TILE_SIZE)),
        )
    aspect = width / height
    if width >= height:
        width, height = longest_edge, int(longest_edge / aspect)
        height += height % 2
    else:
        width, height = int(longest_edge * aspect), longest_edge
        width += width % 2
    return -(-width // TILE_SIZE), -(-height // TILE_SIZE)


def idefics3_image_tokens(width: int, height: int, longest_edge: int | None = None) -> int:
    """Prompt tokens an image costs with the generated idefics3 files: tiles, overview and markers.

    Markers (tools/mtmd/mtmd.cpp): "<fake_token_around_image><row_R_col_C>" before each tile, "\\n"
    after each row but the last, "\\n\\n<fake_token_around_image><global-img>" before the overview
    and "<fake_token_around_image>" after it.
    """
    cols, rows = idefics3_grid(width, height, longest_edge)
    tiles = cols * rows
    return (tiles + 1) * TILE_TOKENS + 2 * tiles + (rows - 1) + 4


def _write_idefics3_mmproj(path: Path, rng: np.random.Generator, longest_edge: int | None) -> None:
    n_side = TILE_SIZE // TILE_PATCH
    n_merged = S_EMBD * TILE_MERGE * TILE_MERGE

    tmp = _tmp_path(path)
    w = gguf.GGUFWriter(tmp, arch="clip")
    w.add_type(gguf.GGUFType.MMPROJ)
    w.add_name(f"tiny-idefics3 mmproj v{IDEFICS3_VERSION}")
    w.add_file_type(int(gguf.LlamaFileType.ALL_F32))
    w.add_bool("clip.has_vision_encoder", True)
    w.add_string("clip.projector_type", "idefics3")
    w.add_bool("clip.use_gelu", True)
    w.add_uint32("clip.vision.image_size", TILE_SIZE)
    w.add_uint32("clip.vision.patch_size", TILE_PATCH)
    w.add_uint32("clip.vision.embedding_length", S_EMBD)
    w.add_uint32("clip.vision.feed_forward_length", S_FF)
    w.add_uint32("clip.vision.block_count", S_LAYER)
    w.add_uint32("clip.vision.attention.head_count", S_HEAD)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", V_EPS)
    w.add_uint32("clip.vision.projection_dim", N_EMBD)
    w.add_uint32("clip.vision.projector.scale_factor", TILE_MERGE)
    if longest_edge is not None:
        w.add_uint32("clip.vision.preproc_image_size", longest_edge)
    w.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    w.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])

    ones = np.ones(S_EMBD, dtype=np.float32)
    zeros = np.zeros(S_EMBD, dtype=np.float32)
    patch_std = (3 * TILE_PATCH * TILE_PATCH) ** -0.5
    w.add_tensor("v.patch_embd.weight", _normal(rng, (S_EMBD, 3, TILE_PATCH, TILE_PATCH), patch_std))
    w.add_tensor("v.patch_embd.bias", _normal(rng, (S_EMBD,), 0.1))
    w.add_tensor("v.position_embd.weight", _normal(rng, (n_side * n_side, S_EMBD), 0.1))
    for il in range(S_LAYER):
        p = f"v.blk.{il}"
        w.add_tensor(f"{p}.ln1.weight", ones)
        w.add_tensor(f"{p}.ln1.bias", zeros)
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            w.add_tensor(f"{p}.{name}.weight", _normal(rng, (S_EMBD, S_EMBD), S_EMBD**-0.5))
            w.add_tensor(f"{p}.{name}.bias", zeros)
        w.add_tensor(f"{p}.ln2.weight", ones)
        w.add_tensor(f"{p}.ln2.bias", zeros)
        up, down = _balanced_mlp(rng, S_EMBD, S_FF, S_EMBD, 1.0)
        w.add_tensor(f"{p}.ffn_up.weight", up)
        w.add_tensor(f"{p}.ffn_up.bias", np.zeros(S_FF, dtype=np.float32))
        w.add_tensor(f"{p}.ffn_down.weight", down)
        w.add_tensor(f"{p}.ffn_down.bias", zeros)
    # The projector has no bias to write the image marker (see IMAGE_DIM) with, so the post-norm
    # pins vision channel 0 to 1 and the projector copies it into IMAGE_DIM: the text model's
    # image head then finds image positions as it does with the LLaVA-style file.
    post_w, post_b = ones.copy(), zeros.copy()
    post_w[0], post_b[0] = 0.0, 1.0
    w.add_tensor("v.post_ln.weight", post_w)
    w.add_tensor("v.post_ln.bias", post_b)
    # Pixel shuffle concatenates TILE_MERGE**2 neighbouring patches, S_EMBD channels each.
    marker_cols = list(range(0, n_merged, S_EMBD))
    fc = _normal(rng, (N_EMBD, n_merged), PROJ_GAIN * n_merged**-0.5)
    fc[:, marker_cols] = 0.0
    fc[IMAGE_DIM, :] = 0.0
    fc[IMAGE_DIM, marker_cols] = IMAGE_MARK / len(marker_cols)
    w.add_tensor("mm.model.fc.weight", fc)

    _write_atomically(w, tmp, path)


class Idefics3Files(NamedTuple):
    """The generated SmolVLM-style model: one text model, two projector files."""

    #: Text model whose vocab has the tile marker tokens (otherwise like :func:`generate`'s).
    text: Path
    #: Projector without "clip.vision.preproc_image_size": tiles follow the size sent.
    mmproj_sliced: Path
    #: The same projector with the key (:data:`LONGEST_EDGE`): tiles follow the aspect ratio only.
    mmproj_longest_edge: Path


def idefics3_paths(out_dir: Path, seed: int = 0) -> Idefics3Files:
    """Where :func:`generate_idefics3` puts the files for ``seed``."""
    stem = f"tiny-idefics3-v{IDEFICS3_VERSION}-seed{seed}"
    return Idefics3Files(
        out_dir / f"{stem}.gguf",
        out_dir / f"{stem}-mmproj-sliced.gguf",
        out_dir / f"{stem}-mmproj-longest{LONGEST_EDGE}.gguf",
    )


def generate_idefics3(out_dir: Path, seed: int = 0) -> Idefics3Files:
    """Write (or reuse) the SmolVLM-style text model and its two projector files.

    Like :func:`generate`: deterministic for a ``seed``, and files are reused only when their names
    carry this version and seed. Both projector files hold the same weights; only the key differs.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    files = idefics3_paths(out_dir, seed)
    if not files.text.is_file():
        _write_text_model(
            files.text,
            np.random.default_rng([seed, 2]),
            _IDEFICS3_TOKENS,
            name=f"tiny-idefics3 text v{IDEFICS3_VERSION}",
        )
    for path, longest_edge in ((files.mmproj_sliced, None), (files.mmproj_longest_edge, LONGEST_EDGE)):
        if not path.is_file():
            _write_idefics3_mmproj(path, np.random.default_rng([seed, 3]), longest_edge)
    return files


def main(argv: list[str]) -> int:
    idefics3 = argv[:1] == ["--idefics3"]
    if idefics3:
        argv = argv[1:]
    if len(argv) not in (1, 2):
        print("usage: python -m tests.servers.tiny_vlm [--idefics3] OUT_DIR [SEED]", file=sys.stderr)
        return 2
    seed = int(argv[1]) if len(argv) == 2 else 0
    out_dir = Path(argv[0])
    for path in generate_idefics3(out_dir, seed) if idefics3 else generate(out_dir, seed):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
