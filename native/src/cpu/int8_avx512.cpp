// AVX-512 int8 kernels. Compiled with AVX-512 F/BW/DQ/VL/VNNI flags; called only when the CPU has
// all of them.
//
// GEMM: vpdpbusd multiplies 4 unsigned bytes by 4 signed bytes and adds the 4 products into an
// int32 lane (no saturation). A is made unsigned by adding 128 (flipping its sign bit), so
//   sum_k (a[m,k] + 128) * b[n,k] = acc[m,n] + 128 * sum_k b[n,k],
// and each packed B panel carries -128 * sum_k b[n,k] of its K slice, which starts the
// accumulators. Range: every partial sum is bounded by K * 255 * 128 = 2,139,095,040 < 2^31 for
// K <= 65536, and the lanes add modulo 2^32 anyway, so the final acc, at most K * 2^14 = 2^30 in
// magnitude, is exact.
#include "cpu/int8.hpp"

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ne::cpu::avx512 {
namespace {

#include "cpu/int8_simd.inl"

// The 6x64 register tile: 24 zmm accumulators, 4 vectors of B and 1 broadcast of A (29 of 32).
//
// Packed unit: a k quad (4 bytes, 32 bits), the operand of vpdpbusd.
// A micro-panel: for each quad, the 6 rows' units as a[m,k] + 128 (24 bytes).
// B micro-panel: 64 int32 corrections (-128 * column sums), then for each quad the 64 columns'
//   units (256 bytes, four vectors).
// Rows, columns and k past the matrix are packed as zeros (128 in the offset A).
//
// Blocking (not measured: the development machine has no AVX-512): kBlockDepth 384 keeps a B panel
// at 24 KB, half of a 48 KB L1D; the packed A block is 144 KB of a 1-2 MB L2; the packed B block
// 1.5 MB in the L3.
struct Avx512Gemm {
    static constexpr int64_t kTileRows = 6;
    static constexpr int64_t kTileCols = 64;
    static constexpr int64_t kBlockRows = 384;
    static constexpr int64_t kBlockDepth = 384;
    static constexpr int64_t kBlockCols = 4096;
    static constexpr int64_t kCorrectionBytes = kTileCols * 4;

    static int64_t quads(int64_t kc) { return ceil_div(kc, 4); }
    static int64_t a_panel_bytes(int64_t kc) { return quads(kc) * kTileRows * 4; }
    static int64_t b_panel_bytes(int64_t kc) { return kCorrectionBytes + quads(kc) * kTileCols * 4; }

    static __m256i load_units(const int8_t* row, int64_t k) {
        return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + k));
    }

    // Units of quads [k, kc) of `count` rows, the first `rows` of them valid, into `out`, each byte
    // XORed with `flip` (0x80 makes A unsigned): the edges and short slices the vector loops leave.
    static void pack_units_scalar(const int8_t* first_row, int64_t row_stride, int64_t rows, int64_t count, int64_t k,
                                  int64_t kc, uint8_t flip, unsigned char* out) {
        for (; k < kc; k += 4) {
            for (int64_t i = 0; i < count; ++i) {
                for (int64_t t = 0; t < 4; ++t) {
                    const int8_t value = (i < rows && k + t < kc) ? first_row[i * row_stride + k + t] : 0;
                    out[((k / 4) * count + i) * 4 + t] = static_cast<unsigned char>(static_cast<uint8_t>(value) ^ flip);
                }
            }
        }
    }

    static void pack_a(const GemmArgs& args, int64_t m0, int64_t rows, int64_t k0, int64_t kc, unsigned char* panel) {
        const int8_t* first_row = args.a + m0 * args.a_row_stride + k0;
        const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
        int64_t k = 0;
        if (rows == kTileRows) {
            for (; k + 32 <= kc; k += 32) {
                __m256i units[8];
                for (int64_t i = 0; i < kTileRows; ++i) {
                    units[i] = _mm256_xor_si256(load_units(first_row + i * args.a_row_stride, k), flip);
                }
                units[6] = units[7] = _mm256_setzero_si256();
                transpose_8x8_epi32(units);
                for (int64_t p = 0; p < 8; ++p) store_6x32(panel + (k / 4 + p) * kTileRows * 4, units[p]);
            }
        }
        pack_units_scalar(first_row, args.a_row_stride, rows, kTileRows, k, kc, 0x80, panel);
    }

    static void pack_b(const GemmArgs& args, int64_t n0, int64_t cols, int64_t k0, int64_t kc, unsigned char* panel) {
        const int8_t* first_row = args.b + n0 * args.b_row_stride + k0;
        unsigned char* units_out = panel + kCorrectionBytes;
        int64_t k = 0;
        if (cols == kTileCols) {
            for (; k + 32 <= kc; k += 32) {
                for (int64_t group = 0; group < kTileCols / 8; ++group) {
                    __m256i units[8];
                    for (int64_t i = 0; i < 8; ++i) units[i] = load_units(first_row + (8 * group + i) * args.b_row_stride, k);
                    transpose_8x8_epi32(units);
                    for (int64_t p = 0; p < 8; ++p) {
                        _mm256_storeu_si256(reinterpret_cast<__m256i*>(units_out + (k / 4 + p) * kTileCols * 4 + 32 * group),
                                            units[p]);
                    }
                }
            }
        }
        pack_units_scalar(first_row, args.b_row_stride, cols, kTileCols, k, kc, 0, units_out);

        // Column sums of the slice, by vpdpbusd with 1 as the unsigned operand (exact).
        const __m512i ones = _mm512_set1_epi8(1);
        __m512i sums[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
        for (int64_t q = 0; q < quads(kc); ++q) {
            for (int64_t j = 0; j < 4; ++j) {
                sums[j] = _mm512_dpbusd_epi32(sums[j], ones, _mm512_loadu_si512(units_out + q * kTileCols * 4 + 64 * j));
            }
        }
        for (int64_t j = 0; j < 4; ++j) {
            _mm512_storeu_si512(panel + 64 * j, _mm512_mullo_epi32(sums[j], _mm512_set1_epi32(-128)));
        }
    }

    static void compute_tile(const unsigned char* a_panel, const unsigned char* b_panel, int64_t kc, const TileJob& tile,
                             const GemmArgs& args) {
        __m512i acc[kTileRows][4];
        for (int64_t j = 0; j < 4; ++j) {
            const __m512i correction = _mm512_loadu_si512(b_panel + 64 * j);
            for (int64_t i = 0; i < kTileRows; ++i) acc[i][j] = correction;
        }
        const unsigned char* a = a_panel;
        const unsigned char* b = b_panel + kCorrectionBytes;
        for (int64_t q = quads(kc); q > 0; --q) {
            const __m512i b0 = _mm512_loadu_si512(b);
            const __m512i b1 = _mm512_loadu_si512(b + 64);
            const __m512i b2 = _mm512_loadu_si512(b + 128);
            const __m512i b3 = _mm512_loadu_si512(b + 192);
            for (int64_t i = 0; i < kTileRows; ++i) {
                int32_t unit;
                std::memcpy(&unit, a + 4 * i, sizeof unit);
                const __m512i ai = _mm512_set1_epi32(unit);
                acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], ai, b0);
                acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], ai, b1);
                acc[i][2] = _mm512_dpbusd_epi32(acc[i][2], ai, b2);
                acc[i][3] = _mm512_dpbusd_epi32(acc[i][3], ai, b3);
            }
            a += kTileRows * 4;
            b += kTileCols * 4;
        }
        if (tile.rows == kTileRows && tile.cols == kTileCols) {
            write_full_tile(acc, tile, args);
        } else {
            int32_t spill[kTileRows][kTileCols];
            for (int64_t i = 0; i < kTileRows; ++i) {
                for (int64_t j = 0; j < 4; ++j) _mm512_storeu_si512(&spill[i][16 * j], acc[i][j]);
            }
            write_partial_tile(&spill[0][0], kTileCols, tile, args);
        }
    }

    // The vector form of write_partial_tile.
    static void write_full_tile(const __m512i (&acc)[kTileRows][4], const TileJob& tile, const GemmArgs& args) {
        for (int64_t i = 0; i < kTileRows; ++i) {
            const int64_t m = tile.m + i;
            unsigned char* row = c_address(args, m, tile.n);
            for (int64_t j = 0; j < 4; ++j) {
                unsigned char* target = row + 64 * j;
                __m512i total = acc[i][j];
                if (!tile.overwrite) total = _mm512_add_epi32(total, _mm512_loadu_si512(target));
                if (tile.finalize && args.float_output) {
                    const int64_t n = tile.n + 16 * j;
                    // The zero-masked conversion with a full mask is vcvtdq2ps itself; the plain intrinsic
                    // trips a false -Wmaybe-uninitialized in GCC 12 (bug 105593).
                    const __m512 as_float = _mm512_maskz_cvtepi32_ps(static_cast<__mmask16>(0xffff), total);
                    const __m512 scaled = _mm512_mul_ps(as_float, _mm512_set1_ps(args.a_scales[m]));
                    const __m512 b_scale = _mm512_loadu_ps(args.b_scales + n);
                    const __m512 value = args.bias == nullptr
                        ? _mm512_mul_ps(scaled, b_scale)
                        : _mm512_fmadd_ps(scaled, b_scale, _mm512_loadu_ps(args.bias + n));
                    _mm512_storeu_ps(target, value);
                } else {
                    _mm512_storeu_si512(target, total);
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
    .gemm_tile_rows = Avx512Gemm::kTileRows,
    .gemm_tile_cols = Avx512Gemm::kTileCols,
    .gemm_workspace_bytes = &gemm_workspace_bytes<Avx512Gemm>,
    .gemm = &gemm<Avx512Gemm>,
};

}  // namespace ne::cpu::avx512
