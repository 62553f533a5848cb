// Flash attention on CUDA, forward and backward, with the semantics of the CPU kernels
// (cpu/attention.cpp): [B, T, heads, D] views with free strides, lse [B, H, Tq], causal masking
// aligned to the end, per-sequence key lengths, grouped- and multi-query heads, D up to 256,
// rows that see no key give out 0, lse -infinity and no gradient.
//
// Tiled kernels (FlashAttention-2's loop order): a block owns kBlock query rows of one head and
// walks the key blocks those rows see with an online softmax; the scores never leave shared
// memory. Each warp owns 16 rows of every tile, so that the softmax and the accumulator updates
// need only __syncwarp; the block synchronizes where a tile is reloaded. Products of two tiles
// run on tensor cores (WMMA, 16x16x16, f32 accumulation) for bf16/f16 elements and on the SIMT
// units (explicit fmaf) for f32, where the managed model's fp32 training must keep f32 accuracy.
// The bf16/f16 kernels with head dimensions up to 128 keep the scores in registers instead
// (mma.sync fed by ldmatrix, tiles loaded by cp.async in the forward and the rows pass:
// forward_registers_kernel, backward_keys_registers_kernel, backward_rows_registers_kernel).
// The head dimension is padded to a tile of 64, 128 or 256 with zeros.
//
// Backward, deterministic without atomics: delta = rowsum(dout * out) first; then one pass per
// key block computes dk and dv from every query row of the group that sees it (the G heads of a
// key/value head in head order, then query blocks in order), and one pass per query block
// computes dq from the key blocks in order. Every output element has one writer and a fixed
// summation order, so the bits depend only on the shapes and the device. With
// params.allow_atomics the keys pass also adds ds k into an f32 dq sum with atomic adds and the
// rows pass is skipped: five tile products instead of seven, dq's last bits left to the order
// in which blocks run.
//
// Decoding (Tq <= kDecodeMaxQueries): one block per (query row, key split) walks its keys with
// a warp per key and an online softmax in registers; a second kernel combines the splits of a
// row in split order.
#include "attention.hpp"
#include "common.cuh"
#include "core/error.hpp"
#include "ptx.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <climits>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <type_traits>

namespace ne::cuda {
namespace {

constexpr float kMinusInfinity = -std::numeric_limits<float>::infinity();
constexpr unsigned kFullMask = 0xffffffffu;

// Dynamic shared memory a tiled kernel may use, fixed at compile time by the tile traits:
// within sm_80's 163 KiB opt-in (sm_90 has 227 KiB), so that one binary serves both. launch()
// compares it with the device's queried limit and refuses devices with less (sm_86/89: 99 KiB).
constexpr int64_t kSharedBudget = 160 * 1024;
constexpr int64_t kSharedAlignment = 128;
// Up to this many queries per sequence and head take the split-key decode path.
constexpr int64_t kDecodeMaxQueries = 4;
// Fewest keys per split of the decode path, and the warps of its blocks.
constexpr int64_t kDecodeMinKeysPerSplit = 64;
constexpr int kDecodeWarps = 4;

// ------------------------------------------------------------------------------------------
// Elements
// ------------------------------------------------------------------------------------------

__device__ inline float to_float(float x) { return x; }
__device__ inline float to_float(__half x) { return __half2float(x); }
__device__ inline float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

template <class E>
__device__ inline E from_float(float x);
template <>
__device__ inline float from_float<float>(float x) { return x; }
template <>
__device__ inline __half from_float<__half>(float x) { return __float2half_rn(x); }
template <>
__device__ inline __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

template <class E>
struct ElementTraits {
    // bf16/f16 tiles feed WMMA, whose leading dimensions are multiples of 8 elements and whose
    // fragments start 32-byte aligned: rows padded by 8 keep both and spread the banks.
    static constexpr bool kTensorCores = true;
    static constexpr int kPad = 8;
};

template <>
struct ElementTraits<float> {
    // The SIMT loops read tile columns across lanes (k^T, v^T): an odd row length in floats
    // puts the 32 rows a warp reads in 32 different banks.
    static constexpr bool kTensorCores = false;
    static constexpr int kPad = 1;
};

// ------------------------------------------------------------------------------------------
// Parameters
// ------------------------------------------------------------------------------------------

// A [B, T, heads, D] tensor: element (b, t, head, d) is
// data[b * batch_stride + t * token_stride + head * head_stride + d], strides in elements.
template <class T>
struct Heads {
    T* data;
    int64_t batch_stride;
    int64_t token_stride;
    int64_t head_stride;

    __device__ T* row(int64_t b, int64_t t, int64_t head) const {
        return data + b * batch_stride + t * token_stride + head * head_stride;
    }
};

// What every kernel reads. Shape letters as in the C header; key_lengths[b * key_lengths_stride]
// is L_b, or every L_b is Tk when key_lengths is null.
struct Problem {
    int32_t B, Tq, Tk, H, Hkv, D;
    float scale;
    bool causal;
    const int32_t* key_lengths;
    int64_t key_lengths_stride;
    // Every row of q, k, v (and dout) starts 16-byte aligned and D is a whole number of 16-byte
    // pieces: the tiles load in 16-byte pieces.
    bool vector_loads;

    // Clamped to [0, Tk]: a length out of range, which the exported op's deferred check reports,
    // must not take a kernel past the keys.
    __device__ int length(int64_t b) const {
        return key_lengths ? min(max(key_lengths[b * key_lengths_stride], 0), Tk) : Tk;
    }
    // Keys [0, visible) of a sequence of `length` keys are what query i sees (at most length,
    // as i < Tq; the sum is formed in 64 bits, where Tq + Tk may pass 2^31).
    __device__ int visible(int i, int length) const {
        if (!causal) return length;
        const int64_t last = int64_t{i} + length - Tq + 1;
        return last > 0 ? static_cast<int>(last) : 0;
    }
};

template <class E>
struct ForwardParams {
    Problem p;
    Heads<const E> q, k, v;
    Heads<E> out;
    float* lse;  // [B, H, Tq] contiguous, or null
};

template <class E>
struct BackwardParams {
    Problem p;
    Heads<const E> q, k, v, out, dout;
    Heads<E> dq, dk, dv;
    const float* lse;  // [B, H, Tq] contiguous
    float* delta;      // [B, H, Tq] contiguous scratch: rowsum(dout * out)
    float* dq_sum;     // [B, Tq, H, D] contiguous f32 scratch, zeroed: dq's atomic sum, or null
};

// ------------------------------------------------------------------------------------------
// Tiles
// ------------------------------------------------------------------------------------------

enum class Pass { forward, backward_keys, backward_rows };

// What one block of a pass keeps in shared memory (each buffer kSharedAlignment-aligned):
// element tiles [kBlock][D + pad] (forward: q, k, v; backward: q, dout, k, v), float score
// tiles [kBlock][kBlock + 4] (s; backward also dp), element probability tiles
// [kBlock][kBlock + pad] (p; the keys pass also ds; the rows pass ds alone), float accumulators [kBlock][D + 4] (out;
// dk and dv; dq) and two float vectors of kBlock (lse and delta of the rows).
struct TileCounts {
    int elements, scores, probabilities, accumulators;
};

constexpr TileCounts tile_counts(Pass pass) {
    switch (pass) {
        case Pass::forward: return {3, 1, 1, 1};
        case Pass::backward_keys: return {4, 2, 2, 2};
        case Pass::backward_rows: return {4, 2, 1, 1};
    }
    return {0, 0, 0, 0};
}

__host__ __device__ constexpr int64_t align_shared(int64_t bytes) { return (bytes + kSharedAlignment - 1) / kSharedAlignment * kSharedAlignment; }

constexpr int64_t shared_bytes(int64_t element_size, int pad, int head_dim, int block, Pass pass) {
    const TileCounts n = tile_counts(pass);
    return n.elements * align_shared(block * (head_dim + pad) * element_size) +
           n.scores * align_shared(block * (block + 4) * 4) +
           n.probabilities * align_shared(block * (block + pad) * element_size) +
           n.accumulators * align_shared(block * (head_dim + 4) * 4) + 2 * align_shared(block * 4);
}

// The largest block of 64, 32 or 16 rows whose tiles fit the budget.
template <class E>
constexpr int pick_block(int head_dim, Pass pass) {
    const int pad = ElementTraits<E>::kPad;
    if (shared_bytes(sizeof(E), pad, head_dim, 64, pass) <= kSharedBudget) return 64;
    if (shared_bytes(sizeof(E), pad, head_dim, 32, pass) <= kSharedBudget) return 32;
    return 16;
}

// The compile-time geometry of a tiled kernel: E the element type, kHeadDim the padded head
// dimension (D <= kHeadDim), kPass the kernel.
template <class E, int kHeadDim_, Pass kPass>
struct Tiles {
    static constexpr int kHeadDim = kHeadDim_;
    static constexpr int kBlock = pick_block<E>(kHeadDim, kPass);  // query rows and keys of a tile
    static constexpr int kWarps = kBlock / 16;                     // each owns 16 rows of a tile
    static constexpr int kThreads = kWarps * kWarpSize;
    static constexpr int kPad = ElementTraits<E>::kPad;
    static constexpr int kLdElements = kHeadDim + kPad;  // row length of the element tiles
    static constexpr int kLdScores = kBlock + 4;          // of the float score tiles
    static constexpr int kLdProbabilities = kBlock + kPad;
    static constexpr int kLdAccumulators = kHeadDim + 4;  // WMMA: a multiple of 4 floats
    static constexpr int64_t kSharedBytes = shared_bytes(sizeof(E), kPad, kHeadDim, kBlock, kPass);

    static_assert(kHeadDim % 32 == 0 && kHeadDim <= 256, "the head dimension tile is whole warps of columns");
    static_assert(kBlock % 16 == 0 && kBlock >= 16, "a tile is whole 16-row warp slices and 16x16 fragments");
    static_assert(kSharedBytes <= kSharedBudget, "the tiles of a block must fit the shared memory budget");
    static_assert(!ElementTraits<E>::kTensorCores || (kLdElements % 8 == 0 && kLdProbabilities % 8 == 0),
                  "WMMA leading dimensions of 16-bit tiles are multiples of 8 elements");
};

// Carves the shared memory of a block into its buffers, in declaration order.
class SharedCursor {
public:
    __device__ explicit SharedCursor(unsigned char* base) : next_(base) {}

