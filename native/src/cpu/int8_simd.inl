// SIMD code shared by the AVX2 and AVX-512 int8 kernels: quantization, the 8x8 transpose that
// packing uses, and the GotoBLAS blocking loops of the GEMM around an ISA's microkernel.
//
// Included inside the unnamed namespace of ne::cpu::avx2 and of ne::cpu::avx512, after
// <immintrin.h>, <cstdint>, <cstddef>, <cstring> and cpu/int8.hpp: each ISA gets its own internal
// copy compiled with its own flags, so no function compiled for AVX-512 can be linked into the
// AVX2 path. Quantization stays on 256-bit vectors in both: it is bound by memory bandwidth.

// ------------------------------------------------------------------------------------------
// Quantization
// ------------------------------------------------------------------------------------------

inline uint32_t abs_bits(float x) {
    uint32_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    return bits & 0x7fffffffu;
}

inline float float_from_bits(uint32_t bits) {
    float x;
    std::memcpy(&x, &bits, sizeof x);
    return x;
}

inline __m256i abs_bits8(const float* x) {
    return _mm256_and_si256(_mm256_castps_si256(_mm256_loadu_ps(x)), _mm256_set1_epi32(0x7fffffff));
}

// With the sign cleared, a float's bits order like its value (NaN above infinity above finite
// values), and they are non-negative as int32: a signed integer max is an exact, NaN-proof absmax.
float absmax(const float* x, int64_t n) {
    __m256i max0 = _mm256_setzero_si256();
    __m256i max1 = _mm256_setzero_si256();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        max0 = _mm256_max_epi32(max0, abs_bits8(x + i));
        max1 = _mm256_max_epi32(max1, abs_bits8(x + i + 8));
    }
    for (; i + 8 <= n; i += 8) max0 = _mm256_max_epi32(max0, abs_bits8(x + i));
    max0 = _mm256_max_epi32(max0, max1);
    __m128i max = _mm_max_epi32(_mm256_castsi256_si128(max0), _mm256_extracti128_si256(max0, 1));
    max = _mm_max_epi32(max, _mm_shuffle_epi32(max, _MM_SHUFFLE(1, 0, 3, 2)));
    max = _mm_max_epi32(max, _mm_shuffle_epi32(max, _MM_SHUFFLE(2, 3, 0, 1)));
    uint32_t largest = static_cast<uint32_t>(_mm_cvtsi128_si32(max));
    for (; i < n; ++i) largest = abs_bits(x[i]) > largest ? abs_bits(x[i]) : largest;
    return float_from_bits(largest);
}

// The running maxima live in `maxima` (as bits) while the rows stream by, so x is read once in
// memory order instead of column by column.
void column_absmax(const float* x, int64_t rows, int64_t cols, int64_t row_stride, float* maxima) {
    for (int64_t r = 0; r < rows; ++r) {
        const float* row = x + r * row_stride;
        int64_t c = 0;
        for (; c + 8 <= cols; c += 8) {
            __m256i* running = reinterpret_cast<__m256i*>(maxima + c);
            const __m256i value = abs_bits8(row + c);
            _mm256_storeu_si256(running, r == 0 ? value : _mm256_max_epi32(_mm256_loadu_si256(running), value));
        }
        for (; c < cols; ++c) {
            const uint32_t value = abs_bits(row[c]);
            const uint32_t running = abs_bits(maxima[c]);
            maxima[c] = float_from_bits(r == 0 || value > running ? value : running);
        }
    }
}

// round_half_even(x * inverse) clamped to [-127, 127]: vcvtps2dq rounds to nearest even under
// the default MXCSR, like nearbyint in the scalar reference.
inline __m256i quantize8(__m256 x, __m256 inverse) {
    const __m256i rounded = _mm256_cvtps_epi32(_mm256_mul_ps(x, inverse));
    return _mm256_min_epi32(_mm256_max_epi32(rounded, _mm256_set1_epi32(-127)), _mm256_set1_epi32(127));
}

