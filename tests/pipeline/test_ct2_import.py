"""Importing faster-whisper (CTranslate2) models: the parser, the name map, and the proof on real speech."""
import json
import shutil
import struct

import numpy as np
import pytest
import torch

from tests.pipeline import whisper_fixtures
from training_jobs.pipeline.ct2_import import Ct2FormatError, Ct2Model, build_configs, import_ct2_model, read_model_bin
from training_jobs.pipeline.features import log_mel_batch

# Shared real-speech / real-model fixtures (cached once per session).
faster_whisper_tiny = whisper_fixtures.faster_whisper_tiny
reference_transcripts = whisper_fixtures.reference_transcripts
speech_clips = whisper_fixtures.speech_clips
tiny_ct2_dir = whisper_fixtures.tiny_ct2_dir
tiny_hf_dir = whisper_fixtures.tiny_hf_dir
tiny_model = whisper_fixtures.tiny_model

DTYPE_IDS = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.int32): 3,
             np.dtype(np.float16): 4}


def _string(s: str) -> bytes:
    raw = s.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def write_model_bin(path, variables: dict, aliases: dict | None = None, version=6, spec="WhisperSpec",
                    bf16: frozenset = frozenset()):
    """An independent writer of the documented layout (see the ct2-whisper-format note)."""
    out = struct.pack("<I", version) + _string(spec) + struct.pack("<I", 3) + struct.pack("<I", len(variables))
    for name, arr in variables.items():
        arr = np.asarray(arr)
        if name in bf16:
            dtype_id, raw = 5, (arr.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16).tobytes()
        else:
            dtype_id, raw = DTYPE_IDS[arr.dtype], arr.tobytes()
        out += _string(name) + struct.pack("<B", arr.ndim) + b"".join(struct.pack("<I", d) for d in arr.shape)
        out += struct.pack("<B", dtype_id) + struct.pack("<I", len(raw)) + raw
    aliases = aliases or {}
    out += struct.pack("<I", len(aliases)) + b"".join(_string(a) + _string(t) for a, t in aliases.items())
    path.write_bytes(out)
    return path


# -- the parser on small hand-written files ------------------------------------------------------

def test_parser_reads_every_dtype_scalars_and_aliases(tmp_path):
    w32 = np.arange(6, dtype=np.float32).reshape(2, 3)
    w16 = np.array([[0.5, -1.25]], dtype=np.float16)
    bf = np.array([1.5, -2.0, 0.15625], dtype=np.float32)  # exactly representable in bfloat16
    path = write_model_bin(tmp_path / "model.bin", {
        "a/weight": w32, "b/weight": w16, "c/weight": bf, "decoder/num_heads": np.array(6, dtype=np.int16),
        "flag": np.array(1, dtype=np.int8),
    }, aliases={"decoder/projection/weight": "a/weight"}, bf16=frozenset({"c/weight"}))
    m = read_model_bin(path)
    assert m.spec == "WhisperSpec" and m.revision == 3
    np.testing.assert_array_equal(m.get("a/weight"), w32)
    assert m.get("b/weight").dtype == np.float16
    np.testing.assert_array_equal(m.get("b/weight"), w16)
    np.testing.assert_array_equal(m.get("c/weight"), bf)
    assert m.scalar("decoder/num_heads") == 6
    np.testing.assert_array_equal(m.get("decoder/projection/weight"), w32)


def test_parser_dequantizes_int8_and_int16_with_per_row_scales(tmp_path):
    w = np.array([[0.5, -1.0, 0.25], [2.0, 0.0, -4.0]], dtype=np.float32)
    scale8 = (127.0 / np.abs(w).max(axis=1)).astype(np.float32)
    q8 = np.round(w * scale8[:, None]).astype(np.int8)
    scale16 = np.array(1000.0, dtype=np.float32)  # one scale for the whole matrix
    q16 = np.round(w * 1000).astype(np.int16)
    path = write_model_bin(tmp_path / "model.bin", {
        "q8/weight": q8, "q8/weight_scale": scale8, "q16/weight": q16, "q16/weight_scale": scale16})
    m = read_model_bin(path)
    assert set(m.variables) == {"q8/weight", "q16/weight"}
    np.testing.assert_allclose(m.get("q8/weight"), w, atol=4.0 / 127)
    np.testing.assert_allclose(m.get("q16/weight"), w, atol=1e-3)
    assert m.get("q8/weight").dtype == np.float32


