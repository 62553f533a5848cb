#!/usr/bin/env bash
# GPU verification harness, for a machine with an NVIDIA GPU, nvcc, CMake, Ninja and PyTorch but
# no .NET SDK. From the repository root:
#
#   tests/gpu/run.sh            every stage below; results into tests/gpu/results/<date>-<gpu>.md
#   tests/gpu/run.sh build test  only these stages (build, test, sanitize, managed, bench, and
#                               profile and tune, which the default leaves out), e.g. to split the work
#                               across calls of a time-limited GPU session: the results file is
#                               appended to, and build/gpu is reused
#
# 1. builds the native libraries with this machine's nvcc for its GPU's architecture (build/gpu;
#    warnings are not errors here: CI holds the sources to that with nvcc 11.8);
# 2. runs the CUDA library's GoogleTest suites: every ported kernel on the device against the
#    same references as on the CPU, plus the CUDA context, memory and copy tests;
# 3. runs a short filtered pass of them under compute-sanitizer memcheck, and the attention
#    kernels (every element type, tiled and decode paths) under racecheck (shared memory hazards);
# 4. runs the managed tests with a .NET runtime brought in .device/ (tests/gpu/prepare-device.sh
#    makes it on a machine with the SDK), when present;
# 5. runs the main job's model and step in PyTorch (torch_train.py), for tokens per second beside
#    the main job on CUDA and on the CPU;
# 6. runs the GPU benchmarks beside PyTorch's (torch_bench.py) and prints ours, PyTorch's and the
#    ratio;
# 7. profile (only when named): Nsight Compute on one attention case (NE_PROFILE_CASE, default
#    the bf16 D = 128 causal one), one launch of each tensor-core attention kernel: speed of light,
#    occupancy, launch statistics, warp stalls and memory traffic, to tune the tile shapes by;
# 8. tune (only when named): the attention benchmarks of a second build with other tile shapes
#    (NE_TUNE_FLAGS) beside the default build's.
# Environment: NE_CUDA_ARCH (default: the GPU's compute capability), NE_GPU_RESULTS (the file;
# default: in $OUT when OUT names a directory, as on the lent GPU machine, where only $OUT comes
# back, so that a run cut short by its time limit still returns what it wrote).
# Every step runs even when an earlier one fails; the exit status is that of the first failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1)
capability=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d .)
arch=${NE_CUDA_ARCH:-${capability:-90}}
stamp=$(date -u +%Y-%m-%d)
slug=$(printf '%s' "${gpu:-unknown-gpu}" | tr -cs 'A-Za-z0-9' '-' | sed 's/^-//; s/-$//')
if [[ -n "${OUT:-}" && -d "${OUT:-}" ]]; then
  results=${NE_GPU_RESULTS:-$OUT/$stamp-$slug.md}
else
  results=${NE_GPU_RESULTS:-tests/gpu/results/$stamp-$slug.md}
