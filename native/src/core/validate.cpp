#include "validate.hpp"

#include "device_ops.hpp"

#include <algorithm>
#include <limits>
#include <sstream>

namespace ne {

ne_context& context_arg(const ne_context* context, const char* name) {
    if (context == nullptr) fail(NE_STATUS_NULL_POINTER, "argument '", name, "' is NULL; expected a context");
    if (context->magic != kContextMagic) {
        fail(NE_STATUS_INVALID_HANDLE, "argument '", name, "' is not a live context handle");
    }
    if (context->destroyed_by_owner.load(std::memory_order_relaxed)) {
        fail(NE_STATUS_INVALID_HANDLE, "argument '", name, "' is a context that was already destroyed");
    }
    return const_cast<ne_context&>(*context);
}

const ne_tensor& tensor_arg(const ne_tensor* tensor, const char* name) {
    if (tensor == nullptr) fail(NE_STATUS_NULL_POINTER, "argument '", name, "' is NULL; expected a tensor");
    if (tensor->magic != kTensorMagic) {
        fail(NE_STATUS_INVALID_HANDLE, "argument '", name, "' is not a live tensor handle");
    }
    return *tensor;
}

const ne_tensor* optional_tensor_arg(const ne_tensor* tensor, const char* name) {
    return tensor == nullptr ? nullptr : &tensor_arg(tensor, name);
}

void expect_context(const ne_tensor& tensor, const ne_context& context, const char* name) {
    if (context_of(tensor) != &context) {
        fail(NE_STATUS_CONTEXT_MISMATCH, "argument '", name,
             "' belongs to another context; expected a tensor of the context the operation runs on");
    }
}

void expect_dtype(const ne_tensor& tensor, ne_dtype dtype, const char* name) {
    if (tensor.dtype != dtype) {
        fail(NE_STATUS_DTYPE_MISMATCH, "argument '", name, "': expected dtype ", dtype_name(dtype),
             ", got ", dtype_name(tensor.dtype));
    }
}

std::string shape_string(const ne_tensor& tensor) {
    std::ostringstream out;
    out << '[';
    for (int32_t i = 0; i < tensor.rank; ++i) out << (i ? ", " : "") << tensor.shape[i];
    out << ']';
    return out.str();
}

std::string shape_string(std::initializer_list<int64_t> shape) {
    std::ostringstream out;
    out << '[';
    bool first = true;
    for (int64_t dim : shape) {
        out << (first ? "" : ", ") << dim;
        first = false;
    }
    out << ']';
    return out.str();
}

void expect_shape(const ne_tensor& tensor, std::initializer_list<int64_t> shape, const char* name) {
    bool same = tensor.rank == static_cast<int32_t>(shape.size());
    int32_t i = 0;
    for (int64_t dim : shape) {
        if (!same) break;
        same = tensor.shape[i++] == dim;
    }
    if (!same) {
        fail(NE_STATUS_SHAPE_MISMATCH, "argument '", name, "': expected shape ", shape_string(shape),
             ", got ", shape_string(tensor));
    }
}

void expect_host_backend(const ne_context& context, const char* operation) {
    if (context.device) {
        fail(NE_STATUS_UNSUPPORTED, operation, " is not implemented on the CUDA backend yet; run it on a CPU context");
    }
}

bool is_contiguous(const ne_tensor& tensor) {
    int64_t expected = 1;
    for (int32_t i = tensor.rank - 1; i >= 0; --i) {
        if (tensor.shape[i] != 1 && tensor.strides[i] != expected) return false;
        expected *= tensor.shape[i];
    }
    return true;
}

void expect_contiguous(const ne_tensor& tensor, const char* name) {
    if (!is_contiguous(tensor)) {
        fail(NE_STATUS_UNSUPPORTED, "argument '", name, "': expected a contiguous tensor, got shape ", shape_string(tensor),
             " with non-contiguous strides");
    }
}

RowMatrix row_matrix(const ne_tensor& tensor, const char* name) {
    if (tensor.rank < 1) {
        fail(NE_STATUS_SHAPE_MISMATCH, "argument '", name, "': expected rank >= 1 (rows x channels), got a scalar");
    }
    const int32_t last = tensor.rank - 1;
    RowMatrix matrix{1, tensor.shape[last], tensor.shape[last]};
    if (tensor.shape[last] != 1 && tensor.strides[last] != 1) {
        fail(NE_STATUS_UNSUPPORTED, "argument '", name, "': expected the last dimension to be contiguous (stride 1), got stride ",
             tensor.strides[last]);
    }
    // Collapse leading dimensions from the innermost outwards; size-1 dimensions never matter.
    bool have_stride = false;
    int64_t expected_stride = 0;
    for (int32_t i = last - 1; i >= 0; --i) {
        if (tensor.shape[i] == 1) continue;
        if (!have_stride) {
            matrix.row_stride = tensor.strides[i];
            expected_stride = tensor.strides[i] * tensor.shape[i];
            have_stride = true;
        } else {
            if (tensor.strides[i] != expected_stride) {
                fail(NE_STATUS_UNSUPPORTED, "argument '", name, "': leading dimensions of shape ", shape_string(tensor),
                     " do not collapse into rows of uniform stride");
            }
            expected_stride *= tensor.shape[i];
        }
        matrix.rows *= tensor.shape[i];
    }
    if (matrix.rows > 1 && matrix.row_stride < matrix.cols) {
        fail(NE_STATUS_UNSUPPORTED, "argument '", name, "': rows overlap (row stride ", matrix.row_stride,
             " < ", matrix.cols, " channels)");
    }
    return matrix;
}

bool same_view(const ne_tensor& a, const ne_tensor& b) {
    if (a.allocation != b.allocation || a.offset != b.offset || a.rank != b.rank || a.dtype != b.dtype) return false;
    for (int32_t i = 0; i < a.rank; ++i) {
        if (a.shape[i] != b.shape[i] || (a.shape[i] != 1 && a.strides[i] != b.strides[i])) return false;
    }
    return true;
}

namespace {

// Byte range [first, last] a tensor can touch inside its allocation.
void byte_span(const ne_tensor& t, int64_t& first, int64_t& last) {
    int64_t last_element = t.offset;
    for (int32_t i = 0; i < t.rank; ++i) last_element += (t.shape[i] - 1) * t.strides[i];
    const int64_t size = dtype_size(t.dtype);
    first = t.offset * size;
    last = last_element * size + size - 1;
}


int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0)) ? 1 : 0); }
int64_t ceil_div_signed(int64_t a, int64_t b) { return -floor_div(-a, b); }

