"""Sets NativeEngine's GPU benchmark lines beside PyTorch's (tests/gpu/run.sh).

Usage: compare.py OURS THEIRS [LABEL LABEL], two files of "RESULT <name> <ms> <rate> <unit>"
lines. Prints one row per case name found in either, with the ratio THEIRS time / OURS time
(above 1: ours is faster). Against PyTorch (no labels), it then sets each LayerNorm case against
issue 5's goal (2.5 TB/s, at least PyTorch's speed) and as a share of the copy of the same bytes
measured in the same run, the int8 GEMM's speed-up over our and PyTorch's bf16 GEMM at 4096^3,
and each attention case against the goals of issue 6 (forward at least PyTorch's speed, backward
at least 0.8x; our backward with atomic dq, "_backward_atomic", and the deterministic one both
against PyTorch's). With labels (two builds of ours, run.sh's tune stage), only the table.
"""
import sys


def load(path):
    results = {}
    with open(path) as lines:
        for line in lines:
            fields = line.split()
            if len(fields) == 5 and fields[0] == "RESULT":
                results[fields[1]] = (float(fields[2]), float(fields[3]), fields[4])
    return results


def main():
    ours, theirs = load(sys.argv[1]), load(sys.argv[2])
    labels = sys.argv[3:5] if len(sys.argv) >= 5 else ["ours", "torch"]
    width = max(12, *(len(label) + 3 for label in labels))
    print(f"{'case':50} {labels[0] + ' ms':>{width}} {labels[1] + ' ms':>{width}} {labels[0]:>16} {labels[1]:>16} {'ratio':>7}")
    for name in list(ours) + [n for n in theirs if n not in ours]:
        o, t = ours.get(name), theirs.get(name)
        ratio = f"{t[0] / o[0]:7.2f}" if o and t else "      -"
        cell = lambda r, i: f"{r[i]:{width}.4f}" if r else f"{'-':>{width}}"
        rate = lambda r: f"{r[1]:9.3f} {r[2]:>6}" if r else f"{'-':>16}"
        print(f"{name:50} {cell(o, 0)} {cell(t, 0)} {rate(o)} {rate(t)} {ratio}")
    if len(sys.argv) >= 5:
        return
    copy = ours.get("copy_f32_4096x1024")
    for name, (ms, rate, unit) in ours.items():
        if not name.startswith("layernorm_") or unit != "TB/s":
            continue
        # Issue 5's goal: 2.5 TB/s or more, and at least PyTorch's speed.
        verdict = "meets" if rate >= 2.5 and (name not in theirs or theirs[name][0] >= ms) else "misses"
        of_copy = f", {rate / copy[1]:.0%} of our copy's {copy[1]:.2f} TB/s" if copy else ""
        of_torch = f", {theirs[name][0] / ms:.2f}x PyTorch's speed" if name in theirs else ""
        print(f"{name}: {rate:.2f} TB/s{of_copy}{of_torch} ({verdict} the goal of 2.5 TB/s and PyTorch's speed)")
    for label, results in (("our", ours), ("PyTorch's", theirs)):
        if "gemm_int8_i32_4096" in ours and "gemm_bf16_4096" in results:
            speedup = results["gemm_bf16_4096"][0] / ours["gemm_int8_i32_4096"][0]
            print(f"our int8 GEMM vs {label} bf16 GEMM at 4096^3: {speedup:.2f}x (goal: 1.5x our bf16 GEMM)")
    for name in ours:
        # PyTorch's default backward sums dq with atomic adds, like our _backward_atomic case;
        # our deterministic _backward is set against the same PyTorch time.
        peer = name.removesuffix("_atomic")
        if not name.startswith("attention_") or peer not in theirs:
            continue
        ratio = theirs[peer][0] / ours[name][0]
        goal = 0.8 if peer.endswith("_backward") else 1.0
        verdict = "meets" if ratio >= goal else "misses"
        print(f"{name}: {ratio:.2f}x PyTorch's speed ({verdict} the goal of {goal:.1f}x)")


if __name__ == "__main__":
    main()
