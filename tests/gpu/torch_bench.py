"""PyTorch's side of the GPU benchmarks (tests/gpu/run.sh): the cases of gpu_bench.cpp, same
shapes, names and rotation over sets of tensors, timed with CUDA events (mean per call after
warm-up).

Output, one line per case: RESULT <name> <milliseconds> <rate> <unit>
"""
import itertools
import math

import torch
import torch.nn.functional as F


def time_ms(call):
    for _ in range(3):
        call()
    torch.cuda.synchronize()
    iterations = 1
    while True:
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iterations):
            call()
        stop.record()
        torch.cuda.synchronize()
        ms = start.elapsed_time(stop)
        if ms > 500 or iterations >= 1 << 16:
            return ms / iterations
        iterations *= 10 if ms < 50 else 2


def report(name, ms, rate, unit):
    print(f"RESULT {name} {ms:.6f} {rate:.3f} {unit}", flush=True)


def main():
    device = torch.device("cuda")
    print(f"DEVICE {torch.cuda.get_device_name(device)}")
    layer_norm(device)

    n = 4096
    operations = 2.0 * n * n * n
    a8 = torch.full((n, n), 3, dtype=torch.int8, device=device)
    b8 = torch.full((n, n), -2, dtype=torch.int8, device=device)
    ms = time_ms(lambda: torch._int_mm(a8, b8.t()))
    report("gemm_int8_i32_4096", ms, operations / (ms * 1e-3) / 1e12, "TOPS")
    # The constants of gpu_bench.cpp: constant operands draw less power than random ones, and on
    # this GPU that alone moves a product's speed by about a tenth.
    a16 = torch.full((n, n), 0.5, device=device, dtype=torch.bfloat16)
    b16 = torch.full((n, n), -0.25, device=device, dtype=torch.bfloat16)
    ms = time_ms(lambda: a16 @ b16.t())
    report("gemm_bf16_4096", ms, operations / (ms * 1e-3) / 1e12, "TFLOP/s")
    a32 = torch.rand(n, n, device=device)
    b32 = torch.rand(n, n, device=device)
    torch.backends.cuda.matmul.allow_tf32 = False
    ms = time_ms(lambda: a32 @ b32.t())
    report("gemm_f32_4096", ms, operations / (ms * 1e-3) / 1e12, "TFLOP/s")
    torch.backends.cuda.matmul.allow_tf32 = True
    ms = time_ms(lambda: a32 @ b32.t())
    report("gemm_tf32_4096", ms, operations / (ms * 1e-3) / 1e12, "TFLOP/s")
    torch.backends.cuda.matmul.allow_tf32 = False

    attention(device)


def rotation_sets(device, call_bytes):
    """As in gpu_bench.cpp: enough sets of tensors that, between two uses of a set, the calls on
    the others move at least twice the L2 cache, so that every call reads memory."""
    l2_bytes = torch.cuda.get_device_properties(device).L2_cache_size
    return 1 + math.ceil(2.0 * l2_bytes / call_bytes)


