/*
 * NativeEngine public C ABI.
 *
 * This is the only public header. C# bindings are generated from it (bindings/), so every
 * declaration here must stay within what the generator understands: enums, plain structs of
 * scalars and fixed arrays, opaque handles, and functions.
 *
 * Conventions
 * - Every function returns ne_status, except the three documented accessors at the top
 *   (ne_abi_version, ne_last_error, ne_status_string). On a non-OK status, ne_last_error()
 *   returns a message owned by the library, valid on the calling thread until its next failing
 *   call, that names the function, the argument and the expected value.
 * - Nothing aborts, exits or lets a C++ exception escape. Arguments are validated before any
 *   work starts; a failing call leaves its outputs untouched.
 * - Handles are opaque. ne_context owns a backend (CPU now, CUDA later) and the memory that
 *   kernels read and write; ne_tensor is a typed, shaped view of that memory. Every tensor
 *   keeps its context (and its memory) alive, so handles may be destroyed in any order.
 * - A context, and the tensors of a context, must be used from one thread at a time.
 * - Parameter and info structs start with struct_size = sizeof(the struct), so that fields can
 *   be appended without breaking callers compiled against an older header.
 * - Enums are append-only: existing values never change meaning. Each ends with a *_MAX_ENUM
 *   value that is never valid; it keeps the enum 32 bits wide on every compiler.
 * - Shape letters: N rows, C channels (normalized dimension); M, N, K for GEMM
 *   (C[M,N] = A[M,K] * B[N,K]^T).
 */
#ifndef NATIVEENGINE_H
#define NATIVEENGINE_H

#include <stdint.h>

#if defined(_WIN32)
#  if defined(NE_BUILDING_LIBRARY)
#    define NE_API __declspec(dllexport)
#  else
#    define NE_API __declspec(dllimport)
#  endif
#else
#  define NE_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** ABI version: incremented on any change that breaks binary compatibility. */
enum { NE_ABI_VERSION = 1 };

/** Largest tensor rank. */
enum { NE_MAX_RANK = 8 };

/* ------------------------------------------------------------------------------------------ */
/* Status and errors                                                                           */
/* ------------------------------------------------------------------------------------------ */

/** Result of every call. */
typedef enum ne_status {
    /** Success. */
    NE_STATUS_OK = 0,
    /** A value is out of its allowed range (a non-positive size, an unknown enum value). */
    NE_STATUS_INVALID_ARGUMENT = 1,
    /** A required pointer or handle is NULL. */
    NE_STATUS_NULL_POINTER = 2,
    /** Tensor shapes or ranks disagree with each other or with what the operation needs. */
    NE_STATUS_SHAPE_MISMATCH = 3,
    /** A tensor has the wrong element type. */
    NE_STATUS_DTYPE_MISMATCH = 4,
    /** A tensor belongs to another context than the one the operation runs on. */
    NE_STATUS_CONTEXT_MISMATCH = 5,
    /** A size computation overflows (element count, byte count, accumulator range). */
    NE_STATUS_OVERFLOW = 6,
    /** Memory could not be allocated. */
    NE_STATUS_OUT_OF_MEMORY = 7,
    /** A valid request that this backend or build does not support (dtype, layout, option). */
    NE_STATUS_UNSUPPORTED = 8,
    /** The backend is not compiled into this library, or its driver or device is missing. */
    NE_STATUS_BACKEND_UNAVAILABLE = 9,
    /** The device runtime reported an error. */
    NE_STATUS_DEVICE_ERROR = 10,
    /** A struct_size field does not match any version of the struct this library knows. */
    NE_STATUS_VERSION_MISMATCH = 11,
    /** A handle is not a live object of the expected type (destroyed, or another kind). */
    NE_STATUS_INVALID_HANDLE = 12,
    /** A bug in NativeEngine: an unexpected internal failure. Please report it. */
    NE_STATUS_INTERNAL_ERROR = 13,
    NE_STATUS_MAX_ENUM = 0x7fffffff
} ne_status;

/** The ABI version of the loaded library (NE_ABI_VERSION it was built with). */
NE_API uint32_t ne_abi_version(void);

/** The message of the last failing call on this thread ("" if none). Owned by the library. */
NE_API const char* ne_last_error(void);

/** A static name for a status code, such as "NE_STATUS_SHAPE_MISMATCH". */
NE_API const char* ne_status_string(ne_status status);

/* ------------------------------------------------------------------------------------------ */
/* System and contexts                                                                         */
/* ------------------------------------------------------------------------------------------ */

/** Where a context runs its kernels and keeps its memory. */
typedef enum ne_backend {
    /** Host memory and the CPU kernels. */
    NE_BACKEND_CPU = 0,
    /** Device memory and the CUDA kernels (libnativeengine_cuda only). */
    NE_BACKEND_CUDA = 1,
    /** CUDA device 0 when this library has the CUDA backend and a device is visible, else the CPU.
     * Only in ne_context_options (device_index must be 0): the context reports the backend it got. */
    NE_BACKEND_AUTO = 2,
    NE_BACKEND_MAX_ENUM = 0x7fffffff
} ne_backend;