def test_parser_rejects_other_versions_truncation_and_unknown_names(tmp_path):
    with pytest.raises(Ct2FormatError, match="binary version 5"):
        read_model_bin(write_model_bin(tmp_path / "v5.bin", {"x": np.zeros(2, np.float32)}, version=5))
    good = write_model_bin(tmp_path / "ok.bin", {"x": np.zeros(64, np.float32)})
    (tmp_path / "cut.bin").write_bytes(good.read_bytes()[:60])
    with pytest.raises(Ct2FormatError, match="truncated"):
        read_model_bin(tmp_path / "cut.bin")
    with pytest.raises(Ct2FormatError, match="no variable 'y'"):
        read_model_bin(good).get("y")


# -- the name map, on a small random Whisper --------------------------------------------------------

def ct2_variables_of(model) -> dict:
    """The inverse of the import, written from the note's table: transformers -> CTranslate2 names."""
    sd = {k: v.detach().numpy().astype(np.float16) for k, v in model.state_dict().items()}
    d_model = model.config.d_model
    zeros = np.zeros(d_model, dtype=np.float16)
    out = {}

    def lin(dst, src):
        out[f"{dst}/weight"] = sd[f"{src}.weight"]
        if f"{src}.bias" in sd:
            out[f"{dst}/bias"] = sd[f"{src}.bias"]

    def ln(dst, src):
        out[f"{dst}/gamma"], out[f"{dst}/beta"] = sd[f"{src}.weight"], sd[f"{src}.bias"]

    def attn_common(dst, src):
        lin(f"{dst}/self_attention/linear_1", f"{src}.self_attn.out_proj")
        ln(f"{dst}/self_attention/layer_norm", f"{src}.self_attn_layer_norm")
        lin(f"{dst}/ffn/linear_0", f"{src}.fc1")
        lin(f"{dst}/ffn/linear_1", f"{src}.fc2")
        ln(f"{dst}/ffn/layer_norm", f"{src}.final_layer_norm")
        a = f"{src}.self_attn"
        out[f"{dst}/self_attention/linear_0/weight"] = np.concatenate(
            [sd[f"{a}.q_proj.weight"], sd[f"{a}.k_proj.weight"], sd[f"{a}.v_proj.weight"]])
        out[f"{dst}/self_attention/linear_0/bias"] = np.concatenate(
            [sd[f"{a}.q_proj.bias"], zeros + 0.5, sd[f"{a}.v_proj.bias"]])  # a key bias softmax cancels

    for i in (1, 2):
        lin(f"encoder/conv{i}", f"model.encoder.conv{i}")
    out["encoder/position_encodings/encodings"] = sd["model.encoder.embed_positions.weight"]
    for i in range(model.config.encoder_layers):
        attn_common(f"encoder/layer_{i}", f"model.encoder.layers.{i}")
    ln("encoder/layer_norm", "model.encoder.layer_norm")
    out["decoder/embeddings/weight"] = sd["model.decoder.embed_tokens.weight"]
    out["decoder/position_encodings/encodings"] = sd["model.decoder.embed_positions.weight"]
    for i in range(model.config.decoder_layers):
        dst, src = f"decoder/layer_{i}", f"model.decoder.layers.{i}"
        attn_common(dst, src)
        c = f"{src}.encoder_attn"
        lin(f"{dst}/attention/linear_0", f"{c}.q_proj")
        out[f"{dst}/attention/linear_1/weight"] = np.concatenate([sd[f"{c}.k_proj.weight"], sd[f"{c}.v_proj.weight"]])
        out[f"{dst}/attention/linear_1/bias"] = np.concatenate([zeros, sd[f"{c}.v_proj.bias"]])
        lin(f"{dst}/attention/linear_2", f"{c}.out_proj")
        ln(f"{dst}/attention/layer_norm", f"{src}.encoder_attn_layer_norm")
    ln("decoder/layer_norm", "model.decoder.layer_norm")
    out["encoder/num_heads"] = np.array(model.config.encoder_attention_heads, dtype=np.int16)
    out["decoder/num_heads"] = np.array(model.config.decoder_attention_heads, dtype=np.int16)
    return out