    template <class T>
    __device__ T* take(int64_t count) {
        T* result = reinterpret_cast<T*>(next_);
        next_ += align_shared(count * static_cast<int64_t>(sizeof(T)));
        return result;
    }

private:
    unsigned char* next_;
};

// Loads rows [first, first + kRows) of a head into a tile, D columns of kHeadDim; rows where
// keep(r) is false and the padding columns are zero. vector: see Problem::vector_loads (the
// 16-bit tiles' rows, kLdElements * 2 bytes, keep the alignment in shared memory). kAsynchronous:
// the 16-byte pieces of a vector load go by cp.async into the caller's next commit group (the
// caller waits for it); other elements are stored at once.
template <class Tiles, bool kAsynchronous = false, int kRows = Tiles::kBlock, class E, class Keep>
__device__ void load_tile(E* tile, const E* head_row0, int64_t token_stride, int first, int D, bool vector, Keep keep) {
    if constexpr (ElementTraits<E>::kTensorCores) {
        static_assert(Tiles::kLdElements * sizeof(E) % 16 == 0 && Tiles::kHeadDim % 8 == 0, "16-byte pieces");
        if (vector) {
            constexpr int kPieces = Tiles::kHeadDim / 8;  // of 8 elements per row
            for (int index = static_cast<int>(threadIdx.x); index < kRows * kPieces; index += Tiles::kThreads) {
                const int r = index / kPieces;
                const int d = index % kPieces * 8;
                E* destination = tile + r * Tiles::kLdElements + d;
                if (d < D && keep(r)) {
                    const E* source = head_row0 + (first + r) * token_stride + d;
                    if constexpr (kAsynchronous) cp_async_16(destination, source);
                    else *reinterpret_cast<uint4*>(destination) = *reinterpret_cast<const uint4*>(source);
                } else {
                    *reinterpret_cast<uint4*>(destination) = make_uint4(0u, 0u, 0u, 0u);
                }
            }
            return;
        }
    }
    constexpr int kCount = kRows * Tiles::kHeadDim;
    for (int index = static_cast<int>(threadIdx.x); index < kCount; index += Tiles::kThreads) {
        const int r = index / Tiles::kHeadDim;
        const int d = index % Tiles::kHeadDim;
        E value = from_float<E>(0.0f);
        if (d < D && keep(r)) value = head_row0[(first + r) * token_stride + d];
        tile[r * Tiles::kLdElements + d] = value;
    }
}

template <class Tiles>
__device__ void zero_accumulators(float* tile) {
    for (int index = static_cast<int>(threadIdx.x); index < Tiles::kBlock * Tiles::kLdAccumulators; index += Tiles::kThreads) {
        tile[index] = 0.0f;
    }
}

// ------------------------------------------------------------------------------------------
// Warp products: C[16, kN] (+)= op(A)[16, kK] op(B)[kK, kN] in shared memory, C float.
// op(A)(m, k) is A[m * lda + k], or A[k * lda + m] when kTransposeA; op(B)(k, n) is
// B[k * ldb + n], or B[n * ldb + k] when kTransposeB. A points at the warp's first row
// (kTransposeA: column). The caller orders the writes of A, B and C before the call.
// ------------------------------------------------------------------------------------------

template <int kN, int kK, bool kTransposeA, bool kTransposeB>
__device__ void simt_product(const float* A, int lda, const float* B, int ldb, float* C, int ldc, bool accumulate) {
    const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
    for (int n = lane; n < kN; n += kWarpSize) {
        float acc[16];
#pragma unroll
        for (int m = 0; m < 16; ++m) acc[m] = accumulate ? C[m * ldc + n] : 0.0f;
        for (int k = 0; k < kK; ++k) {
            const float b = kTransposeB ? B[n * ldb + k] : B[k * ldb + n];
#pragma unroll
            for (int m = 0; m < 16; ++m) acc[m] = fmaf(kTransposeA ? A[k * lda + m] : A[m * lda + k], b, acc[m]);
        }
#pragma unroll
        for (int m = 0; m < 16; ++m) C[m * ldc + n] = acc[m];
    }
}

template <int kN, int kK, bool kTransposeA, bool kTransposeB, class E>
__device__ void wmma_product(const E* A, int lda, const E* B, int ldb, float* C, int ldc, bool accumulate) {
    namespace wmma = nvcuda::wmma;
    using LayoutA = std::conditional_t<kTransposeA, wmma::col_major, wmma::row_major>;
    using LayoutB = std::conditional_t<kTransposeB, wmma::col_major, wmma::row_major>;
    static_assert(kN % 16 == 0 && kK % 16 == 0, "whole 16x16x16 fragments");
#pragma unroll 1
    for (int n0 = 0; n0 < kN; n0 += 16) {
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
        if (accumulate) wmma::load_matrix_sync(c, C + n0, static_cast<unsigned>(ldc), wmma::mem_row_major);
        else wmma::fill_fragment(c, 0.0f);
#pragma unroll
        for (int k0 = 0; k0 < kK; k0 += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, E, LayoutA> a;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, E, LayoutB> b;
            wmma::load_matrix_sync(a, kTransposeA ? A + k0 * lda : A + k0, static_cast<unsigned>(lda));
            wmma::load_matrix_sync(b, kTransposeB ? B + n0 * ldb + k0 : B + k0 * ldb + n0, static_cast<unsigned>(ldb));
            wmma::mma_sync(c, a, b, c);
        }
        wmma::store_matrix_sync(C + n0, c, static_cast<unsigned>(ldc), wmma::mem_row_major);
    }
}

template <int kN, int kK, bool kTransposeA, bool kTransposeB, class E>
__device__ void warp_product(const E* A, int lda, const E* B, int ldb, float* C, int ldc, bool accumulate) {
    if constexpr (ElementTraits<E>::kTensorCores) wmma_product<kN, kK, kTransposeA, kTransposeB>(A, lda, B, ldb, C, ldc, accumulate);
    else simt_product<kN, kK, kTransposeA, kTransposeB>(A, lda, B, ldb, C, ldc, accumulate);
}

// ------------------------------------------------------------------------------------------
// Forward
// ------------------------------------------------------------------------------------------

// What a block of the forward or of the backward's rows pass works on: query rows
// [row0, row0 + block) of head h of sequence b (the last row blocks, which see the most keys
// under causal masking, first), key/value head kv, the sequence's length L and the keys
// [0, key_end) that any of its rows sees.
struct QueryBlock {
    int64_t b, h, kv;
    int row0, L, key_end;

    __device__ QueryBlock(const Problem& p, int row_blocks, int block) {
        const int row_block = row_blocks - 1 - static_cast<int>(blockIdx.x % row_blocks);
        const int64_t bh = blockIdx.x / row_blocks;
        h = bh % p.H;
        b = bh / p.H;
        kv = h / (p.H / p.Hkv);
        row0 = row_block * block;
        L = p.length(b);
        key_end = p.visible(min(row0 + block, p.Tq) - 1, L);
    }
};

// Keys [key0, key0 + kKeys) of the block's key/value head from `heads` (k or v) into a tile; keys
// no row of the block sees load as zeros, so that a zero probability or dS never multiplies
// whatever lies past a sequence's length (0 * NaN). kAsynchronous: as load_tile.
template <class Tiles, bool kAsynchronous = false, int kKeys = Tiles::kBlock, class E>
__device__ void load_seen_keys(E* tile, const Heads<const E>& heads, const Problem& p, const QueryBlock& block, int key0) {
    load_tile<Tiles, kAsynchronous, kKeys>(tile, heads.row(block.b, 0, block.kv), heads.token_stride, key0, p.D, p.vector_loads,
                                           [&](int r) { return key0 + r < block.key_end; });
}

// Block: a QueryBlock of kBlock rows. Two lanes share a row: lane / 2 is the row within the
// warp's 16, lane % 2 takes every other column.
template <class E, int kHeadDim>
__global__ void __launch_bounds__(Tiles<E, kHeadDim, Pass::forward>::kThreads)
    forward_kernel(ForwardParams<E> a, int row_blocks) {
    using T = Tiles<E, kHeadDim, Pass::forward>;
    extern __shared__ __align__(128) unsigned char shared[];
    SharedCursor cursor(shared);
    E* q_tile = cursor.take<E>(T::kBlock * T::kLdElements);
    E* k_tile = cursor.take<E>(T::kBlock * T::kLdElements);
    E* v_tile = cursor.take<E>(T::kBlock * T::kLdElements);
    float* scores = cursor.take<float>(T::kBlock * T::kLdScores);
    E* probabilities = cursor.take<E>(T::kBlock * T::kLdProbabilities);
    float* acc = cursor.take<float>(T::kBlock * T::kLdAccumulators);

    const Problem& p = a.p;
    const QueryBlock block(p, row_blocks, T::kBlock);
    const int64_t b = block.b, h = block.h;
    const int row0 = block.row0, L = block.L, key_end = block.key_end;

    const int warp = static_cast<int>(threadIdx.x) / kWarpSize, lane = static_cast<int>(threadIdx.x) % kWarpSize;
    const int my_row = warp * 16 + lane / 2, half = lane % 2;
    const int i = row0 + my_row;
    const int row_visible = i < p.Tq ? p.visible(i, L) : 0;

    load_tile<T>(q_tile, a.q.row(b, 0, h), a.q.token_stride, row0, p.D, p.vector_loads, [&](int r) { return row0 + r < p.Tq; });
    zero_accumulators<T>(acc);
    __syncthreads();

    float* score_row = scores + my_row * T::kLdScores;
    E* probability_row = probabilities + my_row * T::kLdProbabilities;
    float* acc_row = acc + my_row * T::kLdAccumulators;
    float max = kMinusInfinity, sum = 0.0f;  // of the row: running max of s, sum of exp(s - max)
    for (int key0 = 0; key0 < key_end; key0 += T::kBlock) {
        __syncthreads();  // every warp is done with the previous k and v
        load_seen_keys<T>(k_tile, a.k, p, block, key0);
        load_seen_keys<T>(v_tile, a.v, p, block, key0);
        __syncthreads();
        warp_product<T::kBlock, kHeadDim, false, true>(q_tile + warp * 16 * T::kLdElements, T::kLdElements, k_tile,
                                                       T::kLdElements, scores + warp * 16 * T::kLdScores, T::kLdScores, false);
        __syncwarp();
        float block_max = kMinusInfinity;
        for (int c = half; c < T::kBlock; c += 2) {
            const float s = key0 + c < row_visible ? score_row[c] * p.scale : kMinusInfinity;
            score_row[c] = s;
            block_max = fmaxf(block_max, s);
        }
        block_max = fmaxf(block_max, __shfl_xor_sync(kFullMask, block_max, 1));
        const float new_max = fmaxf(max, block_max);
        // Rescales the old terms (0 at the first visible key); nothing to rescale while the row
        // has seen no key.
        const float alpha = new_max == kMinusInfinity ? 1.0f : expf(max - new_max);
        float block_sum = 0.0f;
        for (int c = half; c < T::kBlock; c += 2) {
            const float s = score_row[c];
            const float probability = s == kMinusInfinity ? 0.0f : expf(s - new_max);
            probability_row[c] = from_float<E>(probability);
            block_sum += probability;
        }
        block_sum += __shfl_xor_sync(kFullMask, block_sum, 1);
        sum = fmaf(sum, alpha, block_sum);
        max = new_max;
        for (int d = half; d < kHeadDim; d += 2) acc_row[d] *= alpha;
        __syncwarp();
        warp_product<kHeadDim, T::kBlock, false, false>(probabilities + warp * 16 * T::kLdProbabilities, T::kLdProbabilities,
                                                        v_tile, T::kLdElements, acc + warp * 16 * T::kLdAccumulators,
                                                        T::kLdAccumulators, true);
    }
    __syncwarp();
    if (i >= p.Tq) return;
    E* out = a.out.row(b, i, h);
    for (int d = half; d < p.D; d += 2) out[d] = from_float<E>(sum > 0.0f ? acc_row[d] / sum : 0.0f);
    if (a.lse && half == 0) a.lse[(b * p.H + h) * p.Tq + i] = sum > 0.0f ? max + logf(sum) : kMinusInfinity;
}

// ------------------------------------------------------------------------------------------
// Forward on registers: bf16/f16, head dimensions up to 128
// ------------------------------------------------------------------------------------------

// FlashAttention-2's forward with the scores, probabilities and output accumulator in registers:
// each warp owns 16 x kWarpRowTiles query rows and multiplies with mma.sync m16n8k16 (ptx.cuh),
// whose accumulator layout for S = Q K^T is, two 8-key tiles at a time, its operand layout for P
// in P V, so P never passes through shared memory (the WMMA kernel above stores S and P there,
// since WMMA leaves its fragment layout unspecified). Shared memory holds the q, k and v tiles;
// ldmatrix moves their fragments into registers (v's transposed, as P V needs v by columns).
// In 16-row tile m of a warp, lane 4 g + t holds rows g and g + 8, and columns 2t, 2t + 1 of
// each 8-column tile.
//
// The tiles arrive by cp.async, one buffer each, in commit groups in this order: q and the
// first k, the first v, then the next k and v for each key block. A load starts as soon as the
// barrier after the last read of the buffer's previous block, so the next k travels while the
// block computes the softmax and P V, and the next v while it computes Q K^T.
//
// Why 32 rows per warp in the forward: each ldmatrix of k or v (512 bytes) feeds two mma.sync
// per 16-row tile, 8 KFLOP at 16 rows. An H100 SM reads 128 bytes of shared memory per clock,
// while its mma.sync rate is about 2.5 KFLOP per clock, which needs about 20 FLOP per byte of
// fragment traffic: 16 rows per warp give 16, 32 rows give 32 on P V (and about 21 on Q K^T,
// where q's fragments are reloaded per key block to leave registers for the accumulators).
// FlashAttention-2 makes the same choice (128-row blocks of 4 warps at D = 128). A derivation,
// not yet a measurement. The price is registers: ptxas (11.8, sm_90) reports 255 with 68 bytes
// of spill stores at D = 128 (also with 32-key tiles: 254 and 32 bytes), 250 and none at D = 64.
//
// kWarpRowTiles: 16-row query tiles per warp; kQueryTensors: the [kRows][kLdElements] tiles of
// query rows a block holds beside k and v (forward: q; the backward's rows pass: q and dout).
template <int kHeadDim_, int kWarpRowTiles_, int kQueryTensors>
struct RegisterTiles {
    static constexpr int kHeadDim = kHeadDim_;
    static constexpr int kWarpRowTiles = kWarpRowTiles_;
    static constexpr int kWarps = 4;
    static constexpr int kThreads = kWarps * kWarpSize;
    static constexpr int kRows = kWarps * 16 * kWarpRowTiles;  // query rows of a block
    static constexpr int kKeys = 64;                           // keys of a k or v tile
    // Rows padded by 8 elements: 16-byte pieces stay aligned, and the 8 rows an ldmatrix phase
    // reads start 4 banks apart, so it is free of bank conflicts.
    static constexpr int kLdElements = kHeadDim + 8;
    static constexpr int64_t kSharedBytes =
        kQueryTensors * align_shared(int64_t{kRows} * kLdElements * 2) + 2 * align_shared(int64_t{kKeys} * kLdElements * 2);