/** SIMD instruction sets of the CPU kernels. AUTO picks the best this CPU supports; SCALAR runs
 * the plain reference kernels on one thread. AVX512 means AVX-512 F/BW/DQ/VL plus VNNI. */
typedef enum ne_simd_level {
    /** The best level this CPU supports. */
    NE_SIMD_LEVEL_AUTO = 0,
    /** The scalar reference kernels, on one thread. */
    NE_SIMD_LEVEL_SCALAR = 1,
    /** AVX2 with FMA and F16C. */
    NE_SIMD_LEVEL_AVX2 = 2,
    /** AVX-512 F/BW/DQ/VL with VNNI. */
    NE_SIMD_LEVEL_AVX512 = 3,
    NE_SIMD_LEVEL_MAX_ENUM = 0x7fffffff
} ne_simd_level;

/** What this library and machine offer (ne_get_system_info). */
typedef struct ne_system_info {
    uint32_t struct_size;
    /** Best SIMD level this CPU and this build support. */
    ne_simd_level best_simd_level;
    /** Logical processors available to this process. */
    int32_t hardware_threads;
    /** 1 if this library was built with the CUDA backend. */
    int32_t cuda_compiled;
    /** CUDA devices visible (0 without a driver or without the CUDA backend). */
    int32_t cuda_device_count;
    /** Library version, "major.minor.patch". */
    char version[32];
} ne_system_info;

/** Describes this library build and machine. */
NE_API ne_status ne_get_system_info(ne_system_info* out_info);

/** Options of ne_context_create. */
typedef struct ne_context_options {
    uint32_t struct_size;
    /** Backend of the context. */
    ne_backend backend;
    /** Device ordinal for CUDA; must be 0 for the CPU. */
    int32_t device_index;
    /** CPU threads the kernels use, the calling thread included; 0 = hardware_threads. */
    int32_t num_threads;
    /** SIMD level of the CPU kernels; a level this CPU lacks is refused (NE_STATUS_UNSUPPORTED). */
    ne_simd_level simd_level;
} ne_context_options;

/** A backend instance that owns memory, threads (and on CUDA, a stream and library handles). */
typedef struct ne_context ne_context;

/** Creates a context. Ownership: the caller owns *out_context and releases it with
 * ne_context_destroy; tensors created from it keep it alive until they are destroyed. */
NE_API ne_status ne_context_create(const ne_context_options* options, ne_context** out_context);

/** Releases the caller's reference. NULL is accepted and does nothing. */
NE_API ne_status ne_context_destroy(ne_context* context);

/** What a context runs on (ne_context_get_info). */
typedef struct ne_context_info {
    uint32_t struct_size;
    /** Backend of the context. */
    ne_backend backend;
    /** Device ordinal (0 on the CPU). */
    int32_t device_index;
    /** CPU threads the kernels use. */
    int32_t num_threads;
    /** SIMD level the CPU kernels of this context use (never AUTO). */
    ne_simd_level simd_level;
    /** Human-readable device name: the CPU model, or the CUDA device name. */
    char device_name[128];
    /** CUDA compute capability as major * 10 + minor (90 on an H100); 0 on the CPU. */
    int32_t compute_capability;
    /** Streaming multiprocessors of the CUDA device; 0 on the CPU. */
    int32_t multiprocessor_count;
    /** Bytes of the CUDA device's L2 cache, e.g. for a benchmark whose data must not stay cached
     * between calls; 0 on the CPU. */
    int64_t l2_cache_bytes;
    /** Bytes of the CUDA device's global memory; 0 on the CPU. */
    int64_t memory_bytes;
} ne_context_info;

/** Describes a context. */
NE_API ne_status ne_context_get_info(const ne_context* context, ne_context_info* out_info);

/** Waits until all work queued on the context has finished (a no-op on the CPU backend).
 *
 * Checks of device data. On a device backend, the values an operation must validate but that
 * live in device memory (ids and class ids within their table, finite inputs to quantize,
 * positive expected counts, key lengths within Tk) are checked by the device while the host goes
 * on, so that a training step never waits for the device. The host learns the outcome at the
 * context's next wait: ne_context_synchronize, ne_tensor_read, a copy to host memory or between
 * contexts. That call then returns NE_STATUS_INVALID_ARGUMENT with the message of the first
 * failed check, which names the operation that queued it ("ne_embedding_forward: argument
 * 'ids': element 3 is 8; expected ..."); the outputs of that operation are unspecified, but it
 * touched no memory outside its tensors. On the CPU backend the operation itself fails. */
NE_API ne_status ne_context_synchronize(ne_context* context);