// Whether delta = sum_k j_k * strides[k] has a solution with low[k] <= j_k <= high[k], the
// dimensions ordered by decreasing stride. Depth first, outermost dimension first, trying only
// the j_k that leave a remainder the inner dimensions can still cover. `budget` bounds the search
// for unusual layouts; running out of it answers yes, the safe answer.
bool lattice_reaches(const int64_t* strides, const int64_t* low, const int64_t* high, int count, int64_t delta,
                     int& budget) {
    if (count == 0) return delta == 0;
    if (--budget < 0) return true;
    int64_t inner_min = 0, inner_max = 0;
    for (int k = 1; k < count; ++k) {
        inner_min += low[k] * strides[k];
        inner_max += high[k] * strides[k];
    }
    const int64_t first = std::max(low[0], ceil_div_signed(delta - inner_max, strides[0]));
    const int64_t last = std::min(high[0], floor_div(delta - inner_min, strides[0]));
    for (int64_t j = first; j <= last; ++j) {
        if (lattice_reaches(strides + 1, low + 1, high + 1, count - 1, delta - j * strides[0], budget)) return true;
    }
    return false;
}

// Two views of one allocation with the same dtype and strides touch the elements
// offset + sum_k i_k s_k, 0 <= i_k < n_k. They share one exactly when the difference of their
// offsets is sum_k j_k s_k with -(n_b,k - 1) <= j_k <= n_a,k - 1. This tells apart interleaved
// views that a byte range cannot, such as the q, k and v views of one fused QKV buffer.
bool same_stride_views_overlap(const ne_tensor& a, const ne_tensor& b) {
    struct Dimension {
        int64_t stride, low, high;
    };
    int64_t strides[NE_MAX_RANK], low[NE_MAX_RANK], high[NE_MAX_RANK];
    int count = 0;
    for (int32_t i = 0; i < a.rank; ++i) {
        const Dimension dim{a.strides[i], -(b.shape[i] - 1), a.shape[i] - 1};
        if (dim.stride == 0 || (dim.low == 0 && dim.high == 0)) continue;
        // Insert in order of decreasing stride (at most NE_MAX_RANK entries).
        int k = count++;
        for (; k > 0 && strides[k - 1] < dim.stride; --k) {
            strides[k] = strides[k - 1];
            low[k] = low[k - 1];
            high[k] = high[k - 1];
        }
        strides[k] = dim.stride;
        low[k] = dim.low;
        high[k] = dim.high;
    }
    constexpr int kSearchBudget = 4096;
    int budget = kSearchBudget;
    return lattice_reaches(strides, low, high, count, b.offset - a.offset, budget);
}

}  // namespace

bool overlaps(const ne_tensor& a, const ne_tensor& b) {
    if (a.allocation != b.allocation) return false;
    int64_t a_first, a_last, b_first, b_last;
    byte_span(a, a_first, a_last);
    byte_span(b, b_first, b_last);
    if (a_first > b_last || b_first > a_last) return false;
    bool same_strides = a.dtype == b.dtype && a.rank == b.rank;
    for (int32_t i = 0; same_strides && i < a.rank; ++i) same_strides = a.strides[i] == b.strides[i];
    return same_strides ? same_stride_views_overlap(a, b) : true;
}

void expect_no_overlap(const ne_tensor& output, const char* output_name, const ne_tensor& input,
                       const char* input_name) {
    if (overlaps(output, input)) {
        fail(NE_STATUS_INVALID_ARGUMENT, "argument '", output_name, "' overlaps argument '", input_name,
             "'; expected separate memory");
    }
}

int64_t checked_multiply(int64_t a, int64_t b, const char* what) {
    if (a != 0 && b > std::numeric_limits<int64_t>::max() / a) {
        fail(NE_STATUS_OVERFLOW, what, " overflows: ", a, " x ", b, " exceeds the 64-bit range");
    }
    return a * b;
}

std::string flat_position(int64_t index) {
    return index < 0 ? std::string("an element past 4294967293") : str("element ", index);
}

std::string matrix_position(int64_t index, int64_t cols) {
    return index < 0 ? std::string("at an element past 4294967293") : str("at [", index / cols, ", ", index % cols, "]");
}

}  // namespace ne
