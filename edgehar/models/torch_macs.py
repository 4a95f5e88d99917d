"""MACs of a PyTorch model, counted the way `torch.utils.flop_counter` counts (flops / 2).

This is the reference the graph counts (macs.py) are checked against: a student's `.tflite`
and `.onnx` must agree with `torch_macs(student, example)` within 2%.

`FlopCounterMode` has no formula for two fused CPU kernels that eval-mode attention takes,
`aten._scaled_dot_product_flash_attention_for_cpu` (F.scaled_dot_product_attention) and
`aten._native_multi_head_attention` (nn.MultiheadAttention's fast path), so it would silently
count attention as zero. We register formulas for both, and switch off the transformer
fast path while counting (`nn.TransformerEncoderLayer` in eval mode otherwise runs a whole layer
as one fused `aten._transformer_encoder_layer_fwd`, which the counter also cannot see).
"""

from __future__ import annotations


def _sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _native_mha_flops(query_shape, key_shape, value_shape, embed_dim, num_heads,
                      *args, out_shape=None, **kwargs) -> int:
    """q/k/v input projections, QK^T and AV over all heads, output projection."""
    *batch, lq, e = query_shape
    lk = key_shape[-2]
    b = 1
    for d in batch:
        b *= d
    projections = b * (lq * e * e + 2 * lk * e * e + lq * e * e)
    attention = 2 * b * lq * lk * e  # heads * head_dim == embed_dim
    return 2 * (projections + attention)


def torch_macs(model, example, *, training: bool = False) -> int:
    """MACs of one forward pass of `model` on `example` (a tensor or a tuple of tensors)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    args = example if isinstance(example, tuple) else (example,)
    custom = {}
    aten = torch.ops.aten
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        custom[aten._scaled_dot_product_flash_attention_for_cpu] = _sdpa_flops
    if hasattr(aten, "_native_multi_head_attention"):
        custom[aten._native_multi_head_attention] = _native_mha_flops
    was_training = model.training
    fastpath = torch.backends.mha.get_fastpath_enabled()
    model.train(training)
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=custom) as counter:
            model(*args)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        model.train(was_training)
    return int(counter.get_total_flops()) // 2