/** What a context has done that costs the host time (ne_context_get_activity). */
typedef struct ne_context_activity {
    uint32_t struct_size;
    /** Times the host has waited for the context's queued work: synchronizations, reads, copies
     * to host memory, and rare waits for staging memory. Always 0 on the CPU backend. */
    int64_t host_waits;
    /** Checks of device data queued but not yet reported (see ne_context_synchronize). */
    int64_t pending_checks;
} ne_context_activity;

/** Counts of the context's host waits, to show that a loop (a training step) makes none. */
NE_API ne_status ne_context_get_activity(const ne_context* context, ne_context_activity* out_activity);

/** Live object counts, for leak checks and memory reporting. */
typedef struct ne_memory_stats {
    uint32_t struct_size;
    /** Contexts not yet fully released (library-wide statistics only; 0 for a context). */
    int64_t live_contexts;
    /** Tensor handles, views included, not yet destroyed. */
    int64_t live_tensors;
    /** Memory allocations not yet freed. */
    int64_t live_allocations;
    /** Total size of those allocations, in bytes. */
    int64_t live_bytes;
    /** Largest live_bytes seen. */
    int64_t peak_bytes;
} ne_memory_stats;

/** Library-wide live object counts. */
NE_API ne_status ne_get_memory_stats(ne_memory_stats* out_stats);

/** Live object counts of one context. */
NE_API ne_status ne_context_get_memory_stats(const ne_context* context, ne_memory_stats* out_stats);

/* ------------------------------------------------------------------------------------------ */
/* Tensors                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/** Element types. */
typedef enum ne_dtype {
    /** IEEE binary32. */
    NE_DTYPE_F32 = 0,
    /** IEEE binary16. */
    NE_DTYPE_F16 = 1,
    /** bfloat16: the upper half of a binary32. */
    NE_DTYPE_BF16 = 2,
    /** Signed 8-bit integer. */
    NE_DTYPE_I8 = 3,
    /** Signed 32-bit integer. */
    NE_DTYPE_I32 = 4,
    NE_DTYPE_MAX_ENUM = 0x7fffffff
} ne_dtype;

/** A typed, shaped view of memory owned by a context. */
typedef struct ne_tensor ne_tensor;

/** Allocates a zero-filled, contiguous (row-major) tensor in the context's memory. rank is
 * 0..NE_MAX_RANK and every dimension is positive; shape may be NULL when rank is 0 (a scalar).
 * Ownership: the caller owns *out_tensor and releases it with ne_tensor_destroy. */
NE_API ne_status ne_tensor_create(ne_context* context, ne_dtype dtype, int32_t rank,
                                  const int64_t* shape, ne_tensor** out_tensor);

/** Creates a view of base's memory: element (i0, i1, ...) of the view is element
 * offset + i0*strides[0] + i1*strides[1] + ... of base's allocation, counted in elements of
 * base's dtype. strides NULL means contiguous. Strides are non-negative and every reachable
 * element must lie inside the allocation. Ownership: the caller owns *out_view (released with
 * ne_tensor_destroy); the view keeps the memory alive after base is destroyed. */
NE_API ne_status ne_tensor_view(const ne_tensor* base, int64_t offset, int32_t rank,
                                const int64_t* shape, const int64_t* strides,
                                ne_tensor** out_view);

/** Releases a tensor handle. NULL is accepted and does nothing. */
NE_API ne_status ne_tensor_destroy(ne_tensor* tensor);

/** Layout of a tensor (ne_tensor_get_info). */
typedef struct ne_tensor_info {
    uint32_t struct_size;
    /** Element type. */
    ne_dtype dtype;
    /** Number of dimensions, 0..NE_MAX_RANK. */
    int32_t rank;
    /** 1 if the elements are laid out row-major without gaps. */
    int32_t is_contiguous;
    /** Dimensions; entries at and beyond rank are 0. */
    int64_t shape[NE_MAX_RANK];
    /** Strides in elements; entries at and beyond rank are 0. */
    int64_t strides[NE_MAX_RANK];
    /** Offset of element 0 in the allocation, in elements. */
    int64_t offset;
    /** Product of the dimensions (1 for a scalar). */
    int64_t element_count;
} ne_tensor_info;

/** Describes a tensor's layout. */
NE_API ne_status ne_tensor_get_info(const ne_tensor* tensor, ne_tensor_info* out_info);

/** Copies host memory into a contiguous tensor; size_bytes must equal the tensor's byte size. */
NE_API ne_status ne_tensor_write(ne_tensor* tensor, const void* source, uint64_t size_bytes);

/** Copies a contiguous tensor into host memory; size_bytes must equal the tensor's byte size. */
NE_API ne_status ne_tensor_read(const ne_tensor* tensor, void* destination, uint64_t size_bytes);

/** Copies elements between tensors of the same shape and dtype, any strides, any contexts.
 * destination and source must not overlap. */
NE_API ne_status ne_tensor_copy(ne_tensor* destination, const ne_tensor* source);

