// What the emulated CUDA runtime (runtime.cpp) offers the emulated cuBLAS (blas.cpp).
#pragma once

#include <cstddef>

namespace simt {

// Whether [address, address + bytes) lies inside one live device allocation.
bool is_device_range(const void* address, size_t bytes);

// Reports a misuse of an emulated API on standard error: what a real library would turn into an
// error status or an illegal memory access.
void report_misuse(const char* api, const char* message);

}  // namespace simt