def test_import_of_a_small_random_whisper_reproduces_its_weights_and_logits(tmp_path, tiny_ct2_dir):
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(0)
    config = WhisperConfig(vocab_size=51864, num_mel_bins=80, d_model=32, encoder_layers=2, decoder_layers=3,
                           encoder_attention_heads=4, decoder_attention_heads=2, encoder_ffn_dim=64,
                           decoder_ffn_dim=48, max_source_positions=1500, max_target_positions=64)
    original = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():  # store as float16, like the bundled model: compare against the rounded weights
        for p in original.parameters():
            p.copy_(p.half().float())
    src = tmp_path / "ct2"
    src.mkdir()
    write_model_bin(src / "model.bin", ct2_variables_of(original),
                    aliases={"decoder/projection/weight": "decoder/embeddings/weight"})
    shutil.copyfile(tiny_ct2_dir / "tokenizer.json", src / "tokenizer.json")
    shutil.copyfile(tiny_ct2_dir / "config.json", src / "config.json")

    out = import_ct2_model(src, tmp_path / "hf")
    imported = WhisperForConditionalGeneration.from_pretrained(out).eval()
    assert imported.config.decoder_layers == 3 and imported.config.encoder_ffn_dim == 64
    assert imported.config.decoder_attention_heads == 2 and imported.config.max_target_positions == 64
    assert imported.proj_out.weight.data_ptr() == imported.model.decoder.embed_tokens.weight.data_ptr()
    for name, value in original.state_dict().items():
        torch.testing.assert_close(imported.state_dict()[name], value, msg=name)
    feats = torch.randn(1, 80, 3000)
    tokens = torch.tensor([[50257, 50362, 464, 2068]])
    with torch.no_grad():
        torch.testing.assert_close(imported(input_features=feats, decoder_input_ids=tokens).logits,
                                   original(input_features=feats, decoder_input_ids=tokens).logits,
                                   atol=1e-4, rtol=1e-4)


def test_import_refuses_a_directory_without_model_bin(tmp_path):
    with pytest.raises(Ct2FormatError, match="model.bin is missing"):
        import_ct2_model(tmp_path, tmp_path / "out")


def test_multilingual_vocabulary_gets_language_and_task_settings(tiny_ct2_dir):
    """A 51865-token vocabulary is multilingual: ids shift by one and <|en|> etc. become languages."""
    tok = json.loads((tiny_ct2_dir / "tokenizer.json").read_text())
    for t in tok["added_tokens"]:
        t["id"] += 1
    m = Ct2Model("WhisperSpec", 3, {
        "encoder/conv1/weight": np.zeros((8, 80, 3), np.float32),
        "decoder/embeddings/weight": np.zeros((51865, 8), np.float32),
        "encoder/position_encodings/encodings": np.zeros((1500, 8), np.float32),
        "decoder/position_encodings/encodings": np.zeros((448, 8), np.float32),
        "encoder/num_heads": np.array(2), "decoder/num_heads": np.array(2),
        "encoder/layer_0/ffn/linear_0/weight": np.zeros((16, 8), np.float32),
        "decoder/layer_0/ffn/linear_0/weight": np.zeros((16, 8), np.float32),
    })
    config, gen = build_configs(m, {}, tok, language="de")
    assert gen.is_multilingual is True
    assert gen.lang_to_id["<|en|>"] == 50259 and len(gen.lang_to_id) == 99
    assert gen.task_to_id == {"transcribe": 50359, "translate": 50358}
    assert (gen.language, gen.task) == ("de", "transcribe")
    assert config.decoder_start_token_id == 50258 and config.pad_token_id == 50257