/** Sets every element to value, converted to the tensor's dtype (integers: rounded to nearest,
 * must be representable). */
NE_API ne_status ne_tensor_fill(ne_tensor* tensor, double value);

/* ------------------------------------------------------------------------------------------ */
/* Normalization: fused residual-add + LayerNorm / RMSNorm over the last dimension (C)         */
/* ------------------------------------------------------------------------------------------ */
/*
 * Tensors of N rows of C channels may have any rank >= 1: the last dimension is C (stride 1)
 * and the leading dimensions are the N rows (rows may be strided, as in views). f32 on the CPU.
 *
 * Forward:  s = x + residual (s = x without a residual)
 *           LayerNorm: y = (s - mean(s)) * rstd * gamma + beta,  rstd = 1 / sqrt(var(s) + eps)
 *           RMSNorm:   y = s * rstd * gamma,                    rstd = 1 / sqrt(mean(s^2) + eps)
 * Backward: from dy (and ds, the gradient reaching s from its other uses, such as the next
 *           residual), computes dx = d(loss)/ds, which is also the residual's gradient, and
 *           dgamma, dbeta (sums over rows).
 */

/** Parameters of the normalization kernels. */
typedef struct ne_norm_params {
    uint32_t struct_size;
    /** Added to the variance (mean square for RMSNorm); finite and > 0. */
    float epsilon;
    /** Backward only: 1 adds into dgamma and dbeta, 0 overwrites them. */
    int32_t accumulate;
} ne_norm_params;

/**
 * x [N,C]; residual [N,C] or NULL; gamma [C]; beta [C] or NULL (no shift);
 * y [N,C]; sum [N,C] or NULL (receives s = x + residual, for the next residual connection);
 * mean [N] and rstd [N]: both set or both NULL (statistics for the backward pass).
 * y may be the same tensor as x; sum may be x or residual.
 */
NE_API ne_status ne_layernorm_forward(ne_context* context, const ne_norm_params* params,
                                      const ne_tensor* x, const ne_tensor* residual,
                                      const ne_tensor* gamma, const ne_tensor* beta,
                                      ne_tensor* y, ne_tensor* sum, ne_tensor* mean,
                                      ne_tensor* rstd);

/**
 * dy [N,C]; ds [N,C] or NULL; s [N,C] (the normalized input: sum, or x without a residual);
 * gamma [C]; mean [N], rstd [N] from the forward pass;
 * dx [N,C] (may be the same tensor as dy or ds); dgamma [C] or NULL; dbeta [C] or NULL.
 * dgamma and dbeta are reduced in a fixed order: the bits do not depend on the thread count.
 */
NE_API ne_status ne_layernorm_backward(ne_context* context, const ne_norm_params* params,
                                       const ne_tensor* dy, const ne_tensor* ds,
                                       const ne_tensor* s, const ne_tensor* gamma,
                                       const ne_tensor* mean, const ne_tensor* rstd,
                                       ne_tensor* dx, ne_tensor* dgamma, ne_tensor* dbeta);

/** As ne_layernorm_forward without mean and beta. */
NE_API ne_status ne_rmsnorm_forward(ne_context* context, const ne_norm_params* params,
                                    const ne_tensor* x, const ne_tensor* residual,
                                    const ne_tensor* gamma, ne_tensor* y, ne_tensor* sum,
                                    ne_tensor* rstd);

/** As ne_layernorm_backward without mean and dbeta. */
NE_API ne_status ne_rmsnorm_backward(ne_context* context, const ne_norm_params* params,
                                     const ne_tensor* dy, const ne_tensor* ds,
                                     const ne_tensor* s, const ne_tensor* gamma,
                                     const ne_tensor* rstd, ne_tensor* dx, ne_tensor* dgamma);

/* ------------------------------------------------------------------------------------------ */
/* Int8: symmetric absmax quantization and the int8 GEMM                                       */
/* ------------------------------------------------------------------------------------------ */
/*
 * Quantization of a matrix X [R, C] along rows (one scale per row, as for activations) or
 * columns (one scale per column):
 *   scale = absmax / 127 (0 for an all-zero group),  q = clamp(round_half_even(x * (127 / absmax)), -127, 127)
 * Dequantization: x = q * scale. Quantized matrices are 2-D and contiguous.
 * Non-finite inputs (NaN, infinity) are refused with NE_STATUS_INVALID_ARGUMENT, naming the
 * first such element. Rounding assumes the default floating-point environment (round to nearest).
 */

/** Which groups of a matrix share one quantization scale. */
typedef enum ne_quant_axis {
    /** One scale per row (activations; a linear weight [N,K] per output channel). */
    NE_QUANT_AXIS_PER_ROW = 0,
    /** One scale per column. */
    NE_QUANT_AXIS_PER_COLUMN = 1,
    NE_QUANT_AXIS_MAX_ENUM = 0x7fffffff
} ne_quant_axis;

