// Softmax cross-entropy over an output projection on the CPU: the per-ISA row kernels of the
// softmax, and the validation and reductions that the full loss (cross_entropy.cpp) shares with
// the sampled one (sampled_softmax.cpp).
//
// The SIMD translation units include this header, so it must stay free of anything but plain
// declarations (no standard-library templates or inline functions: see cross_entropy_avx2.cpp).
#pragma once

#include "nativeengine.h"

#include <cstdint>

namespace ne::cpu {

// Row kernels over `count` contiguous logits (count >= 1):
// - add_bias_and_max: z += bias (bias nullptr: z unchanged); returns max(z).
// - sum_exp: sum of exp(z - shift).
// - scaled_softmax: z = exp(z + bias - shift) * scale (bias nullptr: no bias).
// - dot: sum of a * b.
// Each result depends on the row alone (fixed lane and accumulator order), never on threads.
// AVX-512 contexts run these AVX2 kernels too: the row passes are a small share of a step that
// the GEMMs dominate (see cross_entropy.cpp), too small to justify a variant that cannot be
// tested on the development machine.
namespace avx2::softmax_rows {
float add_bias_and_max(float* z, const float* bias, int64_t count);
float sum_exp(const float* z, int64_t count, float shift);
void scaled_softmax(float* z, const float* bias, int64_t count, float shift, float scale);
float dot(const float* a, const float* b, int64_t count);
}  // namespace avx2::softmax_rows

// ---- Shared by both losses; defined in cross_entropy.cpp ------------------------------------

// A 2-D f32 tensor of `context` with contiguous rows: shape [rows, cols] (a negative rows or
// cols accepts any size), any row stride. Returns its layout.
struct Matrix {
    int64_t rows;
    int64_t cols;
    int64_t row_stride;  // in elements
};
Matrix f32_matrix_arg(const ne_tensor& tensor, const ne_context& context, int64_t rows, int64_t cols, const char* name);

// A contiguous f32 tensor of shape [length] of `context`.
void f32_vector_arg(const ne_tensor& tensor, const ne_context& context, int64_t length, const char* name);

// A contiguous i32 tensor of shape [length] (a negative length accepts any) of `context` holding
// class ids in [0, V); with negatives_ignored, negative values (ignored rows) are accepted too. A
// value out of range is refused, naming its index and value. Returns the length.
int64_t class_ids_arg(const ne_tensor& tensor, const ne_context& context, int64_t length, int64_t V,
                      bool negatives_ignored, const char* name);

// Every output must be separate from the other outputs and from every input. Absent optional
// arguments have tensor == nullptr.
struct NamedTensor {
    const ne_tensor* tensor;
    const char* name;
};
void expect_separate(const NamedTensor* outputs, int64_t output_count, const NamedTensor* inputs, int64_t input_count);

// Rows per task of a parallel pass over rows of `width` floats: at least one, and enough that
// waking a thread pays off.
int64_t rows_per_task(int64_t width);

// sums[c] (= or +=, by accumulate) the sum over r of matrix[r * row_stride + c], for c < cols.
// Each column is summed in row order by one thread: the bits do not depend on the thread count.
void column_sums(ne_context& context, const float* matrix, int64_t rows, int64_t cols, int64_t row_stride, float* sums,
                 bool accumulate);

}  // namespace ne::cpu