    static_assert(kHeadDim % 32 == 0 && kHeadDim <= 128,
                  "k-steps of Q K^T and 8-column tiles of P V go in pairs (one ldmatrix.x4 each); the accumulators fit in registers");
    static_assert(kWarpRowTiles == 1 || kWarpRowTiles == 2, "the accumulators of at most 32 rows fit in a warp's registers");
    static_assert(kSharedBytes <= kSharedBudget, "the tiles of a block must fit the shared memory budget");
};

// NE_ATTENTION_FORWARD_ROW_TILES (1 or 2) overrides the forward's 16-row tiles per warp, and
// NE_ATTENTION_KEYS_PASS_WARPS (4 or 8) the keys pass's warps, for A/B builds on a GPU
// (tests/gpu/run.sh tune); the defaults are the shapes derived here.
#ifndef NE_ATTENTION_FORWARD_ROW_TILES
#define NE_ATTENTION_FORWARD_ROW_TILES 2
#endif
#ifndef NE_ATTENTION_KEYS_PASS_WARPS
#define NE_ATTENTION_KEYS_PASS_WARPS 8
#endif

template <int kHeadDim>
using ForwardRegisterTiles = RegisterTiles<kHeadDim, NE_ATTENTION_FORWARD_ROW_TILES, 1>;
// The rows pass holds dq, dP and dS of its rows: 16 per warp.
template <int kHeadDim>
using RowsRegisterTiles = RegisterTiles<kHeadDim, 1, 2>;

template <class E>
__device__ inline uint32_t pack_pair(E low, E high) {
    uint16_t low_bits, high_bits;
    memcpy(&low_bits, &low, sizeof low_bits);
    memcpy(&high_bits, &high, sizeof high_bits);
    return uint32_t{low_bits} | uint32_t{high_bits} << 16;
}

// mma.sync operands from a row-major 16-bit tile of kLd elements per row, by ldmatrix.x4
// (ptx.cuh's layouts; lane l names row l % 8 of matrix l / 8).

// A of one k-step: A(m, k) = tile[row + m][column + k], 16 x 16 (matrices: rows +0 and +8 of
// columns +0, then of columns +8).
template <int kLd, class E>
__device__ void load_a(uint32_t (&a)[4], const E* tile, int row, int column) {
    const int lane = static_cast<int>(threadIdx.x) % kWarpSize, matrix = lane / 8;
    ldmatrix_x4<false>(a, tile + (row + matrix % 2 * 8 + lane % 8) * kLd + column + matrix / 2 * 8);
}

// A of one k-step from a transposed tile: A(m, k) = tile[row + k][column + m], 16 x 16.
template <int kLd, class E>
__device__ void load_a_transposed(uint32_t (&a)[4], const E* tile, int row, int column) {
    const int lane = static_cast<int>(threadIdx.x) % kWarpSize, matrix = lane / 8;
    ldmatrix_x4<true>(a, tile + (row + matrix / 2 * 8 + lane % 8) * kLd + column + matrix % 2 * 8);
}

// B of two k-steps: B(k, n) = tile[row + n][column + k], n < 8, k < 32; b[0..1] the k-step of
// columns +0..15, b[2..3] of +16..31.
template <int kLd, class E>
__device__ void load_b_of_rows(uint32_t (&b)[4], const E* tile, int row, int column) {
    const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
    ldmatrix_x4<false>(b, tile + (row + lane % 8) * kLd + column + lane / 8 * 8);
}

// B of two 8-column tiles: B(k, n) = tile[row + k][column + n], k < 16, n < 16; b[0..1] the
// tile of columns +0..7, b[2..3] of +8..15.
template <int kLd, class E>
__device__ void load_b_of_columns(uint32_t (&b)[4], const E* tile, int row, int column) {
    const int lane = static_cast<int>(threadIdx.x) % kWarpSize, matrix = lane / 8;
    ldmatrix_x4<true>(b, tile + (row + matrix % 2 * 8 + lane % 8) * kLd + column + matrix / 2 * 8);
}

// Register products of a warp over kM 16-row tiles (rows +0, +16, ...): each B fragment is
// loaded once and used by every row tile. Accumulators and results are in mma.sync's C layout,
// kTiles 8-column tiles per row tile.

// acc += X B: X [16 kM, 8 kTiles] in registers (two 8-column tiles of the C layout are one A
// operand); B rows [row, row + 8 kTiles) of `tile`, kDimTiles 8-column tiles.
template <int kLd, class E, int kM, int kTiles, int kDimTiles>
__device__ void multiply_registers(float (&acc)[kM][kDimTiles][4], const float (&x)[kM][kTiles][4], const E* tile, int row) {
    static_assert(kTiles % 2 == 0 && kDimTiles % 2 == 0, "whole 16-wide k-steps and pairs of column tiles");
    for (int kk = 0; kk < kTiles / 2; ++kk) {
        uint32_t xa[kM][4];
        #pragma unroll
        for (int m = 0; m < kM; ++m) {
            const float* lo = x[m][2 * kk];
            const float* hi = x[m][2 * kk + 1];
            xa[m][0] = pack_pair(from_float<E>(lo[0]), from_float<E>(lo[1]));
            xa[m][1] = pack_pair(from_float<E>(lo[2]), from_float<E>(lo[3]));
            xa[m][2] = pack_pair(from_float<E>(hi[0]), from_float<E>(hi[1]));
            xa[m][3] = pack_pair(from_float<E>(hi[2]), from_float<E>(hi[3]));
        }
        for (int jd = 0; jd < kDimTiles; jd += 2) {
            uint32_t b[4];
            load_b_of_columns<kLd>(b, tile, row + kk * 16, jd * 8);
            #pragma unroll
            for (int m = 0; m < kM; ++m) {
                mma_m16n8k16<E>(acc[m][jd], xa[m], {b[0], b[1]});
                mma_m16n8k16<E>(acc[m][jd + 1], xa[m], {b[2], b[3]});
            }
        }
    }
}

// x = A B^T over kHeadDim columns: A rows [a_row, a_row + 16 kM) of `a_tile`, B rows
// [b_row, b_row + 8 kTiles) of `b_tile`. Both operands come from shared memory at every call.
template <int kLd, int kHeadDim, class E, int kM, int kTiles>
__device__ void warp_scores(float (&x)[kM][kTiles][4], const E* a_tile, int a_row, const E* b_tile, int b_row) {
    #pragma unroll
    for (int m = 0; m < kM; ++m) {
        for (int j = 0; j < kTiles; ++j) {
            for (int i = 0; i < 4; ++i) x[m][j][i] = 0.0f;
        }
    }
    for (int kk = 0; kk < kHeadDim / 16; kk += 2) {
        uint32_t a0[kM][4], a1[kM][4];
        #pragma unroll
        for (int m = 0; m < kM; ++m) {
            load_a<kLd>(a0[m], a_tile, a_row + m * 16, kk * 16);
            load_a<kLd>(a1[m], a_tile, a_row + m * 16, kk * 16 + 16);
        }
        for (int j = 0; j < kTiles; ++j) {
            uint32_t rb[4];
            load_b_of_rows<kLd>(rb, b_tile, b_row + j * 8, kk * 16);
            #pragma unroll
            for (int m = 0; m < kM; ++m) {
                mma_m16n8k16<E>(x[m][j], a0[m], {rb[0], rb[1]});
                mma_m16n8k16<E>(x[m][j], a1[m], {rb[2], rb[3]});
            }
        }
    }
}

// The same for one row tile.
template <int kLd, class E, int kTiles, int kDimTiles>
__device__ void multiply_registers(float (&acc)[kDimTiles][4], const float (&x)[kTiles][4], const E* tile, int row) {
    multiply_registers<kLd>(reinterpret_cast<float (&)[1][kDimTiles][4]>(acc), reinterpret_cast<const float (&)[1][kTiles][4]>(x),
                            tile, row);
}

template <int kLd, int kHeadDim, class E, int kTiles>
__device__ void warp_scores(float (&x)[kTiles][4], const E* a_tile, int a_row, const E* b_tile, int b_row) {
    warp_scores<kLd, kHeadDim>(reinterpret_cast<float (&)[1][kTiles][4]>(x), a_tile, a_row, b_tile, b_row);
}

// Row g + 8 r of a warp's 16 from accumulators in mma.sync's C layout (this lane, 4 g + t, holds
// columns 2 t and 2 t + 1 of each 8-column tile), times `scale`, into the first D columns of `row`.
template <class E, int kDimTiles>
__device__ void store_accumulator_row(E* row, const float (&acc)[kDimTiles][4], int r, int t, int D, float scale = 1.0f) {
    for (int jd = 0; jd < kDimTiles; ++jd) {
        const int d = jd * 8 + 2 * t;
        if (d < D) row[d] = from_float<E>(acc[jd][2 * r] * scale);
        if (d + 1 < D) row[d + 1] = from_float<E>(acc[jd][2 * r + 1] * scale);
    }
}

// Block: a QueryBlock of kRows rows.
template <class E, int kHeadDim>
__global__ void __launch_bounds__(ForwardRegisterTiles<kHeadDim>::kThreads)
    forward_registers_kernel(ForwardParams<E> a, int row_blocks) {
    using T = ForwardRegisterTiles<kHeadDim>;
    constexpr int kLd = T::kLdElements;
    constexpr int kM = T::kWarpRowTiles;
    constexpr int kKeyTiles = T::kKeys / 8;  // 8-key column tiles of S
    constexpr int kDimTiles = kHeadDim / 8;  // 8-column tiles of the output
    extern __shared__ __align__(128) unsigned char shared[];
    SharedCursor cursor(shared);
    E* q_tile = cursor.take<E>(T::kRows * kLd);
    E* k_tile = cursor.take<E>(T::kKeys * kLd);
    E* v_tile = cursor.take<E>(T::kKeys * kLd);

    const Problem& p = a.p;
    const QueryBlock block(p, row_blocks, T::kRows);
    const int64_t b = block.b, h = block.h;
    const int row0 = block.row0, L = block.L, key_end = block.key_end;

    const int warp = static_cast<int>(threadIdx.x) / kWarpSize, lane = static_cast<int>(threadIdx.x) % kWarpSize;
    const int g = lane / 4, t = lane % 4;
    const int warp_row0 = warp * 16 * kM;  // within the block
    // rows[m][r]: the query of row g + 8 r of the warp's tile m.
    int rows[kM][2], row_visible[kM][2];
    #pragma unroll
    for (int m = 0; m < kM; ++m) {
        for (int r = 0; r < 2; ++r) {
            rows[m][r] = row0 + warp_row0 + m * 16 + g + r * 8;
            row_visible[m][r] = rows[m][r] < p.Tq ? p.visible(rows[m][r], L) : 0;
        }
    }

    const auto load_keys = [&](E* tile, const Heads<const E>& heads, int key0) {
        load_seen_keys<T, true, T::kKeys>(tile, heads, p, block, key0);
    };
    load_tile<T, true, T::kRows>(q_tile, a.q.row(b, 0, h), a.q.token_stride, row0, p.D, p.vector_loads,
                                 [&](int r) { return row0 + r < p.Tq; });
    load_keys(k_tile, a.k, 0);
    cp_async_commit();
    load_keys(v_tile, a.v, 0);
    cp_async_commit();
    cp_async_wait<1>();  // q and the first k
    __syncthreads();

    float acc[kM][kDimTiles][4];
    float max[kM][2], sum[kM][2];  // of rows[m][r]
    #pragma unroll
    for (int m = 0; m < kM; ++m) {
        for (int jd = 0; jd < kDimTiles; ++jd) {
            for (int i = 0; i < 4; ++i) acc[m][jd][i] = 0.0f;
        }
        for (int r = 0; r < 2; ++r) {
            max[m][r] = kMinusInfinity;
            sum[m][r] = 0.0f;
        }
    }
    for (int key0 = 0; key0 < key_end; key0 += T::kKeys) {
        const bool more = key0 + T::kKeys < key_end;
        float s[kM][kKeyTiles][4];
        warp_scores<kLd, kHeadDim>(s, q_tile, warp_row0, k_tile, 0);
        __syncthreads();  // every warp has read k
        if (more) load_keys(k_tile, a.k, key0 + T::kKeys);
        cp_async_commit();

        #pragma unroll
        for (int m = 0; m < kM; ++m) {
            // Element i of tile j: row rows[m][i / 2], key key0 + 8 j + 2 t + i % 2.
            float block_max[2] = {kMinusInfinity, kMinusInfinity};
            for (int j = 0; j < kKeyTiles; ++j) {
                for (int i = 0; i < 4; ++i) {
                    const int key = key0 + j * 8 + 2 * t + i % 2;
                    s[m][j][i] = key < row_visible[m][i / 2] ? s[m][j][i] * p.scale : kMinusInfinity;
                    block_max[i / 2] = fmaxf(block_max[i / 2], s[m][j][i]);
                }
            }
            float new_max[2], alpha[2], block_sum[2] = {0.0f, 0.0f};
            for (int r = 0; r < 2; ++r) {
                // The four lanes of a row (4 g .. 4 g + 3) hold its columns.
                block_max[r] = fmaxf(block_max[r], __shfl_xor_sync(kFullMask, block_max[r], 1));
                block_max[r] = fmaxf(block_max[r], __shfl_xor_sync(kFullMask, block_max[r], 2));
                new_max[r] = fmaxf(max[m][r], block_max[r]);
                alpha[r] = new_max[r] == kMinusInfinity ? 1.0f : expf(max[m][r] - new_max[r]);
            }
            for (int j = 0; j < kKeyTiles; ++j) {
                for (int i = 0; i < 4; ++i) {
                    const float probability = s[m][j][i] == kMinusInfinity ? 0.0f : expf(s[m][j][i] - new_max[i / 2]);
                    s[m][j][i] = probability;
                    block_sum[i / 2] += probability;
                }
            }
            for (int r = 0; r < 2; ++r) {
                block_sum[r] += __shfl_xor_sync(kFullMask, block_sum[r], 1);
                block_sum[r] += __shfl_xor_sync(kFullMask, block_sum[r], 2);
                sum[m][r] = fmaf(sum[m][r], alpha[r], block_sum[r]);
                max[m][r] = new_max[r];
            }
            for (int jd = 0; jd < kDimTiles; ++jd) {
                for (int i = 0; i < 4; ++i) acc[m][jd][i] *= alpha[i / 2];
            }
        }

        cp_async_wait<1>();  // this block's v (the next k may still travel)
        __syncthreads();
        multiply_registers<kLd>(acc, s, v_tile, 0);  // P V, P being s
        __syncthreads();  // every warp has read v
        if (more) load_keys(v_tile, a.v, key0 + T::kKeys);
        cp_async_commit();
        cp_async_wait<1>();  // the next k
        __syncthreads();
    }

    #pragma unroll
    for (int m = 0; m < kM; ++m) {
        for (int r = 0; r < 2; ++r) {
            const int i = rows[m][r];
            if (i >= p.Tq) continue;
            store_accumulator_row(a.out.row(b, i, h), acc[m], r, t, p.D, sum[m][r] > 0.0f ? 1.0f / sum[m][r] : 0.0f);
            if (a.lse && t == 0) a.lse[(b * p.H + h) * p.Tq + i] = sum[m][r] > 0.0f ? max[m][r] + logf(sum[m][r]) : kMinusInfinity;
        }
    }
}

// ------------------------------------------------------------------------------------------
// Decode: few queries against many keys
// ------------------------------------------------------------------------------------------

// One block per (row, split): row n of [B, H, Tq] order, keys [split * keys_per_split, ...) of
// those the row sees. Warp w takes keys w, w + kDecodeWarps, ...; lane l holds columns
// l + 32 t of the query and of its accumulator. Writes the split's max, sum and unnormalized
// accumulator (relative to its max) to partial_*.
template <class E, int kHeadDim>
__global__ void __launch_bounds__(kDecodeWarps* kWarpSize)
    decode_split_kernel(ForwardParams<E> a, int splits, int keys_per_split, float* partial_max, float* partial_sum,
                        float* partial_acc) {
    constexpr int kColumns = kHeadDim / kWarpSize;
    __shared__ float warp_max[kDecodeWarps], warp_sum[kDecodeWarps];
    __shared__ float warp_acc[kDecodeWarps][kHeadDim];
    const Problem& p = a.p;
    const int split = static_cast<int>(blockIdx.x % splits);
    const int64_t n = blockIdx.x / splits;
    const int i = static_cast<int>(n % p.Tq);
    const int64_t h = n / p.Tq % p.H, b = n / p.Tq / p.H;
    const int64_t kv = h / (p.H / p.Hkv);
    const int warp = static_cast<int>(threadIdx.x) / kWarpSize, lane = static_cast<int>(threadIdx.x) % kWarpSize;
    const int visible = p.visible(i, p.length(b));
    const int key_begin = split * keys_per_split;
    const int key_end = min(key_begin + keys_per_split, visible);

    const E* q = a.q.row(b, i, h);
    float q_reg[kColumns], acc[kColumns];
#pragma unroll
    for (int t = 0; t < kColumns; ++t) {
        const int d = lane + t * kWarpSize;
        q_reg[t] = d < p.D ? to_float(q[d]) : 0.0f;
        acc[t] = 0.0f;
    }
    float max = kMinusInfinity, sum = 0.0f;
    for (int j = key_begin + warp; j < key_end; j += kDecodeWarps) {
        const E* k = a.k.row(b, j, kv);
        const E* v = a.v.row(b, j, kv);
        float dot = 0.0f;
#pragma unroll
        for (int t = 0; t < kColumns; ++t) {
            const int d = lane + t * kWarpSize;
            if (d < p.D) dot = fmaf(q_reg[t], to_float(k[d]), dot);
        }
        const float s = warp_reduce(dot, SumOp{}) * p.scale;
        const float new_max = fmaxf(max, s);
        const float alpha = expf(max - new_max);
        const float probability = expf(s - new_max);
        sum = fmaf(sum, alpha, probability);
#pragma unroll
        for (int t = 0; t < kColumns; ++t) {
            const int d = lane + t * kWarpSize;
            const float value = d < p.D ? to_float(v[d]) : 0.0f;
            acc[t] = fmaf(probability, value, acc[t] * alpha);
        }
        max = new_max;
    }
    if (lane == 0) {
        warp_max[warp] = max;
        warp_sum[warp] = sum;
    }
#pragma unroll
    for (int t = 0; t < kColumns; ++t) warp_acc[warp][lane + t * kWarpSize] = acc[t];
    __syncthreads();

    float block_max = kMinusInfinity;
    for (int w = 0; w < kDecodeWarps; ++w) block_max = fmaxf(block_max, warp_max[w]);
    const int64_t slot = n * splits + split;
    for (int d = static_cast<int>(threadIdx.x); d < p.D; d += kDecodeWarps * kWarpSize) {
        float total = 0.0f;
        for (int w = 0; w < kDecodeWarps; ++w) {
            const float weight = warp_max[w] == kMinusInfinity ? 0.0f : expf(warp_max[w] - block_max);
            total = fmaf(warp_acc[w][d], weight, total);
        }
        partial_acc[slot * p.D + d] = total;
    }
    if (threadIdx.x == 0) {
        float total = 0.0f;
        for (int w = 0; w < kDecodeWarps; ++w) {
            const float weight = warp_max[w] == kMinusInfinity ? 0.0f : expf(warp_max[w] - block_max);
            total = fmaf(warp_sum[w], weight, total);
        }
        partial_max[slot] = block_max;
        partial_sum[slot] = total;
    }
}

// One block per row: the splits combined in split order.
template <class E>
__global__ void decode_combine_kernel(ForwardParams<E> a, int splits, const float* partial_max, const float* partial_sum,
                                      const float* partial_acc) {
    const Problem& p = a.p;
    const int64_t n = blockIdx.x;
    const int i = static_cast<int>(n % p.Tq);
    const int64_t h = n / p.Tq % p.H, b = n / p.Tq / p.H;
    const float* maxima = partial_max + n * splits;
    const float* sums = partial_sum + n * splits;
    float max = kMinusInfinity;
    for (int s = 0; s < splits; ++s) max = fmaxf(max, maxima[s]);
    float sum = 0.0f;
    for (int s = 0; s < splits; ++s) {
        if (maxima[s] != kMinusInfinity) sum = fmaf(sums[s], expf(maxima[s] - max), sum);
    }
    E* out = a.out.row(b, i, h);
    for (int d = static_cast<int>(threadIdx.x); d < p.D; d += static_cast<int>(blockDim.x)) {
        float total = 0.0f;
        for (int s = 0; s < splits; ++s) {
            if (maxima[s] != kMinusInfinity) total = fmaf(partial_acc[(n * splits + s) * p.D + d], expf(maxima[s] - max), total);
        }
        out[d] = from_float<E>(sum > 0.0f ? total / sum : 0.0f);
    }
    if (a.lse && threadIdx.x == 0) a.lse[n] = sum > 0.0f ? max + logf(sum) : kMinusInfinity;
}

// ------------------------------------------------------------------------------------------
// Backward
// ------------------------------------------------------------------------------------------

// One warp per row of [B, H, Tq] order.
template <class E>
__global__ void delta_kernel(BackwardParams<E> a, int64_t rows) {
    const Problem& p = a.p;
    const int64_t n = blockIdx.x * (blockDim.x / kWarpSize) + threadIdx.x / kWarpSize;
    if (n >= rows) return;
    const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
    const int64_t i = n % p.Tq, h = n / p.Tq % p.H, b = n / p.Tq / p.H;
    const E* dout = a.dout.row(b, i, h);
    const E* out = a.out.row(b, i, h);
    float sum = 0.0f;
    for (int d = lane; d < p.D; d += kWarpSize) sum = fmaf(to_float(dout[d]), to_float(out[d]), sum);
    sum = warp_reduce(sum, SumOp{});
    if (lane == 0) a.delta[n] = sum;
}

// Fills s (q k^T), dp (dout v^T) for the warp's 16 rows, then p = exp(scale s - lse) and
// ds = scale p (dp - delta) of the lane's row, 0 where the row does not see the key (also
// where dout is not finite there: the select never multiplies).
template <class T, class E>
__device__ void warp_probabilities(const E* q_tile, const E* dout_tile, const E* k_tile, const E* v_tile, float* scores,
                                   float* dscores, E* probabilities, E* dprobabilities, int key0, int row_visible,
                                   float row_lse, float row_delta, float scale) {
    const int warp = static_cast<int>(threadIdx.x) / kWarpSize, lane = static_cast<int>(threadIdx.x) % kWarpSize;
    const int my_row = warp * 16 + lane / 2, half = lane % 2;
    warp_product<T::kBlock, T::kHeadDim, false, true>(q_tile + warp * 16 * T::kLdElements, T::kLdElements, k_tile,
                                                      T::kLdElements, scores + warp * 16 * T::kLdScores, T::kLdScores, false);
    warp_product<T::kBlock, T::kHeadDim, false, true>(dout_tile + warp * 16 * T::kLdElements, T::kLdElements, v_tile,
                                                      T::kLdElements, dscores + warp * 16 * T::kLdScores, T::kLdScores, false);
    __syncwarp();
    const float* score_row = scores + my_row * T::kLdScores;
    const float* dscore_row = dscores + my_row * T::kLdScores;
    for (int c = half; c < T::kBlock; c += 2) {
        const bool seen = key0 + c < row_visible;
        const float probability = seen ? expf(score_row[c] * scale - row_lse) : 0.0f;
        const float ds = seen ? probability * (dscore_row[c] - row_delta) * scale : 0.0f;
        if (probabilities) probabilities[my_row * T::kLdProbabilities + c] = from_float<E>(probability);
        dprobabilities[my_row * T::kLdProbabilities + c] = from_float<E>(ds);
    }
}

// dq_sum of the warp's 16 rows += ds k, kBlock columns at a time, through the warp's rows of the
// score tile (free once its probabilities are formed). Rows that see none of the keys add nothing.
template <class T, class E>
__device__ void add_dq(const BackwardParams<E>& a, int64_t b, int64_t h, int row0, int key0, int L, const E* dprobabilities,
                       const E* k_tile, float* scores) {
    static_assert(T::kHeadDim % T::kBlock == 0, "whole chunks of columns");
    const Problem& p = a.p;
    const int warp = static_cast<int>(threadIdx.x) / kWarpSize, lane = static_cast<int>(threadIdx.x) % kWarpSize;
    float* partial = scores + warp * 16 * T::kLdScores;
    for (int d0 = 0; d0 < p.D; d0 += T::kBlock) {
        warp_product<T::kBlock, T::kBlock, false, false>(dprobabilities + warp * 16 * T::kLdProbabilities, T::kLdProbabilities,
                                                         k_tile + d0, T::kLdElements, partial, T::kLdScores, false);
        __syncwarp();
        for (int index = lane; index < 16 * T::kBlock; index += kWarpSize) {
            const int r = index / T::kBlock, c = index % T::kBlock;
            const int i = row0 + warp * 16 + r;
            if (i < p.Tq && d0 + c < p.D && p.visible(i, L) > key0) {
                atomicAdd(a.dq_sum + ((b * p.Tq + i) * p.H + h) * p.D + d0 + c, partial[r * T::kLdScores + c]);
            }
        }
        __syncwarp();  // every lane has read the chunk before the next product overwrites it
    }
}

// dq from dq_sum, in dq's element type and strides.
template <class E>
__global__ void dq_from_sum_kernel(BackwardParams<E> a, int64_t count) {
    const Problem& p = a.p;
    for (int64_t index = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; index < count; index += int64_t{gridDim.x} * blockDim.x) {
        const int64_t d = index % p.D, n = index / p.D;  // n = (b Tq + i) H + h
        a.dq.row(n / p.H / p.Tq, n / p.H % p.Tq, n % p.H)[d] = from_float<E>(a.dq_sum[index]);
    }
}

// What a keys-pass block works on: keys [key0, key0 + block) of key/value head kv of sequence b,
// the `group` query heads that read it (kv * group onwards), the sequence's length L, and the
// first query row that sees any of the keys.
struct KeysBlock {
    int64_t b, kv;
    int key0, group, L, first_row;