/** x [R,C] f32 -> q [R,C] i8, scales [R] (per row) or [C] (per column) f32. */
NE_API ne_status ne_quantize_int8(ne_context* context, ne_quant_axis axis, const ne_tensor* x,
                                  ne_tensor* q, ne_tensor* scales);

/** q [R,C] i8, scales [R] or [C] f32 -> x [R,C] f32. */
NE_API ne_status ne_dequantize_int8(ne_context* context, ne_quant_axis axis, const ne_tensor* q,
                                    const ne_tensor* scales, ne_tensor* x);

/** Largest K the int8 GEMM accepts: int32 accumulators cannot overflow up to it. */
enum { NE_INT8_GEMM_MAX_K = 65536 };

/**
 * Int8 GEMM with int32 accumulation: acc[m,n] = sum_k a[m,k] * b[n,k] (exact), a [M,K] i8,
 * b [N,K] i8 (the layout of a linear layer's weight: one row per output channel); the full
 * int8 range is allowed. a and b are 2-D with contiguous rows.
 * - c i32 [M,N]: c = acc; a_scales, b_scales and bias must be NULL.
 * - c f32 [M,N]: c = acc * a_scales[m] * b_scales[n] (+ bias[n]); a_scales [M], b_scales [N],
 *   bias [N] or NULL, all f32.
 */
NE_API ne_status ne_gemm_int8(ne_context* context, const ne_tensor* a, const ne_tensor* b,
                              const ne_tensor* a_scales, const ne_tensor* b_scales,
                              const ne_tensor* bias, ne_tensor* c);

/**
 * Quantized linear layer: y = dequant(quant_per_row(x) * w^T) + bias, with x [M,K] f32,
 * w [N,K] i8 and w_scales [N] f32 (weights quantized per output channel, i.e. per row of w),
 * bias [N] or NULL, y [M,N] f32. x is quantized per row on the fly.
 */
NE_API ne_status ne_linear_int8(ne_context* context, const ne_tensor* x, const ne_tensor* w,
                                const ne_tensor* w_scales, const ne_tensor* bias, ne_tensor* y);

/* ------------------------------------------------------------------------------------------ */
/* GEMM                                                                                        */
/* ------------------------------------------------------------------------------------------ */
/*
 * C = alpha * op(A) * op(B) + beta * C in f32, with op(X) = X or X^T. The matrices are the last
 * two dimensions of their tensors: a contiguous last dimension, any row stride. op(A) is [M, K],
 * op(B) is [K, N] and C is [M, N]. Leading dimensions form a batch: they must collapse into one
 * batch dimension of uniform stride. C's batch count is the batch; A or B may instead have a
 * batch count of 1 (a rank-2 tensor), shared by every batch, as a layer's weight is.
 * With beta = 0, C is overwritten without being read. C must not overlap A or B. The result's
 * bits do not depend on the thread count.
 * On a CUDA context, A and B may instead both be bf16 or both f16, with C of their dtype or f32;
 * products are accumulated in f32 (tensor cores).
 */

/** Parameters of ne_gemm. */
typedef struct ne_gemm_params {
    uint32_t struct_size;
    /** 1: op(A) = A^T, with A stored as [..., K, M]. */
    int32_t transpose_a;
    /** 1: op(B) = B^T, with B stored as [..., N, K] (a linear layer's weight [out, in]). */
    int32_t transpose_b;
    /** Scales op(A) * op(B); finite. */
    float alpha;
    /** Scales the previous C; finite. */
    float beta;
    /** f32 operands, 1: a device may round them to TF32 (a 10-bit mantissa) and multiply on tensor
     *  cores (sm_80 and later), accumulating in f32: several times faster, relative errors near
     *  1e-3. 0 (the default): f32 products. The CPU computes in f32 either way. */
    int32_t allow_tf32;
} ne_gemm_params;

/** C = alpha * op(A) * op(B) + beta * C (see above). */
NE_API ne_status ne_gemm(ne_context* context, const ne_gemm_params* params, const ne_tensor* a,
                         const ne_tensor* b, ne_tensor* c);

/* ------------------------------------------------------------------------------------------ */
/* Flash attention                                                                             */
/* ------------------------------------------------------------------------------------------ */
/*
 * out = softmax(scale * q k^T + mask) v, tiled with an online softmax: no [Tq, Tk] buffer is
 * ever allocated. f32 on the CPU. Shape letters: B batch, Tq queries, Tk keys, H query heads,
 * Hkv key/value heads, D head dimension (1..256).
 * - q, out, dout, dq: [B, Tq, H, D]; k, v, dk, dv: [B, Tk, Hkv, D]. Rank 4, the last dimension
 *   contiguous, other strides free: the q, k and v views of a fused QKV projection
 *   [B, T, 3, H, D] need no copy.
 * - Grouped-query attention: H is a multiple of Hkv, and query head h reads key/value head
 *   h / (H / Hkv). Hkv = 1 is multi-query attention.
 * - key_lengths [B] i32, or NULL for Tk everywhere: sequence b has L_b valid keys (0..Tk); keys
 *   at and after L_b are masked (padded batches).
 * - Causal: query i of sequence b attends key j only if j <= i + (L_b - Tq): the queries are
 *   the last Tq positions, as when decoding one token against a key/value cache.
 * - A row that sees no key (all masked) has output 0 and lse -infinity, and no gradient.
 * - lse [B, H, Tq] f32, contiguous: the log-sum-exp of each row's scaled, masked scores, saved
 *   by the forward pass for the backward pass.
 */