inline int8_t quantize1(float x, float inverse) {
    const int32_t rounded = _mm_cvtss_si32(_mm_set_ss(x * inverse));
    return static_cast<int8_t>(rounded < -127 ? -127 : (rounded > 127 ? 127 : rounded));
}

// Four vectors of 8 int32 in [-127, 127] -> 32 int8 in order. The packs interleave the 128-bit
// lanes; the permute puts the 4-byte groups back in order.
inline __m256i pack_int8(__m256i v0, __m256i v1, __m256i v2, __m256i v3) {
    const __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(v0, v1), _mm256_packs_epi32(v2, v3));
    return _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

inline void store_int8x8(int8_t* q, __m256i v) {
    const __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(q), _mm_packs_epi16(words, words));
}

void quantize(const float* x, int64_t n, float inverse, int8_t* q) {
    const __m256 inv = _mm256_set1_ps(inverse);
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m256i packed = pack_int8(quantize8(_mm256_loadu_ps(x + i), inv), quantize8(_mm256_loadu_ps(x + i + 8), inv),
                                         quantize8(_mm256_loadu_ps(x + i + 16), inv), quantize8(_mm256_loadu_ps(x + i + 24), inv));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i), packed);
    }
    for (; i + 8 <= n; i += 8) store_int8x8(q + i, quantize8(_mm256_loadu_ps(x + i), inv));
    for (; i < n; ++i) q[i] = quantize1(x[i], inverse);
}

void quantize_by_column(const float* x, int64_t n, const float* inverse, int8_t* q) {
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m256i packed = pack_int8(quantize8(_mm256_loadu_ps(x + i), _mm256_loadu_ps(inverse + i)),
                                         quantize8(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(inverse + i + 8)),
                                         quantize8(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(inverse + i + 16)),
                                         quantize8(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(inverse + i + 24)));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i), packed);
    }
    for (; i + 8 <= n; i += 8) store_int8x8(q + i, quantize8(_mm256_loadu_ps(x + i), _mm256_loadu_ps(inverse + i)));
    for (; i < n; ++i) q[i] = quantize1(x[i], inverse[i]);
}

inline __m256 load_int8x8_as_float(const int8_t* q) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q))));
}

void dequantize(const int8_t* q, int64_t n, float scale, float* x) {
    const __m256 s = _mm256_set1_ps(scale);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(load_int8x8_as_float(q + i), s));
    for (; i < n; ++i) x[i] = static_cast<float>(q[i]) * scale;
}

void dequantize_by_column(const int8_t* q, int64_t n, const float* scales, float* x) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(x + i, _mm256_mul_ps(load_int8x8_as_float(q + i), _mm256_loadu_ps(scales + i)));
    }
    for (; i < n; ++i) x[i] = static_cast<float>(q[i]) * scales[i];
}

// ------------------------------------------------------------------------------------------
// GEMM: packing helper, epilogue, blocking
// ------------------------------------------------------------------------------------------