def layer_norm(device):
    """F.layer_norm at [4096, 1024] f32 and a copy of the same bytes, rotating over sets of
    tensors as gpu_bench.cpp does; the backward kernel itself, from the saved mean and rstd."""
    n_rows, channels = 4096, 1024
    size = n_rows * channels * 4
    sets = []
    for _ in range(rotation_sets(device, 2 * size)):
        x = torch.rand(n_rows, channels, device=device) * 2 - 1
        sets.append({"x": x, "residual": torch.rand_like(x) * 2 - 1, "y": torch.empty_like(x), "dy": torch.rand_like(x)})
    print(f"ROTATION layernorm and copy: {len(sets)} sets of tensors")
    gamma = torch.rand(channels, device=device) * 2 - 1
    beta = torch.rand(channels, device=device) * 2 - 1
    calls = itertools.cycle(sets)

    def rotating(call):
        """A step that calls `call` on the next set in turn."""
        return lambda: call(next(calls))

    ms = time_ms(rotating(lambda t: t["y"].copy_(t["x"])))
    report("copy_f32_4096x1024", ms, 2 * size / (ms * 1e-3) / 1e12, "TB/s")
    ms = time_ms(rotating(lambda t: F.layer_norm(t["x"], (channels,), gamma, beta, 1e-5)))
    report("layernorm_forward_4096x1024", ms, 2 * size / (ms * 1e-3) / 1e12, "TB/s")
    # PyTorch has no fused residual LayerNorm: the add, then the norm (as a model would write it).
    ms = time_ms(rotating(lambda t: F.layer_norm(t["x"] + t["residual"], (channels,), gamma, beta, 1e-5)))
    report("layernorm_residual_forward_4096x1024", ms, 4 * size / (ms * 1e-3) / 1e12, "TB/s")

    # The backward kernels themselves (dx, dgamma, dbeta from the saved mean and rstd), as ours are
    # timed: through autograd.grad, the engine's host time per call would exceed these ~20 us kernels.
    for t in sets:
        _, t["mean"], t["rstd"] = torch.ops.aten.native_layer_norm(t["x"], [channels], gamma, beta, 1e-5)
    ms = time_ms(rotating(lambda t: torch.ops.aten.native_layer_norm_backward(
        t["dy"], t["x"], [channels], t["mean"], t["rstd"], gamma, beta, [True, True, True])))
    report("layernorm_backward_4096x1024", ms, 3 * size / (ms * 1e-3) / 1e12, "TB/s")


def attention(device):
    """scaled_dot_product_attention with its default backend on [B, T, H, D] tensors viewed as
    [B, H, T, D] (the layout of a fused projection, as in gpu_bench.cpp), bf16, T = 4096."""
    for batch, heads, head_dim in ((2, 16, 128), (2, 32, 64)):
        tokens = 4096
        shape = (batch, tokens, heads, head_dim)
        q, k, v, dout = (torch.rand(shape, device=device, dtype=torch.bfloat16) * 2 - 1 for _ in range(4))
        q, k, v = (t.transpose(1, 2).requires_grad_(True) for t in (q, k, v))
        dout = dout.transpose(1, 2)
        for causal in (False, True):
            forward_flops = 4.0 * batch * heads * tokens * tokens * head_dim / (2.0 if causal else 1.0)
            name = f"attention_bf16_b{batch}_h{heads}_d{head_dim}_t{tokens}" + ("_causal" if causal else "")
            with torch.no_grad():
                ms = time_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))
            report(f"{name}_forward", ms, forward_flops / (ms * 1e-3) / 1e12, "TFLOP/s")
            out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            ms = time_ms(lambda: torch.autograd.grad(out, (q, k, v), dout, retain_graph=True))
            report(f"{name}_backward", ms, 2.5 * forward_flops / (ms * 1e-3) / 1e12, "TFLOP/s")

    batch, heads, kv_heads, head_dim, cached = 4, 32, 8, 128, 8192
    q = (torch.rand(batch, 1, heads, head_dim, device=device, dtype=torch.bfloat16) * 2 - 1).transpose(1, 2)
    cache_bytes = 2.0 * batch * cached * kv_heads * head_dim * 2
    caches = itertools.cycle([
        [(torch.rand(batch, cached, kv_heads, head_dim, device=device, dtype=torch.bfloat16) * 2 - 1).transpose(1, 2)
         for _ in range(2)]
        for _ in range(rotation_sets(device, cache_bytes))])
    with torch.no_grad():
        ms = time_ms(lambda: F.scaled_dot_product_attention(q, *next(caches), enable_gqa=True))
    report("attention_bf16_decode_b4_h32_kv8_d128_t8192", ms, cache_bytes / (ms * 1e-3) / 1e12, "TB/s")


if __name__ == "__main__":
    main()
