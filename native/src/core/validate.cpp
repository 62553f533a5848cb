#include "validate.hpp"

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

void expect_contiguous(const ne_tensor& tensor, const char* name) {
    int64_t expected = 1;
    for (int32_t i = tensor.rank - 1; i >= 0; --i) {
        if (tensor.shape[i] != 1 && tensor.strides[i] != expected) {
            fail(NE_STATUS_UNSUPPORTED, "argument '", name, "': expected a contiguous tensor, got shape ",
                 shape_string(tensor), " with non-contiguous strides");
        }
        expected *= tensor.shape[i];
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

}  // namespace

bool overlaps(const ne_tensor& a, const ne_tensor& b) {
    if (a.allocation != b.allocation) return false;
    int64_t a_first, a_last, b_first, b_last;
    byte_span(a, a_first, a_last);
    byte_span(b, b_first, b_last);
    return a_first <= b_last && b_first <= a_last;
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

}  // namespace ne
