// Int8 quantization and the int8 GEMM on the CPU: the arguments the exported functions are
// validated into, and the kernels each SIMD level provides.
//
// Shape letters: R rows and C columns for quantized matrices; M, N, K for the GEMM,
// C[M,N] = A[M,K] * B[N,K]^T.
//
// The per-ISA translation units (int8_avx2.cpp, int8_avx512.cpp) include this header while being
// compiled with -mavx2 or -mavx512*. It must therefore hold nothing the compiler could emit as
// code: no inline functions, no templates, no default member initializers (they make constructors
// that the linker could take from an AVX-512 translation unit for the baseline build), and no
// standard headers beyond these two.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ne::cpu {

// Which elements share a scale.
enum class QuantAxis : int32_t { per_row, per_column };

// x [R,C] f32 -> q [R,C] i8, scales [R] (per row) or [C] (per column).
struct QuantizeArgs {
    QuantAxis axis;
    int64_t R;
    int64_t C;
    const float* x;        // row r starts at x + r * x_row_stride; columns are contiguous
    int64_t x_row_stride;  // in elements, >= C
    int8_t* q;             // contiguous
    float* scales;
};

// q [R,C] i8, scales [R] or [C] f32 -> x [R,C] f32: x = q * scale.
struct DequantizeArgs {
    QuantAxis axis;
    int64_t R;
    int64_t C;
    const int8_t* q;       // contiguous
    const float* scales;
    float* x;              // row r starts at x + r * x_row_stride
    int64_t x_row_stride;  // in elements, >= C
};

// acc[m,n] = sum_k a[m,k] * b[n,k], exact in int32 (K <= NE_INT8_GEMM_MAX_K). The output c is
// either the int32 accumulator, or c = acc * a_scales[m] * b_scales[n] (+ bias[n]) in f32.
struct GemmArgs {
    int64_t M;
    int64_t N;
    int64_t K;
    const int8_t* a;       // [M,K]; row m starts at a + m * a_row_stride
    int64_t a_row_stride;  // in elements, >= K
    const int8_t* b;       // [N,K]; row n starts at b + n * b_row_stride
    int64_t b_row_stride;  // in elements, >= K
    void* c;               // [M,N] of int32 or float; row m starts c_row_stride elements after row m-1
    int64_t c_row_stride;  // in elements, >= N
    bool float_output;     // c is float and gets the scaled epilogue below, else int32 accumulators
    const float* a_scales;  // [M]; float output only
    const float* b_scales;  // [N]; float output only
    const float* bias;      // [N] or null; float output only
};

// The block of C, [m_begin, m_end) x [n_begin, n_end), that one thread computes over all of K.
struct GemmRange {
    int64_t m_begin;
    int64_t m_end;
    int64_t n_begin;
    int64_t n_end;
};

// What one SIMD level provides. int8.cpp validates, splits the work across the context's
// threads, and calls these on each thread's share; every function here runs on one thread.
struct Int8Kernels {
    // Largest |x[i]| of n contiguous values, taken as the largest bit pattern of |x| (for floats
    // with the sign cleared, bit order is value order), so that a NaN or an infinity anywhere
    // makes the result non-finite.
    float (*absmax)(const float* x, int64_t n);
    // absmax[c] = largest |x[r,c]| over `rows` rows, for `cols` contiguous columns (same rule).
    void (*column_absmax)(const float* x, int64_t rows, int64_t cols, int64_t row_stride, float* absmax);
    // q[i] = clamp(round_half_even(x[i] * inverse), -127, 127) for n contiguous values.
    void (*quantize)(const float* x, int64_t n, float inverse, int8_t* q);
    // q[i] = clamp(round_half_even(x[i] * inverse[i]), -127, 127).
    void (*quantize_by_column)(const float* x, int64_t n, const float* inverse, int8_t* q);
    // x[i] = q[i] * scale.
    void (*dequantize)(const int8_t* q, int64_t n, float scale, float* x);
    // x[i] = q[i] * scales[i].
    void (*dequantize_by_column)(const int8_t* q, int64_t n, const float* scales, float* x);

    // Register tile of the GEMM microkernel: thread ranges are split in multiples of it.
    int64_t gemm_tile_rows;
    int64_t gemm_tile_cols;
    // Scratch bytes one thread needs for a range of at most rows x cols.
    int64_t (*gemm_workspace_bytes)(int64_t rows, int64_t cols, int64_t K);
    // Computes C over `range`; workspace: gemm_workspace_bytes() bytes, 64-byte aligned, private
    // to the calling thread. While K blocks remain, a float c holds int32 partial sums.
    void (*gemm)(const GemmArgs& args, const GemmRange& range, void* workspace);
};

namespace avx2 {
// AVX2 + FMA: vpmaddwd on operands sign-extended to int16.
extern const Int8Kernels kernels;
}  // namespace avx2

namespace avx512 {
// AVX-512 F/BW/DQ/VL + VNNI: vpdpbusd on A offset to unsigned.
extern const Int8Kernels kernels;
}  // namespace avx512

}  // namespace ne::cpu