fi
build=build/gpu
mkdir -p "$(dirname "$results")"
status=0
stages=("$@")
[[ ${#stages[@]} -gt 0 ]] || stages=(build test sanitize managed bench)
for stage in "${stages[@]}"; do
  case $stage in
    build | test | sanitize | managed | bench | profile | tune) ;;
    *) echo "unknown stage '$stage'; expected build, test, sanitize, managed, bench, profile or tune" >&2; exit 2 ;;
  esac
done
wants() {
  local stage
  for stage in "${stages[@]}"; do [[ $stage == "$1" ]] && return 0; done
  return 1
}

# Runs a command, appending its output to the results file as a fenced block under a heading.
section() {
  local title=$1
  shift
  printf '\n==> %s\n' "$title"
  # The heading goes in first and the output streams: a call stopped at its time limit still
  # shows which section it was in and how far that got.
  printf '\n## %s\n\n`%s`\n\n' "$title" "$*" >>"$results"
  local log
  log=$(mktemp)
  local code=0
  "$@" 2>&1 | tee "$log" || code=$?
  {
    printf '```\n'
    tail -n 200 "$log"
    printf '```\n\nexit status %d\n' "$code"
  } >>"$results"
  rm -f "$log"
  if [[ $code -ne 0 && $status -eq 0 ]]; then status=$code; fi
  return "$code"
}

[[ -s "$results" ]] || {
  printf '# GPU results: %s, %s\n\n' "${gpu:-unknown GPU}" "$stamp"
  printf -- '- Command: `tests/gpu/run.sh` at commit %s\n' "${NE_GPU_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
  printf -- '- GPU: %s (compute capability %s), driver %s; built for sm_%s\n' "${gpu:-?}" "${capability:-?}" "${driver:-?}" "$arch"
  printf -- '- nvcc: %s\n' "$(nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
  printf -- '- PyTorch: %s\n' "$(python3 -c 'import torch; print(torch.__version__)' 2>/dev/null || echo missing)"
} >>"$results"
printf '\n# Stages: %s (%s UTC)\n' "${stages[*]}" "$(date -u +%H:%M)" >>"$results"

generator=Ninja
command -v ninja >/dev/null || generator="Unix Makefiles"
configure_args=(-S . -G "$generator" -DCMAKE_BUILD_TYPE=Release -DNE_CUDA=ON -DNE_CUDA_EMULATOR=OFF -DNE_BUILD_BENCHMARKS=OFF
                -DCMAKE_CUDA_ARCHITECTURES="$arch")
if [[ ! -e /usr/include/gtest/gtest.h && -d .device/googletest ]]; then
  configure_args+=(-DNE_GTEST_SOURCE_DIR="$root/.device/googletest")
fi
# cuBLAS comes with a full CUDA toolkit. Where the toolkit has none (nvcc alone), the configure
# fails, and is tried again with the cuBLAS that PyTorch's wheels installed (lib/libcublas.so.N and
# include/cublas_v2.h under site-packages/nvidia).
wheel_cublas_root() {
  local site library
  site=$(python3 -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))' 2>/dev/null) || return 1
  library=$(find "$site/nvidia" -path '*/lib/libcublas.so*' 2>/dev/null | sort | head -n 1)
  [[ -n $library && -f $(dirname "$(dirname "$library")")/include/cublas_v2.h ]] || return 1
  dirname "$(dirname "$library")"
}
build_native() {
  if ! cmake -B "$build" "${configure_args[@]}"; then
    local cublas_root
    cublas_root=$(wheel_cublas_root) || return 1
    echo "The configure failed; trying again with the cuBLAS of PyTorch's wheels: $cublas_root"
    rm -f "$build/CMakeCache.txt"
    cmake -B "$build" "${configure_args[@]}" -DNE_CUBLAS_ROOT="$cublas_root" || return 1
  fi
  cmake --build "$build" --parallel "$(nproc)"
}
if wants build || [[ ! -x $build/tests/native/nativeengine_cuda_tests ]]; then
  section "Build (nvcc, sm_$arch)" build_native || {
    echo "the build failed; nothing else can run" >&2
    exit 1
  }
fi

tests=$build/tests/native/nativeengine_cuda_tests
if wants test; then
  section "GoogleTest: CUDA library (every ported kernel on the device against the references)" \
    "$tests" --gtest_brief=1
fi

# Not always on the PATH: the toolkit keeps it beside nvcc.
sanitizer=$(command -v compute-sanitizer || true)
for candidate in "$(dirname "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)")/compute-sanitizer" \
                 /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
  [[ -n $sanitizer || ! -x $candidate ]] || sanitizer=$candidate
done
# Each pass is bounded (NE_SANITIZER_TIMEOUT seconds, default 120), so that one slow pass leaves
# the others their share of a 10-minute call (the build, on a fresh machine, takes about 2).
sanitize() {
  timeout --kill-after=10 "${NE_SANITIZER_TIMEOUT:-120}" "$sanitizer" "$@"
}
if wants sanitize && [[ -n $sanitizer ]]; then
  section "compute-sanitizer memcheck (short pass)" sanitize --tool memcheck --error-exitcode 1 \
    "$tests" --gtest_brief=1 \
    --gtest_filter='CudaBackend.*:*NormKernels*cuda0*:*Int8Test*cuda0*:*ElementwiseOps*cuda0*:*ReduceOps*cuda0*:*AdamwOps*cuda0*:*EmbeddingOps*cuda0*:*GemmTest*cuda0*:*AttentionKernels*cuda0*:*AttentionHalfPrecision*'
  section "compute-sanitizer racecheck (attention, short pass)" sanitize --tool racecheck --error-exitcode 1 \
    "$tests" --gtest_brief=1 \
    --gtest_filter='*AttentionKernels.FullyMaskedRowsAreExactlyZero/cuda0:AttentionCudaDeterminism.*'
  # The softmax losses: sampler, sampled softmax and fused cross-entropy.
  losses_filter='*CrossEntropy*cuda0*:*LogUniformSampler*cuda0*:*SampledSoftmax*cuda0*'
  losses_quick='-*MatchesOracle*:*FiniteDifferences*'
  section "compute-sanitizer memcheck: softmax losses" sanitize --tool memcheck --error-exitcode 1 \
    "$tests" --gtest_brief=1 --gtest_filter="$losses_filter$losses_quick"
  section "compute-sanitizer racecheck: softmax losses" sanitize --tool racecheck --error-exitcode 1 \
    "$tests" --gtest_brief=1 \
    --gtest_filter='*CrossEntropy.RepeatedCalls*cuda0*:*SampledSoftmax.DrawnSamples*cuda0*:*LogUniformSampler.DrawsEqualTheCpuDraws*cuda0*'
