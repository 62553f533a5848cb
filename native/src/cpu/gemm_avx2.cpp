// AVX2 f32 GEMM kernels. Compiled with -mavx2 -mfma; called only when the CPU has both.
#include "cpu/gemm.hpp"

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ne::cpu::avx2 {
namespace {

// The 6x16 register tile: 12 accumulators, 2 vectors of B and 1 broadcast of A (15 of the 16 ymm
// registers). Per k, 12 FMAs against 8 loads (2 of B, 6 broadcasts of A): the two FMA pipes
// stay busy.
//
// Measured on AMD EPYC (Zen 3: 32 KB L1D, 512 KB L2 per core; FMA peak 101 GFLOPS per core by
// an asm loop), 1 thread, best of alternating runs on a shared machine (noise about 8%):
// - This kernel on L2-resident panels: 91 GFLOPS, 90% of peak.
// - Prefetching the tile of C (microkernel): 1024^3 77 -> 90, 2048^3 72 -> 88 GFLOPS.
// - kBlockDepth 384: a B panel is 24 KB of the L1D; against 256, a third fewer passes over C,
//   2048^3 and 4096x4096x1024 about 5% faster. 512 was no better.
// - kBlockRows 120: the packed A block is 180 KB of the L2; 72 to 240 were the same within noise.
// - kBlockCols 2048: the packed B block is 3 MB per thread, in the 32 MB L3; 1024 and 4080 were
//   the same within noise.
struct Isa {
    using Vec = __m256;
    static constexpr int64_t kLanes = 8;
    static constexpr int64_t kTileRows = 6;
    static constexpr int64_t kTileVectors = 2;
    static constexpr int64_t kBlockRows = 120;
    static constexpr int64_t kBlockDepth = 384;
    static constexpr int64_t kBlockCols = 2048;

    static Vec zero() { return _mm256_setzero_ps(); }
    static Vec load(const float* p) { return _mm256_loadu_ps(p); }
    static void store(float* p, Vec v) { _mm256_storeu_ps(p, v); }
    static Vec broadcast(const float* p) { return _mm256_broadcast_ss(p); }
    static Vec add(Vec a, Vec b) { return _mm256_add_ps(a, b); }
    static Vec mul(Vec a, Vec b) { return _mm256_mul_ps(a, b); }
    static Vec fma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }

    static Vec load_first(const float* p, int64_t count) {
        if (count >= kLanes) return _mm256_loadu_ps(p);
        if (count <= 0) return _mm256_setzero_ps();
        const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        return _mm256_maskload_ps(p, mask);
    }

    // Lanes 0+4, 1+5, 2+6, 3+7, then pairs, then the last two: one fixed order.
    static float reduce_add(Vec v) {
        __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
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

}  // namespace ne::cpu::avx2