/** Parameters of the attention kernels. */
typedef struct ne_attention_params {
    uint32_t struct_size;
    /** Multiplies q.k before the softmax; 0 means 1/sqrt(D). Finite and >= 0. */
    float scale;
    /** 1: causal masking (see above). */
    int32_t causal;
    /** Backward only, 0 or 1. 1: a device may add the contributions to dq with atomic adds, in
     *  whatever order its blocks run, which makes one pass over the scores instead of two (about
     *  5/7 of the products); dk and dv stay deterministic, dq may differ in its last bits between
     *  runs. 0 (the default, and a caller whose struct_size ends before this field): every output
     *  deterministic. The CPU is deterministic either way. */
    int32_t allow_atomics;
} ne_attention_params;

/** Attention forward: writes out, and lse unless it is NULL (inference). */
NE_API ne_status ne_attention_forward(ne_context* context, const ne_attention_params* params,
                                      const ne_tensor* q, const ne_tensor* k, const ne_tensor* v,
                                      const ne_tensor* key_lengths, ne_tensor* out,
                                      ne_tensor* lse);

/**
 * Attention backward from dout and the forward's out and lse: overwrites dq, dk and dv (the
 * query heads sharing a key/value head add their contributions). Deterministic: the same bits
 * on every run and for every thread count, unless params->allow_atomics lets a device vary dq's
 * last bits.
 */
NE_API ne_status ne_attention_backward(ne_context* context, const ne_attention_params* params,
                                       const ne_tensor* q, const ne_tensor* k, const ne_tensor* v,
                                       const ne_tensor* key_lengths, const ne_tensor* out,
                                       const ne_tensor* lse, const ne_tensor* dout, ne_tensor* dq,
                                       ne_tensor* dk, ne_tensor* dv);

/* ------------------------------------------------------------------------------------------ */
/* Softmax cross-entropy over an output projection: full (chunked) and sampled                 */
/* ------------------------------------------------------------------------------------------ */
/*
 * Shape letters: N rows (tokens), D hidden size, V classes (vocabulary), S samples.
 * hidden [N, D] and weight [V, D] (the output embedding) are f32 with contiguous rows; bias [V]
 * f32 or NULL; targets [N] i32 in [0, V), or negative to ignore the row (loss 0, no gradient).
 * Losses are per row ([N] f32); callers reduce them (a mean is dloss = 1 / rows counted).
 */

/** Parameters of the chunked cross-entropy. */
typedef struct ne_cross_entropy_params {
    uint32_t struct_size;
    /** Classes processed at a time; bounds the working memory to N x chunk_size floats.
     *  0 picks a default. */
    int64_t chunk_size;
    /** Backward only: 1 adds into dweight and dbias, 0 overwrites them. */
    int32_t accumulate;
    /** 1: a device may round hidden, weight and the logit gradients to TF32 (a 10-bit mantissa)
     *  in its products, on tensor cores (sm_80 and later): several times faster, with relative
     *  errors near 1e-3 in the logits. 0 (the default): products in f32. The CPU computes in f32
     *  either way. */
    int32_t allow_tf32;
} ne_cross_entropy_params;

/**
 * loss[n] = logsumexp(z_n) - z_n[target_n] with z = hidden weight^T + bias, computed in chunks of
 * classes: the [N, V] logits are never held at once. lse [N] or NULL receives logsumexp(z_n)
 * for the backward pass.
 */
NE_API ne_status ne_cross_entropy_forward(ne_context* context,
                                          const ne_cross_entropy_params* params,
                                          const ne_tensor* hidden, const ne_tensor* weight,
                                          const ne_tensor* bias, const ne_tensor* targets,
                                          ne_tensor* loss, ne_tensor* lse);

/**
 * From dloss [N] and the forward's lse: overwrites dhidden [N, D]; writes (or adds into) dweight
 * [V, D] and dbias [V] (either may be NULL). Recomputes the logits chunk by chunk.
 */
NE_API ne_status ne_cross_entropy_backward(ne_context* context,
                                           const ne_cross_entropy_params* params,
                                           const ne_tensor* hidden, const ne_tensor* weight,
                                           const ne_tensor* bias, const ne_tensor* targets,
                                           const ne_tensor* lse, const ne_tensor* dloss,
                                           ne_tensor* dhidden, ne_tensor* dweight,
                                           ne_tensor* dbias);

