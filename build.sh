#!/usr/bin/env bash
# NativeEngine build driver. Every step the README, CI and build.ps1 use lives here.
#
#   ./build.sh test       build everything and run every test (GoogleTest, then xunit)
#   ./build.sh sanitize   the GoogleTest suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   ./build.sh native     configure and build the native library, tests and benchmarks (release)
#   ./build.sh bench      run the native benchmarks (Google Benchmark); extra args go to the binary
#   ./build.sh bindings   regenerate bindings/generated/NativeMethods.g.cs from the C header
#   ./build.sh pack       dotnet pack the NativeEngine package into artifacts/
#   ./build.sh run ...    run the CLI (managed/NativeEngine.Cli) with the given arguments
#
# Environment: NE_STRICT=1 treats compiler warnings as errors (CI sets it).
set -euo pipefail

cd "$(dirname "$0")"
root=$(pwd)

cmake_strict_args=()
if [[ "${NE_STRICT:-0}" == "1" ]]; then
  cmake_strict_args+=(-DNE_WARNINGS_AS_ERRORS=ON)
fi

step() { printf '\n==> %s\n' "$*"; }

build_native() {
  local preset=$1
  step "native: configure and build ($preset)"
  cmake --preset "$preset" "${cmake_strict_args[@]}" >/dev/null
  cmake --build --preset "$preset"
}

run_native_tests() {
  local preset=$1
  step "native: GoogleTest ($preset)"
  ctest --preset "$preset"
  "$root/build/$preset/tests/native/nativeengine_tests" --gtest_brief=1 | tail -n 3
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
    run_native_tests release
    step "managed: build"
    dotnet build NativeEngine.sln -c Release -p:NativeEngineSkipNativeBuild=true "${dotnet_strict_args[@]}"
    step "managed: xunit"
    dotnet test NativeEngine.sln -c Release --no-build
    step "all tests passed"
    ;;
  sanitize)
    build_native sanitize
    run_native_tests sanitize
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
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    [[ -z "$command" ]] && exit 0 || exit 2
    ;;
esac
