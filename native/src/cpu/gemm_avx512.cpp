// AVX-512 f32 GEMM kernels. Compiled with AVX-512 F/BW/DQ/VL/VNNI flags; called only when the CPU
// has all of them.
#include "cpu/gemm.hpp"

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ne::cpu::avx512 {
namespace {

// The 12x32 register tile (the 32x12 of BLIS's SKX kernel, row-major): 24 zmm accumulators, 2
// vectors of B and 1 broadcast of A (27 of the 32 registers). Per k, 24 FMAs against 14 loads.
//
// Blocking (not measured: the development machine has no AVX-512): kBlockDepth 256 keeps a B
// panel at 32 KB, in a 48 KB L1D; the packed A block is 240 KB of a 1-2 MB L2; the packed B
// block 2 MB in the L3.
struct Isa {
    using Vec = __m512;
    static constexpr int64_t kLanes = 16;
    static constexpr int64_t kTileRows = 12;
    static constexpr int64_t kTileVectors = 2;
    static constexpr int64_t kBlockRows = 240;
    static constexpr int64_t kBlockDepth = 256;
    static constexpr int64_t kBlockCols = 2048;

    static Vec zero() { return _mm512_setzero_ps(); }
    static Vec load(const float* p) { return _mm512_loadu_ps(p); }
    static void store(float* p, Vec v) { _mm512_storeu_ps(p, v); }
    static Vec broadcast(const float* p) { return _mm512_set1_ps(*p); }
    static Vec add(Vec a, Vec b) { return _mm512_add_ps(a, b); }
    static Vec mul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
    static Vec fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }

    static Vec load_first(const float* p, int64_t count) {
        if (count >= kLanes) return _mm512_loadu_ps(p);
        if (count <= 0) return _mm512_setzero_ps();
        return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << count) - 1u), p);
    }

    // The two 256-bit halves, then as the AVX2 kernels: one fixed order. The zero-masked
    // extractions with a full mask are vextractf32x8 itself; the plain intrinsics trip a false
    // -Wmaybe-uninitialized in GCC 12 (bug 105593).
    static float reduce_add(Vec v) {
        const __mmask8 all = static_cast<__mmask8>(0xff);
        const __m256 half = _mm256_add_ps(_mm512_maskz_extractf32x8_ps(all, v, 0), _mm512_maskz_extractf32x8_ps(all, v, 1));
        __m128 sum = _mm_add_ps(_mm256_castps256_ps128(half), _mm256_extractf128_ps(half, 1));
        sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
        sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
        return _mm_cvtss_f32(sum);
    }
};

#include "cpu/gemm_simd.inl"

}  // namespace

constinit const SgemmKernels sgemm_kernels{
    .tile_rows = kTileRows,
    .tile_cols = kTileCols,
    .gemm_workspace_floats = &gemm_workspace_floats,
    .gemm = &gemm,
    .gemv_unit = kGemvUnit,
    .gemv_workspace_floats = &gemv_workspace_floats,
    .gemv = &gemv,
};

}  // namespace ne::cpu::avx512
