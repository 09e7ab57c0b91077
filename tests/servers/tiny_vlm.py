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

Run ``python -m tests.servers.tiny_vlm OUT_DIR`` to write (or find) the files and print their paths.
Key and tensor names follow llama.cpp's ``tools/mtmd/clip-impl.h`` and ``src/models/llama.cpp``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

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


def _vocab() -> tuple[list[str], list[float], list[int]]:
    """Tokens, SentencePiece scores and token types, in id order."""
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


def _write_text_model(path: Path, rng: np.random.Generator) -> None:
    tokens, scores, types = _vocab()
    n_vocab = len(tokens)
    is_word = np.array([t == int(gguf.TokenType.NORMAL) for t in types])
    head_dim = N_EMBD // N_HEAD
    content = [d for d in range(N_EMBD) if d not in (BIAS_DIM, IMAGE_DIM)]

    tmp = _tmp_path(path)
    w = gguf.GGUFWriter(tmp, arch="llama")
    w.add_name(f"tiny-vlm text v{GENERATOR_VERSION}")
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


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print("usage: python -m tests.servers.tiny_vlm OUT_DIR [SEED]", file=sys.stderr)
        return 2
    seed = int(argv[1]) if len(argv) == 2 else 0
    for path in generate(Path(argv[0]), seed):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
