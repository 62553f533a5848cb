// Argument validation for the exported functions. Each helper throws ne::Error with a message
// that names the argument and the expected value; guard() turns it into a status.
#pragma once

#include "error.hpp"
#include "objects.hpp"

#include <cstddef>
#include <cstring>
#include <initializer_list>
#include <string>

namespace ne {

// The integer a caller passed for an enum. Read through memcpy: loading a value outside a C
// enum's range as the enum type is undefined behaviour in C++.
template <class Enum>
int32_t raw_enum(const Enum& value) {
    static_assert(sizeof(Enum) == sizeof(int32_t), "C ABI enums are 32 bits wide");
    int32_t raw;
    std::memcpy(&raw, &value, sizeof raw);
    return raw;
}

// A live context that its owner has not destroyed.
ne_context& context_arg(const ne_context* context, const char* name);

// A live tensor handle.
const ne_tensor& tensor_arg(const ne_tensor* tensor, const char* name);

// nullptr when the optional argument is NULL, else the validated tensor.
const ne_tensor* optional_tensor_arg(const ne_tensor* tensor, const char* name);

void expect_context(const ne_tensor& tensor, const ne_context& context, const char* name);
void expect_dtype(const ne_tensor& tensor, ne_dtype dtype, const char* name);
void expect_shape(const ne_tensor& tensor, std::initializer_list<int64_t> shape, const char* name);
// Row-major with no gaps (dimensions of extent 1 may have any stride).
bool is_contiguous(const ne_tensor& tensor);
void expect_contiguous(const ne_tensor& tensor, const char* name);

// Operations not yet ported to a device backend refuse its contexts (NE_STATUS_UNSUPPORTED,
// naming the operation and the backend) before reading any argument's memory.
void expect_host_backend(const ne_context& context, const char* operation);

std::string shape_string(const ne_tensor& tensor);
std::string shape_string(std::initializer_list<int64_t> shape);

// A tensor seen as rows x cols with unit column stride and a uniform row stride: the last
// dimension is cols and the leading dimensions collapse into rows.
struct RowMatrix {
    int64_t rows;
    int64_t cols;
    int64_t row_stride;  // in elements
};

RowMatrix row_matrix(const ne_tensor& tensor, const char* name);

// Outputs may alias an input only where the operation allows it, and then exactly.
bool same_view(const ne_tensor& a, const ne_tensor& b);
bool overlaps(const ne_tensor& a, const ne_tensor& b);
void expect_no_overlap(const ne_tensor& output, const char* output_name, const ne_tensor& input,
                       const char* input_name);

// Copies a caller's parameter struct. struct_size must lie between the size of the first
// version of the struct (min_size) and the size this library knows; fields the caller's
// version lacks keep the defaults in `defaults`.
template <class Params>
Params params_arg(const Params* params, const char* name, size_t min_size, Params defaults) {
    if (params == nullptr) fail(NE_STATUS_NULL_POINTER, "argument '", name, "' is NULL");
    const uint32_t size = params->struct_size;
    if (size < min_size || size > sizeof(Params)) {
        fail(NE_STATUS_VERSION_MISMATCH, "argument '", name, "': struct_size is ", size,
             ", expected between ", min_size, " and ", sizeof(Params));
    }
    std::memcpy(&defaults, params, size);
    return defaults;
}

// Writes an info struct back to a caller that may know an older, shorter version of it.
template <class Info>
void write_info(Info* out, Info value, const char* name, size_t min_size) {
    if (out == nullptr) fail(NE_STATUS_NULL_POINTER, "argument '", name, "' is NULL");
    const uint32_t size = out->struct_size;
    if (size < min_size || size > sizeof(Info)) {
        fail(NE_STATUS_VERSION_MISMATCH, "argument '", name, "': struct_size is ", size,
             ", expected between ", min_size, " and ", sizeof(Info));
    }
    value.struct_size = size;
    std::memcpy(out, &value, size);
}

// a * b for non-negative sizes, or NE_STATUS_OVERFLOW naming what was being computed.
int64_t checked_multiply(int64_t a, int64_t b, const char* what);

}  // namespace ne