/*
 * Log-uniform (Zipfian) candidate sampling for sampled softmax, over classes ordered from most
 * to least frequent: P(c) = log((c + 2) / (c + 1)) / log(V + 1). The expected count of a class is
 * how many times it is expected among the S samples: S * P(c) for independent draws, and
 * 1 - (1 - P(c))^tries for unique sampling, which draws until S distinct classes were found
 * (tries draws in all). The draws depend only on the seed, S and V.
 */

/** Parameters of ne_sample_log_uniform. */
typedef struct ne_sampler_params {
    uint32_t struct_size;
    /** V, the number of classes; >= 1. */
    int64_t num_classes;
    /** Seed of the draws. */
    uint64_t seed;
    /** 1: S distinct classes (needs S <= V); 0: S independent draws. */
    int32_t unique;
} ne_sampler_params;

/**
 * Draws samples [S] i32 and writes their expected counts sample_expected_counts [S] f32; with
 * targets [N] i32 (else NULL), also writes target_expected_counts [N] f32, the expected counts of
 * the true classes (1 for ignored rows).
 */
NE_API ne_status ne_sample_log_uniform(ne_context* context, const ne_sampler_params* params,
                                       const ne_tensor* targets, ne_tensor* samples,
                                       ne_tensor* sample_expected_counts,
                                       ne_tensor* target_expected_counts);

/** Parameters of the sampled softmax. */
typedef struct ne_sampled_softmax_params {
    uint32_t struct_size;
    /** 1: subtract log(expected count) from every logit (the sampled softmax correction). */
    int32_t subtract_log_expected_count;
    /** 1: a sample equal to a row's target is left out of that row's softmax (an accidental hit). */
    int32_t remove_accidental_hits;
    /** Backward only: 1 adds into dweight and dbias at the touched rows; 0 overwrites them
     *  (zero outside the rows of the targets and samples). */
    int32_t accumulate;
} ne_sampled_softmax_params;

/**
 * Sampled softmax loss: row n scores its target t and the S samples, z = hidden_n . weight_c +
 * bias_c (- log expected count of c), and loss[n] = logsumexp(z) - z_t. samples [S] i32 with
 * sample_expected_counts [S] and target_expected_counts [N] f32 from ne_sample_log_uniform (the
 * counts may be NULL without the correction). probs [N, S + 1] f32 or NULL receives each row's
 * softmax over [target, samples] (0 for removed hits), for the backward pass.
 */
NE_API ne_status ne_sampled_softmax_forward(ne_context* context,
                                            const ne_sampled_softmax_params* params,
                                            const ne_tensor* hidden, const ne_tensor* weight,
                                            const ne_tensor* bias, const ne_tensor* targets,
                                            const ne_tensor* samples,
                                            const ne_tensor* sample_expected_counts,
                                            const ne_tensor* target_expected_counts,
                                            ne_tensor* loss, ne_tensor* probs);

/**
 * From dloss [N] and the forward's probs: overwrites dhidden [N, D]; writes (or adds into, see
 * accumulate) dweight [V, D] and dbias [V] (either may be NULL) at the rows of the targets and
 * samples.
 */
NE_API ne_status ne_sampled_softmax_backward(ne_context* context,
                                             const ne_sampled_softmax_params* params,
                                             const ne_tensor* hidden, const ne_tensor* weight,
                                             const ne_tensor* targets, const ne_tensor* samples,
                                             const ne_tensor* probs, const ne_tensor* dloss,
                                             ne_tensor* dhidden, ne_tensor* dweight,
                                             ne_tensor* dbias);

/* ------------------------------------------------------------------------------------------ */
/* Small ops of the model: element-wise, reductions, embedding, dropout, softmax, AdamW        */
/* ------------------------------------------------------------------------------------------ */
/*
 * f32 on the CPU. Element-wise ops take tensors of any rank with a contiguous last dimension
 * and leading dimensions that collapse into rows (as the normalizations do); an output may be
 * the same tensor as an input of its shape (in place), but may not otherwise overlap one.
 * Reductions are computed in a fixed order: their bits do not depend on the thread count.
 */

/**
 * out = a + b. b has a's shape, or the shape of a's trailing dimensions and is broadcast over
 * the leading ones (a bias [C] added to [N, C]; a positional table [T, C] added to [B, T, C]).
 */
NE_API ne_status ne_add(ne_context* context, const ne_tensor* a, const ne_tensor* b,
                        ne_tensor* out);

/** y = alpha * x + beta * y, element-wise, x and y of one shape; with beta = 0, y is not read. */
NE_API ne_status ne_axpby(ne_context* context, float alpha, const ne_tensor* x, float beta,
                          ne_tensor* y);

/**
 * Sums over rows: out[c] = sum_n x[n, c] for x [N, C] (any rank, rows as above) and out [C]; with
 * accumulate = 1, adds into out. This is a bias's gradient.
 */
