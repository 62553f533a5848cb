// Flash attention on the CPU: the arguments the kernels see after validation, the tile sizes,
// and what each SIMD level provides. Shape letters as in the C header: B batch, Tq queries, Tk
// keys, H query heads, Hkv key/value heads, D head dimension; G = H / Hkv query heads per
// key/value head.
//
// The SIMD translation units include this header, so it must stay free of anything but plain
// declarations (no standard-library templates or inline functions: see attention_avx2.cpp).
#pragma once

#include <cstdint>

namespace ne::cpu {

// A [B, T, heads, D] tensor: element (b, t, head, d) is
// data[b * batch_stride + t * token_stride + head * head_stride + d]. Strides in elements.
template <class Float>
struct HeadTensor {
    Float* data;
    int64_t batch_stride;
    int64_t token_stride;
    int64_t head_stride;
};

// What both passes read.
struct AttentionInputs {
    int64_t B, Tq, Tk, H, Hkv, D;
    float scale;                   // resolved: the caller's 0 is already 1/sqrt(D)
    bool causal;
    const int32_t* key_lengths;    // [B], each L_b in [0, Tk]; never null (Tk when the caller passed NULL)
    HeadTensor<const float> q;     // [B, Tq, H, D]
    HeadTensor<const float> k;     // [B, Tk, Hkv, D]
    HeadTensor<const float> v;     // [B, Tk, Hkv, D]
};

struct AttentionForwardArgs {
    AttentionInputs in;
    HeadTensor<float> out;         // [B, Tq, H, D]
    float* lse;                    // [B, H, Tq] contiguous, or nullptr
};

struct AttentionBackwardArgs {
    AttentionInputs in;
    HeadTensor<const float> out;   // [B, Tq, H, D], the forward's output
    const float* lse;              // [B, H, Tq] contiguous, the forward's
    HeadTensor<const float> dout;  // [B, Tq, H, D]
    HeadTensor<float> dq;          // [B, Tq, H, D]
    HeadTensor<float> dk;          // [B, Tk, Hkv, D]
    HeadTensor<float> dv;          // [B, Tk, Hkv, D]
    float* delta;                  // [B, H, Tq] scratch: rowsum(dout * out), written by backward_delta
    bool allow_atomics;            // a device may add dq's contributions in any order (ne_attention_params)
};

// The tiles of the SIMD kernels (FlashAttention's Br and Bc).
//
// The queries of a key/value head are processed as Tq * G "rows": row f is query f / G of query
// head kv_head * G + f % G, so that the G heads sharing keys and values read each key block
// once (for decoding, the G heads of one token fill the vector lanes). A row block is
// kRowBlock consecutive rows; a key block kKeyBlock consecutive keys.
//
// Working set of one (row block, key block) step for D = 64: the transposed queries, the
// scores, the packed values and the accumulators, 16 KiB each: L2-resident, with the register
// tiles sweeping 16 KiB at a time through L1. Measured with AVX2 on one Zen 3 core, whose FMA
// peak is 101 GFLOPS (T = 1024, H = 8, D = 64, not causal; GFLOPS of exact attention, the
// backward counted as 2.5 forwards; best of 6 runs on a machine shared with other jobs, whose
// noise is about 10%), forward / backward:
//   kRowBlock x kKeyBlock    32 x 32: 60 / 43
//                            64 x 64: 64 / 46
//                           128 x 64: 63 / 47
//                           64 x 128: 61 / 46
//                          128 x 128: 58 / 45
// 64 x 64 is the smallest tile on the plateau, which keeps the padding of short sequences and
// of the last block small. These backward figures predate the fused single-pass backward (one
// pass per key/value head, 5 products per tile instead of 7), which docs/benchmarks.md measures
// at 1.3 to 2x the former schedule; the tile choice was not re-swept for it.
struct AttentionTiles {
    static constexpr int64_t kRowBlock = 64;
    static constexpr int64_t kKeyBlock = 64;
    static constexpr int64_t kMaxHeadDim = 256;
};
static_assert(AttentionTiles::kRowBlock % 16 == 0 && AttentionTiles::kKeyBlock % 16 == 0,
              "blocks are whole vectors of 8 (AVX2) and 16 (AVX-512) lanes");

// What one SIMD level provides. attention.cpp validates, splits the work into independent
// tasks run by the context's threads, and calls these; each call runs on one thread, writes
// only the output elements its task owns, and accumulates them in a fixed order, so that the
// bits do not depend on the thread count. workspace: workspace_bytes() bytes, 64-byte
// aligned, private to the calling thread.
struct AttentionKernels {
    int64_t (*forward_workspace_bytes)(int64_t D);
    int64_t (*backward_workspace_bytes)(int64_t D);
    // Rows [row_begin, row_begin + kRowBlock) of (b, kv_head): out and lse of those rows.
    void (*forward_rows)(const AttentionForwardArgs& args, int64_t b, int64_t kv_head, int64_t row_begin,
                         void* workspace);
    // delta for the rows [begin, end) of lse's [B, H, Tq] order.
    void (*backward_delta)(const AttentionBackwardArgs& args, int64_t begin, int64_t end);
    // Pass 1, keys [key_begin, key_begin + kKeyBlock) of (b, kv_head): dk and dv of those keys,
    // from every row of the G query heads that sees them.
    void (*backward_keys)(const AttentionBackwardArgs& args, int64_t b, int64_t kv_head, int64_t key_begin,
                          void* workspace);
    // Pass 2, rows [row_begin, row_begin + kRowBlock) of (b, kv_head): dq of those rows.
    void (*backward_rows)(const AttentionBackwardArgs& args, int64_t b, int64_t kv_head, int64_t row_begin,
                          void* workspace);
    // Both passes fused, for all of (b, kv_head): dk and dv key block by key block, each block's
    // share of dq added in key order (the same bits as pass 2). Five products per tile instead of
    // seven, but one task per head.
    void (*backward_head)(const AttentionBackwardArgs& args, int64_t b, int64_t kv_head, void* workspace);
};

namespace avx2 {
extern const AttentionKernels attention_kernels;
}  // namespace avx2

namespace avx512 {
extern const AttentionKernels attention_kernels;
}  // namespace avx512

}  // namespace ne::cpu
