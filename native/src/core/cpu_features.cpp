#include "cpu_features.hpp"

#include <cstdlib>
#include <cstring>
#include <thread>

#if defined(__x86_64__) || defined(_M_X64)
#  if defined(_MSC_VER)
#    include <intrin.h>
#  else
#    include <cpuid.h>
#  endif
#  define NE_X86_64 1
#endif

namespace ne {
namespace {

#if defined(NE_X86_64)
void cpuid(unsigned leaf, unsigned subleaf, unsigned regs[4]) {
#  if defined(_MSC_VER)
    int out[4];
    __cpuidex(out, static_cast<int>(leaf), static_cast<int>(subleaf));
    for (int i = 0; i < 4; ++i) regs[i] = static_cast<unsigned>(out[i]);
#  else
    __cpuid_count(leaf, subleaf, regs[0], regs[1], regs[2], regs[3]);
#  endif
}

unsigned long long read_xcr0() {
#  if defined(_MSC_VER)
    return _xgetbv(0);
#  else
    unsigned eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (static_cast<unsigned long long>(edx) << 32) | eax;
#  endif
}

ne_simd_level detect_simd_level() {
    unsigned regs[4];
    cpuid(0, 0, regs);
    const unsigned max_leaf = regs[0];
    if (max_leaf < 7) return NE_SIMD_LEVEL_SCALAR;

    cpuid(1, 0, regs);
    const bool osxsave = (regs[2] >> 27) & 1;
    const bool fma = (regs[2] >> 12) & 1;
    const bool f16c = (regs[2] >> 29) & 1;
    if (!osxsave) return NE_SIMD_LEVEL_SCALAR;
    // The OS must save the YMM (bits 1-2) and, for AVX-512, opmask and ZMM state (bits 5-7).
    const unsigned long long xcr0 = read_xcr0();
    const bool ymm_state = (xcr0 & 0x6) == 0x6;
    const bool zmm_state = (xcr0 & 0xe6) == 0xe6;

    cpuid(7, 0, regs);
    const unsigned ebx = regs[1], ecx = regs[2];
    const bool avx2 = (ebx >> 5) & 1;
    const bool avx512f = (ebx >> 16) & 1, avx512dq = (ebx >> 17) & 1;
    const bool avx512bw = (ebx >> 30) & 1, avx512vl = (ebx >> 31) & 1;
    const bool avx512vnni = (ecx >> 11) & 1;

    if (!(ymm_state && avx2 && fma && f16c)) return NE_SIMD_LEVEL_SCALAR;
    if (zmm_state && avx512f && avx512dq && avx512bw && avx512vl && avx512vnni) {
        return NE_SIMD_LEVEL_AVX512;
    }
    return NE_SIMD_LEVEL_AVX2;
}
#else
ne_simd_level detect_simd_level() { return NE_SIMD_LEVEL_SCALAR; }
#endif

ne_simd_level cap_from_environment(ne_simd_level detected) {
    const char* cap = std::getenv("NE_MAX_SIMD");
    if (cap == nullptr) return detected;
    ne_simd_level limit = detected;
    if (std::strcmp(cap, "scalar") == 0) limit = NE_SIMD_LEVEL_SCALAR;
    else if (std::strcmp(cap, "avx2") == 0) limit = NE_SIMD_LEVEL_AVX2;
    else if (std::strcmp(cap, "avx512") == 0) limit = NE_SIMD_LEVEL_AVX512;
    return limit < detected ? limit : detected;
}

}  // namespace

ne_simd_level best_simd_level() {
    static const ne_simd_level level = cap_from_environment(detect_simd_level());
    return level;
}

const char* simd_level_name(ne_simd_level level) {
    switch (level) {
        case NE_SIMD_LEVEL_AUTO: return "auto";
        case NE_SIMD_LEVEL_SCALAR: return "scalar";
        case NE_SIMD_LEVEL_AVX2: return "avx2";
        case NE_SIMD_LEVEL_AVX512: return "avx512";
        case NE_SIMD_LEVEL_MAX_ENUM: break;
    }
    return "unknown";
}

std::string cpu_model_name() {
#if defined(NE_X86_64)
    unsigned regs[4];
    cpuid(0x80000000u, 0, regs);
    if (regs[0] >= 0x80000004u) {
        char brand[49] = {};
        for (unsigned i = 0; i < 3; ++i) {
            cpuid(0x80000002u + i, 0, regs);
            std::memcpy(brand + 16 * i, regs, 16);
        }
        std::string name(brand);
        const size_t first = name.find_first_not_of(' ');
        const size_t last = name.find_last_not_of(' ');
        if (first != std::string::npos) return name.substr(first, last - first + 1);
    }
#endif
    return "unknown CPU";
}

int hardware_threads() {
    const unsigned count = std::thread::hardware_concurrency();
    return count == 0 ? 1 : static_cast<int>(count);
}

}  // namespace ne