// rows[i][j] -> rows[j][i] for 8 vectors of 8 32-bit elements. Packing moves whole k units (an
// int16 pair for AVX2, a byte quad for VNNI: both 32 bits) from rows of A or B into the
// column-interleaved order of a micro-panel.
inline void transpose_8x8_epi32(__m256i rows[8]) {
    const __m256i t0 = _mm256_unpacklo_epi32(rows[0], rows[1]);
    const __m256i t1 = _mm256_unpackhi_epi32(rows[0], rows[1]);
    const __m256i t2 = _mm256_unpacklo_epi32(rows[2], rows[3]);
    const __m256i t3 = _mm256_unpackhi_epi32(rows[2], rows[3]);
    const __m256i t4 = _mm256_unpacklo_epi32(rows[4], rows[5]);
    const __m256i t5 = _mm256_unpackhi_epi32(rows[4], rows[5]);
    const __m256i t6 = _mm256_unpacklo_epi32(rows[6], rows[7]);
    const __m256i t7 = _mm256_unpackhi_epi32(rows[6], rows[7]);
    const __m256i u0 = _mm256_unpacklo_epi64(t0, t2);
    const __m256i u1 = _mm256_unpackhi_epi64(t0, t2);
    const __m256i u2 = _mm256_unpacklo_epi64(t1, t3);
    const __m256i u3 = _mm256_unpackhi_epi64(t1, t3);
    const __m256i u4 = _mm256_unpacklo_epi64(t4, t6);
    const __m256i u5 = _mm256_unpackhi_epi64(t4, t6);
    const __m256i u6 = _mm256_unpacklo_epi64(t5, t7);
    const __m256i u7 = _mm256_unpackhi_epi64(t5, t7);
    rows[0] = _mm256_permute2x128_si256(u0, u4, 0x20);
    rows[1] = _mm256_permute2x128_si256(u1, u5, 0x20);
    rows[2] = _mm256_permute2x128_si256(u2, u6, 0x20);
    rows[3] = _mm256_permute2x128_si256(u3, u7, 0x20);
    rows[4] = _mm256_permute2x128_si256(u0, u4, 0x31);
    rows[5] = _mm256_permute2x128_si256(u1, u5, 0x31);
    rows[6] = _mm256_permute2x128_si256(u2, u6, 0x31);
    rows[7] = _mm256_permute2x128_si256(u3, u7, 0x31);
}

// Stores elements 0..5 of v (24 bytes): one 6-row k unit of an A micro-panel.
inline void store_6x32(unsigned char* destination, __m256i v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(destination), _mm256_castsi256_si128(v));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(destination + 16), _mm256_extracti128_si256(v, 1));
}

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t ceil_div(int64_t value, int64_t divisor) { return (value + divisor - 1) / divisor; }
inline int64_t round_up(int64_t value, int64_t multiple) { return ceil_div(value, multiple) * multiple; }

// One register tile of C and what to do with it.
struct TileJob {
    int64_t m;          // first row
    int64_t n;          // first column
    int64_t rows;       // valid rows, <= the tile's
    int64_t cols;       // valid columns, <= the tile's
    bool overwrite;     // first K block: C holds nothing of this product yet
    bool finalize;      // last K block: a float output gets its epilogue
};

inline unsigned char* c_address(const GemmArgs& args, int64_t m, int64_t n) {
    return static_cast<unsigned char*>(args.c) + (m * args.c_row_stride + n) * 4;
}

// The float epilogue, with the same operations in the same order as the vector epilogues and the
// scalar reference (int8.cpp), so that every path gives the same bits.
inline float scale_accumulator(int32_t acc, float a_scale, float b_scale, const float* bias) {
    const float scaled = static_cast<float>(acc) * a_scale;
    if (bias == nullptr) return scaled * b_scale;
    return _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(scaled), _mm_set_ss(b_scale), _mm_set_ss(*bias)));
}

// Writes the valid rows x cols of a tile that the microkernel left in `acc` (int32, acc_stride
// per row): edge tiles only, so plain scalar code. Partial sums in a float c are int32 bits.
inline void write_partial_tile(const int32_t* acc, int64_t acc_stride, const TileJob& tile, const GemmArgs& args) {
    for (int64_t i = 0; i < tile.rows; ++i) {
        const int64_t m = tile.m + i;
        for (int64_t j = 0; j < tile.cols; ++j) {
            const int64_t n = tile.n + j;
            unsigned char* element = c_address(args, m, n);
            int32_t total = acc[i * acc_stride + j];
            if (!tile.overwrite) {
                int32_t partial;
                std::memcpy(&partial, element, sizeof partial);
                total += partial;
            }
            if (tile.finalize && args.float_output) {
                const float value = scale_accumulator(total, args.a_scales[m], args.b_scales[n],
                                                      args.bias == nullptr ? nullptr : args.bias + n);
                std::memcpy(element, &value, sizeof value);
            } else {
                std::memcpy(element, &total, sizeof total);
            }
        }
    }
}

