// SIMD code shared by the AVX2 and AVX-512 f32 GEMM: packing, the microkernel, the GotoBLAS/BLIS
// blocking loops, and the matrix-vector kernels of single-row and single-column products.
//
// Included inside the unnamed namespace of ne::cpu::avx2 and of ne::cpu::avx512, after
// <immintrin.h>, <cstdint>, <cstddef>, <cstring>, cpu/gemm.hpp and the ISA's traits `Isa`: each
// ISA gets its own internal copy compiled with its own flags, so no function compiled for
// AVX-512 can be linked into the AVX2 path. `Isa` provides
//   Vec, kLanes                       the vector type and its number of floats
//   zero, load, store, broadcast, add, mul, fma(a, b, c) = a * b + c, reduce_add,
//   load_first(p, count)              the first `count` floats at p (any count), the rest zero;
//                                     nothing past them is read
//   kTileRows, kTileVectors           the register tile: kTileRows x (kTileVectors * kLanes)
//   kBlockRows, kBlockDepth, kBlockCols   the cache blocks MC, KC, NC
// Packing stays on 256-bit vectors in both: it is a small share of the time.
//
// Determinism: every element of C gets the same operations wherever its tile lies and whichever
// thread computes it. K is cut into fixed kBlockDepth slices; within a slice the microkernel adds
// the products in k order from zero, and the slice's sum s goes into C as alpha * s + beta * C
// (beta = 1 after the first slice). Tiles cut short by the edges of C run the same operations
// on fewer rows, or on a copy of their part of C. The matrix-vector kernels keep one order of
// operations per element of y, whatever range of y they are called on.

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t ceil_div(int64_t value, int64_t divisor) { return (value + divisor - 1) / divisor; }
inline int64_t round_up(int64_t value, int64_t multiple) { return ceil_div(value, multiple) * multiple; }

constexpr int64_t kTileRows = Isa::kTileRows;
constexpr int64_t kTileCols = Isa::kTileVectors * Isa::kLanes;
static_assert(Isa::kBlockRows % kTileRows == 0 && Isa::kBlockCols % kTileCols == 0,
              "cache blocks hold whole register tiles");

// ------------------------------------------------------------------------------------------
// Packing
// ------------------------------------------------------------------------------------------
//
// A micro-panel of A holds kTileRows rows of a kBlockDepth slice, k-major: panel[k * kTileRows + i]
// is op(A)[m0 + i, k0 + k]. A micro-panel of B holds kTileCols columns: panel[k * kTileCols + j] is
// op(B)[k0 + k, n0 + j]. Rows and columns past the matrix are packed as zeros, so that the
// microkernel always computes a whole tile.
//
// Depending on the transposes, a panel's lines (its kTileRows rows of op(A), or kTileCols
// columns of op(B)) lie in memory either along k (A [M,K], B [N,K]: pack_lines transposes
// 8 x 8 blocks) or across k (A [K,M], B [K,N]: pack_columns_block copies runs).

// The first `count` floats at p, the rest zero; nothing past them is read.
inline __m256 load8_first(const float* p, int64_t count) {
    if (count >= 8) return _mm256_loadu_ps(p);
    if (count <= 0) return _mm256_setzero_ps();
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_maskload_ps(p, mask);
}

// Stores the first `count` (1..8) floats of v. The widths of the panels need 8, 6 (AVX2 A panels)
// and 4 (the second group of AVX-512 A panels); vmaskmovps stores are slow on AMD CPUs.
inline void store8_first(float* p, __m256 v, int64_t count) {
    const __m128 low = _mm256_castps256_ps128(v);
    switch (count) {
        case 8: _mm256_storeu_ps(p, v); return;
        case 6:
            _mm_storeu_ps(p, low);
            _mm_storel_epi64(reinterpret_cast<__m128i*>(p + 4), _mm_castps_si128(_mm256_extractf128_ps(v, 1)));
            return;
        case 4: _mm_storeu_ps(p, low); return;
        default: {
            float lanes[8];
            _mm256_storeu_ps(lanes, v);
            std::memcpy(p, lanes, static_cast<size_t>(count) * sizeof(float));
        }
    }
}

