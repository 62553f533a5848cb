// What the CPU we run on can execute, detected once at run time. The library is compiled for
// baseline x86-64; SIMD kernels live in their own translation units and are only called when
// the level they were compiled for is reported here.
#pragma once

#include "nativeengine.h"

#include <string>

namespace ne {

// Best level this CPU and build support, capped by the NE_MAX_SIMD environment variable
// ("scalar", "avx2" or "avx512") when it is set.
ne_simd_level best_simd_level();

const char* simd_level_name(ne_simd_level level);

// The processor brand string, such as "AMD EPYC 7B13".
std::string cpu_model_name();

int hardware_threads();

}  // namespace ne
