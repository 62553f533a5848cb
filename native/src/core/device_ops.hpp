// What a device backend's kernels receive after the CPU-side validation: plain structs of
// device pointers, sizes and strides (in elements), the same ones the CPU kernels get where
// those are plain (normalization, int8, GEMM), and small launch records for the other ops.
//
// nvcc compiles the CUDA translation units that include this header with C++17: keep it free of
// anything but plain declarations and the standard library (the CPU headers it includes obey the
// same rule).
#pragma once

#include "cpu/adamw.hpp"
#include "cpu/elementwise.hpp"
#include "cpu/gemm.hpp"
#include "cpu/int8.hpp"
#include "cpu/layernorm.hpp"

#include <cstdint>
#include <functional>
#include <string>

namespace ne {

// Rows x cols floats: row r starts at data + r * row_stride; columns are contiguous.
struct DeviceInput {
    const float* data;
    int64_t row_stride;
};

struct DeviceOutput {
    float* data;
    int64_t row_stride;
};

enum class ElementwiseOp : int32_t { add, axpby, gelu_forward, gelu_backward, dropout };

// One element-wise op over rows x cols elements.
// - add: out = a + b, b's row r % b_rows meeting row r (a bias or positional table broadcast).
// - axpby: out = fma(alpha, a, beta * out), or alpha * a without reading out when beta == 0.
// - gelu_forward: out = GELU(a); gelu_backward: out = b * GELU'(a) (a = x, b = dy).
// - dropout: element of flat index row * cols + col kept by the mask (cpu/elementwise.cpp).
struct ElementwiseLaunch {
    ElementwiseOp op;
    int64_t rows;
    int64_t cols;
    DeviceInput a;
    DeviceInput b;
    int64_t b_rows;
    DeviceOutput out;
    float alpha;
    float beta;
    cpu::DropoutMask mask;
};

enum class RowReduceOp : int32_t { sum_rows, reduce_sum, softmax };

// - sum_rows: out[c] = sum over the N rows of x (+ out[c] when accumulating), out contiguous [C].
// - reduce_sum: out[0] = sum of x (of its squares), in double (+ out[0] when accumulating).
// - softmax: each row of x into the same row of out (out may be x); rows of -inf give 0.
struct RowReduceLaunch {
    RowReduceOp op;
    int64_t rows;
    int64_t cols;
    DeviceInput x;
    DeviceOutput out;
    bool squares;
    bool accumulate;
};

// One AdamW step. constants.gradient_scale is grad_scale alone: the clip factor
// min(1, max_grad_norm / (|grad_scale| sqrt(*grad_norm_squared))) is computed on the device,
// with the CPU kernel's f32 operations, when grad_norm_squared is not null.
struct AdamwLaunch {
    cpu::AdamwConstants constants;
    float max_grad_norm;
    int64_t rows;
    int64_t cols;
    DeviceOutput param;
    DeviceInput grad;
    DeviceOutput m;
    DeviceOutput v;
    const float* grad_norm_squared;
};

// Integers in row-major order (embedding ids, class ids, key lengths): element n is
// data[n / cols * row_stride + n % cols].
struct DeviceIds {
    const int32_t* data;
    int64_t count;
    int64_t cols;
    int64_t row_stride;
};

// ---- Checks of device data (see Device::check_int_range) ----

// Every element of ids in [low, high), or negative when negatives_allowed.
struct IntRangeCheck {
    DeviceIds ids;
    int64_t low;
    int64_t high;
    bool negatives_allowed;
};

// Every element of x [rows, cols] finite, and > 0 when positive; row r is skipped where
// skip_rows (may be null) has skip_rows[r] < 0.
struct FloatCheck {
    const float* data;
    int64_t rows;
    int64_t cols;
    int64_t row_stride;
    const int32_t* skip_rows;
    bool positive;
};

// The message of a failed check, from the flat row-major index of the first bad element and
// its 32 bits; index is -1 where it is 2^32 - 2 or more (the device records 32 bits of it).
using DescribeBadElement = std::function<std::string(int64_t index, uint32_t bits)>;

// Where a DescribeBadElement's index lies: "element 7" and "at [1, 3]" (3 columns), or for -1
// "an element past 4294967293" and "at an element past 4294967293".
std::string flat_position(int64_t index);
std::string matrix_position(int64_t index, int64_t cols);

// Forward: dst row n = table row ids[n]. Backward: dtable[ids[n]] += dout row n, n in order
// (dtable zeroed first unless accumulating).
struct EmbeddingLaunch {
    DeviceIds ids;
    int64_t V;
    int64_t C;
    const float* source;
    int64_t source_stride;
    float* destination;
    int64_t destination_stride;
    bool accumulate;
};

}  // namespace ne
