"""Will this training run fit? A rough, conservative estimate made before loading anything big.

Failing after ten minutes of feature extraction with a CUDA OOM teaches nobody anything; failing
at once with "needs ~9.1 GB, 6.0 GB free: try batch size 6" does. The estimate counts:

- weights in fp32 (accelerate's mixed precision keeps fp32 master weights and autocasts),
- gradients and AdamW's two moments for the trainable parameters only,
- activations: Whisper's encoder always sees 1500 positions, so they dominate; per layer we use
  the transformer estimate s*b*h*34 bytes at 16 bit (Korthikanti et al. 2022, with fused attention),
  doubled for fp32, reduced to the layer inputs with gradient checkpointing, and dropped for the
  encoder when it is frozen (nothing there needs a backward pass),
- a fixed allowance for the CUDA context / allocator slack, and 20% on top.
"""
from __future__ import annotations

ENCODER_POSITIONS = 1500
DECODER_POSITIONS = 128  # typical label length of a short clip; labels are padded per batch only
CONTEXT_BYTES = 600 * 2**20
SAFETY = 1.2


class InsufficientMemoryError(RuntimeError):
    """The run would not fit the device; the message says what to change."""

    def __init__(self, message: str, *, needed: int, available: int, suggested_batch_size: int | None):
        super().__init__(message)
        self.needed = needed
        self.available = available
        self.suggested_batch_size = suggested_batch_size


def _get(cfg, name, default=None):
    return cfg.get(name, default) if isinstance(cfg, dict) else getattr(cfg, name, default)


def count_parameters(model_config) -> tuple[int, int, int]:
    """(total, encoder, decoder) parameter counts computed from the config's shapes alone."""
    d = _get(model_config, "d_model")
    enc_layers = _get(model_config, "encoder_layers")
    dec_layers = _get(model_config, "decoder_layers")
    enc_ffn = _get(model_config, "encoder_ffn_dim", 4 * d)
    dec_ffn = _get(model_config, "decoder_ffn_dim", 4 * d)
    vocab = _get(model_config, "vocab_size")
    n_mels = _get(model_config, "num_mel_bins", 80)
    src_pos = _get(model_config, "max_source_positions", ENCODER_POSITIONS)
    tgt_pos = _get(model_config, "max_target_positions", 448)
    attn = 4 * d * d + 3 * d  # q, k, v, out (k without bias)
    ffn = lambda f: 2 * d * f + f + d  # noqa: E731
    norms = 2 * d
    enc_layer = attn + ffn(enc_ffn) + 2 * norms
    dec_layer = 2 * attn + ffn(dec_ffn) + 3 * norms
    conv = n_mels * d * 3 + d + d * d * 3 + d
    encoder = conv + src_pos * d + enc_layers * enc_layer + norms
    decoder = vocab * d + tgt_pos * d + dec_layers * dec_layer + norms  # proj_out is tied
    return encoder + decoder, encoder, decoder


def _lora_parameters(model_config, rank: int) -> int:
    d = _get(model_config, "d_model")
    layers = _get(model_config, "encoder_layers") + 2 * _get(model_config, "decoder_layers")
    return layers * 2 * (2 * d * rank)  # q_proj and v_proj of every attention block


def _layer_activations(positions: int, batch: int, d: int, heads: int, bytes_scale: float, checkpointing: bool) -> float:
    if checkpointing:
        return positions * batch * d * 2 * bytes_scale  # only the layer input is kept
    # Fused SDPA attention (transformers' default) keeps no (heads x s x s) score matrix, so the
    # 5*a*s/h term of the eager estimate is left out.
    return positions * batch * d * 34 * bytes_scale


def estimate_training_memory(
    model_config,
    batch_size: int,
    precision: str = "fp32",
    lora: bool = False,
    freeze_encoder: bool = False,
    gradient_checkpointing: bool = False,
    *,
    lora_rank: int = 16,
) -> int:
    """Peak bytes a training step needs (see the module docstring for what is counted)."""
    total, encoder, decoder = count_parameters(model_config)
    if lora:
        trainable = _lora_parameters(model_config, lora_rank)
    elif freeze_encoder:
        trainable = decoder
    else:
        trainable = total
    d = _get(model_config, "d_model")
    bytes_scale = 1.0 if precision in ("fp16", "bf16") else 2.0  # "auto" counts as fp32: conservative
    enc_layers, dec_layers = _get(model_config, "encoder_layers"), _get(model_config, "decoder_layers")
    enc_heads = _get(model_config, "encoder_attention_heads", 8)
    dec_heads = _get(model_config, "decoder_attention_heads", 8)
    vocab = _get(model_config, "vocab_size")
    n_mels = _get(model_config, "num_mel_bins", 80)

    weights = total * 4
    optimizer = trainable * (4 + 8)
    features = batch_size * n_mels * 3000 * 4
    if freeze_encoder:
        encoder_acts = ENCODER_POSITIONS * batch_size * d * 4 * 2  # its output only (+ a working layer)
    else:
        per_layer = _layer_activations(ENCODER_POSITIONS, batch_size, d, enc_heads, bytes_scale, gradient_checkpointing)
        encoder_acts = enc_layers * per_layer + 3000 * batch_size * d * 4 * 2  # + conv front end
    decoder_acts = dec_layers * _layer_activations(DECODER_POSITIONS, batch_size, d, dec_heads, bytes_scale,
                                                    gradient_checkpointing)
    cross_kv = dec_layers * 2 * ENCODER_POSITIONS * batch_size * d * 4
    logits = batch_size * DECODER_POSITIONS * vocab * 4 * 3  # logits, softmax, grad
    # One layer is recomputed at a time during backward with checkpointing.
    recompute = _layer_activations(ENCODER_POSITIONS, batch_size, d, enc_heads, bytes_scale, False) if (
        gradient_checkpointing and not freeze_encoder) else 0
    need = weights + optimizer + features + encoder_acts + decoder_acts + cross_kv + logits + recompute
    return int(need * SAFETY + CONTEXT_BYTES)


def available_memory(device: str) -> int:
    """Free bytes on the device: CUDA's free memory, or the RAM the OS says is available."""
    if str(device).startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def _gb(n: int) -> str:
    return f"{n / 2**30:.1f} GB"


def check_fits(
    model_config,
    batch_size: int,
    precision: str,
    lora: bool,
    freeze_encoder: bool,
    gradient_checkpointing: bool,
    device: str = "cpu",
    *,
    lora_rank: int = 16,
    available: int | None = None,
) -> int:
    """Return the estimate in bytes, or raise InsufficientMemoryError with a batch size that fits."""
    available = available_memory(device) if available is None else available

    def need(b: int) -> int:
        return estimate_training_memory(model_config, b, precision, lora, freeze_encoder, gradient_checkpointing,
                                        lora_rank=lora_rank)

    needed = need(batch_size)
    if needed <= available:
        return needed
    fitting = [b for b in range(batch_size - 1, 0, -1) if need(b) <= available]
    suggested = fitting[0] if fitting else None
    where = "GPU" if str(device).startswith("cuda") else "RAM"
    if suggested:
        hint = (f"try --batch-size {suggested} with --grad-accum {-(-batch_size // suggested)} "
                "to keep the effective batch")
    else:
        hint = "even batch size 1 does not fit: try --gradient-checkpointing, --freeze-encoder, --lora or a smaller model"
    raise InsufficientMemoryError(
        f"training needs about {_gb(needed)} but only {_gb(available)} of {where} is free on {device}; {hint}",
        needed=needed, available=available, suggested_batch_size=suggested,
    )
