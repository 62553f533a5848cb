// Flash attention kernels shared by the AVX2 and AVX-512 builds (FlashAttention-2 adapted to a
// CPU). Included inside namespace ne::cpu::avx2 / ne::cpu::avx512 after vec_exp.inl and that
// namespace's Vec, the vector traits:
//   V, Mask, kWidth                  the vector type, a lane mask, the float lanes
//   zero, broadcast, add, sub, mul, fmadd(a, b, c) = a * b + c, max, exp
//   load(p), store(p, v)             full vectors, unaligned
//   load(p, m), store(p, v, m)       only the lanes of m (load zeroes the others)
//   first_lanes(count)               lanes [0, count), for any count (none below 0, all above kWidth)
//   greater(counts, value)           lanes whose int32 counts[lane] > value
//   equal(a, b), select(m, a, b)     m ? a : b per lane
//   sum_lanes(v)                     horizontal sum, in a fixed order
// Everything here is named by the ISA namespace it is included in (and has internal linkage
// there), so that the linker never mixes code compiled for different instruction sets. This
// file includes nothing itself.
//
// Layout of the work (see AttentionTiles in attention.hpp): a block of kRowBlock rows, each a
// (query, head) pair of one key/value head, meets blocks of kKeyBlock keys. Two products keep
// the vector lanes on a dimension that needs no horizontal sum:
// - scores(): out[x][y] = sum_d a[x][d] * bt[d][y], a's rows broadcast one element at a time,
//   bt a transposed block packed once per task. With x = keys and y = rows, the forward's
//   online softmax (max, sum, rescale) runs down the columns, one row per lane.
// - accumulate_rows(): acc[r][:] = alpha[r] * acc[r][:] + sum_x coef[x][r] * src[x][:], vectors
//   along D (P V, dS K, P^T dO, dS^T Q). src is a block copied to contiguous rows padded with
//   zeros to whole vectors: the rows of a [B, T, heads, D] tensor lie heads * D floats apart,
//   which maps a block of them onto a few L1 sets (2 of 64 for 8 heads of 64), and the padding
//   spares the inner loop any tail mask.
// Masking: the keys a row sees always form a prefix [0, visible) (key lengths and the causal
// diagonal both cut from the end), so a key block is skipped when no row of the block sees it,
// taken without any per-element test when every row sees all of it, and masked by comparing
// counts otherwise.

using V = Vec::V;
using Mask = Vec::Mask;
constexpr int64_t kWidth = Vec::kWidth;
constexpr int64_t kRowBlock = AttentionTiles::kRowBlock;
constexpr int64_t kKeyBlock = AttentionTiles::kKeyBlock;
static_assert(kRowBlock % kWidth == 0 && kKeyBlock % kWidth == 0, "blocks are whole vectors");

// Register tile of both products: kTileRows rows of the output by kTileVectors vectors, 8
// accumulators, which leaves registers for the operands even with 16 of them (AVX2); 6 x 2
// (12 accumulators) measured no faster on Zen 3.
constexpr int kTileRows = 4;
constexpr int kTileVectors = 2;

// Calls body.template operator()<rows>() for a remainder of 1 to kTileRows - 1 rows.
template <int kRows = kTileRows - 1, class Body>
inline void with_tile_rows(int64_t rows, Body&& body) {
    if constexpr (kRows > 0) {
        if (rows == kRows) {
            body.template operator()<kRows>();
        } else {
            with_tile_rows<kRows - 1>(rows, body);
        }
    }
}

constexpr float kMinusInfinity = -__builtin_inff();