NE_API ne_status ne_sum_rows(ne_context* context, const ne_tensor* x, ne_tensor* out,
                             int32_t accumulate);

/**
 * Sum of all elements of x (sum of their squares with squares = 1) into out, a one-element f32
 * tensor (rank 0 or [1]); with accumulate = 1, adds into out, so that several tensors can be
 * reduced into one value (a global gradient norm) without a round trip to the host. Accumulated
 * in double.
 */
NE_API ne_status ne_reduce_sum(ne_context* context, const ne_tensor* x, int32_t squares,
                               ne_tensor* out, int32_t accumulate);

/** GELU with the tanh approximation (GPT-2): y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
NE_API ne_status ne_gelu_forward(ne_context* context, const ne_tensor* x, ne_tensor* y);

/** dx = dy * GELU'(x); dx may be dy. */
NE_API ne_status ne_gelu_backward(ne_context* context, const ne_tensor* x, const ne_tensor* dy,
                                  ne_tensor* dx);

/**
 * Embedding lookup: out[..., :] = table[ids[...], :], with table [V, C], ids i32 of any shape
 * with values in [0, V), and out of shape ids' shape + [C].
 */
NE_API ne_status ne_embedding_forward(ne_context* context, const ne_tensor* table,
                                      const ne_tensor* ids, ne_tensor* out);

/**
 * Embedding backward: dtable[ids[...], :] += dout[..., :] (repeated ids add up, in a fixed
 * order). With accumulate = 0, dtable is zeroed first; with 1, rows not in ids are untouched.
 */
NE_API ne_status ne_embedding_backward(ne_context* context, const ne_tensor* ids,
                                       const ne_tensor* dout, ne_tensor* dtable,
                                       int32_t accumulate);

/** Parameters of the dropout kernels. */
typedef struct ne_dropout_params {
    uint32_t struct_size;
    /** Probability of dropping an element, in [0, 1). */
    float probability;
    /** Seed of the mask: element i is kept by a hash of (seed, i), so the backward pass
     *  regenerates the forward pass's mask instead of storing it. */
    uint64_t seed;
} ne_dropout_params;

/** Inverted dropout: out = x * keep / (1 - probability), keep in {0, 1} from the seed. */
NE_API ne_status ne_dropout_forward(ne_context* context, const ne_dropout_params* params,
                                    const ne_tensor* x, ne_tensor* out);

/** dx = dout * keep / (1 - probability), with the mask of the same params; dx may be dout. */
NE_API ne_status ne_dropout_backward(ne_context* context, const ne_dropout_params* params,
                                     const ne_tensor* dout, ne_tensor* dx);

/**
 * Softmax over the last dimension of x [N, C] into out (same shape): rows of -infinity give 0.
 * Used outside training, such as attention maps; out may be x.
 */
NE_API ne_status ne_softmax_forward(ne_context* context, const ne_tensor* x, ne_tensor* out);

/** Parameters of ne_adamw_step. */
typedef struct ne_adamw_params {
    uint32_t struct_size;
    /** Step size; finite, >= 0. */
    float learning_rate;
    /** Decay rates of the first and second moment estimates, in [0, 1). */
    float beta1;
    float beta2;
    /** Added to the root of the second moment; > 0. */
    float epsilon;
    /** Decoupled weight decay: param -= learning_rate * weight_decay * param; >= 0. */
    float weight_decay;
    /** 1-based index of this step, for the bias corrections 1 - beta^step. */
    int64_t step;
    /** Multiplies the gradient before use (loss scaling, gradient accumulation); finite. */
    float grad_scale;
    /** > 0 with grad_norm_squared: clip the gradient to this global norm. 0: no clipping. */
    float max_grad_norm;
} ne_adamw_params;

/**
 * One fused AdamW update of a parameter tensor (Loshchilov and Hutter, as PyTorch's AdamW):
 * g = grad * grad_scale * clip, m = beta1 m + (1 - beta1) g, v = beta2 v + (1 - beta2) g^2,
 * param -= learning_rate * (m / (1 - beta1^step) / (sqrt(v / (1 - beta2^step)) + epsilon)
 * + weight_decay * param). param, grad, m and v share one shape. grad_norm_squared, a one-element
 * f32 tensor or NULL, is the sum of squares of every parameter's raw gradient (ne_reduce_sum with
 * squares = 1 and accumulate = 1 over all of them); with max_grad_norm > 0,
 * clip = min(1, max_grad_norm / (|grad_scale| sqrt(grad_norm_squared))), read where the kernel
 * runs, so clipping needs no round trip to the host.
 */
NE_API ne_status ne_adamw_step(ne_context* context, const ne_adamw_params* params,
                               ne_tensor* param, const ne_tensor* grad, ne_tensor* m, ne_tensor* v,
                               const ne_tensor* grad_norm_squared);

#ifdef __cplusplus
}
#endif

#endif /* NATIVEENGINE_H */