    __device__ KeysBlock(const Problem& p, int key_blocks, int block) {
        key0 = static_cast<int>(blockIdx.x % key_blocks) * block;
        const int64_t bkv = blockIdx.x / key_blocks;
        kv = bkv % p.Hkv;
        b = bkv / p.Hkv;
        group = p.H / p.Hkv;
        L = p.length(b);
        // Query i sees key j when j <= i + L - Tq: rows before key0 - L + Tq see none of these keys.
        first_row = key0 >= L ? p.Tq : (p.causal ? max(0, key0 - L + p.Tq) : 0);
    }
};

// A keys pass's tiles of its kKeys keys: k and v, zero past Tk.
template <class Tiles, int kKeys = Tiles::kBlock, class E>
__device__ void load_backward_keys(const BackwardParams<E>& a, const KeysBlock& block, E* k_tile, E* v_tile) {
    const Problem& p = a.p;
    const int key0 = block.key0;
    const auto keep = [&](int r) { return key0 + r < p.Tk; };
    load_tile<Tiles, false, kKeys>(k_tile, a.k.row(block.b, 0, block.kv), a.k.token_stride, key0, p.D, p.vector_loads, keep);
    load_tile<Tiles, false, kKeys>(v_tile, a.v.row(block.b, 0, block.kv), a.v.token_stride, key0, p.D, p.vector_loads, keep);
}

// A keys pass's tiles of rows [row0, row0 + kRows) of head h: q (zero past Tq), dout, lse and
// delta (zero in rows that see no key). kAsynchronous: what it copies goes by cp.async into the
// caller's next commit group (as load_tile).
template <class Tiles, int kRows = Tiles::kBlock, bool kAsynchronous = false, class E>
__device__ void load_backward_rows(const BackwardParams<E>& a, const KeysBlock& block, int64_t h, int row0, E* q_tile,
                                   E* dout_tile, float* lse_rows, float* delta_rows) {
    const Problem& p = a.p;
    const int64_t b = block.b;
    const auto seeing = [&](int r) { return row0 + r < p.Tq && p.visible(row0 + r, block.L) > 0; };
    load_tile<Tiles, kAsynchronous, kRows>(q_tile, a.q.row(b, 0, h), a.q.token_stride, row0, p.D, p.vector_loads,
                                           [&](int r) { return row0 + r < p.Tq; });
    load_tile<Tiles, kAsynchronous, kRows>(dout_tile, a.dout.row(b, 0, h), a.dout.token_stride, row0, p.D, p.vector_loads,
                                           seeing);
    for (int r = static_cast<int>(threadIdx.x); r < kRows; r += Tiles::kThreads) {
        const int64_t n = (b * p.H + h) * p.Tq + row0 + r;
        if (!seeing(r)) {
            lse_rows[r] = 0.0f;
            delta_rows[r] = 0.0f;
        } else if constexpr (kAsynchronous) {
            cp_async_4(lse_rows + r, a.lse + n);
            cp_async_4(delta_rows + r, a.delta + n);
        } else {
            lse_rows[r] = a.lse[n];
            delta_rows[r] = a.delta[n];
        }
    }
}

// Block: keys [key0, key0 + kBlock) of key/value head kv of sequence b; dk and dv of those
// keys from every row that sees them: the group's heads in order, each one's query blocks in
// order. Keys past the sequence's length get 0. kAtomicDq: also adds each row's ds k to dq_sum
// with atomic adds (no rows pass; FlashAttention-2's order, five products per tile instead of
// seven over both passes, dq's summation order left to the scheduler).
template <class E, int kHeadDim, bool kAtomicDq>
__global__ void __launch_bounds__(Tiles<E, kHeadDim, Pass::backward_keys>::kThreads)
    backward_keys_kernel(BackwardParams<E> a, int key_blocks) {
    using T = Tiles<E, kHeadDim, Pass::backward_keys>;
    extern __shared__ __align__(128) unsigned char shared[];
    SharedCursor cursor(shared);
    E* q_tile = cursor.take<E>(T::kBlock * T::kLdElements);
    E* dout_tile = cursor.take<E>(T::kBlock * T::kLdElements);
    E* k_tile = cursor.take<E>(T::kBlock * T::kLdElements);
    E* v_tile = cursor.take<E>(T::kBlock * T::kLdElements);
    float* scores = cursor.take<float>(T::kBlock * T::kLdScores);
    float* dscores = cursor.take<float>(T::kBlock * T::kLdScores);
    E* probabilities = cursor.take<E>(T::kBlock * T::kLdProbabilities);
    E* dprobabilities = cursor.take<E>(T::kBlock * T::kLdProbabilities);
    float* dk_acc = cursor.take<float>(T::kBlock * T::kLdAccumulators);
    float* dv_acc = cursor.take<float>(T::kBlock * T::kLdAccumulators);
    float* lse_rows = cursor.take<float>(T::kBlock);
    float* delta_rows = cursor.take<float>(T::kBlock);

    const Problem& p = a.p;
    const KeysBlock block(p, key_blocks, T::kBlock);
    const int64_t b = block.b, kv = block.kv;
    const int key0 = block.key0, L = block.L;
    const int warp = static_cast<int>(threadIdx.x) / kWarpSize, lane = static_cast<int>(threadIdx.x) % kWarpSize;
    const int my_row = warp * 16 + lane / 2;

    load_backward_keys<T>(a, block, k_tile, v_tile);
    zero_accumulators<T>(dk_acc);
    zero_accumulators<T>(dv_acc);
    for (int g = 0; g < block.group; ++g) {
        const int64_t h = kv * block.group + g;
        for (int row0 = block.first_row / T::kBlock * T::kBlock; row0 < p.Tq; row0 += T::kBlock) {
            __syncthreads();  // every warp is done with the previous rows
            load_backward_rows<T>(a, block, h, row0, q_tile, dout_tile, lse_rows, delta_rows);
            __syncthreads();
            const int i = row0 + my_row;
            const int row_visible = i < p.Tq ? p.visible(i, L) : 0;
            warp_probabilities<T>(q_tile, dout_tile, k_tile, v_tile, scores, dscores, probabilities, dprobabilities, key0,
                                  row_visible, lse_rows[my_row], delta_rows[my_row], p.scale);
            __syncthreads();  // dk and dv of a key read p and ds of every row
            warp_product<kHeadDim, T::kBlock, true, false>(probabilities + warp * 16, T::kLdProbabilities, dout_tile,
                                                           T::kLdElements, dv_acc + warp * 16 * T::kLdAccumulators,
                                                           T::kLdAccumulators, true);
            warp_product<kHeadDim, T::kBlock, true, false>(dprobabilities + warp * 16, T::kLdProbabilities, q_tile,
                                                           T::kLdElements, dk_acc + warp * 16 * T::kLdAccumulators,
                                                           T::kLdAccumulators, true);
            if constexpr (kAtomicDq) add_dq<T>(a, b, h, row0, key0, L, dprobabilities, k_tile, scores);
        }
    }
    __syncthreads();
    for (int index = static_cast<int>(threadIdx.x); index < T::kBlock * kHeadDim; index += T::kThreads) {
        const int r = index / kHeadDim, d = index % kHeadDim;
        if (key0 + r >= p.Tk || d >= p.D) continue;
        a.dk.row(b, key0 + r, kv)[d] = from_float<E>(dk_acc[r * T::kLdAccumulators + d]);
        a.dv.row(b, key0 + r, kv)[d] = from_float<E>(dv_acc[r * T::kLdAccumulators + d]);
    }
}

// The keys pass on registers (bf16/f16, head dimensions up to 128): the block of backward_keys_kernel,
// with each warp owning 16 of its keys. A warp computes S^T = K Q^T and dP^T = V dout^T for its
// keys with mma.sync, so that P^T and dS^T are already in the A-operand layout of
// dV += P^T dout and dK += dS^T Q (as P is for P V in the forward), and dK and dV accumulate in
// registers. Rows go 32 at a time to bound the registers. kAtomicDq: dS^T also goes to shared
// memory, where warp w adds dS K of rows 16 (w % 4) .. + 15, columns of its share, to dq_sum.
//
// Why 128 keys (8 warps) per block: the q and dout tiles of a row block are read once per key
// block, from L2 at T = 4096 (every key block of a head reads them). At 64 keys that is 32 KiB
// per 4.2 MFLOP at D = 128: about 1,400 clocks of an SM's share of L2 bandwidth (about 24 bytes
// per clock) beside about 1,700 of mma.sync, so the loads would take nearly as long as the
// products; 128 keys halve the traffic per FLOP. FlashAttention-2 makes the same choice (128
// keys, 64 rows, 8 warps at D = 128). With about 250 registers per thread, 8 warps are one block
// per SM, as many warps as two blocks of 4. A derivation, not yet a measurement. ptxas (11.8,
// sm_90): 255 registers at D = 128 (and 24 bytes of spill stores with atomic dq), 204 at D = 64
// (218 with atomic dq), no other spills. One block per SM cannot hide a tile load behind another
// block's products, hence the cp.async pipeline of row steps below.
template <int kHeadDim_>
struct RegisterBackwardTiles {
    static constexpr int kHeadDim = kHeadDim_;
    static constexpr int kWarps = NE_ATTENTION_KEYS_PASS_WARPS;
    static constexpr int kThreads = kWarps * kWarpSize;
    static constexpr int kKeys = kWarps * 16;  // keys of a block
    static constexpr int kRows = 64;           // query rows of a q or dout tile
    static constexpr int kRowsPerStep = 32;
    static constexpr int kLdElements = kHeadDim + 8;  // see RegisterTiles
    static constexpr int kLdDs = kRows + 8;
    // dq += dS K with atomics: kRows / 16 warps across the rows, the rest across the columns.
    static constexpr int kDqColumnGroups = kWarps / (kRows / 16);
    static constexpr int kDqDimTiles = kHeadDim / 8 / kDqColumnGroups;  // 8-column tiles of a warp
    static constexpr int64_t kSharedBytes = 2 * align_shared(int64_t{kKeys} * kLdElements * 2) +
                                            2 * align_shared(int64_t{kRows} * kLdElements * 2) +
                                            align_shared(int64_t{kKeys} * kLdDs * 2) + 2 * align_shared(kRows * 4);