inline int64_t min_of(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t max_of(int64_t a, int64_t b) { return a > b ? a : b; }
inline int64_t ceil_div(int64_t value, int64_t divisor) { return (value + divisor - 1) / divisor; }
inline int64_t round_up(int64_t value, int64_t multiple) { return ceil_div(value, multiple) * multiple; }

// Keys [0, visible) of sequence b are what query i sees.
inline int64_t visible_keys(const AttentionInputs& in, int64_t length, int64_t i) {
    return in.causal ? max_of(0, i + length - in.Tq + 1) : length;
}

template <class Float>
Float* row_of(const HeadTensor<Float>& t, int64_t b, int64_t token, int64_t head) {
    return t.data + b * t.batch_stride + token * t.token_stride + head * t.head_stride;
}

// Calls visit(r, i, h) for the rows [row_begin, row_begin + count) of key/value head kv_head:
// row r of the block is query i of head h.
template <class Visit>
inline void for_each_row(const AttentionInputs& in, int64_t kv_head, int64_t row_begin, int64_t count, Visit&& visit) {
    const int64_t group = in.H / in.Hkv;
    for (int64_t r = 0; r < count; ++r) {
        const int64_t row = row_begin + r;
        visit(r, row / group, kv_head * group + row % group);
    }
}

// The rows of an operand: one head's keys or values, or a packed block (a stride), or the
// rows of a row block, which mix the heads of a group (a list).
struct StridedRows {
    const float* base;
    int64_t stride;
    const float* operator()(int64_t x) const { return base + x * stride; }
};

struct ListedRows {
    const float* const* rows;
    const float* operator()(int64_t x) const { return rows[x]; }
};

// Per-thread workspace: arrays carved one after the other at 64-byte boundaries. With a null
// base it only adds up the size.
class Carver {
public:
    explicit Carver(void* base) : base_(static_cast<unsigned char*>(base)) {}

    template <class T>
    T* take(int64_t count) {
        T* taken = base_ ? reinterpret_cast<T*>(base_ + used_) : nullptr;
        used_ += round_up(count * static_cast<int64_t>(sizeof(T)), 64);
        return taken;
    }

    int64_t used() const { return used_; }

private:
    unsigned char* base_;
    int64_t used_ = 0;
};

// ---- Packing --------------------------------------------------------------------------------

// dst[j * ld + i] = rows[i][d + j] for an 8 x 8 tile, with the AVX unpack/shuffle/permute
// transpose (both builds have AVX).
inline void transpose_8x8(const float* const* rows, int64_t d, float* dst, int64_t ld) {
    const __m256 r0 = _mm256_loadu_ps(rows[0] + d), r1 = _mm256_loadu_ps(rows[1] + d);
    const __m256 r2 = _mm256_loadu_ps(rows[2] + d), r3 = _mm256_loadu_ps(rows[3] + d);
    const __m256 r4 = _mm256_loadu_ps(rows[4] + d), r5 = _mm256_loadu_ps(rows[5] + d);
    const __m256 r6 = _mm256_loadu_ps(rows[6] + d), r7 = _mm256_loadu_ps(rows[7] + d);
    // Pairs of rows interleaved: t0 = r0[0] r1[0] r0[1] r1[1] | r0[4] r1[4] r0[5] r1[5], ...
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    // Columns of four rows: u0 = column 0 of rows 0-3 | column 4 of rows 0-3, ...
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    _mm256_storeu_ps(dst + 0 * ld, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + 1 * ld, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * ld, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * ld, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * ld, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * ld, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * ld, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * ld, _mm256_permute2f128_ps(u3, u7, 0x31));
}

// bt[d * ld + x] = a(x)[d] for x < count, d < D, and 0 for x in [count, padded): the
// transposed operand of scores().
template <class Rows>
void pack_transposed(Rows a, int64_t count, int64_t padded, int64_t D, float* bt, int64_t ld) {
    int64_t x = 0;
    for (; x + 8 <= count; x += 8) {
        const float* rows[8];
        for (int i = 0; i < 8; ++i) rows[i] = a(x + i);
        int64_t d = 0;
        for (; d + 8 <= D; d += 8) transpose_8x8(rows, d, bt + d * ld + x, ld);
        for (; d < D; ++d) {
            for (int i = 0; i < 8; ++i) bt[d * ld + x + i] = rows[i][d];
        }
    }
    for (; x < count; ++x) {
        const float* row = a(x);
        for (int64_t d = 0; d < D; ++d) bt[d * ld + x] = row[d];
    }
    for (int64_t d = 0; d < D; ++d) {
        for (int64_t z = count; z < padded; ++z) bt[d * ld + z] = 0.0f;
    }
}

// dst[x * ld + e] = a(x)[e] for x < count and e < D, and 0 for e in [D, ld).
template <class Rows>
void pack_rows(Rows a, int64_t count, int64_t D, float* dst, int64_t ld) {
    for (int64_t x = 0; x < count; ++x) {
        const float* row = a(x);
        float* out = dst + x * ld;
        int64_t e = 0;
        for (; e + kWidth <= D; e += kWidth) Vec::store(out + e, Vec::load(row + e));
        if (e < D) Vec::store(out + e, Vec::load(row + e, Vec::first_lanes(D - e)));
    }
}

// Asks for a row of D floats, or rows [begin, end) of a, to be brought into the cache (L2)
// while the current block is computed: the rows of the next block lie heads * D floats apart,
// a stride that the hardware prefetchers do not follow far enough ahead.
inline void prefetch_row(const float* row, int64_t D) {
    constexpr int64_t kLineFloats = 16;
    for (int64_t e = 0; e < D; e += kLineFloats) _mm_prefetch(reinterpret_cast<const char*>(row + e), _MM_HINT_T1);
}

inline void prefetch_rows(StridedRows a, int64_t begin, int64_t end, int64_t D) {
    for (int64_t x = begin; x < end; ++x) prefetch_row(a(x), D);
}

// ---- scores(): out[x][y] = scale * sum_d a(x)[d] * bt[d][y] ---------------------------------

template <int kRows, int kVectors, class Rows>
inline void score_tile(Rows a, int64_t x, int64_t y, int64_t D, const float* bt, int64_t ld, float scale, float* out) {
    const float* row[kRows];
    for (int r = 0; r < kRows; ++r) row[r] = a(x + r);
    V acc[kRows][kVectors];
    for (int r = 0; r < kRows; ++r) {
        for (int v = 0; v < kVectors; ++v) acc[r][v] = Vec::zero();
    }
    for (int64_t d = 0; d < D; ++d) {
        V column[kVectors];
        for (int v = 0; v < kVectors; ++v) column[v] = Vec::load(bt + d * ld + y + v * kWidth);
        for (int r = 0; r < kRows; ++r) {
            const V element = Vec::broadcast(row[r][d]);
            for (int v = 0; v < kVectors; ++v) acc[r][v] = Vec::fmadd(element, column[v], acc[r][v]);
        }
    }
    const V factor = Vec::broadcast(scale);
    for (int r = 0; r < kRows; ++r) {
        for (int v = 0; v < kVectors; ++v) Vec::store(out + (x + r) * ld + y + v * kWidth, Vec::mul(acc[r][v], factor));
    }
}

template <int kRows, class Rows>
inline void score_rows(Rows a, int64_t x, int64_t y_vectors, int64_t D, const float* bt, int64_t ld, float scale,
                       float* out) {
    int64_t v = 0;
    for (; v + kTileVectors <= y_vectors; v += kTileVectors) {
        score_tile<kRows, kTileVectors>(a, x, v * kWidth, D, bt, ld, scale, out);
    }
    if (v < y_vectors) score_tile<kRows, 1>(a, x, v * kWidth, D, bt, ld, scale, out);
}

// Rows x < count of out, y_vectors vectors each; out and bt share the leading dimension ld.
template <class Rows>
void scores(Rows a, int64_t count, int64_t y_vectors, int64_t D, const float* bt, int64_t ld, float scale, float* out) {
    int64_t x = 0;
    for (; x + kTileRows <= count; x += kTileRows) score_rows<kTileRows>(a, x, y_vectors, D, bt, ld, scale, out);
    with_tile_rows(count - x, [&]<int kRows>() { score_rows<kRows>(a, x, y_vectors, D, bt, ld, scale, out); });
}

// ---- accumulate_rows(): acc[r][:] = alpha[r] * acc[r][:] + sum_x coef[x][r] * src[x][:] ---------

// Columns [e, e + kVectors * kWidth) of rows [r0, r0 + kRows).
template <int kRows, int kVectors>
inline void accumulate_tile(float* acc, int64_t ld, int64_t r0, int64_t e, const float* alpha, const float* coef,
                            int64_t coef_ld, const float* src, int64_t count) {
    V sum[kRows][kVectors];
    for (int r = 0; r < kRows; ++r) {
        const float* acc_row = acc + (r0 + r) * ld + e;
        const V factor = Vec::broadcast(alpha ? alpha[r0 + r] : 1.0f);
        for (int v = 0; v < kVectors; ++v) sum[r][v] = Vec::mul(Vec::load(acc_row + v * kWidth), factor);
    }
    for (int64_t x = 0; x < count; ++x) {
        const float* src_row = src + x * ld + e;
        V value[kVectors];
        for (int v = 0; v < kVectors; ++v) value[v] = Vec::load(src_row + v * kWidth);
        const float* coef_row = coef + x * coef_ld + r0;
        for (int r = 0; r < kRows; ++r) {
            const V c = Vec::broadcast(coef_row[r]);
            for (int v = 0; v < kVectors; ++v) sum[r][v] = Vec::fmadd(c, value[v], sum[r][v]);
        }
    }
    for (int r = 0; r < kRows; ++r) {
        float* acc_row = acc + (r0 + r) * ld + e;
        for (int v = 0; v < kVectors; ++v) Vec::store(acc_row + v * kWidth, sum[r][v]);
    }
}

template <int kRows>
inline void accumulate_row_tile(float* acc, int64_t ld, int64_t r0, const float* alpha, const float* coef,
                                int64_t coef_ld, const float* src, int64_t count) {
    static_assert(kTileVectors == 2, "the remainder below is one vector");
    const int64_t vectors = ld / kWidth;
    int64_t v = 0;
    for (; v + 2 <= vectors; v += 2) accumulate_tile<kRows, 2>(acc, ld, r0, v * kWidth, alpha, coef, coef_ld, src, count);
    if (v < vectors) accumulate_tile<kRows, 1>(acc, ld, r0, v * kWidth, alpha, coef, coef_ld, src, count);
}

// Rows r < rows of acc; acc and src rows are ld floats (D rounded up to whole vectors, the
// padding of src zero); coef[x][r] at coef[x * coef_ld + r]; alpha null for 1.
void accumulate_rows(float* acc, int64_t ld, int64_t rows, const float* alpha, const float* coef, int64_t coef_ld,
                     const float* src, int64_t count) {
    int64_t r = 0;
    for (; r + kTileRows <= rows; r += kTileRows) accumulate_row_tile<kTileRows>(acc, ld, r, alpha, coef, coef_ld, src, count);
    with_tile_rows(rows - r, [&]<int kRows>() { accumulate_row_tile<kRows>(acc, ld, r, alpha, coef, coef_ld, src, count); });
}

// ---- accumulate_into(): dst[r][:] += sum_x coef[r][x] * src[x][:] ------------------------------

// The fused backward's dQ += dS K, straight into the rows of dq (D floats each, not padded: the
// last vector is masked when kTail), with dS in its [row][key] layout. Per element the same
// sequence of fused multiply-adds as accumulate_rows(), so the bits match the two-pass order.
template <int kRows, int kVectors, bool kTail>
inline void accumulate_into_tile(float* const* dst, int64_t r0, int64_t e, Mask tail, const float* coef, int64_t coef_ld,
                                 const float* src, int64_t ld, int64_t count) {
    V sum[kRows][kVectors];
    for (int r = 0; r < kRows; ++r) {
        const float* dst_row = dst[r0 + r] + e;
        for (int v = 0; v < kVectors; ++v) {
            const bool masked = kTail && v == kVectors - 1;
            sum[r][v] = masked ? Vec::load(dst_row + v * kWidth, tail) : Vec::load(dst_row + v * kWidth);
        }
    }
    for (int64_t x = 0; x < count; ++x) {
        const float* src_row = src + x * ld + e;
        V value[kVectors];
        for (int v = 0; v < kVectors; ++v) value[v] = Vec::load(src_row + v * kWidth);
        for (int r = 0; r < kRows; ++r) {
            const V c = Vec::broadcast(coef[(r0 + r) * coef_ld + x]);
            for (int v = 0; v < kVectors; ++v) sum[r][v] = Vec::fmadd(c, value[v], sum[r][v]);
        }
    }
    for (int r = 0; r < kRows; ++r) {
        float* dst_row = dst[r0 + r] + e;
        for (int v = 0; v < kVectors; ++v) {
            if (kTail && v == kVectors - 1) Vec::store(dst_row + v * kWidth, sum[r][v], tail);
            else Vec::store(dst_row + v * kWidth, sum[r][v]);
        }
    }
}

template <int kRows>
inline void accumulate_into_row_tile(float* const* dst, int64_t r0, int64_t D, const float* coef, int64_t coef_ld,
                                     const float* src, int64_t ld, int64_t count) {
    static_assert(kTileVectors == 2, "the remainder below is at most two vectors");
    const int64_t full_vectors = D / kWidth;
    const bool has_tail = D % kWidth != 0;
    const Mask tail = Vec::first_lanes(D % kWidth);
    int64_t v = 0;
    for (; v + 2 <= full_vectors; v += 2) {
        accumulate_into_tile<kRows, 2, false>(dst, r0, v * kWidth, tail, coef, coef_ld, src, ld, count);
    }
    const int64_t left = full_vectors - v;  // 0 or 1 full vectors, then maybe the tail
    if (left == 1 && has_tail) {
        accumulate_into_tile<kRows, 2, true>(dst, r0, v * kWidth, tail, coef, coef_ld, src, ld, count);
    } else if (left == 1) {
        accumulate_into_tile<kRows, 1, false>(dst, r0, v * kWidth, tail, coef, coef_ld, src, ld, count);
    } else if (has_tail) {
        accumulate_into_tile<kRows, 1, true>(dst, r0, v * kWidth, tail, coef, coef_ld, src, ld, count);
    }
}

// Rows r < rows of dst; coef[r][x] at coef[r * coef_ld + x]; src rows ld floats apart.
void accumulate_into(float* const* dst, int64_t rows, int64_t D, const float* coef, int64_t coef_ld, const float* src,
                     int64_t ld, int64_t count) {
    int64_t r = 0;
    for (; r + kTileRows <= rows; r += kTileRows) {
        accumulate_into_row_tile<kTileRows>(dst, r, D, coef, coef_ld, src, ld, count);
    }
    with_tile_rows(rows - r, [&]<int kRows>() { accumulate_into_row_tile<kRows>(dst, r, D, coef, coef_ld, src, ld, count); });
}

// ---- Row helpers ------------------------------------------------------------------------------

// dst[e] = src[e] * factor for e < D; src is padded to whole vectors.
inline void scale_row(const float* src, float factor, int64_t D, float* dst) {
    const V f = Vec::broadcast(factor);
    int64_t e = 0;
    for (; e + kWidth <= D; e += kWidth) Vec::store(dst + e, Vec::mul(Vec::load(src + e), f));
    if (e < D) Vec::store(dst + e, Vec::mul(Vec::load(src + e), f), Vec::first_lanes(D - e));
}

// row[e] *= factor for e < D; row is not padded.
inline void scale_in_place(float* row, float factor, int64_t D) {
    const V f = Vec::broadcast(factor);
    int64_t e = 0;
    for (; e + kWidth <= D; e += kWidth) Vec::store(row + e, Vec::mul(Vec::load(row + e), f));
    if (e < D) {
        const Mask tail = Vec::first_lanes(D - e);
        Vec::store(row + e, Vec::mul(Vec::load(row + e, tail), f), tail);
    }
}

inline float dot(const float* a, const float* b, int64_t D) {
    V sum0 = Vec::zero(), sum1 = Vec::zero();
    int64_t e = 0;
    for (; e + 2 * kWidth <= D; e += 2 * kWidth) {
        sum0 = Vec::fmadd(Vec::load(a + e), Vec::load(b + e), sum0);
        sum1 = Vec::fmadd(Vec::load(a + e + kWidth), Vec::load(b + e + kWidth), sum1);
    }
    for (; e < D; e += kWidth) {
        const Mask lanes = Vec::first_lanes(D - e);
        sum0 = Vec::fmadd(Vec::load(a + e, lanes), Vec::load(b + e, lanes), sum0);
    }
    return Vec::sum_lanes(Vec::add(sum0, sum1));
}

inline void fill(float* p, int64_t count, float value) {
    for (int64_t i = 0; i < count; ++i) p[i] = value;
}

// ---- Forward ----------------------------------------------------------------------------------

struct ForwardWorkspace {
    float* q_transposed;  // [D][kRowBlock]: the block's queries, column r = row r
    float* scores;        // [kKeyBlock][kRowBlock]: S^T of a key block, then P^T
    float* v_block;       // [kKeyBlock][D rounded up to vectors]: a key block's values, contiguous
    float* acc;           // [kRowBlock][D rounded up]: sum of P V, unnormalized
    float* row_max;       // m, per row (lane)
    float* row_sum;       // l
    float* alpha;         // exp(m_old - m_new): how much the key block rescaled each row
    int32_t* visible;     // keys [0, visible) each row sees
    const float** q_rows;
    float** out_rows;
    float** lse_slots;    // where each row's lse goes, or null
};

ForwardWorkspace forward_workspace(void* base, int64_t D, int64_t* bytes) {
    Carver carve(base);
    ForwardWorkspace w{};
    w.q_transposed = carve.take<float>(D * kRowBlock);
    w.scores = carve.take<float>(kKeyBlock * kRowBlock);
    w.v_block = carve.take<float>(kKeyBlock * round_up(D, kWidth));
    w.acc = carve.take<float>(kRowBlock * round_up(D, kWidth));
    w.row_max = carve.take<float>(kRowBlock);
    w.row_sum = carve.take<float>(kRowBlock);
    w.alpha = carve.take<float>(kRowBlock);
    w.visible = carve.take<int32_t>(kRowBlock);
    w.q_rows = carve.take<const float*>(kRowBlock);
    w.out_rows = carve.take<float*>(kRowBlock);
    w.lse_slots = carve.take<float*>(kRowBlock);
    if (bytes) *bytes = carve.used();
    return w;
}

int64_t forward_workspace_bytes(int64_t D) {
    int64_t bytes = 0;
    forward_workspace(nullptr, D, &bytes);
    return bytes;
}

// One key block of the online softmax, in place on the scaled scores S^T [keys][kRowBlock]:
// m_new = max(m, max over the block), P^T = exp(S^T - m_new), l = l * alpha + sum P with
// alpha = exp(m - m_new). With `masked`, row r sees only keys key_begin + c < visible[r].
inline void online_softmax_block(const ForwardWorkspace& w, int64_t keys, int64_t row_vectors, int64_t key_begin,
                                 bool masked) {
    const V minus_infinity = Vec::broadcast(kMinusInfinity);
    for (int64_t y = 0; y < row_vectors; ++y) {
        float* column = w.scores + y * kWidth;
        V block_max = minus_infinity;
        for (int64_t c = 0; c < keys; ++c) {
            V s = Vec::load(column + c * kRowBlock);
            if (masked) {
                s = Vec::select(Vec::greater(w.visible + y * kWidth, key_begin + c), s, minus_infinity);
                Vec::store(column + c * kRowBlock, s);
            }
            block_max = Vec::max(block_max, s);
        }
        const V old_max = Vec::load(w.row_max + y * kWidth);
        const V new_max = Vec::max(old_max, block_max);
        // A row that has not seen a key yet keeps m = -inf; shifting it by 0 instead makes its
        // exp(-inf - shift) 0 rather than NaN.
        const V shift = Vec::select(Vec::equal(new_max, minus_infinity), Vec::zero(), new_max);
        const V alpha = Vec::exp(Vec::sub(old_max, shift));
        V sum = Vec::zero();
        for (int64_t c = 0; c < keys; ++c) {
            const V p = Vec::exp(Vec::sub(Vec::load(column + c * kRowBlock), shift));
            Vec::store(column + c * kRowBlock, p);
            sum = Vec::add(sum, p);
        }
        Vec::store(w.row_sum + y * kWidth, Vec::fmadd(Vec::load(w.row_sum + y * kWidth), alpha, sum));
        Vec::store(w.row_max + y * kWidth, new_max);
        Vec::store(w.alpha + y * kWidth, alpha);
    }
}

void forward_rows(const AttentionForwardArgs& a, int64_t b, int64_t kv_head, int64_t row_begin, void* workspace) {
    const AttentionInputs& in = a.in;
    const int64_t D = in.D;
    const int64_t rows = min_of(kRowBlock, in.Tq * (in.H / in.Hkv) - row_begin);
    const int64_t row_vectors = ceil_div(rows, kWidth);
    const int64_t acc_ld = round_up(D, kWidth);
    const int64_t length = in.key_lengths[b];
    const ForwardWorkspace w = forward_workspace(workspace, D, nullptr);

    for_each_row(in, kv_head, row_begin, rows, [&](int64_t r, int64_t i, int64_t h) {
        w.q_rows[r] = row_of(in.q, b, i, h);
        w.out_rows[r] = row_of(a.out, b, i, h);
        w.lse_slots[r] = a.lse ? a.lse + (b * in.H + h) * in.Tq + i : nullptr;
        w.visible[r] = static_cast<int32_t>(visible_keys(in, length, i));
    });
    for (int64_t r = rows; r < row_vectors * kWidth; ++r) w.visible[r] = 0;
    pack_transposed(ListedRows{w.q_rows}, rows, row_vectors * kWidth, D, w.q_transposed, kRowBlock);
    fill(w.row_max, row_vectors * kWidth, kMinusInfinity);
    fill(w.row_sum, row_vectors * kWidth, 0.0f);
    fill(w.acc, rows * acc_ld, 0.0f);

    // Rows are in query order, so the first row sees the fewest keys and the last the most.
    const int64_t first_visible = w.visible[0];
    const int64_t key_end = w.visible[rows - 1];
    const float* k_head = in.k.data + b * in.k.batch_stride + kv_head * in.k.head_stride;
    const float* v_head = in.v.data + b * in.v.batch_stride + kv_head * in.v.head_stride;
    for (int64_t key_begin = 0; key_begin < key_end; key_begin += kKeyBlock) {
        const int64_t keys = min_of(kKeyBlock, key_end - key_begin);
        const StridedRows k_rows{k_head + key_begin * in.k.token_stride, in.k.token_stride};
        const StridedRows v_rows{v_head + key_begin * in.v.token_stride, in.v.token_stride};
        const int64_t next_end = min_of(2 * kKeyBlock, key_end - key_begin);  // the next block, relative to this one
        prefetch_rows(k_rows, keys, next_end, D);
        prefetch_rows(v_rows, keys, next_end, D);
        scores(k_rows, keys, row_vectors, D, w.q_transposed, kRowBlock, in.scale, w.scores);
        online_softmax_block(w, keys, row_vectors, key_begin, key_begin + keys > first_visible);
        pack_rows(v_rows, keys, D, w.v_block, acc_ld);
        accumulate_rows(w.acc, acc_ld, rows, w.alpha, w.scores, kRowBlock, w.v_block, keys);
    }

    // l = 0: the row saw no key; its output is 0 and its lse -inf.
    for (int64_t r = 0; r < rows; ++r) {
        const float sum = w.row_sum[r];
        if (sum > 0.0f) {
            scale_row(w.acc + r * acc_ld, 1.0f / sum, D, w.out_rows[r]);
        } else {
            fill(w.out_rows[r], D, 0.0f);
        }
        if (w.lse_slots[r]) *w.lse_slots[r] = sum > 0.0f ? w.row_max[r] + __builtin_logf(sum) : kMinusInfinity;
    }
}

// ---- Backward ---------------------------------------------------------------------------------

struct BackwardWorkspace {
    float* a_transposed;  // pass 1: K^T [D][kKeyBlock]; pass 2: Q^T [D][kRowBlock]
    float* b_transposed;  // pass 1: V^T; pass 2: dO^T
    float* a_block;       // contiguous rows, D rounded up: pass 1: Q of a row block; pass 2: K of a key block
    float* b_block;       // pass 1: dO of a row block
    float* k_block;       // fused pass: K of the key block, contiguous rows, for dQ += dS K
    float* probs;         // pass 1: S then P [kRowBlock][kKeyBlock]; pass 2: S^T [kKeyBlock][kRowBlock]
    float* dprobs;        // dP then dS, laid out as probs
    float* acc_a;         // pass 1: dK [kKeyBlock][D rounded up]; pass 2: dQ [kRowBlock][D rounded up]
    float* acc_b;         // pass 1: dV
    int32_t* visible;     // per row of the row block
    float* lse;           // per row; 0 for a row that sees no key
    float* delta;         // per row
    const float** q_rows;
    const float** dout_rows;
    float** dq_rows;
};

BackwardWorkspace backward_workspace(void* base, int64_t D, int64_t* bytes) {
    constexpr int64_t kBlock = kRowBlock > kKeyBlock ? kRowBlock : kKeyBlock;
    const int64_t ld = round_up(D, kWidth);
    Carver carve(base);
    BackwardWorkspace w{};
    w.a_transposed = carve.take<float>(D * kBlock);
    w.b_transposed = carve.take<float>(D * kBlock);
    w.a_block = carve.take<float>(kBlock * ld);
    w.b_block = carve.take<float>(kRowBlock * ld);
    w.k_block = carve.take<float>(kKeyBlock * ld);
    w.probs = carve.take<float>(kRowBlock * kKeyBlock);
    w.dprobs = carve.take<float>(kRowBlock * kKeyBlock);
    w.acc_a = carve.take<float>(kBlock * ld);
    w.acc_b = carve.take<float>(kKeyBlock * ld);
    w.visible = carve.take<int32_t>(kRowBlock);
    w.lse = carve.take<float>(kRowBlock);
    w.delta = carve.take<float>(kRowBlock);
    w.q_rows = carve.take<const float*>(kRowBlock);
    w.dout_rows = carve.take<const float*>(kRowBlock);
    w.dq_rows = carve.take<float*>(kRowBlock);
    if (bytes) *bytes = carve.used();
    return w;
}

int64_t backward_workspace_bytes(int64_t D) {
    int64_t bytes = 0;
    backward_workspace(nullptr, D, &bytes);
    return bytes;
}

void backward_delta(const AttentionBackwardArgs& a, int64_t begin, int64_t end) {
    const AttentionInputs& in = a.in;
    for (int64_t index = begin; index < end; ++index) {
        const int64_t i = index % in.Tq;
        const int64_t h = index / in.Tq % in.H;
        const int64_t b = index / (in.Tq * in.H);
        a.delta[index] = dot(row_of(a.dout, b, i, h), row_of(a.out, b, i, h), in.D);
    }
}

// The per-row inputs of the backward passes for the rows [row_begin, row_begin + rows).
inline void locate_backward_rows(const AttentionBackwardArgs& a, const BackwardWorkspace& w, int64_t b,
                                 int64_t kv_head, int64_t row_begin, int64_t rows) {
    const AttentionInputs& in = a.in;
    const int64_t length = in.key_lengths[b];
    for_each_row(in, kv_head, row_begin, rows, [&](int64_t r, int64_t i, int64_t h) {
        const int64_t index = (b * in.H + h) * in.Tq + i;
        const int64_t visible = visible_keys(in, length, i);
        w.q_rows[r] = row_of(in.q, b, i, h);
        w.dout_rows[r] = row_of(a.dout, b, i, h);
        w.dq_rows[r] = row_of(a.dq, b, i, h);
        w.visible[r] = static_cast<int32_t>(visible);
        w.lse[r] = visible > 0 ? a.lse[index] : 0.0f;  // lse is -inf there: exp(-inf - 0) = 0
        w.delta[r] = a.delta[index];
    });
}

// dk and dv of the keys [key_begin, key_begin + kKeyBlock) of (b, kv_head); with_dq also adds
// their dS K into the dq rows of every query that sees them (the fused pass).
void key_block_gradients(const AttentionBackwardArgs& a, const BackwardWorkspace& w, int64_t b, int64_t kv_head,
                         int64_t key_begin, bool with_dq) {
    const AttentionInputs& in = a.in;
    const int64_t D = in.D;
    const int64_t group = in.H / in.Hkv;
    const int64_t acc_ld = round_up(D, kWidth);
    const int64_t keys = min_of(kKeyBlock, in.Tk - key_begin);
    const int64_t length = in.key_lengths[b];
    const int64_t live_keys = max_of(0, min_of(keys, length - key_begin));  // the others are padding: gradient 0
    float* dk_acc = w.acc_a;
    float* dv_acc = w.acc_b;
    fill(dk_acc, live_keys * acc_ld, 0.0f);
    fill(dv_acc, live_keys * acc_ld, 0.0f);

    if (live_keys > 0) {
        const int64_t key_vectors = ceil_div(live_keys, kWidth);
        const StridedRows k_rows{row_of(in.k, b, key_begin, kv_head), in.k.token_stride};
        const StridedRows v_rows{row_of(in.v, b, key_begin, kv_head), in.v.token_stride};
        pack_transposed(k_rows, live_keys, key_vectors * kWidth, D, w.a_transposed, kKeyBlock);
        pack_transposed(v_rows, live_keys, key_vectors * kWidth, D, w.b_transposed, kKeyBlock);
        if (with_dq) pack_rows(k_rows, live_keys, D, w.k_block, acc_ld);
        // Query i sees key_begin when i + length - Tq >= key_begin (causal), every query otherwise.
        const int64_t first_query = in.causal ? max_of(0, key_begin - (length - in.Tq)) : 0;
        const int64_t row_end = in.Tq * group;
        for (int64_t row_begin = first_query * group; row_begin < row_end; row_begin += kRowBlock) {
            const int64_t rows = min_of(kRowBlock, row_end - row_begin);
            locate_backward_rows(a, w, b, kv_head, row_begin, rows);
            pack_rows(ListedRows{w.q_rows}, rows, D, w.a_block, acc_ld);
            pack_rows(ListedRows{w.dout_rows}, rows, D, w.b_block, acc_ld);
            const int64_t next_rows = min_of(kRowBlock, row_end - row_begin - rows);
            for_each_row(in, kv_head, row_begin + rows, next_rows, [&](int64_t, int64_t i, int64_t h) {
                prefetch_row(row_of(in.q, b, i, h), D);
                prefetch_row(row_of(a.dout, b, i, h), D);
            });
            const StridedRows q_block{w.a_block, acc_ld}, dout_block{w.b_block, acc_ld};
            scores(q_block, rows, key_vectors, D, w.a_transposed, kKeyBlock, in.scale, w.probs);
            scores(dout_block, rows, key_vectors, D, w.b_transposed, kKeyBlock, 1.0f, w.dprobs);
            // Lanes past live_keys (padding of the last vector) are masked too.
            const bool masked = key_begin + key_vectors * kWidth > w.visible[0];
            const V minus_infinity = Vec::broadcast(kMinusInfinity);
            for (int64_t r = 0; r < rows; ++r) {
                const V lse = Vec::broadcast(w.lse[r]);
                const V delta = Vec::broadcast(w.delta[r]);
                const int64_t visible_in_block = w.visible[r] - key_begin;
                float* p_row = w.probs + r * kKeyBlock;
                float* dp_row = w.dprobs + r * kKeyBlock;
                for (int64_t y = 0; y < key_vectors; ++y) {
                    V s = Vec::load(p_row + y * kWidth);
                    if (masked) s = Vec::select(Vec::first_lanes(visible_in_block - y * kWidth), s, minus_infinity);
                    const V p = Vec::exp(Vec::sub(s, lse));
                    Vec::store(p_row + y * kWidth, p);
                    Vec::store(dp_row + y * kWidth, Vec::mul(p, Vec::sub(Vec::load(dp_row + y * kWidth), delta)));
                }
            }
            // dV += P^T dO and dK += dS^T Q (times scale, below): coefficient (key c, row r) at [r][c].
            accumulate_rows(dv_acc, acc_ld, live_keys, nullptr, w.probs, kKeyBlock, w.b_block, rows);
            accumulate_rows(dk_acc, acc_ld, live_keys, nullptr, w.dprobs, kKeyBlock, w.a_block, rows);
            // dQ += dS K (times scale, at the end of the head): coefficient (row r, key c) at [r][c].
            if (with_dq) accumulate_into(w.dq_rows, rows, D, w.dprobs, kKeyBlock, w.k_block, acc_ld, live_keys);
        }
    }

    for (int64_t c = 0; c < keys; ++c) {
        float* dk = row_of(a.dk, b, key_begin + c, kv_head);
        float* dv = row_of(a.dv, b, key_begin + c, kv_head);
        if (c < live_keys) {
            scale_row(dk_acc + c * acc_ld, in.scale, D, dk);
            scale_row(dv_acc + c * acc_ld, 1.0f, D, dv);
        } else {
            fill(dk, D, 0.0f);
            fill(dv, D, 0.0f);
        }
    }
}

void backward_keys(const AttentionBackwardArgs& a, int64_t b, int64_t kv_head, int64_t key_begin, void* workspace) {
    key_block_gradients(a, backward_workspace(workspace, a.in.D, nullptr), b, kv_head, key_begin, false);
}

// The fused pass: the key blocks in order, each adding its share to dq (zeroed first), so that
// each dq row sums the same terms in the same order as backward_rows() does.
void backward_head(const AttentionBackwardArgs& a, int64_t b, int64_t kv_head, void* workspace) {
    const AttentionInputs& in = a.in;
    const int64_t group = in.H / in.Hkv;
    const BackwardWorkspace w = backward_workspace(workspace, in.D, nullptr);
    for (int64_t i = 0; i < in.Tq; ++i) {
        for (int64_t h = kv_head * group; h < (kv_head + 1) * group; ++h) fill(row_of(a.dq, b, i, h), in.D, 0.0f);
    }
    for (int64_t key_begin = 0; key_begin < in.Tk; key_begin += kKeyBlock) {
        key_block_gradients(a, w, b, kv_head, key_begin, true);
    }
    // A row that sees no key gets no gradient, whatever its dout.
    const int64_t length = in.key_lengths[b];
    for (int64_t i = 0; i < in.Tq; ++i) {
        const bool sees_keys = visible_keys(in, length, i) > 0;
        for (int64_t h = kv_head * group; h < (kv_head + 1) * group; ++h) {
            float* dq = row_of(a.dq, b, i, h);
            if (sees_keys) scale_in_place(dq, in.scale, in.D);
            else fill(dq, in.D, 0.0f);
        }
    }
}

void backward_rows(const AttentionBackwardArgs& a, int64_t b, int64_t kv_head, int64_t row_begin, void* workspace) {
    const AttentionInputs& in = a.in;
    const int64_t D = in.D;
    const int64_t rows = min_of(kRowBlock, in.Tq * (in.H / in.Hkv) - row_begin);
    const int64_t row_vectors = ceil_div(rows, kWidth);
    const int64_t acc_ld = round_up(D, kWidth);
    const BackwardWorkspace w = backward_workspace(workspace, D, nullptr);
    float* dq_acc = w.acc_a;

    locate_backward_rows(a, w, b, kv_head, row_begin, rows);
    for (int64_t r = rows; r < row_vectors * kWidth; ++r) {
        w.visible[r] = 0;
        w.lse[r] = 0.0f;
        w.delta[r] = 0.0f;
    }
    pack_transposed(ListedRows{w.q_rows}, rows, row_vectors * kWidth, D, w.a_transposed, kRowBlock);
    pack_transposed(ListedRows{w.dout_rows}, rows, row_vectors * kWidth, D, w.b_transposed, kRowBlock);
    fill(dq_acc, rows * acc_ld, 0.0f);

    const int64_t first_visible = w.visible[0];
    const int64_t key_end = w.visible[rows - 1];
    const V minus_infinity = Vec::broadcast(kMinusInfinity);
    for (int64_t key_begin = 0; key_begin < key_end; key_begin += kKeyBlock) {
        const int64_t keys = min_of(kKeyBlock, key_end - key_begin);
        const StridedRows k_rows{row_of(in.k, b, key_begin, kv_head), in.k.token_stride};
        const StridedRows v_rows{row_of(in.v, b, key_begin, kv_head), in.v.token_stride};
        const int64_t next_end = min_of(2 * kKeyBlock, key_end - key_begin);  // the next block, relative to this one
        prefetch_rows(k_rows, keys, next_end, D);
        prefetch_rows(v_rows, keys, next_end, D);
        scores(k_rows, keys, row_vectors, D, w.a_transposed, kRowBlock, in.scale, w.probs);
        scores(v_rows, keys, row_vectors, D, w.b_transposed, kRowBlock, 1.0f, w.dprobs);
        const bool masked = key_begin + keys > first_visible;
        for (int64_t y = 0; y < row_vectors; ++y) {
            const V lse = Vec::load(w.lse + y * kWidth);
            const V delta = Vec::load(w.delta + y * kWidth);
            for (int64_t c = 0; c < keys; ++c) {
                float* p = w.probs + c * kRowBlock + y * kWidth;
                float* dp = w.dprobs + c * kRowBlock + y * kWidth;
                V s = Vec::load(p);
                if (masked) s = Vec::select(Vec::greater(w.visible + y * kWidth, key_begin + c), s, minus_infinity);
                const V prob = Vec::exp(Vec::sub(s, lse));
                Vec::store(dp, Vec::mul(prob, Vec::sub(Vec::load(dp), delta)));
            }
        }
        // dQ += dS K (times scale, below): coefficient (row r, key c) at [c][r].
        pack_rows(k_rows, keys, D, w.a_block, acc_ld);
        accumulate_rows(dq_acc, acc_ld, rows, nullptr, w.dprobs, kRowBlock, w.a_block, keys);
    }

    // A row that sees no key gets no gradient, whatever its dout.
    for (int64_t r = 0; r < rows; ++r) {
        if (w.visible[r] > 0) {
            scale_row(dq_acc + r * acc_ld, in.scale, D, w.dq_rows[r]);
        } else {
            fill(w.dq_rows[r], D, 0.0f);
        }
    }
}