// Bytes of the packed A block for up to `rows` rows and the deepest K slice.
template <class Kernel>
int64_t packed_a_bytes(int64_t rows, int64_t K) {
    const int64_t panels = ceil_div(min64(rows, Kernel::kBlockRows), Kernel::kTileRows);
    return round_up(panels * Kernel::a_panel_bytes(min64(K, Kernel::kBlockDepth)), 64);
}

template <class Kernel>
int64_t gemm_workspace_bytes(int64_t rows, int64_t cols, int64_t K) {
    const int64_t b_panels = ceil_div(min64(cols, Kernel::kBlockCols), Kernel::kTileCols);
    return packed_a_bytes<Kernel>(rows, K) + b_panels * Kernel::b_panel_bytes(min64(K, Kernel::kBlockDepth));
}

// GotoBLAS/BLIS blocking of one thread's range; Kernel supplies the tile and block sizes, the
// packing of micro-panels and the microkernel:
//   for each kBlockCols-wide block of columns
//     for each kBlockDepth-deep slice of K:   pack that block of B into kTileCols-wide panels
//       for each kBlockRows-high block of rows: pack that block of A into kTileRows-high panels
//         for each B panel:                   stays in L1 while
//           for each A panel:                 the A panels stream from L2
//             microkernel: one register tile of C over the K slice
// K slices after the first add to the int32 partial sums left in C (see write_partial_tile).
template <class Kernel>
void gemm(const GemmArgs& args, const GemmRange& range, void* workspace) {
    unsigned char* packed_a = static_cast<unsigned char*>(workspace);
    unsigned char* packed_b = packed_a + packed_a_bytes<Kernel>(range.m_end - range.m_begin, args.K);
    for (int64_t jc = range.n_begin; jc < range.n_end; jc += Kernel::kBlockCols) {
        const int64_t nc = min64(Kernel::kBlockCols, range.n_end - jc);
        for (int64_t pc = 0; pc < args.K; pc += Kernel::kBlockDepth) {
            const int64_t kc = min64(Kernel::kBlockDepth, args.K - pc);
            const int64_t a_panel_bytes = Kernel::a_panel_bytes(kc);
            const int64_t b_panel_bytes = Kernel::b_panel_bytes(kc);
            for (int64_t jr = 0; jr < nc; jr += Kernel::kTileCols) {
                Kernel::pack_b(args, jc + jr, min64(Kernel::kTileCols, nc - jr), pc, kc,
                               packed_b + jr / Kernel::kTileCols * b_panel_bytes);
            }
            for (int64_t ic = range.m_begin; ic < range.m_end; ic += Kernel::kBlockRows) {
                const int64_t mc = min64(Kernel::kBlockRows, range.m_end - ic);
                for (int64_t ir = 0; ir < mc; ir += Kernel::kTileRows) {
                    Kernel::pack_a(args, ic + ir, min64(Kernel::kTileRows, mc - ir), pc, kc,
                                   packed_a + ir / Kernel::kTileRows * a_panel_bytes);
                }
                for (int64_t jr = 0; jr < nc; jr += Kernel::kTileCols) {
                    const unsigned char* b_panel = packed_b + jr / Kernel::kTileCols * b_panel_bytes;
                    for (int64_t ir = 0; ir < mc; ir += Kernel::kTileRows) {
                        const TileJob tile{ic + ir, jc + jr, min64(Kernel::kTileRows, mc - ir),
                                           min64(Kernel::kTileCols, nc - jr), pc == 0, pc + kc == args.K};
                        Kernel::compute_tile(packed_a + ir / Kernel::kTileRows * a_panel_bytes, b_panel, kc, tile, args);
                    }
                }
            }
        }
    }
}