    static_assert(kHeadDim % 32 == 0 && kHeadDim <= 128, "pairs of 16-column k-steps; the accumulators fit in registers");
    static_assert(kWarps == 4 || kWarps == 8, "64 or 128 keys of a block");
    static_assert(kRows % kRowsPerStep == 0 && kRowsPerStep % 16 == 0, "whole 16-row k-steps");
    static_assert(kWarps % (kRows / 16) == 0 && kDqDimTiles % 2 == 0 && kDqDimTiles * kDqColumnGroups * 8 == kHeadDim,
                  "the dq product's warps share the rows and pairs of column tiles evenly");
    static_assert(kSharedBytes <= kSharedBudget, "the tiles of a block must fit the shared memory budget");
};

// Block: as backward_keys_kernel.
template <class E, int kHeadDim, bool kAtomicDq>
__global__ void __launch_bounds__(RegisterBackwardTiles<kHeadDim>::kThreads)
    backward_keys_registers_kernel(BackwardParams<E> a, int key_blocks) {
    using T = RegisterBackwardTiles<kHeadDim>;
    constexpr int kLd = T::kLdElements;
    constexpr int kDimTiles = kHeadDim / 8;
    constexpr int kRowTiles = T::kRowsPerStep / 8;  // 8-row column tiles of S^T per step
    extern __shared__ __align__(128) unsigned char shared[];
    SharedCursor cursor(shared);
    E* q_tile = cursor.take<E>(T::kRows * kLd);
    E* dout_tile = cursor.take<E>(T::kRows * kLd);
    E* k_tile = cursor.take<E>(T::kKeys * kLd);
    E* v_tile = cursor.take<E>(T::kKeys * kLd);
    E* ds_tile = cursor.take<E>(T::kKeys * T::kLdDs);  // dS^T: [key][row]
    float* lse_rows = cursor.take<float>(T::kRows);
    float* delta_rows = cursor.take<float>(T::kRows);

    const Problem& p = a.p;
    const KeysBlock block(p, key_blocks, T::kKeys);
    const int64_t b = block.b, kv = block.kv;
    const int key0 = block.key0, L = block.L;
    const int warp = static_cast<int>(threadIdx.x) / kWarpSize, lane = static_cast<int>(threadIdx.x) % kWarpSize;
    const int g = lane / 4, t = lane % 4;
    const int keys[2] = {key0 + warp * 16 + g, key0 + warp * 16 + g + 8};

    // Step s: rows [r0, r0 + kRowsPerStep) of a row block, r0 = kRowsPerStep (s % kParts), in the
    // order head, row block, r0. Its rows go to part s % kParts of the row tiles (q, dout, lse,
    // delta) by cp.async, one commit group per step, issued once every warp is done with the part's
    // previous rows: while step s computes, step s + 1's rows travel.
    constexpr int kParts = T::kRows / T::kRowsPerStep;
    const int first_row0 = block.first_row / T::kRows * T::kRows;
    const int row_blocks = block.first_row < p.Tq ? (p.Tq - first_row0 + T::kRows - 1) / T::kRows : 0;
    const int steps = block.group * row_blocks * kParts;
    const auto head_of = [&](int s) -> int64_t { return kv * block.group + s / kParts / row_blocks; };
    const auto row0_of = [&](int s) { return first_row0 + s / kParts % row_blocks * T::kRows; };
    const auto issue = [&](int s) {
        if (s < steps) {
            const int r0 = s % kParts * T::kRowsPerStep;
            load_backward_rows<T, T::kRowsPerStep, true>(a, block, head_of(s), row0_of(s) + r0, q_tile + r0 * kLd,
                                                         dout_tile + r0 * kLd, lse_rows + r0, delta_rows + r0);
        }
        cp_async_commit();
    };

    load_backward_keys<T, T::kKeys>(a, block, k_tile, v_tile);
    for (int s = 0; s < kParts; ++s) issue(s);
    float dk[kDimTiles][4], dv[kDimTiles][4];
    for (int jd = 0; jd < kDimTiles; ++jd) {
        for (int i = 0; i < 4; ++i) dk[jd][i] = dv[jd][i] = 0.0f;
    }
    for (int s = 0; s < steps; ++s) {
        const int64_t h = head_of(s);
        const int row0 = row0_of(s), r0 = s % kParts * T::kRowsPerStep;
        cp_async_wait<kParts - 1>();  // this step's rows
        __syncthreads();              // (and k, v: stored before the first step)
        float pt[kRowTiles][4], dpt[kRowTiles][4];
        warp_scores<kLd, kHeadDim>(pt, k_tile, warp * 16, q_tile, r0);  // S^T of the warp's keys
        warp_scores<kLd, kHeadDim>(dpt, v_tile, warp * 16, dout_tile, r0);
        // Element i of tile j: key keys[i / 2], row row0 + r0 + 8 j + 2 t + i % 2.
        for (int j = 0; j < kRowTiles; ++j) {
            for (int i = 0; i < 4; ++i) {
                const int r = r0 + j * 8 + 2 * t + i % 2, row = row0 + r;
                const bool seen = row < p.Tq && keys[i / 2] < p.visible(row, L);
                const float probability = seen ? expf(pt[j][i] * p.scale - lse_rows[r]) : 0.0f;
                dpt[j][i] = seen ? probability * (dpt[j][i] - delta_rows[r]) * p.scale : 0.0f;
                pt[j][i] = probability;
            }
        }
        multiply_registers<kLd>(dv, pt, dout_tile, r0);
        multiply_registers<kLd>(dk, dpt, q_tile, r0);
        if constexpr (kAtomicDq) {
            for (int j = 0; j < kRowTiles; ++j) {
                for (int half = 0; half < 2; ++half) {
                    E* pair = ds_tile + (warp * 16 + g + half * 8) * T::kLdDs + r0 + j * 8 + 2 * t;
                    const uint32_t bits = pack_pair(from_float<E>(dpt[j][2 * half]), from_float<E>(dpt[j][2 * half + 1]));
                    memcpy(static_cast<void*>(pair), &bits, sizeof bits);
                }
            }
        }
        if (kAtomicDq && r0 + T::kRowsPerStep == T::kRows) {
            __syncthreads();  // dS^T of every key and row of the row block is in ds_tile
            // dq of rows row0 + dq_row0.. += dS K, 16 columns at a time from the warp's first
            // column tile; A(row, key) = ds_tile[key][row].
            constexpr int kRowWarps = T::kRows / 16;
            const int dq_row0 = warp % kRowWarps * 16, first_tile = warp / kRowWarps * T::kDqDimTiles;
            const int rows[2] = {row0 + dq_row0 + g, row0 + dq_row0 + g + 8};
            bool adds[2];
            for (int r = 0; r < 2; ++r) adds[r] = rows[r] < p.Tq && p.visible(rows[r], L) > key0;
            for (int jd = first_tile; jd < first_tile + T::kDqDimTiles; jd += 2) {
                float dq[2][4] = {};
                for (int kk = 0; kk < T::kKeys / 16; ++kk) {
                    uint32_t da[4], kb[4];
                    load_a_transposed<T::kLdDs>(da, ds_tile, kk * 16, dq_row0);
                    load_b_of_columns<kLd>(kb, k_tile, kk * 16, jd * 8);
                    mma_m16n8k16<E>(dq[0], da, {kb[0], kb[1]});
                    mma_m16n8k16<E>(dq[1], da, {kb[2], kb[3]});
                }
                for (int r = 0; r < 2; ++r) {
                    if (!adds[r]) continue;
                    float* dq_row = a.dq_sum + ((b * p.Tq + rows[r]) * p.H + h) * p.D;
                    for (int half = 0; half < 2; ++half) {
                        const int d = (jd + half) * 8 + 2 * t;
                        if (d < p.D) atomicAdd(dq_row + d, dq[half][2 * r]);
                        if (d + 1 < p.D) atomicAdd(dq_row + d + 1, dq[half][2 * r + 1]);
                    }
                }
            }
        }
        __syncthreads();  // every warp is done with this part's rows (and with ds_tile)
        issue(s + kParts);
    }
    for (int r = 0; r < 2; ++r) {
        if (keys[r] >= p.Tk) continue;
        store_accumulator_row(a.dk.row(b, keys[r], kv), dk, r, t, p.D);
        store_accumulator_row(a.dv.row(b, keys[r], kv), dv, r, t, p.D);
    }
}

// Block: a QueryBlock of kBlock rows; dq of those rows from the key blocks they see, in order.
template <class E, int kHeadDim>
__global__ void __launch_bounds__(Tiles<E, kHeadDim, Pass::backward_rows>::kThreads)
    backward_rows_kernel(BackwardParams<E> a, int row_blocks) {
    using T = Tiles<E, kHeadDim, Pass::backward_rows>;
    extern __shared__ __align__(128) unsigned char shared[];
    SharedCursor cursor(shared);
    E* q_tile = cursor.take<E>(T::kBlock * T::kLdElements);
    E* dout_tile = cursor.take<E>(T::kBlock * T::kLdElements);
    E* k_tile = cursor.take<E>(T::kBlock * T::kLdElements);
    E* v_tile = cursor.take<E>(T::kBlock * T::kLdElements);
    float* scores = cursor.take<float>(T::kBlock * T::kLdScores);
    float* dscores = cursor.take<float>(T::kBlock * T::kLdScores);
    E* dprobabilities = cursor.take<E>(T::kBlock * T::kLdProbabilities);
    float* dq_acc = cursor.take<float>(T::kBlock * T::kLdAccumulators);

    const Problem& p = a.p;
    const QueryBlock block(p, row_blocks, T::kBlock);
    const int64_t b = block.b, h = block.h;
    const int row0 = block.row0, L = block.L, key_end = block.key_end;
    const int warp = static_cast<int>(threadIdx.x) / kWarpSize, lane = static_cast<int>(threadIdx.x) % kWarpSize;
    const int my_row = warp * 16 + lane / 2, half = lane % 2;
    const int i = row0 + my_row;
    const int row_visible = i < p.Tq ? p.visible(i, L) : 0;
    const int64_t n = (b * p.H + h) * p.Tq + i;
    const float row_lse = row_visible > 0 ? a.lse[n] : 0.0f;
    const float row_delta = row_visible > 0 ? a.delta[n] : 0.0f;

    load_tile<T>(q_tile, a.q.row(b, 0, h), a.q.token_stride, row0, p.D, p.vector_loads, [&](int r) { return row0 + r < p.Tq; });
    load_tile<T>(dout_tile, a.dout.row(b, 0, h), a.dout.token_stride, row0, p.D, p.vector_loads,
                 [&](int r) { return row0 + r < p.Tq && p.visible(row0 + r, L) > 0; });
    zero_accumulators<T>(dq_acc);
    for (int key0 = 0; key0 < key_end; key0 += T::kBlock) {
        __syncthreads();  // the tiles above are loaded; every warp is done with the previous k and v
        load_seen_keys<T>(k_tile, a.k, p, block, key0);
        load_seen_keys<T>(v_tile, a.v, p, block, key0);
        __syncthreads();
        warp_probabilities<T, E>(q_tile, dout_tile, k_tile, v_tile, scores, dscores, nullptr, dprobabilities, key0, row_visible,
                                 row_lse, row_delta, p.scale);
        __syncwarp();
        warp_product<kHeadDim, T::kBlock, false, false>(dprobabilities + warp * 16 * T::kLdProbabilities, T::kLdProbabilities,
                                                        k_tile, T::kLdElements, dq_acc + warp * 16 * T::kLdAccumulators,
                                                        T::kLdAccumulators, true);
    }
    __syncthreads();
    if (i >= p.Tq) return;
    E* dq = a.dq.row(b, i, h);
    const float* dq_row = dq_acc + my_row * T::kLdAccumulators;
    for (int d = half; d < p.D; d += 2) dq[d] = from_float<E>(dq_row[d]);
}

// The rows pass on registers (bf16/f16, head dimensions up to 128): the block of
// backward_rows_kernel, each warp owning 16 of its rows as in forward_registers_kernel. Per key
// block a warp recomputes dP = dout V^T and S = Q K^T with mma.sync; dS, formed in their
// accumulator layout, is the A operand of dq += dS K, and dq accumulates in registers.
// k and v arrive by cp.async, one buffer each, in commit groups in this order: q, dout and the
// first v; the first k; then the next v and k of each key block. dP comes first, so the next v
// travels while the block computes S, dS and dS K, and the next k while it computes the next dP.
// Not yet measured on a GPU.
template <class E, int kHeadDim>
__global__ void __launch_bounds__(RowsRegisterTiles<kHeadDim>::kThreads)
    backward_rows_registers_kernel(BackwardParams<E> a, int row_blocks) {
    using T = RowsRegisterTiles<kHeadDim>;
    constexpr int kLd = T::kLdElements;
    constexpr int kKeyTiles = T::kKeys / 8;  // 8-key column tiles of S
    constexpr int kDimTiles = kHeadDim / 8;   // 8-column tiles of dq
    extern __shared__ __align__(128) unsigned char shared[];
    SharedCursor cursor(shared);
    E* q_tile = cursor.take<E>(T::kRows * kLd);
    E* dout_tile = cursor.take<E>(T::kRows * kLd);
    E* k_tile = cursor.take<E>(T::kKeys * kLd);
    E* v_tile = cursor.take<E>(T::kKeys * kLd);

    const Problem& p = a.p;
    const QueryBlock block(p, row_blocks, T::kRows);
    const int64_t b = block.b, h = block.h;
    const int row0 = block.row0, L = block.L, key_end = block.key_end;
    const int warp = static_cast<int>(threadIdx.x) / kWarpSize, lane = static_cast<int>(threadIdx.x) % kWarpSize;
    const int g = lane / 4, t = lane % 4;
    const int rows[2] = {row0 + warp * 16 + g, row0 + warp * 16 + g + 8};
    int row_visible[2];
    float row_lse[2], row_delta[2];
    for (int r = 0; r < 2; ++r) {
        row_visible[r] = rows[r] < p.Tq ? p.visible(rows[r], L) : 0;
        const int64_t n = (b * p.H + h) * p.Tq + rows[r];
        row_lse[r] = row_visible[r] > 0 ? a.lse[n] : 0.0f;
        row_delta[r] = row_visible[r] > 0 ? a.delta[n] : 0.0f;
    }

    const auto load_keys = [&](E* tile, const Heads<const E>& heads, int key0) {
        load_seen_keys<T, true, T::kKeys>(tile, heads, p, block, key0);
    };
    load_tile<T, true, T::kRows>(q_tile, a.q.row(b, 0, h), a.q.token_stride, row0, p.D, p.vector_loads, [&](int r) { return row0 + r < p.Tq; });
    load_tile<T, true, T::kRows>(dout_tile, a.dout.row(b, 0, h), a.dout.token_stride, row0, p.D, p.vector_loads,
                       [&](int r) { return row0 + r < p.Tq && p.visible(row0 + r, L) > 0; });
    load_keys(v_tile, a.v, 0);
    cp_async_commit();
    load_keys(k_tile, a.k, 0);
    cp_async_commit();

    float dq[kDimTiles][4];
    for (int jd = 0; jd < kDimTiles; ++jd) {
        for (int i = 0; i < 4; ++i) dq[jd][i] = 0.0f;
    }
    for (int key0 = 0; key0 < key_end; key0 += T::kKeys) {
        const bool more = key0 + T::kKeys < key_end;
        cp_async_wait<1>();  // this block's v (the first time also q and dout)
        __syncthreads();
        float ds[kKeyTiles][4], s[kKeyTiles][4];
        warp_scores<kLd, kHeadDim>(ds, dout_tile, warp * 16, v_tile, 0);  // dP until dS replaces it
        cp_async_wait<0>();  // this block's k
        __syncthreads();     // and every warp has read v
        if (more) load_keys(v_tile, a.v, key0 + T::kKeys);
        cp_async_commit();
        warp_scores<kLd, kHeadDim>(s, q_tile, warp * 16, k_tile, 0);
        // Element i of tile j: row rows[i / 2], key key0 + 8 j + 2 t + i % 2.
        for (int j = 0; j < kKeyTiles; ++j) {
            for (int i = 0; i < 4; ++i) {
                const bool seen = key0 + j * 8 + 2 * t + i % 2 < row_visible[i / 2];
                const float probability = seen ? expf(s[j][i] * p.scale - row_lse[i / 2]) : 0.0f;
                ds[j][i] = seen ? probability * (ds[j][i] - row_delta[i / 2]) * p.scale : 0.0f;
            }
        }
        multiply_registers<kLd>(dq, ds, k_tile, 0);
        __syncthreads();  // every warp has read k
        if (more) load_keys(k_tile, a.k, key0 + T::kKeys);
        cp_async_commit();
    }
    cp_async_wait<0>();  // no copy may land after the block has left (rows that see no key skip the loop)

    for (int r = 0; r < 2; ++r) {
        if (rows[r] >= p.Tq) continue;
        store_accumulator_row(a.dq.row(b, rows[r], h), dq, r, t, p.D);
    }
}

// ------------------------------------------------------------------------------------------
// Launchers
// ------------------------------------------------------------------------------------------

template <class E, class F>
Heads<E> heads_of(const cpu::HeadTensor<F>& t) {
    // For 16-bit elements the float pointer holds the element's address (Device::attention_*).
    using Bytes = std::conditional_t<std::is_const_v<F>, const void*, void*>;
    return {static_cast<E*>(static_cast<Bytes>(t.data)), t.batch_stride, t.token_stride, t.head_stride};
}

Problem problem_of(const cpu::AttentionInputs& in, const DeviceKeyLengths& key_lengths) {
    Problem p{};
    p.B = static_cast<int32_t>(in.B);
    p.Tq = static_cast<int32_t>(in.Tq);
    p.Tk = static_cast<int32_t>(in.Tk);
    p.H = static_cast<int32_t>(in.H);
    p.Hkv = static_cast<int32_t>(in.Hkv);
    p.D = static_cast<int32_t>(in.D);
    p.scale = in.scale;
    p.causal = in.causal;
    p.key_lengths = key_lengths.data;
    p.key_lengths_stride = key_lengths.stride;
    return p;
}

void expect_grid(int64_t blocks, const char* what) {
    if (blocks > INT_MAX) {
        fail(NE_STATUS_UNSUPPORTED, "attention on CUDA: ", blocks, " blocks of ", what, " exceed the grid (", INT_MAX,
             "); split the batch");
    }
}

template <class T>
bool aligned16(const Heads<T>& t) {
    constexpr int64_t kElements = 16 / static_cast<int64_t>(sizeof(T));
    return reinterpret_cast<uintptr_t>(t.data) % 16 == 0 && t.batch_stride % kElements == 0 &&
           t.token_stride % kElements == 0 && t.head_stride % kElements == 0;
}

void expect_sizes(const cpu::AttentionInputs& in) {
    // The kernels index heads and sequences in 32 bits (tokens are within 31 bits already).
    if (in.B > INT_MAX || in.H > INT_MAX) {
        fail(NE_STATUS_UNSUPPORTED, "attention on CUDA: B = ", in.B, " and H = ", in.H, "; expected at most ", INT_MAX);
    }
}

// Sets the kernel's dynamic shared memory limit (needed above 48 KiB) and launches it.
template <class Params>
void launch(const Queue& queue, void (*kernel)(Params, int), int threads, int64_t shared_bytes, int64_t blocks, const Params& params,
            int count, const char* name) {
    expect_grid(blocks, name);
    if (shared_bytes > queue.max_shared_bytes_per_block) {
        fail(NE_STATUS_UNSUPPORTED, name, " needs ", shared_bytes, " bytes of shared memory per block; this device allows ",
             queue.max_shared_bytes_per_block, " (the tiles are sized for sm_80 and sm_90)");
    }
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared_bytes)),
          "cudaFuncSetAttribute (attention shared memory)");
    kernel<<<static_cast<unsigned>(blocks), static_cast<unsigned>(threads), static_cast<size_t>(shared_bytes), queue.stream>>>(
        params, count);
    check_launch(name);
}

