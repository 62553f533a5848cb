#!/usr/bin/env bash
# NativeEngine build driver. Every step the README, CI and build.ps1 use lives here.
#
#   ./build.sh test       build everything and run every test (GoogleTest, then xunit)
#   ./build.sh sanitize   the GoogleTest suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   ./build.sh native     configure and build the native libraries, tests and benchmarks (release);
#                         libnativeengine_cuda too when nvcc is found
#   ./build.sh bench      run the native benchmarks (Google Benchmark); extra args go to the binary
#   ./build.sh bindings   regenerate bindings/generated/NativeMethods.g.cs from the C header
#   ./build.sh pack       dotnet pack the NativeEngine package into artifacts/
#   ./build.sh run ...    run the CLI (managed/NativeEngine.Cli) with the given arguments
#
# Environment: NE_STRICT=1 treats compiler warnings as errors (CI sets it); NE_CUDA=ON requires the
# CUDA library (AUTO, the default: built when nvcc works; OFF: never); NE_CUDA_EMULATOR=ON requires
# the SIMT emulator's build of it (tests/emulator; AUTO: built when the CUDA headers are found).
set -euo pipefail

cd "$(dirname "$0")"
root=$(pwd)

cmake_strict_args=()
if [[ "${NE_STRICT:-0}" == "1" ]]; then
  cmake_strict_args+=(-DNE_WARNINGS_AS_ERRORS=ON)
fi

step() { printf '\n==> %s\n' "$*"; }

build_native() {
  local preset=$1 cuda_args=(-DNE_CUDA_EMULATOR="${NE_CUDA_EMULATOR:-AUTO}")
  [[ "$preset" == sanitize ]] || cuda_args+=(-DNE_CUDA="${NE_CUDA:-AUTO}")
  step "native: configure and build ($preset)"
  cmake --preset "$preset" "${cmake_strict_args[@]}" "${cuda_args[@]}" >/dev/null
  cmake --build --preset "$preset"
}

# Runs a GoogleTest executable of a preset (native/nativeengine_tests under build/<preset>/tests
# unless named), with a test filter when given; adds its pass/fail counts to the summary line.
native_passed=0
native_failed=0
run_native_tests() {
  local preset=$1 name=${2:-native/nativeengine_tests} filter=${3:-} log
  local binary="$root/build/$preset/tests/$name"
  if [[ ! -x "$binary" ]]; then
    echo "error: $binary was not built: GoogleTest is missing (Debian: apt-get install libgtest-dev)" >&2
    exit 1
  fi
  local args=(--gtest_brief=1)
  [[ -z "$filter" ]] || args+=("--gtest_filter=$filter")
  step "native: GoogleTest ($preset, $name)"
  log=$(mktemp)
  local status=0
  if [[ "$preset" == sanitize ]]; then
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:allocator_may_return_null=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      "$binary" "${args[@]}" 2>&1 | tee "$log" || status=$?
  else
    "$binary" "${args[@]}" 2>&1 | tee "$log" || status=$?
  fi
  local passed failed
  passed=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) tests\{0,1\}\.$/\1/p' "$log" | tail -n 1)
  failed=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) tests\{0,1\}, listed below:$/\1/p' "$log" | tail -n 1)
  passed=${passed:-0}
  failed=${failed:-0}
  # A crash prints no count: count it as a failure rather than let the summary look clean.
  if [[ $status -ne 0 && $failed -eq 0 ]]; then failed=1; fi
  native_passed=$((native_passed + passed))
  native_failed=$((native_failed + failed))
  rm -f "$log"
  return $status
}

# The SIMT emulator (tests/emulator) where it was built: its own tests, the CUDA backend's cases
# on it (every suite's cuda0 configuration and the CUDA-only suites), and a smoke run of the GPU
# benchmark programs.
emulated_filter='*/cuda0:CudaBackend.*:AttentionCudaDeterminism.*:Cuda/AttentionHalfPrecision.*'
run_emulated_tests() {
  local preset=$1 status=0
  [[ -x "$root/build/$preset/tests/native/nativeengine_emulated_tests" ]] || return 0
  run_native_tests "$preset" emulator/simt_emulator_tests || status=$?
  run_native_tests "$preset" native/nativeengine_emulated_tests "$emulated_filter" || status=$?
  step "native: the GPU benchmark programs once at small sizes on the SIMT emulator ($preset)"
  local bench results
  for bench in gpu_bench gpu_bench_losses; do
    if results=$(NE_BENCH_SMOKE=1 "$root/build/$preset/tests/emulator/nativeengine_${bench}_emulated"); then
      echo "$bench: $(grep -c '^RESULT' <<<"$results") cases ran"
      native_passed=$((native_passed + 1))
    else
      echo "error: $bench failed on the SIMT emulator" >&2
      native_failed=$((native_failed + 1))
      status=1
    fi
  done
  return $status
}

dotnet_strict_args=()
if [[ "${NE_STRICT:-0}" == "1" ]]; then
  dotnet_strict_args+=(-warnaserror)