// rows[i][j] -> rows[j][i] for 8 vectors of 8 floats.
inline void transpose_8x8(__m256 rows[8]) {
    const __m256 t0 = _mm256_unpacklo_ps(rows[0], rows[1]);
    const __m256 t1 = _mm256_unpackhi_ps(rows[0], rows[1]);
    const __m256 t2 = _mm256_unpacklo_ps(rows[2], rows[3]);
    const __m256 t3 = _mm256_unpackhi_ps(rows[2], rows[3]);
    const __m256 t4 = _mm256_unpacklo_ps(rows[4], rows[5]);
    const __m256 t5 = _mm256_unpackhi_ps(rows[4], rows[5]);
    const __m256 t6 = _mm256_unpacklo_ps(rows[6], rows[7]);
    const __m256 t7 = _mm256_unpackhi_ps(rows[6], rows[7]);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44);
    const __m256 u1 = _mm256_shuffle_ps(t0, t2, 0xee);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44);
    const __m256 u3 = _mm256_shuffle_ps(t1, t3, 0xee);
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44);
    const __m256 u5 = _mm256_shuffle_ps(t4, t6, 0xee);
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44);
    const __m256 u7 = _mm256_shuffle_ps(t5, t7, 0xee);
    rows[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    rows[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    rows[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    rows[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    rows[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    rows[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    rows[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    rows[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// panel[k * width + i] = line i at k, with line i at src + i * stride (contiguous along k), for
// i < count; zero for count <= i < width.
inline void pack_lines(const float* src, int64_t stride, int64_t count, int64_t width, int64_t kc, float* panel) {
    for (int64_t group = 0; group < width; group += 8) {
        const int64_t lines = count - group;
        const int64_t stored = min64(8, width - group);
        for (int64_t k = 0; k < kc; k += 8) {
            const int64_t depth = min64(8, kc - k);
            __m256 block[8];
            for (int64_t i = 0; i < 8; ++i) {
                block[i] = i < lines ? load8_first(src + (group + i) * stride + k, depth) : _mm256_setzero_ps();
            }
            transpose_8x8(block);
            for (int64_t t = 0; t < depth; ++t) store8_first(panel + (k + t) * width + group, block[t], stored);
        }
    }
}

// Lines [0, count) of a block into ceil(count / width) panels of `width` lines, panel p at
// panels + p * width * kc.
inline void pack_lines_block(const float* src, int64_t stride, int64_t count, int64_t width, int64_t kc, float* panels) {
    for (int64_t first = 0; first < count; first += width) {
        pack_lines(src + first * stride, stride, min64(width, count - first), width, kc, panels + first * kc);
    }
}

// The same for lines across k, with line j at src + j and its element k at src + k * stride. Row
// k of the source, element k of every line, is read once and in order for the whole block: panel
// by panel, each row would be a 64-byte read a page apart from the last, out of reach of the
// hardware prefetchers (B [1024, 4096] with M = 4: 2x slower).
inline void pack_columns_block(const float* src, int64_t stride, int64_t count, int64_t width, int64_t kc, float* panels) {
    for (int64_t k = 0; k < kc; ++k) {
        const float* row = src + k * stride;
        for (int64_t first = 0; first < count; first += width) {
            float* out = panels + first * kc + k * width;
            for (int64_t j = 0; j < width; j += 8) {
                store8_first(out + j, load8_first(row + first + j, count - first - j), min64(8, width - j));
            }
        }
    }
}

// Rows [m0, m0 + rows) of op(A) over k [k0, k0 + kc), in kTileRows-row panels.
inline void pack_a(const SgemmBatch& p, const float* a, int64_t m0, int64_t rows, int64_t k0, int64_t kc, float* panels) {
    if (p.transpose_a) pack_columns_block(a + k0 * p.lda + m0, p.lda, rows, kTileRows, kc, panels);
    else pack_lines_block(a + m0 * p.lda + k0, p.lda, rows, kTileRows, kc, panels);
}

// Columns [n0, n0 + cols) of op(B) over k [k0, k0 + kc), in kTileCols-column panels.
inline void pack_b(const SgemmBatch& p, const float* b, int64_t n0, int64_t cols, int64_t k0, int64_t kc, float* panels) {
    if (p.transpose_b) pack_lines_block(b + n0 * p.ldb + k0, p.ldb, cols, kTileCols, kc, panels);
    else pack_columns_block(b + k0 * p.ldb + n0, p.ldb, cols, kTileCols, kc, panels);
}

// ------------------------------------------------------------------------------------------
// Microkernel and blocking
// ------------------------------------------------------------------------------------------

// kRows rows of a tile of C (row stride ldc) = alpha * (A panel * B panel) + beta * C; beta == 0
// does not read C. One broadcast of A and kTileVectors loads of B feed kRows * kTileVectors FMAs
// per k. Each element gets the same operations whatever kRows.
template <int64_t kRows>
inline void microkernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta) {
    using Vec = Isa::Vec;
    // The tile of C comes last, after the whole K loop, too late for out-of-order execution to
    // hide the cache misses of its rows: fetch it now.
    for (int64_t i = 0; i < kRows; ++i) {
        const char* row = reinterpret_cast<const char*>(c + i * ldc);
        for (int64_t byte = 0; byte < kTileCols * 4; byte += 64) _mm_prefetch(row + byte, _MM_HINT_T0);
        _mm_prefetch(row + kTileCols * 4 - 1, _MM_HINT_T0);
    }
    Vec acc[kRows][Isa::kTileVectors];
    for (int64_t i = 0; i < kRows; ++i) {
        for (int64_t j = 0; j < Isa::kTileVectors; ++j) acc[i][j] = Isa::zero();
    }
    for (int64_t k = 0; k < kc; ++k) {
        Vec b_row[Isa::kTileVectors];
        for (int64_t j = 0; j < Isa::kTileVectors; ++j) b_row[j] = Isa::load(b + j * Isa::kLanes);
        for (int64_t i = 0; i < kRows; ++i) {
            const Vec a_value = Isa::broadcast(a + i);
            for (int64_t j = 0; j < Isa::kTileVectors; ++j) acc[i][j] = Isa::fma(a_value, b_row[j], acc[i][j]);
        }
        a += kTileRows;
        b += kTileCols;
    }
    const Vec alpha_vec = Isa::broadcast(&alpha);
    if (beta == 0.0f) {
        for (int64_t i = 0; i < kRows; ++i) {
            for (int64_t j = 0; j < Isa::kTileVectors; ++j) Isa::store(c + i * ldc + j * Isa::kLanes, Isa::mul(alpha_vec, acc[i][j]));
        }
    } else {
        const Vec beta_vec = Isa::broadcast(&beta);
        for (int64_t i = 0; i < kRows; ++i) {
            for (int64_t j = 0; j < Isa::kTileVectors; ++j) {
                float* target = c + i * ldc + j * Isa::kLanes;
                Isa::store(target, Isa::fma(alpha_vec, acc[i][j], Isa::mul(beta_vec, Isa::load(target))));
            }
        }
    }
}

// The microkernel for exactly `rows` (1..kRows) rows: a tile cut short by the edge of C costs its
// rows only (M = 8 on 6-row tiles: 8 rows of work, not 12).
template <int64_t kRows>
inline void microkernel_rows(int64_t rows, int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha,
                             float beta) {
    if constexpr (kRows > 1) {
        if (rows < kRows) {
            microkernel_rows<kRows - 1>(rows, kc, a, b, c, ldc, alpha, beta);
            return;
        }
    }
    microkernel<kRows>(kc, a, b, c, ldc, alpha, beta);
}

// The tile of C at c: rows x cols valid elements of a kTileRows x kTileCols register tile. A tile
// cut short by the right edge runs on a copy of its part of C, with the same operations.
inline void compute_tile(const float* a_panel, const float* b_panel, int64_t kc, float* c, int64_t ldc, int64_t rows,
                         int64_t cols, float alpha, float beta) {
    if (cols == kTileCols) {
        microkernel_rows<kTileRows>(rows, kc, a_panel, b_panel, c, ldc, alpha, beta);
        return;
    }
    alignas(64) float tile[kTileRows * kTileCols] = {};
    if (beta != 0.0f) {
        for (int64_t i = 0; i < rows; ++i) std::memcpy(tile + i * kTileCols, c + i * ldc, static_cast<size_t>(cols) * sizeof(float));
    }
    microkernel_rows<kTileRows>(rows, kc, a_panel, b_panel, tile, kTileCols, alpha, beta);
    for (int64_t i = 0; i < rows; ++i) std::memcpy(c + i * ldc, tile + i * kTileCols, static_cast<size_t>(cols) * sizeof(float));
}

// Floats of the packed A block for blocks of up to `rows` rows; a multiple of 16 (64 bytes).
inline int64_t packed_a_floats(int64_t rows, int64_t K) {
    return round_up(min64(round_up(rows, kTileRows), Isa::kBlockRows) * min64(K, Isa::kBlockDepth), 16);
}

int64_t gemm_workspace_floats(int64_t rows, int64_t cols, int64_t K) {
    return packed_a_floats(rows, K) + round_up(min64(round_up(cols, kTileCols), Isa::kBlockCols) * min64(K, Isa::kBlockDepth), 16);
}

// GotoBLAS/BLIS blocking of one block of C:
//   for each kBlockCols-wide block of columns
//     for each kBlockDepth-deep slice of K:    pack that block of B into kTileCols-wide panels (L3)
//       for each kBlockRows-high block of rows: pack that block of A into kTileRows-high panels (L2)
//         for each B panel:                    stays in L1 while
//           for each A panel:                  the A panels stream from L2
//             microkernel: one register tile of C over the K slice
void gemm(const SgemmBatch& p, const SgemmBlock& block, float* workspace) {
    const float* a = p.a + block.batch * p.a_batch_stride;
    const float* b = p.b + block.batch * p.b_batch_stride;
    float* c = p.c + block.batch * p.c_batch_stride;
    float* packed_a = workspace;
    float* packed_b = workspace + packed_a_floats(block.m_end - block.m_begin, p.K);
    for (int64_t jc = block.n_begin; jc < block.n_end; jc += Isa::kBlockCols) {
        const int64_t nc = min64(Isa::kBlockCols, block.n_end - jc);
        for (int64_t pc = 0; pc < p.K; pc += Isa::kBlockDepth) {
            const int64_t kc = min64(Isa::kBlockDepth, p.K - pc);
            const float beta = pc == 0 ? p.beta : 1.0f;
            pack_b(p, b, jc, nc, pc, kc, packed_b);
            for (int64_t ic = block.m_begin; ic < block.m_end; ic += Isa::kBlockRows) {
                const int64_t mc = min64(Isa::kBlockRows, block.m_end - ic);
                pack_a(p, a, ic, mc, pc, kc, packed_a);
                for (int64_t jr = 0; jr < nc; jr += kTileCols) {
                    for (int64_t ir = 0; ir < mc; ir += kTileRows) {
                        compute_tile(packed_a + ir * kc, packed_b + jr * kc, kc, c + (ic + ir) * p.ldc + jc + jr, p.ldc,
                                     min64(kTileRows, mc - ir), min64(kTileCols, nc - jr), p.alpha, beta);
                    }
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Matrix-vector products (a single row or column of C)
// ------------------------------------------------------------------------------------------
//
// Bound by reading W once, they skip packing. W with rows along k: each y[i] is a dot product
// (kDotRows rows at a time share the loads of x). W with rows across k: runs of y accumulate in
// L1 while the rows of W stream by. Threads split y in multiples of kGemvUnit.

constexpr int64_t kDotRows = 4;
constexpr int64_t kAcrossChunk = 1024;
constexpr int64_t kGemvUnit = 64;
static_assert(kGemvUnit % kDotRows == 0 && kGemvUnit % Isa::kLanes == 0, "shares of y hold whole groups and vectors");

// y = alpha * sum + beta * y, with the operations of the microkernel's epilogue.
inline void write_y(float* y, float sum, float alpha, float beta) {
    *y = beta == 0.0f ? alpha * sum : _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(alpha), _mm_set_ss(sum), _mm_set_ss(beta * *y)));
}

// sums[r] = dot(row r of w, x) for kRows rows; each row gets the same operations whatever kRows.
template <int64_t kRows>
inline void dot_rows(const float* w, int64_t ldw, const float* x, int64_t K, float* sums) {
    using Vec = Isa::Vec;
    constexpr int64_t L = Isa::kLanes;
    Vec acc[kRows][2];
    for (int64_t r = 0; r < kRows; ++r) acc[r][0] = acc[r][1] = Isa::zero();
    int64_t k = 0;
    for (; k + 2 * L <= K; k += 2 * L) {
        const Vec x0 = Isa::load(x + k);
        const Vec x1 = Isa::load(x + k + L);
        for (int64_t r = 0; r < kRows; ++r) {
            acc[r][0] = Isa::fma(Isa::load(w + r * ldw + k), x0, acc[r][0]);
            acc[r][1] = Isa::fma(Isa::load(w + r * ldw + k + L), x1, acc[r][1]);
        }
    }
    if (k < K) {
        const Vec x0 = Isa::load_first(x + k, K - k);
        const Vec x1 = Isa::load_first(x + k + L, K - k - L);
        for (int64_t r = 0; r < kRows; ++r) {
            acc[r][0] = Isa::fma(Isa::load_first(w + r * ldw + k, K - k), x0, acc[r][0]);
            acc[r][1] = Isa::fma(Isa::load_first(w + r * ldw + k + L, K - k - L), x1, acc[r][1]);
        }
    }
    for (int64_t r = 0; r < kRows; ++r) sums[r] = Isa::reduce_add(Isa::add(acc[r][0], acc[r][1]));
}

// y[i] for i in [begin, end), W(i,k) = w[k * ldw + i]: each element is one lane of a running sum
// in k order. The sums of kAcrossChunk elements (4 KB) stay in L1 while the rows of W stream by
// in 4 KB runs, four rows at a time. Measured on W [1024, 4096] (Zen 3, 1 thread, L3-resident):
// registers over 64 elements for all of K, which read 256 bytes a page apart per row, 9 GFLOPS;
// runs of 512, 1024 and 2048 elements 9, 20 and 16; OpenBLAS sgemv 28. Eight rows at a time were
// no faster than four.
inline void gemv_across_k(const SgemvBatch& g, const float* w, const float* x, float* y, int64_t begin, int64_t end) {
    using Vec = Isa::Vec;
    constexpr int64_t L = Isa::kLanes;
    alignas(64) float sums[kAcrossChunk];
    for (int64_t i = begin; i < end; i += kAcrossChunk) {
        const int64_t count = min64(kAcrossChunk, end - i);
        for (int64_t j = 0; j < count; j += L) Isa::store(sums + j, Isa::zero());
        int64_t k = 0;
        for (; k + 4 <= g.K; k += 4) {
            const Vec x0 = Isa::broadcast(x + k * g.x_stride);
            const Vec x1 = Isa::broadcast(x + (k + 1) * g.x_stride);
            const Vec x2 = Isa::broadcast(x + (k + 2) * g.x_stride);
            const Vec x3 = Isa::broadcast(x + (k + 3) * g.x_stride);
            const float* row = w + k * g.ldw + i;
            for (int64_t j = 0; j < count; j += L) {
                const int64_t left = count - j;
                Vec sum = Isa::load(sums + j);
                sum = Isa::fma(x0, Isa::load_first(row + j, left), sum);
                sum = Isa::fma(x1, Isa::load_first(row + g.ldw + j, left), sum);
                sum = Isa::fma(x2, Isa::load_first(row + 2 * g.ldw + j, left), sum);
                sum = Isa::fma(x3, Isa::load_first(row + 3 * g.ldw + j, left), sum);
                Isa::store(sums + j, sum);
            }
        }
        for (; k < g.K; ++k) {
            const Vec x0 = Isa::broadcast(x + k * g.x_stride);
            const float* row = w + k * g.ldw + i;
            for (int64_t j = 0; j < count; j += L) {
                Isa::store(sums + j, Isa::fma(x0, Isa::load_first(row + j, count - j), Isa::load(sums + j)));
            }
        }
        for (int64_t j = 0; j < count; ++j) write_y(y + (i + j) * g.y_stride, sums[j], g.alpha, g.beta);
    }
}

int64_t gemv_workspace_floats(int64_t K) { return round_up(K, 16); }

// y[begin, end) of product `index`. workspace: a contiguous copy of a strided x for the dot products.
void gemv(const SgemvBatch& g, int64_t index, int64_t begin, int64_t end, float* workspace) {
    const float* w = g.w + index * g.w_batch_stride;
    const float* x = g.x + index * g.x_batch_stride;
    float* y = g.y + index * g.y_batch_stride;
    if (!g.w_rows_are_k) {
        gemv_across_k(g, w, x, y, begin, end);
        return;
    }
    if (g.x_stride != 1) {
        for (int64_t k = 0; k < g.K; ++k) workspace[k] = x[k * g.x_stride];
        x = workspace;
    }
    int64_t i = begin;
    for (; i + kDotRows <= end; i += kDotRows) {
        float sums[kDotRows];
        dot_rows<kDotRows>(w + i * g.ldw, g.ldw, x, g.K, sums);
        for (int64_t r = 0; r < kDotRows; ++r) write_y(y + (i + r) * g.y_stride, sums[r], g.alpha, g.beta);
    }
    for (; i < end; ++i) {
        float sum;
        dot_rows<1>(w + i * g.ldw, g.ldw, x, g.K, &sum);
        write_y(y + i * g.y_stride, sum, g.alpha, g.beta);
    }
}