// 16-bit elements with head dimensions up to 128 on the register kernel; f32 and the 256 tile on
// the shared-memory one.
template <class E, int kHeadDim>
void forward_tiled(const Queue& queue, const ForwardParams<E>& params) {
    if constexpr (ElementTraits<E>::kTensorCores && kHeadDim <= 128) {
        using T = ForwardRegisterTiles<kHeadDim>;
        const int64_t row_blocks = ceil_div(params.p.Tq, T::kRows);
        launch(queue, forward_registers_kernel<E, kHeadDim>, T::kThreads, T::kSharedBytes, row_blocks * params.p.H * params.p.B,
               params, static_cast<int>(row_blocks), "attention forward kernel (registers)");
    } else {
        using T = Tiles<E, kHeadDim, Pass::forward>;
        const int64_t row_blocks = ceil_div(params.p.Tq, T::kBlock);
        launch(queue, forward_kernel<E, kHeadDim>, T::kThreads, T::kSharedBytes, row_blocks * params.p.H * params.p.B, params,
               static_cast<int>(row_blocks), "attention forward kernel");
    }
}

template <class E, int kHeadDim>
void forward_decode(const Queue& queue, const ForwardParams<E>& params) {
    const Problem& p = params.p;
    const int64_t rows = int64_t{p.B} * p.H * p.Tq;
    // Enough splits to give the device about four blocks per SM, each split at least
    // kDecodeMinKeysPerSplit keys.
    const int64_t max_splits = ceil_div(p.Tk, kDecodeMinKeysPerSplit);
    const int64_t wanted = ceil_div(int64_t{queue.sm_count} * 4, rows);
    const int64_t splits = wanted < 1 ? 1 : (wanted < max_splits ? wanted : max_splits);
    const int64_t keys_per_split = ceil_div(p.Tk, splits);
    expect_grid(rows * splits, "the decode split kernel");
    const Scratch maxima(queue, rows * splits * static_cast<int64_t>(sizeof(float)));
    const Scratch sums(queue, rows * splits * static_cast<int64_t>(sizeof(float)));
    const Scratch accumulators(queue, rows * splits * p.D * static_cast<int64_t>(sizeof(float)));
    decode_split_kernel<E, kHeadDim><<<static_cast<unsigned>(rows * splits), kDecodeWarps * kWarpSize, 0, queue.stream>>>(
        params, static_cast<int>(splits), static_cast<int>(keys_per_split), maxima.as<float>(), sums.as<float>(),
        accumulators.as<float>());
    check_launch("attention decode split kernel");
    decode_combine_kernel<E><<<static_cast<unsigned>(rows), kHeadDim < 128 ? 64 : 128, 0, queue.stream>>>(
        params, static_cast<int>(splits), maxima.as<float>(), sums.as<float>(), accumulators.as<float>());
    check_launch("attention decode combine kernel");
}

