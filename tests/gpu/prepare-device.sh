#!/usr/bin/env bash
# Run on a machine with the .NET SDK, before tests/gpu/run.sh on the GPU machine: fills .device/
# (git-ignored; carried to the GPU machine) with what that machine lacks:
#   .device/dotnet.tgz   a .NET runtime (host + Microsoft.NETCore.App, about 30 MB)
#   .device/managed.tgz  the managed test assembly and its dependencies (about 14 MB)
#   .device/googletest/  GoogleTest sources (Debian's /usr/src/googletest), built there by CMake
set -euo pipefail
cd "$(dirname "$0")/../.."
dotnet_root=$(dirname "$(readlink -f "$(command -v dotnet)")")
mkdir -p .device
tar -C "$dotnet_root" -czf .device/dotnet.tgz dotnet host shared/Microsoft.NETCore.App
rm -rf .device/managed .device/managed.tgz .device/dotnet
# One runtime identifier keeps the native assets of the dependencies to this platform's (the
# bundle must stay within what travels to the GPU machine).
dotnet build tests/managed/NativeEngine.Tests -c Release -r linux-x64 --self-contained false -o .device/managed \
  -p:NativeEngineSkipNativeBuild=true \
  -p:NativeEngineNativeDir="${NE_NATIVE_DIR:-$(pwd)/build/release/native}"
tar -C .device/managed -czf .device/managed.tgz .
rm -rf .device/managed .device/googletest
cp -r /usr/src/googletest .device/googletest
du -sh .device
