#!/usr/bin/env python3
"""Rewrites a CUDA translation unit into C++ for the SIMT emulator (simt.hpp).

Two constructs are not C++: kernel launches `kernel<<<grid, block, shared, stream>>>(arguments)`
become `::simt::launch(kernel, grid, block, shared, stream)(arguments)` (a kernel template whose
arguments the call deduces goes through a generic lambda instead), and dynamic shared arrays
`extern __shared__ T name[];` become pointers to the launch's dynamic shared memory.
Everything else is compiled as written; #line keeps diagnostics pointing at the original.

usage: translate.py <input.cu> <output.cpp>
"""
import re
import sys

LAUNCH = re.compile(r"([A-Za-z_][\w:]*(?:\s*<[^;{}]*?>)?)\s*<<<(.*?)>>>\s*\(", re.S)
DYNAMIC_SHARED = re.compile(r"extern\s+__shared__\s+(?:__align__\(\s*\d+\s*\)\s+)?([\w:\s]+?)\s+(\w+)\s*\[\s*\]\s*;")


TEMPLATE_KERNEL = re.compile(r"template\s*<[^;{}]*?>\s*__global__\s+void\s+(?:__launch_bounds__\([^)]*\)\s*)?(\w+)\s*\(")


def translate(source: str) -> str:
    deduced = set(TEMPLATE_KERNEL.findall(source))

    def launch(m: re.Match) -> str:
        kernel, configuration = m.group(1), m.group(2)
        if kernel.strip() in deduced:
            return (f"::simt::launch_deduced({configuration})"
                    f"([&](auto... simt_arguments) {{ {kernel}(simt_arguments...); }})(")
        return f"::simt::launch({kernel}, {configuration})("

    source = LAUNCH.sub(launch, source)
    source = DYNAMIC_SHARED.sub(
        lambda m: f"{m.group(1)}* const {m.group(2)} = reinterpret_cast<{m.group(1)}*>(::simt::dynamic_shared());", source)
    if "<<<" in source or "extern __shared__" in source:
        raise SystemExit("translate.py: a launch or dynamic shared array was not recognized")
    return source


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    input_path, output_path = sys.argv[1], sys.argv[2]
    with open(input_path, encoding="utf-8") as f:
        source = f.read()
    text = f'#include "simt.hpp"\n#line 1 "{input_path}"\n' + translate(source)
    with open(output_path, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