template <class E, int kHeadDim>
void forward_with(const Queue& queue, const ForwardParams<E>& params) {
    if (params.p.Tq <= kDecodeMaxQueries) forward_decode<E, kHeadDim>(queue, params);
    else forward_tiled<E, kHeadDim>(queue, params);
}

// The keys pass: on registers for 16-bit elements with head dimensions up to 128.
template <class E, int kHeadDim, bool kAtomicDq>
void backward_keys(const Queue& queue, const BackwardParams<E>& params) {
    const Problem& p = params.p;
    const char* name = kAtomicDq ? "attention backward kernel (dk, dv, atomic dq)" : "attention backward kernel (dk, dv)";
    if constexpr (ElementTraits<E>::kTensorCores && kHeadDim <= 128) {
        using T = RegisterBackwardTiles<kHeadDim>;
        const int64_t key_blocks = ceil_div(p.Tk, T::kKeys);
        launch(queue, backward_keys_registers_kernel<E, kHeadDim, kAtomicDq>, T::kThreads, T::kSharedBytes,
               key_blocks * p.Hkv * p.B, params, static_cast<int>(key_blocks), name);
    } else {
        using T = Tiles<E, kHeadDim, Pass::backward_keys>;
        const int64_t key_blocks = ceil_div(p.Tk, T::kBlock);
        launch(queue, backward_keys_kernel<E, kHeadDim, kAtomicDq>, T::kThreads, T::kSharedBytes, key_blocks * p.Hkv * p.B,
               params, static_cast<int>(key_blocks), name);
    }
}