# -- the real bundled tiny.en ------------------------------------------------------------------

def test_imported_tiny_en_has_the_right_config_tokenizer_and_generation_settings(tiny_model, tiny_ct2_dir):
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_suppressed_tokens
    from tokenizers import Tokenizer as HFTokenizer

    model, processor = tiny_model
    c, g, tok = model.config, model.generation_config, processor.tokenizer
    assert (c.d_model, c.encoder_layers, c.decoder_layers, c.vocab_size, c.num_mel_bins) == (384, 4, 4, 51864, 80)
    assert tok.pad_token == "<|endoftext|>" and tok.pad_token_id == 50256 == c.pad_token_id
    assert len(tok) == c.vocab_size  # timestamp tokens restored
    assert tok.convert_ids_to_tokens([50363, 51863]) == ["<|0.00|>", "<|30.00|>"]
    assert g.is_multilingual is False and getattr(g, "language", None) is None
    assert tok("Hello").input_ids[:2] == [50257, 50362]  # <|startoftranscript|><|notimestamps|>, no language
    fw_tok = Tokenizer(HFTokenizer.from_file(str(tiny_ct2_dir / "tokenizer.json")), False)
    assert set(g.suppress_tokens) == set(get_suppressed_tokens(fw_tok, [-1]))
    assert g.begin_suppress_tokens == [220, 50256]
    assert processor.feature_extractor.feature_size == 80
    assert tok.english_spelling_normalizer["colour"] == "color"


@pytest.mark.slow
def test_imported_tiny_en_decodes_exactly_like_faster_whisper(tiny_model, speech_clips, reference_transcripts):
    model, processor = tiny_model
    feats = torch.from_numpy(log_mel_batch([s for _, s in speech_clips]))
    with torch.inference_mode():
        ids = model.generate(input_features=feats, num_beams=1, do_sample=False)
    ours = processor.batch_decode(ids, skip_special_tokens=True)
    assert len(ours) == len(reference_transcripts) == 8
    assert ours == reference_transcripts
    assert sum(bool(t.strip()) for t in ours) == 8  # real speech, real words


def test_a_multilingual_model_imports_with_language_and_task_prefix(tmp_path, tiny_ct2_dir):
    """End to end on a small random multilingual Whisper: the prefix is <|sot|><|de|><|transcribe|>
    <|notimestamps|>, and evaluate.transcribe decodes with the language and task."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from training_jobs.pipeline.evaluate import transcribe
    from training_jobs.pipeline.models import load_model_and_processor

    torch.manual_seed(0)
    config = WhisperConfig(vocab_size=51865, num_mel_bins=80, d_model=16, encoder_layers=1, decoder_layers=1,
                           encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                           decoder_ffn_dim=32, max_source_positions=1500, max_target_positions=16)
    src = tmp_path / "ct2"
    src.mkdir()
    write_model_bin(src / "model.bin", ct2_variables_of(WhisperForConditionalGeneration(config)))
    tok = json.loads((tiny_ct2_dir / "tokenizer.json").read_text())
    for t in tok["added_tokens"]:  # multilingual ids sit one higher than English-only ones
        t["id"] += 1
    vocab = tok["model"]["vocab"]  # and 50256 is an ordinary BPE token there, not <|endoftext|>
    vocab["plainword"] = vocab.pop("<|endoftext|>")
    (src / "tokenizer.json").write_text(json.dumps(tok))
    out = import_ct2_model(src, tmp_path / "hf", language="de")
    model, processor = load_model_and_processor(out)
    g = model.generation_config
    assert (g.is_multilingual, g.language, g.task) == (True, "de", "transcribe")
    tok = processor.tokenizer
    assert tok.convert_tokens_to_ids("<|de|>") == 50261
    assert tok.eos_token_id == tok.pad_token_id == model.config.pad_token_id == 50257
    assert tok("hallo").input_ids[:4] == [50258, 50261, 50359, 50363]
    assert len(tok) == 51865
    texts = transcribe(model, processor, [np.zeros(8000, np.float32)], language="de")
    assert len(texts) == 1 and isinstance(texts[0], str)
