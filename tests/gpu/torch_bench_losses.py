"""PyTorch's side of the softmax-loss benchmarks (tests/gpu/run.sh): the full cross_entropy on
materialized logits at the shape of gpu_bench_losses.cpp (N = 4096 rows, V = 100000 classes,
D = 512), forward + backward, with logits in bf16, in f32, and in f32 with TF32 matmuls allowed
(label tf32, beside our allow_tf32 step), timed with CUDA events (mean per
step after warm-up), and the peak memory of a step (torch.cuda.max_memory_allocated over the
memory held before it):
- torch_ce_logits_<dtype>: cross_entropy on given [N, V] logits, forward and backward (dlogits),
  the literal "full cross_entropy on the materialized logits";
- torch_ce_step_<dtype>: the whole step our fused kernel replaces: logits = hidden W^T + b in
  <dtype>, cross_entropy, backward to hidden, W and b.

Usage: torch_bench_losses.py [OURS], OURS being gpu_bench_losses's output: then also prints our
sampled softmax step's speed-up over each PyTorch case (goal: at least 10x) and our fused step's
time and memory beside PyTorch's full step.

Output: RESULT <name> <milliseconds> <rate> <unit>, MEMORY <name> <bytes> <input bytes>.
"""
import sys

import torch
import torch.nn.functional as F

import torch_bench
from torch_bench import time_ms  # the same timing as the other benchmarks

N, V, D = 4096, 100000, 512


def peak_bytes(call, parameters):
    """Peak bytes allocated during one call beyond what was allocated before it, the parameters'
    gradients released first: the step allocates them anew, and ours counts its gradients too."""
    for parameter in parameters:
        parameter.grad = None
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    call()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before, before


# What this run measured, for the comparison with ours: name -> milliseconds, name -> bytes.
TIMES, MEMORY = {}, {}


def report(name, ms, rate, unit):
    TIMES[name] = ms
    torch_bench.report(name, ms, rate, unit)


def report_memory(name, extra, inputs):
    MEMORY[name] = extra
    print(f"MEMORY {name} {extra} {inputs}", flush=True)


def bench(device, dtype, label):
    generator = torch.Generator(device=device).manual_seed(1)
    targets = torch.randint(0, V, (N,), device=device, generator=generator)

    logits = torch.randn(N, V, device=device, dtype=dtype, generator=generator).requires_grad_()

    def logits_step():
        logits.grad = None
        F.cross_entropy(logits, targets).backward()

    ms = time_ms(logits_step)
    report(f"torch_ce_logits_{label}", ms, N * V / (ms * 1e-3) / 1e9, "Glogit/s")
    report_memory(f"torch_ce_logits_{label}", *peak_bytes(logits_step, (logits,)))
    del logits

    hidden = torch.randn(N, D, device=device, dtype=dtype, generator=generator).requires_grad_()
    weight = (0.05 * torch.randn(V, D, device=device, dtype=dtype, generator=generator)).requires_grad_()
    bias = (0.05 * torch.randn(V, device=device, dtype=dtype, generator=generator)).requires_grad_()

    def full_step():
        for parameter in (hidden, weight, bias):
            parameter.grad = None
        F.cross_entropy(F.linear(hidden, weight, bias), targets).backward()

    ms = time_ms(full_step)
    report(f"torch_ce_step_{label}", ms, 6.0 * N * V * D / (ms * 1e-3) / 1e12, "TFLOP/s")
    report_memory(f"torch_ce_step_{label}", *peak_bytes(full_step, (hidden, weight, bias)))


def load(path):
    times, memory = {}, {}
    with open(path) as lines:
        for line in lines:
            fields = line.split()
            if len(fields) == 5 and fields[0] == "RESULT":
                times[fields[1]] = float(fields[2])
            elif len(fields) == 4 and fields[0] == "MEMORY":
                memory[fields[1]] = int(fields[2])
    return times, memory


def compare(ours_path):
    ours, our_memory = load(ours_path)
    print()
    sampled = ours.get("sampled_softmax_step")
    for name, ms in TIMES.items():
        if sampled:
            print(f"sampled_softmax_step vs {name}: {ms / sampled:.1f}x faster (goal: 10x)")
    for step, labels in (("fused_ce_step", ("f32", "tf32", "bf16")), ("fused_ce_step_tf32", ("tf32", "bf16"))):
        fused, fused_memory = ours.get(step), our_memory.get(step)
        for label in labels:
            name = f"torch_ce_step_{label}"
            if fused and name in TIMES and fused_memory and name in MEMORY:
                print(f"{step} vs {name}: time ratio {TIMES[name] / fused:.2f} (above 1: ours faster), "
                      f"step memory {fused_memory / 2**20:.0f} MiB vs {MEMORY[name] / 2**20:.0f} MiB "
                      f"({MEMORY[name] / fused_memory:.1f}x less)")


def main():
    device = torch.device("cuda")
    print(f"DEVICE {torch.cuda.get_device_name(device)}")
    for dtype, label, tf32 in ((torch.bfloat16, "bf16", False), (torch.float32, "f32", False), (torch.float32, "tf32", True)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        bench(device, dtype, label)
        torch.cuda.empty_cache()
    torch.backends.cuda.matmul.allow_tf32 = False
    if len(sys.argv) > 1:
        compare(sys.argv[1])


if __name__ == "__main__":
    main()