fi

command=${1:-}
shift || true
case "$command" in
  native)
    build_native release
    ;;
  test)
    build_native release
    native_status=0
    run_native_tests release || native_status=$?
    # The CUDA library's build of the same suites: on a machine without a GPU it checks the clean
    # refusal of CUDA contexts; with one, every ported kernel on the device.
    if [[ -x "$root/build/release/tests/native/nativeengine_cuda_tests" ]]; then
      run_native_tests release native/nativeengine_cuda_tests || native_status=$?
    fi
    run_emulated_tests release || native_status=$?
    step "managed: build"
    dotnet build NativeEngine.sln -c Release -p:NativeEngineSkipNativeBuild=true "${dotnet_strict_args[@]}"
    step "managed: xunit"
    log=$(mktemp)
    managed_status=0
    dotnet test NativeEngine.sln -c Release --no-build 2>&1 | tee "$log" || managed_status=$?
    # VSTest prints one "Passed! - Failed: F, Passed: P, ..." (or "Failed! - ...") line per test assembly.
    read -r managed_passed managed_failed < <(sed -n 's/.*Failed: *\([0-9]*\), Passed: *\([0-9]*\),.*/\2 \1/p' "$log" |
      awk '{ p += $1; f += $2 } END { print p + 0, f + 0 }')
    if [[ $managed_status -ne 0 && $managed_failed -eq 0 ]]; then managed_failed=1; fi
    rm -f "$log"
    # The model's managed suites with every context on the CUDA backend of the SIMT emulator's
    # library: autograd, the transformer, the trainer's count of host waits between reports, and
    # the device's description.
    emulated_library="$root/build/release/tests/emulator/libnativeengine_cuda_emulated.so"
    if [[ -f "$emulated_library" ]]; then
      step "managed: autograd, the transformer and the trainer's waits on the SIMT emulator (NE_BACKEND=cuda)"
      log=$(mktemp)
      emulated_status=0
      NE_NATIVE_PATH="$emulated_library" NE_BACKEND=cuda \
        dotnet tests/managed/NativeEngine.Tests/bin/Release/net10.0/NativeEngine.Tests.dll -noColor \
        -method 'NativeEngine.Tests.Autograd.*' -method 'NativeEngine.Tests.Models.DecoderOnlyTransformerTests.*' \
        -method NativeEngine.Tests.Training.TrainerTests.StepsBetweenReportsMakeNoHostWait \
        -method NativeEngine.Tests.ContextTests.ACudaContextDescribesItsDevice 2>&1 | tee "$log" ||
        emulated_status=$?
      # The in-process runner's summary: "Total: T, Errors: E, Failed: F, Skipped: S, Not Run: N".
      read -r emulated_passed emulated_failed < <(sed -n \
        's/.*Total: *\([0-9]*\), Errors: *\([0-9]*\), Failed: *\([0-9]*\), Skipped: *\([0-9]*\), Not Run: *\([0-9]*\).*/\1 \2 \3 \4 \5/p' \
        "$log" | awk '{ print $1 - $2 - $3 - $4 - $5, $2 + $3 } END { if (NR == 0) print 0, 1 }')
      if [[ $emulated_status -ne 0 && $emulated_failed -eq 0 ]]; then emulated_failed=1; fi
      managed_passed=$((managed_passed + emulated_passed))
      managed_failed=$((managed_failed + emulated_failed))
      [[ $emulated_failed -eq 0 ]] || managed_status=1
      rm -f "$log"
    fi
    step "summary"
    echo "$((native_passed + managed_passed)) passed, $((native_failed + managed_failed)) failed" \
         "(GoogleTest: $native_passed passed, $native_failed failed; xunit: $managed_passed passed, $managed_failed failed)"
    [[ $native_status -eq 0 && $managed_status -eq 0 ]]
    ;;
  sanitize)
    build_native sanitize
    sanitize_status=0
    run_native_tests sanitize || sanitize_status=$?
    run_emulated_tests sanitize || sanitize_status=$?
    step "summary (sanitizers)"
    echo "$native_passed passed, $native_failed failed (GoogleTest under AddressSanitizer + UndefinedBehaviorSanitizer)"
    [[ $sanitize_status -eq 0 ]]
    ;;
  bench)
    build_native release
    step "native: benchmarks"
    "$root/build/release/native/bench/nativeengine_bench" "$@"
    ;;
  bindings)
    step "bindings: regenerate from native/include/nativeengine.h"
    dotnet run --project bindings/NativeEngine.BindingGen -c Release -- --root "$root"
    ;;
  pack)
    build_native release
    step "managed: pack into artifacts/"
    dotnet pack managed/NativeEngine -c Release -p:NativeEngineSkipNativeBuild=true -o "$root/artifacts"
    ;;
  run)
    dotnet run --project managed/NativeEngine.Cli -c Release -- "$@"
    ;;
  *)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    [[ -z "$command" ]] && exit 0 || exit 2
    ;;
esac
