"""Import a faster-whisper (CTranslate2) Whisper directory as a transformers model directory.

The live app runs faster-whisper, and the only offline weights here are CTranslate2 ones (the
bundled tiny.en), so fine-tuning starts by turning `model.bin` back into a trainable
`WhisperForConditionalGeneration`. The file format and the name map are in
`/work/shared/notes/ct2-whisper-format.md`; the import is exact: with the same log-mel input,
greedy decoding of the imported model equals faster-whisper's (tests/pipeline/test_ct2_import.py).
"""
from __future__ import annotations

import json
import re
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}
SUPPORTED_VERSIONS = (6,)
ENGLISH_SPELLING = Path(__file__).with_name("whisper_english_spelling.json")


class Ct2FormatError(ValueError):
    """model.bin is not a CTranslate2 Whisper model this importer understands."""


@dataclass
class Ct2Model:
    """The raw content of a model.bin: spec name, revision, variables (dequantized) and aliases."""

    spec: str
    revision: int
    variables: dict[str, np.ndarray] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> np.ndarray:
        name = self.aliases.get(name, name)
        try:
            return self.variables[name]
        except KeyError:
            raise Ct2FormatError(f"model.bin has no variable {name!r}") from None

    def scalar(self, name: str) -> int:
        return int(self.get(name).reshape(-1)[0])