// The rows pass (deterministic dq): on registers for 16-bit elements with head dimensions up to 128.
template <class E, int kHeadDim>
void backward_rows(const Queue& queue, const BackwardParams<E>& params) {
    const Problem& p = params.p;
    if constexpr (ElementTraits<E>::kTensorCores && kHeadDim <= 128) {
        using T = RowsRegisterTiles<kHeadDim>;
        const int64_t row_blocks = ceil_div(p.Tq, T::kRows);
        launch(queue, backward_rows_registers_kernel<E, kHeadDim>, T::kThreads, T::kSharedBytes, row_blocks * p.H * p.B,
               params, static_cast<int>(row_blocks), "attention backward kernel (dq, registers)");
    } else {
        using T = Tiles<E, kHeadDim, Pass::backward_rows>;
        const int64_t row_blocks = ceil_div(p.Tq, T::kBlock);
        launch(queue, backward_rows_kernel<E, kHeadDim>, T::kThreads, T::kSharedBytes, row_blocks * p.H * p.B, params,
               static_cast<int>(row_blocks), "attention backward kernel (dq)");
    }
}

template <class E, int kHeadDim>
void backward_with(const Queue& queue, const BackwardParams<E>& params) {
    const Problem& p = params.p;
    if (params.dq_sum) {
        backward_keys<E, kHeadDim, true>(queue, params);
        const int64_t count = int64_t{p.B} * p.Tq * p.H * p.D;
        constexpr int kThreads = 256;
        dq_from_sum_kernel<E><<<grid_for(queue, count, kThreads), kThreads, 0, queue.stream>>>(params, count);
        check_launch("attention dq conversion kernel");
        return;
    }
    backward_keys<E, kHeadDim, false>(queue, params);
    backward_rows<E, kHeadDim>(queue, params);
}

// The head dimension tile: 64, 128 or 256.
template <class Body>
void with_head_dim(int64_t D, Body&& body) {
    if (D <= 64) body(std::integral_constant<int, 64>{});
    else if (D <= 128) body(std::integral_constant<int, 128>{});
    else body(std::integral_constant<int, 256>{});
}

template <class E>
void forward_for(const Queue& queue, const cpu::AttentionForwardArgs& args, const DeviceKeyLengths& key_lengths) {
    expect_sizes(args.in);
    ForwardParams<E> params{};
    params.p = problem_of(args.in, key_lengths);
    params.q = heads_of<const E>(args.in.q);
    params.k = heads_of<const E>(args.in.k);
    params.v = heads_of<const E>(args.in.v);
    params.out = heads_of<E>(args.out);
    params.lse = args.lse;
    params.p.vector_loads = args.in.D % 8 == 0 && aligned16(params.q) && aligned16(params.k) && aligned16(params.v);
    with_head_dim(args.in.D, [&](auto head_dim) { forward_with<E, decltype(head_dim)::value>(queue, params); });
}

template <class E>
void backward_for(const Queue& queue, const cpu::AttentionBackwardArgs& args, const DeviceKeyLengths& key_lengths) {
    expect_sizes(args.in);
    const int64_t rows = args.in.B * args.in.H * args.in.Tq;
    const Scratch delta(queue, rows * static_cast<int64_t>(sizeof(float)));
    BackwardParams<E> params{};
    params.p = problem_of(args.in, key_lengths);
    params.q = heads_of<const E>(args.in.q);
    params.k = heads_of<const E>(args.in.k);
    params.v = heads_of<const E>(args.in.v);
    params.out = heads_of<const E>(args.out);
    params.dout = heads_of<const E>(args.dout);
    params.dq = heads_of<E>(args.dq);
    params.dk = heads_of<E>(args.dk);
    params.dv = heads_of<E>(args.dv);
    params.lse = args.lse;
    params.delta = delta.as<float>();
    // With atomics allowed, dq is summed in f32 scratch by the keys pass alone.
    std::optional<Scratch> dq_sum;
    if (args.allow_atomics) {
        const int64_t bytes = rows * args.in.D * static_cast<int64_t>(sizeof(float));
        params.dq_sum = dq_sum.emplace(queue, bytes).as<float>();
        check(cudaMemsetAsync(params.dq_sum, 0, static_cast<size_t>(bytes), queue.stream), "cudaMemsetAsync (attention dq sum)");
    }
    params.p.vector_loads = args.in.D % 8 == 0 && aligned16(params.q) && aligned16(params.k) && aligned16(params.v) &&
                            aligned16(params.dout);
    constexpr int kDeltaRowsPerBlock = 8;
    expect_grid(ceil_div(rows, kDeltaRowsPerBlock), "the delta kernel");
    delta_kernel<E><<<static_cast<unsigned>(ceil_div(rows, kDeltaRowsPerBlock)), kDeltaRowsPerBlock * kWarpSize, 0,
                      queue.stream>>>(params, rows);
    check_launch("attention delta kernel");
    with_head_dim(args.in.D, [&](auto head_dim) { backward_with<E, decltype(head_dim)::value>(queue, params); });
}

}  // namespace

void launch_attention_forward(const Queue& queue, const cpu::AttentionForwardArgs& args, ne_dtype dtype,
                              const DeviceKeyLengths& key_lengths) {
    switch (dtype) {
        case NE_DTYPE_BF16: forward_for<__nv_bfloat16>(queue, args, key_lengths); return;
        case NE_DTYPE_F16: forward_for<__half>(queue, args, key_lengths); return;
        default: forward_for<float>(queue, args, key_lengths); return;
    }
}

void launch_attention_backward(const Queue& queue, const cpu::AttentionBackwardArgs& args, ne_dtype dtype,
                               const DeviceKeyLengths& key_lengths) {
    switch (dtype) {
        case NE_DTYPE_BF16: backward_for<__nv_bfloat16>(queue, args, key_lengths); return;
        case NE_DTYPE_F16: backward_for<__half>(queue, args, key_lengths); return;
        default: backward_for<float>(queue, args, key_lengths); return;
    }
}

}  // namespace ne::cuda
