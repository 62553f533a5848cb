// What the small-op families (elementwise.cpp, reduce.cpp, embedding.cpp, adamw.cpp) share:
// argument checks beyond core/validate.hpp, and how their work is split among threads.
//
// Not for the SIMD translation units: it includes standard headers with inline code.
#pragma once

#include "core/validate.hpp"

#include <algorithm>
#include <cstdint>

namespace ne::cpu::small_ops {

// Waking a worker costs about as much as streaming this many floats through a simple kernel
// (10 to 20 us on a 2-core VM), so smaller inputs run on fewer threads.
constexpr int64_t kMinElementsPerThread = int64_t{1} << 16;

// Element ranges are split among threads at multiples of a 64-byte line of floats, so that two
// threads never write one line of a contiguous output that starts on a line (as allocations do).
constexpr int64_t kLineFloats = 16;

// A live tensor of the context, f32.
const ne_tensor& f32_arg(const ne_tensor* tensor, const char* name, const ne_context& context);

// A tensor of any rank as rows x cols (see row_matrix); a scalar is one row of one element.
RowMatrix element_rows(const ne_tensor& tensor, const char* name);

// `tensor` has exactly the shape of `like`; the message names both shapes.
void expect_shape_of(const ne_tensor& tensor, const char* name, const ne_tensor& like, const char* like_name);

// An output shares no memory with an input, except by being the very same view where the
// operation allows it (may_be_same): element-wise kernels read each element before writing it.
void expect_separate(const ne_tensor& output, const char* output_name, const ne_tensor& input, const char* input_name,
                     bool may_be_same);

// A 0-or-1 integer argument, such as accumulate.
bool flag_arg(int32_t value, const char* name);

// An f32 tensor of one element: rank 0, or shape [1].
void expect_one_element(const ne_tensor& tensor, const char* name);

// The pool's parallel_for; inline on the calling thread for the scalar reference.
template <class Body>
void parallel_for(ne_context& context, int64_t count, int64_t min_grain, Body&& body) {
    if (context.simd_level == NE_SIMD_LEVEL_SCALAR) {
        if (count > 0) body(int64_t{0}, count);
    } else {
        context.pool->parallel_for(count, min_grain, body);
    }
}

// Calls body(begin, end) on ranges of [0, count) elements that start at multiples of
// kLineFloats, at least kMinElementsPerThread long.
template <class Body>
void parallel_elements(ne_context& context, int64_t count, Body&& body) {
    const int64_t lines = (count + kLineFloats - 1) / kLineFloats;
    parallel_for(context, lines, kMinElementsPerThread / kLineFloats, [&](int64_t first_line, int64_t last_line) {
        body(first_line * kLineFloats, std::min(count, last_line * kLineFloats));
    });
}

// Walks elements [begin, end) of a matrix of `cols` columns in row-major order and calls
// segment(row, col, count) for each piece that lies in one row.
template <class Segment>
void for_each_segment(int64_t cols, int64_t begin, int64_t end, Segment&& segment) {
    int64_t row = begin / cols;
    int64_t col = begin % cols;
    while (begin < end) {
        const int64_t count = std::min(cols - col, end - begin);
        segment(row, col, count);
        begin += count;
        ++row;
        col = 0;
    }
}

// Where an element-wise operand keeps its rows x cols elements.
template <class T>
struct Operand {
    T* data;
    int64_t row_stride;  // in elements

    T* at(int64_t row, int64_t col) const { return data + row * row_stride + col; }
};

template <class T>
Operand<T> operand(const ne_tensor& tensor, const RowMatrix& rows) {
    return {data_of<T>(tensor), rows.row_stride};
}

// The rows x cols elements an element-wise op walks.
struct Extent {
    int64_t rows;
    int64_t cols;
};

// Operands that all store their rows back to back are one long row, so that the kernels run
// on long segments however short the rows are.
template <class... Operands>
void merge_contiguous_rows(Extent& extent, Operands&... operands) {
    if (((operands.row_stride == extent.cols) && ...)) {
        extent.cols *= extent.rows;
        extent.rows = 1;
        ((operands.row_stride = extent.cols), ...);
    }
}

// Calls segment(row, col, count) over the extent's elements, split among the context's threads.
template <class Segment>
void run_segments(ne_context& context, const Extent& extent, Segment&& segment) {
    parallel_elements(context, extent.rows * extent.cols,
                      [&](int64_t begin, int64_t end) { for_each_segment(extent.cols, begin, end, segment); });
}

}  // namespace ne::cpu::small_ops