elif wants sanitize; then
  section "compute-sanitizer" echo "compute-sanitizer not found: skipped"
fi

if ! wants managed; then
  :
elif [[ -f .device/dotnet.tgz && -f .device/managed.tgz ]]; then
  rm -rf .device/dotnet .device/managed
  mkdir -p .device/dotnet .device/managed
  tar -C .device/dotnet -xzf .device/dotnet.tgz
  tar -C .device/managed -xzf .device/managed.tgz
  # .NET needs ICU for cultures; without it the runtime stops at its start unless it runs in
  # invariant mode (where only PlotTests.TheCsvIsExactInTheInvariantCulture, which sets fr-FR, fails).
  if ! ldconfig -p 2>/dev/null | grep -q 'libicuuc\.so'; then
    export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
    printf '\nNo ICU on this machine: .NET runs in globalization-invariant mode.\n' >>"$results"
  fi
  # The managed tests create CPU contexts (several check CPU-only properties such as SIMD levels):
  # they run here against the CUDA library, which carries every CPU kernel.
  section "Managed tests (xunit in-process runner, .NET runtime from .device/, the CUDA library)" \
    env DOTNET_ROOT="$root/.device/dotnet" NE_NATIVE_PATH="$root/$build/native/libnativeengine_cuda.so" \
    "$root/.device/dotnet/dotnet" .device/managed/NativeEngine.Tests.dll -noColor
  # The same suites of the model's pieces with every context on the GPU (NE_BACKEND overrides the
  # backend of Context.Create): autograd, modules and models, generation and the trainer, the
  # trainer's count of host waits included (TrainerTests.StepsBetweenReportsMakeNoHostWait).
  section "Managed tests on CUDA (NE_BACKEND=cuda: autograd, models, inference, training)" \
    env DOTNET_ROOT="$root/.device/dotnet" NE_NATIVE_PATH="$root/$build/native/libnativeengine_cuda.so" NE_BACKEND=cuda \
    "$root/.device/dotnet/dotnet" .device/managed/NativeEngine.Tests.dll -noColor -namespace NativeEngine.Tests.Autograd \
    -namespace NativeEngine.Tests.Models -namespace NativeEngine.Tests.Inference -namespace NativeEngine.Tests.Training
  # The model and trainer unchanged on each backend: the CLI's main job, side by side (its last
  # lines give the held-out exact match, the trained tokens per second and, on CUDA, the host
  # waits over the run).
  main_job() {
    local run
    run=$(mktemp -d)
    env DOTNET_ROOT="$root/.device/dotnet" NE_NATIVE_PATH="$root/$build/native/libnativeengine_cuda.so" \
      "$root/.device/dotnet/dotnet" .device/managed/NativeEngine.Cli.dll train --backend "$1" --out "$run/reversal"
    rm -rf "$run"
  }
  # The CLI's quick side-by-side measurements (LayerNorm vs copy, int8 vs f32 GEMM, sampled vs
  # full softmax loss, a training step vs its forward) through the managed API on CUDA.
  section "CLI bench on CUDA (bench --backend cuda)" \
    env DOTNET_ROOT="$root/.device/dotnet" NE_NATIVE_PATH="$root/$build/native/libnativeengine_cuda.so" \
    "$root/.device/dotnet/dotnet" .device/managed/NativeEngine.Cli.dll bench --backend cuda
  section "Main job on CUDA (train --backend cuda)" main_job cuda
  section "Main job on the CPU of this machine (train --backend cpu)" main_job cpu
else
  section "Managed tests" echo ".device/dotnet.tgz or .device/managed.tgz missing (run tests/gpu/prepare-device.sh): skipped"
fi

# The same architecture and training step in PyTorch on this GPU: its trained tokens per second
# beside the main job's on CUDA and on the CPU above.
if wants managed; then
  section "Main job's model and step in PyTorch (tests/gpu/torch_train.py)" python3 tests/gpu/torch_train.py
fi

