// AVX2 int8 kernels. Compiled with -mavx2 -mfma; called only when the CPU has both.
//
// GEMM: vpmaddwd multiplies 16 int16 pairs and adds each pair into an int32 lane, exactly (two
// products of int8 values, at most 2 * 128 * 128 = 2^15). vpmaddubsw would do 32 byte products
// per instruction but saturates its int16 sums, so it is not exact and not used. Operands are
// sign-extended to int16 once, when they are packed.
#include "cpu/int8.hpp"

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ne::cpu::avx2 {
namespace {

#include "cpu/int8_simd.inl"

// GCC compiles acc = _mm256_add_epi32(acc, product), which adds 8 x int32 inside a 4 x int64
// vector type, with a register copy of every accumulator per step, or spills at 16 live vectors.
// On its own vector extension it keeps the accumulators in place and matches hand-written asm.
#if defined(__GNUC__)
using Int32x8 = int32_t __attribute__((vector_size(32)));
inline void accumulate(Int32x8& acc, __m256i product) { acc += reinterpret_cast<Int32x8>(product); }
inline __m256i to_m256i(Int32x8 acc) { return reinterpret_cast<__m256i>(acc); }
#else
using Int32x8 = __m256i;
inline void accumulate(Int32x8& acc, __m256i product) { acc = _mm256_add_epi32(acc, product); }
inline __m256i to_m256i(Int32x8 acc) { return acc; }
#endif

// The 6x16 register tile: 12 accumulators, 2 vectors of B, 1 broadcast of A and the product that
// vpmaddwd writes before vpaddd adds it: all 16 ymm registers.
//
// Zen 3 issues vpmaddwd at 2 per cycle alone but a vpmaddwd + vpaddd pair at only about 1.16,
// which caps exact int8 near 37 ops per cycle against 32 flops per cycle for fp32 FMA. Measured
// per core on L1-resident panels (thread CPU time): a hand-written asm 6x16 113 Gops/s and this
// kernel the same within noise; fp32 FMA 6x16 95 Gflop/s; through _mm256_add_epi32, 4x16 about 95
// and 6x16 80 Gops/s.
//
// Packed unit: a k pair (a[m,2p], a[m,2p+1]) as two int16 in 32 bits, the operand of vpmaddwd.
// A micro-panel: for each pair p, the 6 rows' units (24 bytes), broadcast one by one.
// B micro-panel: for each pair p, the 16 columns' units (64 bytes), two vectors.
// Rows, columns and k past the matrix are packed as zeros.
//
// Blocking, measured on AMD EPYC (Zen 3, 32 KB L1D, 512 KB L2 per core), 1 thread, 512^3 to
// 4096x1024x1024, best of 5 in 3 alternating rounds on a shared machine:
// - kBlockDepth 1024: a B panel is 32 KB, the whole L1D, yet 7% faster on average than 512 (a
//   16 KB panel): half the passes over C, and the sequential panel streams well from L2. 256 and
//   768 were no better than 512.
// - kBlockRows 192: the packed A block is 384 KB of the L2; 96 and 384 were no faster (at
//   kBlockDepth 512).
// - kBlockCols 2048: the packed B block is 4 MB per thread, in the 32 MB L3; 512 was no faster
//   (at kBlockDepth 512).
struct Avx2Gemm {
    static constexpr int64_t kTileRows = 6;
    static constexpr int64_t kTileCols = 16;
    static constexpr int64_t kBlockRows = 192;
    static constexpr int64_t kBlockDepth = 1024;
    static constexpr int64_t kBlockCols = 2048;

    static int64_t pairs(int64_t kc) { return ceil_div(kc, 2); }
    static int64_t a_panel_bytes(int64_t kc) { return pairs(kc) * kTileRows * 4; }
    static int64_t b_panel_bytes(int64_t kc) { return pairs(kc) * kTileCols * 4; }

    // 16 int8 of a row starting at k -> 8 units.
    static __m256i load_units(const int8_t* row, int64_t k) {
        return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k)));
    }

    // Units of k pairs [k, kc) of `count` rows, the first `rows` of them valid, into `out`: the
    // edges and short slices that the vector loops leave.
    static void pack_units_scalar(const int8_t* first_row, int64_t row_stride, int64_t rows, int64_t count, int64_t k,
                                  int64_t kc, unsigned char* out) {
        for (; k < kc; k += 2) {
            for (int64_t i = 0; i < count; ++i) {
                int16_t unit[2] = {0, 0};
                if (i < rows) {
                    const int8_t* row = first_row + i * row_stride;
                    unit[0] = row[k];
                    if (k + 1 < kc) unit[1] = row[k + 1];
                }
                std::memcpy(out + ((k / 2) * count + i) * 4, unit, sizeof unit);
            }
        }
    }

    static void pack_a(const GemmArgs& args, int64_t m0, int64_t rows, int64_t k0, int64_t kc, unsigned char* panel) {
        const int8_t* first_row = args.a + m0 * args.a_row_stride + k0;
        int64_t k = 0;
        if (rows == kTileRows) {
            for (; k + 16 <= kc; k += 16) {
                __m256i units[8];
                for (int64_t i = 0; i < kTileRows; ++i) units[i] = load_units(first_row + i * args.a_row_stride, k);
                units[6] = units[7] = _mm256_setzero_si256();
                transpose_8x8_epi32(units);
                for (int64_t p = 0; p < 8; ++p) store_6x32(panel + (k / 2 + p) * kTileRows * 4, units[p]);
            }
        }
        pack_units_scalar(first_row, args.a_row_stride, rows, kTileRows, k, kc, panel);
    }

    static void pack_b(const GemmArgs& args, int64_t n0, int64_t cols, int64_t k0, int64_t kc, unsigned char* panel) {
        const int8_t* first_row = args.b + n0 * args.b_row_stride + k0;
        int64_t k = 0;
        if (cols == kTileCols) {
            for (; k + 16 <= kc; k += 16) {
                for (int64_t half = 0; half < 2; ++half) {
                    __m256i units[8];
                    for (int64_t i = 0; i < 8; ++i) units[i] = load_units(first_row + (8 * half + i) * args.b_row_stride, k);
                    transpose_8x8_epi32(units);
                    for (int64_t p = 0; p < 8; ++p) {
                        _mm256_storeu_si256(reinterpret_cast<__m256i*>(panel + (k / 2 + p) * kTileCols * 4 + 32 * half), units[p]);
                    }
                }
            }
        }
        pack_units_scalar(first_row, args.b_row_stride, cols, kTileCols, k, kc, panel);
    }

    static void compute_tile(const unsigned char* a_panel, const unsigned char* b_panel, int64_t kc, const TileJob& tile,
                             const GemmArgs& args) {
        Int32x8 sums[kTileRows][2] = {};
        const unsigned char* a = a_panel;
        const unsigned char* b = b_panel;
        for (int64_t p = pairs(kc); p > 0; --p) {
            const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
            const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32));
            for (int64_t i = 0; i < kTileRows; ++i) {
                int32_t unit;
                std::memcpy(&unit, a + 4 * i, sizeof unit);
                const __m256i ai = _mm256_set1_epi32(unit);
                accumulate(sums[i][0], _mm256_madd_epi16(ai, b0));
                accumulate(sums[i][1], _mm256_madd_epi16(ai, b1));
            }
            a += kTileRows * 4;
            b += kTileCols * 4;
        }
        __m256i acc[kTileRows][2];
        for (int64_t i = 0; i < kTileRows; ++i) {
            acc[i][0] = to_m256i(sums[i][0]);
            acc[i][1] = to_m256i(sums[i][1]);
        }
        if (tile.rows == kTileRows && tile.cols == kTileCols) {
            write_full_tile(acc, tile, args);
        } else {
            int32_t spill[kTileRows][kTileCols];
            for (int64_t i = 0; i < kTileRows; ++i) {
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(&spill[i][0]), acc[i][0]);
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(&spill[i][8]), acc[i][1]);
            }
            write_partial_tile(&spill[0][0], kTileCols, tile, args);
        }
    }

    // The vector form of write_partial_tile.
    static void write_full_tile(const __m256i (&acc)[kTileRows][2], const TileJob& tile, const GemmArgs& args) {
        for (int64_t i = 0; i < kTileRows; ++i) {
            const int64_t m = tile.m + i;
            unsigned char* row = c_address(args, m, tile.n);
            for (int64_t j = 0; j < 2; ++j) {
                __m256i* target = reinterpret_cast<__m256i*>(row + 32 * j);
                __m256i total = acc[i][j];
                if (!tile.overwrite) total = _mm256_add_epi32(total, _mm256_loadu_si256(target));
                if (tile.finalize && args.float_output) {
                    const int64_t n = tile.n + 8 * j;
                    const __m256 scaled = _mm256_mul_ps(_mm256_cvtepi32_ps(total), _mm256_set1_ps(args.a_scales[m]));
                    const __m256 b_scale = _mm256_loadu_ps(args.b_scales + n);
                    const __m256 value = args.bias == nullptr
                        ? _mm256_mul_ps(scaled, b_scale)
                        : _mm256_fmadd_ps(scaled, b_scale, _mm256_loadu_ps(args.bias + n));
                    _mm256_storeu_ps(reinterpret_cast<float*>(target), value);
                } else {
                    _mm256_storeu_si256(target, total);
                }
            }
        }
    }
};

}  // namespace

constinit const Int8Kernels kernels{
    .absmax = &absmax,
    .column_absmax = &column_absmax,
    .quantize = &quantize,
    .quantize_by_column = &quantize_by_column,
    .dequantize = &dequantize,
    .dequantize_by_column = &dequantize_by_column,
    .gemm_tile_rows = Avx2Gemm::kTileRows,
    .gemm_tile_cols = Avx2Gemm::kTileCols,
    .gemm_workspace_bytes = &gemm_workspace_bytes<Avx2Gemm>,
    .gemm = &gemm<Avx2Gemm>,
};

}  // namespace ne::cpu::avx2