class _Reader:
    def __init__(self, data: bytes, path: Path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise Ct2FormatError(f"{self.path}: truncated at byte {self.pos} (wanted {n} more bytes)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))[0]

    def string(self) -> str:
        n = self.unpack("H")
        raw = self.take(n)
        if n == 0 or raw[-1] != 0:
            raise Ct2FormatError(f"{self.path}: malformed string at byte {self.pos - n}")
        return raw[:-1].decode("utf-8")


def _bf16_to_f32(raw: bytes) -> np.ndarray:
    return (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def read_model_bin(path: Path | str) -> Ct2Model:
    """Parse model.bin (binary version 6). int8/int16 weights come back dequantized as float32."""
    path = Path(path)
    r = _Reader(path.read_bytes(), path)
    version = r.unpack("I")
    if version not in SUPPORTED_VERSIONS:
        raise Ct2FormatError(f"{path}: binary version {version} is not supported (expected 6)")
    spec = r.string()
    revision = r.unpack("I")
    raw: dict[str, np.ndarray] = {}
    for _ in range(r.unpack("I")):
        name = r.string()
        rank = r.unpack("B")
        dims = [r.unpack("I") for _ in range(rank)]
        dtype_id = r.unpack("B")
        nbytes = r.unpack("I")
        if dtype_id not in DTYPES:
            raise Ct2FormatError(f"{path}: variable {name!r} has unknown dtype id {dtype_id}")
        buf = r.take(nbytes)
        dtype = DTYPES[dtype_id]
        arr = _bf16_to_f32(buf) if dtype == "bfloat16" else np.frombuffer(buf, dtype=dtype)
        expected = int(np.prod(dims)) if dims else 1
        if arr.size != expected:
            raise Ct2FormatError(f"{path}: variable {name!r} holds {arr.size} values, shape {dims} needs {expected}")
        raw[name] = arr.reshape(dims)
    aliases = {}
    if r.pos < len(r.data):
        for _ in range(r.unpack("I")):
            alias = r.string()
            aliases[alias] = r.string()
    variables = {}
    for name, arr in raw.items():
        if name.endswith("_scale"):
            continue
        scale = raw.get(name + "_scale")
        if scale is not None and arr.dtype in (np.int8, np.int16):
            # CTranslate2 stores q = round(w * scale) with one scale per output row (or one overall).
            scale = scale.astype(np.float32)
            shape = (-1,) + (1,) * (arr.ndim - 1) if scale.size > 1 else ()
            arr = arr.astype(np.float32) / scale.reshape(shape)
        variables[name] = arr
    return Ct2Model(spec=spec, revision=revision, variables=variables, aliases=aliases)


def _count_layers(m: Ct2Model, prefix: str) -> int:
    pattern = re.compile(rf"^{prefix}/layer_(\d+)/")
    found = {int(mo.group(1)) for name in m.variables if (mo := pattern.match(name))}
    if not found or found != set(range(len(found))):
        raise Ct2FormatError(f"model.bin has no contiguous {prefix} layers ({sorted(found)})")
    return len(found)


def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


def to_state_dict(m: Ct2Model) -> dict[str, np.ndarray]:
    """transformers WhisperForConditionalGeneration weights (float32) from CTranslate2 variables."""
    if m.spec != "WhisperSpec":
        raise Ct2FormatError(f"model.bin holds a {m.spec}, not a WhisperSpec")
    sd: dict[str, np.ndarray] = {}

    def linear(dst: str, src: str):
        sd[f"{dst}.weight"] = _f32(m.get(f"{src}/weight"))
        if f"{src}/bias" in m.variables:
            sd[f"{dst}.bias"] = _f32(m.get(f"{src}/bias"))

    def norm(dst: str, src: str):
        sd[f"{dst}.weight"] = _f32(m.get(f"{src}/gamma"))
        sd[f"{dst}.bias"] = _f32(m.get(f"{src}/beta"))

    def split(dst_prefix: str, names: list[str], src: str):
        """Fused rows (q|k|v or k|v) -> separate projections. Whisper's k_proj has no bias: a key bias
        adds the same q.b_k to every score of a query row, which softmax cancels, so it is dropped."""
        w, b = m.get(f"{src}/weight"), m.get(f"{src}/bias")
        ws, bs = np.split(w, len(names)), np.split(b, len(names))
        for name, wi, bi in zip(names, ws, bs, strict=True):
            sd[f"{dst_prefix}.{name}.weight"] = _f32(wi)
            if name != "k_proj":
                sd[f"{dst_prefix}.{name}.bias"] = _f32(bi)

    e, d = "model.encoder", "model.decoder"
    for i in (1, 2):
        linear(f"{e}.conv{i}", f"encoder/conv{i}")
    sd[f"{e}.embed_positions.weight"] = _f32(m.get("encoder/position_encodings/encodings"))
    for i in range(_count_layers(m, "encoder")):
        src, dst = f"encoder/layer_{i}", f"{e}.layers.{i}"
        split(f"{dst}.self_attn", ["q_proj", "k_proj", "v_proj"], f"{src}/self_attention/linear_0")
        linear(f"{dst}.self_attn.out_proj", f"{src}/self_attention/linear_1")
        norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
        linear(f"{dst}.fc1", f"{src}/ffn/linear_0")
        linear(f"{dst}.fc2", f"{src}/ffn/linear_1")
        norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")
    norm(f"{e}.layer_norm", "encoder/layer_norm")

    sd[f"{d}.embed_tokens.weight"] = _f32(m.get("decoder/embeddings/weight"))
    sd[f"{d}.embed_positions.weight"] = _f32(m.get("decoder/position_encodings/encodings"))
    for i in range(_count_layers(m, "decoder")):
        src, dst = f"decoder/layer_{i}", f"{d}.layers.{i}"
        split(f"{dst}.self_attn", ["q_proj", "k_proj", "v_proj"], f"{src}/self_attention/linear_0")
        linear(f"{dst}.self_attn.out_proj", f"{src}/self_attention/linear_1")
        norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
        linear(f"{dst}.encoder_attn.q_proj", f"{src}/attention/linear_0")
        split(f"{dst}.encoder_attn", ["k_proj", "v_proj"], f"{src}/attention/linear_1")
        linear(f"{dst}.encoder_attn.out_proj", f"{src}/attention/linear_2")
        norm(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm")
        linear(f"{dst}.fc1", f"{src}/ffn/linear_0")
        linear(f"{dst}.fc2", f"{src}/ffn/linear_1")
        norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")
    norm(f"{d}.layer_norm", "decoder/layer_norm")
    return sd


def _token_ids(tokenizer_json: dict) -> dict[str, int]:
    return {t["content"]: t["id"] for t in tokenizer_json.get("added_tokens", [])}


def _with_timestamp_tokens(tokenizer_json: dict, vocab_size: int) -> dict:
    """faster-whisper's tokenizer.json stops at <|notimestamps|>; the hub's has the 1501 timestamp
    tokens <|0.00|>..<|30.00|> after it. Add them so every model id decodes and len(tokenizer) fits."""
    ids = _token_ids(tokenizer_json)
    first = ids["<|notimestamps|>"] + 1
    if first >= vocab_size or any(t["id"] >= first for t in tokenizer_json["added_tokens"]):
        return tokenizer_json
    extra = [
        {"id": first + i, "content": f"<|{i * 0.02:.2f}|>", "single_word": False, "lstrip": False,
         "rstrip": False, "normalized": False, "special": False}
        for i in range(vocab_size - first)
    ]
    return {**tokenizer_json, "added_tokens": tokenizer_json["added_tokens"] + extra}


def build_configs(m: Ct2Model, ct2_config: dict, tokenizer_json: dict, language: str | None = "en"):
    """(WhisperConfig, GenerationConfig) from variable shapes + the directory's config/tokenizer."""
    from transformers import GenerationConfig, WhisperConfig

    ids = _token_ids(tokenizer_json)
    for needed in ("<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>"):
        if needed not in ids:
            raise Ct2FormatError(f"tokenizer.json lacks the special token {needed}")
    conv1 = m.get("encoder/conv1/weight")
    vocab_size = m.get("decoder/embeddings/weight").shape[0]
    eot, sot = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    multilingual = vocab_size >= 51865
    config = WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=conv1.shape[1],
        d_model=conv1.shape[0],
        encoder_layers=_count_layers(m, "encoder"),
        decoder_layers=_count_layers(m, "decoder"),
        encoder_attention_heads=m.scalar("encoder/num_heads"),
        decoder_attention_heads=m.scalar("decoder/num_heads"),
        encoder_ffn_dim=m.get("encoder/layer_0/ffn/linear_0/weight").shape[0],
        decoder_ffn_dim=m.get("decoder/layer_0/ffn/linear_0/weight").shape[0],
        max_source_positions=m.get("encoder/position_encodings/encodings").shape[0],
        max_target_positions=m.get("decoder/position_encodings/encodings").shape[0],
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=sot,
        tie_word_embeddings=True,
        # Generation settings also live on the model config in older checkpoints; keep both in step.
        suppress_tokens=None,
        begin_suppress_tokens=None,
    )
    # faster-whisper suppresses config.json's suppress_ids (non-speech tokens + the task/sot
    # specials) and, at the first step, suppress_ids_begin (blank and <|endoftext|>).
    specials = [ids.get(t) for t in ("<|transcribe|>", "<|translate|>", "<|startoftranscript|>",
                                     "<|startofprev|>", "<|startoflm|>", "<|nospeech|>", "<|nocaptions|>")]
    suppress = sorted(set(ct2_config.get("suppress_ids", [])) | {t for t in specials if t is not None})
    gen = GenerationConfig(
        decoder_start_token_id=sot,
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        max_length=config.max_target_positions,
        suppress_tokens=suppress,
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [220, eot])),
        alignment_heads=[list(h) for h in ct2_config.get("alignment_heads", [])],
        no_timestamps_token_id=ids["<|notimestamps|>"],
        prev_sot_token_id=ids.get("<|startofprev|>"),
        max_initial_timestamp_index=50,
        return_timestamps=False,
        is_multilingual=multilingual,
        median_filter_width=7,
    )
    if multilingual:
        # Language tokens sit between <|startoftranscript|> and <|translate|> in every Whisper vocabulary.
        gen.lang_to_id = {tok: i for tok, i in ids.items() if sot < i < ids["<|translate|>"]}
        gen.task_to_id = {"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]}
        gen.task = "transcribe"
        if language:
            gen.language = language
    return config, gen


def import_ct2_model(src: Path | str, out_dir: Path | str, language: str | None = "en") -> Path:
    """Write a transformers Whisper directory (safetensors, configs, tokenizer, processor) to out_dir."""
    import torch
    from transformers import (
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    src, out_dir = Path(src), Path(out_dir)
    for name in ("model.bin", "tokenizer.json"):
        if not (src / name).is_file():
            raise Ct2FormatError(f"{src} is not a faster-whisper model directory: {name} is missing")
    ct2_config = json.loads((src / "config.json").read_text()) if (src / "config.json").is_file() else {}
    m = read_model_bin(src / "model.bin")
    tokenizer_json = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    config, gen = build_configs(m, ct2_config, tokenizer_json, language=language)
    tokenizer_json = _with_timestamp_tokens(tokenizer_json, config.vocab_size)

    state = {k: torch.from_numpy(v) for k, v in to_state_dict(m).items()}
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    missing = [k for k in missing if k != "proj_out.weight"]
    if missing or unexpected:
        raise Ct2FormatError(f"weights do not fit WhisperForConditionalGeneration: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}")
    model.tie_weights()
    model.generation_config = gen
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)

    tok_dir = out_dir / ".tokenizer-src"
    tok_dir.mkdir(exist_ok=True)
    (tok_dir / "tokenizer.json").write_text(json.dumps(tokenizer_json, ensure_ascii=False), encoding="utf-8")
    tokenizer = WhisperTokenizer(tokenizer_file=str(tok_dir / "tokenizer.json"), pad_token="<|endoftext|>")
    shutil.rmtree(tok_dir)
    if ENGLISH_SPELLING.is_file():
        # The hub's Whisper directories ship this British->American map as normalizer.json; the
        # English text normalizer (evaluate.normalize) reads it from the tokenizer.
        tokenizer.english_spelling_normalizer = json.loads(ENGLISH_SPELLING.read_text())
    if gen.is_multilingual:
        tokenizer.set_prefix_tokens(language=language, task="transcribe")
    feature_extractor = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    processor = WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)
    processor.save_pretrained(out_dir)
    feature_extractor.save_pretrained(out_dir)  # preprocessor_config.json: ct2's converter copies it
    if ENGLISH_SPELLING.is_file() and not (out_dir / "normalizer.json").is_file():
        shutil.copyfile(ENGLISH_SPELLING, out_dir / "normalizer.json")
    return out_dir