if wants profile; then
  ncu=$(command -v ncu || true)
  for candidate in "$(dirname "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)")/ncu" /usr/local/cuda/bin/ncu; do
    [[ -n $ncu || ! -x $candidate ]] || ncu=$candidate
  done
  # One launch of the kernels whose mangled names match $1, in the one benchmark case; the
  # benchmark's other launches run unprofiled.
  profile_kernel() {
    NE_BENCH_ONLY=${NE_PROFILE_CASE:-attention_bf16_b2_h16_d128_t4096_causal} timeout --kill-after=10 150 \
      "$ncu" --kernel-name-base mangled --kernel-name "regex:$1" --launch-count 1 --section SpeedOfLight \
      --section Occupancy --section LaunchStats --section WarpStateStats --section MemoryWorkloadAnalysis \
      "$build/tests/gpu/nativeengine_gpu_bench"
  }
  if [[ -n $ncu ]]; then
    section "ncu: attention forward (registers)" profile_kernel 'forward_registers_kernel'
    section "ncu: attention backward, keys pass (registers)" profile_kernel 'backward_keys_registers_kernel.*Lb0E'
    section "ncu: attention backward, keys pass with atomic dq (registers)" profile_kernel 'backward_keys_registers_kernel.*Lb1E'
    section "ncu: attention backward, rows pass (registers)" profile_kernel 'backward_rows_registers_kernel'
  else
    section "ncu" echo "ncu not found: skipped"
  fi
fi

# The attention tile shapes of attention.cu were derived without a GPU; tune builds the benchmark
# a second time with the alternatives (NE_TUNE_FLAGS, default: 16 query rows per warp in the
# forward instead of 32, and 4 warps, 64 keys, in the keys pass instead of 8 and 128) and times
# the T = 4096 attention cases of both builds side by side (ratio = alternative's time / the
# default's: above 1 means the default is faster).
if wants tune; then
  tune_build=build/gpu-tune
  tune_flags=${NE_TUNE_FLAGS:--DNE_ATTENTION_FORWARD_ROW_TILES=1 -DNE_ATTENTION_KEYS_PASS_WARPS=4}
  build_tune() {
    local cublas_root
    cublas_root=$(sed -n 's/^NE_CUBLAS_ROOT:PATH=//p' "$build/CMakeCache.txt" 2>/dev/null)
    cmake -B "$tune_build" "${configure_args[@]}" -DNE_CUBLAS_ROOT="$cublas_root" -DCMAKE_CUDA_FLAGS="$tune_flags" &&
      cmake --build "$tune_build" --parallel "$(nproc)" --target nativeengine_gpu_bench
  }
  tune_default=$(mktemp)
  tune_variant=$(mktemp)
  bench_attention() { NE_BENCH_ONLY=attention_bf16_b "$1/tests/gpu/nativeengine_gpu_bench" | tee "$2"; }
  if section "Tune: build the attention alternatives ($tune_flags)" build_tune; then
    section "Tune: attention, default shapes" bench_attention "$build" "$tune_default"
    section "Tune: attention, alternatives ($tune_flags)" bench_attention "$tune_build" "$tune_variant"
    section "Tune: side by side (ratio = alternative's time / default's: above 1 means the default is faster)" \
      python3 tests/gpu/compare.py "$tune_default" "$tune_variant" default alternative
  fi
  rm -f "$tune_default" "$tune_variant"
fi

if ! wants bench; then
  printf '\nResults written to %s\n' "$results"
  exit "$status"
fi
ours=$(mktemp)
theirs=$(mktemp)
bench_ours() { "$build/tests/gpu/nativeengine_gpu_bench" | tee "$ours"; }
bench_torch() { python3 tests/gpu/torch_bench.py | tee "$theirs"; }
section "Benchmarks: NativeEngine (C ABI)" bench_ours
section "Benchmarks: PyTorch" bench_torch
section "Benchmarks side by side (ratio = PyTorch time / our time: above 1 means ours is faster)" \
  python3 tests/gpu/compare.py "$ours" "$theirs"
rm -f "$ours" "$theirs"

# The softmax losses (sampled softmax, fused cross-entropy) beside PyTorch's full cross_entropy,
# with their peak memory, and the ratios.
losses_ours=$(mktemp)
bench_losses_ours() { "$build/tests/gpu/nativeengine_gpu_bench_losses" | tee "$losses_ours"; }
section "Benchmarks: softmax losses, NativeEngine (MEMORY: peak bytes of the step beyond its inputs)" bench_losses_ours
section "Benchmarks: softmax losses, PyTorch's full cross_entropy, and the ratios" \
  python3 tests/gpu/torch_bench_losses.py "$losses_ours"
rm -f "$losses_ours"

printf '\nResults written to %s\n' "$results"
exit "$status"
