// Tensor handles: creation, views, host transfers, copies and fills.
#include "validate.hpp"

#include <cmath>
#include <cstring>
#include <memory>

namespace ne {
namespace {

void validate_rank_and_shape(int32_t rank, const int64_t* shape, const char* shape_name) {
    if (rank < 0 || rank > NE_MAX_RANK) {
        fail(NE_STATUS_INVALID_ARGUMENT, "argument 'rank' is ", rank, "; expected 0..", int{NE_MAX_RANK});
    }
    if (rank > 0 && shape == nullptr) {
        fail(NE_STATUS_NULL_POINTER, "argument '", shape_name, "' is NULL; expected ", rank, " dimensions");
    }
    for (int32_t i = 0; i < rank; ++i) {
        if (shape[i] <= 0) {
            fail(NE_STATUS_INVALID_ARGUMENT, "argument '", shape_name, "': dimension ", i, " is ", shape[i],
                 "; expected a positive size");
        }
    }
}

int64_t element_count(int32_t rank, const int64_t* shape) {
    int64_t count = 1;
    for (int32_t i = 0; i < rank; ++i) count = checked_multiply(count, shape[i], "element count");
    return count;
}

void set_contiguous_strides(ne_tensor& tensor) {
    int64_t stride = 1;
    for (int32_t i = tensor.rank - 1; i >= 0; --i) {
        tensor.strides[i] = stride;
        stride *= tensor.shape[i];
    }
}

int64_t byte_size(const ne_tensor& tensor) { return tensor.element_count * dtype_size(tensor.dtype); }

ne_tensor* new_tensor_handle(ne_tensor value) {
    auto tensor = std::make_unique<ne_tensor>(value);
    ne_context* context = context_of(*tensor);
    context->counters.tensors.fetch_add(1, std::memory_order_relaxed);
    global_counters().tensors.fetch_add(1, std::memory_order_relaxed);
    return tensor.release();
}

// Calls visit(position_a, position_b) for every index of a shape, in row-major order, where
// each position is the element's offset in the allocation of a tensor with those strides.
template <class Visit>
void for_each_position(const ne_tensor& shape, const int64_t* strides_a, int64_t offset_a, const int64_t* strides_b,
                       int64_t offset_b, Visit&& visit) {
    int64_t index[NE_MAX_RANK] = {};
    int64_t a = offset_a, b = offset_b;
    for (int64_t n = 0; n < shape.element_count; ++n) {
        visit(a, b);
        for (int32_t d = shape.rank - 1; d >= 0; --d) {
            a += strides_a[d];
            b += strides_b[d];
            if (++index[d] < shape.shape[d]) break;
            a -= strides_a[d] * shape.shape[d];
            b -= strides_b[d] * shape.shape[d];
            index[d] = 0;
        }
    }
}

void check_host_transfer(const ne_tensor& tensor, const void* host, uint64_t size_bytes, const char* tensor_name,
                         const char* host_name) {
    if (host == nullptr) fail(NE_STATUS_NULL_POINTER, "argument '", host_name, "' is NULL");
    if (!is_contiguous(tensor)) {
        fail(NE_STATUS_UNSUPPORTED, "argument '", tensor_name, "': expected a contiguous tensor; copy the view with ne_tensor_copy first");
    }
    const int64_t expected = byte_size(tensor);
    if (size_bytes != static_cast<uint64_t>(expected)) {
        fail(NE_STATUS_SHAPE_MISMATCH, "argument 'size_bytes' is ", size_bytes, "; expected ", expected,
             " (the byte size of ", dtype_name(tensor.dtype), " tensor ", shape_string(tensor), ")");
    }
}

}  // namespace
}  // namespace ne

using namespace ne;

extern "C" {

NE_API ne_status ne_tensor_create(ne_context* context, ne_dtype dtype, int32_t rank, const int64_t* shape,
                                  ne_tensor** out_tensor) {
    return guard("ne_tensor_create", [&] {
        ne_context& ctx = context_arg(context, "context");
        if (!is_valid_dtype(raw_enum(dtype))) {
            fail(NE_STATUS_INVALID_ARGUMENT, "argument 'dtype' is ", raw_enum(dtype), "; expected a valid ne_dtype");
        }
        validate_rank_and_shape(rank, shape, "shape");
        if (out_tensor == nullptr) fail(NE_STATUS_NULL_POINTER, "argument 'out_tensor' is NULL");
        ne_tensor tensor;
        tensor.dtype = dtype;
        tensor.rank = rank;
        for (int32_t i = 0; i < rank; ++i) tensor.shape[i] = shape[i];
        tensor.element_count = element_count(rank, shape);
        set_contiguous_strides(tensor);
        const int64_t bytes = checked_multiply(tensor.element_count, dtype_size(dtype), "tensor byte size");
        tensor.allocation = allocate(&ctx, bytes);
        try {
            *out_tensor = new_tensor_handle(tensor);
        } catch (...) {
            release(tensor.allocation);
            throw;
        }
    });
}

NE_API ne_status ne_tensor_view(const ne_tensor* base, int64_t offset, int32_t rank, const int64_t* shape,
                                const int64_t* strides, ne_tensor** out_view) {
    return guard("ne_tensor_view", [&] {
        const ne_tensor& source = tensor_arg(base, "base");
        validate_rank_and_shape(rank, shape, "shape");
        if (out_view == nullptr) fail(NE_STATUS_NULL_POINTER, "argument 'out_view' is NULL");
        if (offset < 0) fail(NE_STATUS_INVALID_ARGUMENT, "argument 'offset' is ", offset, "; expected >= 0");
        ne_tensor view;
        view.allocation = source.allocation;
        view.dtype = source.dtype;
        view.rank = rank;
        view.offset = offset;
        for (int32_t i = 0; i < rank; ++i) view.shape[i] = shape[i];
        view.element_count = element_count(rank, shape);
        if (strides == nullptr) {
            set_contiguous_strides(view);
        } else {
            for (int32_t i = 0; i < rank; ++i) {
                if (strides[i] < 0) {
                    fail(NE_STATUS_INVALID_ARGUMENT, "argument 'strides': stride ", i, " is ", strides[i],
                         "; expected >= 0");
                }
                view.strides[i] = strides[i];
            }
        }
        const int64_t capacity = source.allocation->bytes / dtype_size(source.dtype);
        int64_t last = offset;
        for (int32_t i = 0; i < rank; ++i) {
            last = checked_multiply(view.shape[i] - 1, view.strides[i], "view extent") + last;
            if (last < 0) fail(NE_STATUS_OVERFLOW, "view extent overflows");
        }
        if (last >= capacity) {
            fail(NE_STATUS_SHAPE_MISMATCH, "view of shape ", shape_string(view), " at offset ", offset,
                 " reaches element ", last, "; the allocation holds ", capacity, " elements");
        }
        retain(view.allocation);
        try {
            *out_view = new_tensor_handle(view);
        } catch (...) {
            release(view.allocation);
            throw;
        }
    });
}

NE_API ne_status ne_tensor_destroy(ne_tensor* tensor) {
    return guard("ne_tensor_destroy", [&] {
        if (tensor == nullptr) return;
        tensor_arg(tensor, "tensor");
        ne_context* context = context_of(*tensor);
        Allocation* allocation = tensor->allocation;
        tensor->magic = kDeadMagic;
        context->counters.tensors.fetch_sub(1, std::memory_order_relaxed);
        global_counters().tensors.fetch_sub(1, std::memory_order_relaxed);
        delete tensor;
        release(allocation);
    });
}

NE_API ne_status ne_tensor_get_info(const ne_tensor* tensor, ne_tensor_info* out_info) {
    return guard("ne_tensor_get_info", [&] {
        const ne_tensor& t = tensor_arg(tensor, "tensor");
        ne_tensor_info info{};
        info.dtype = t.dtype;
        info.rank = t.rank;
        info.is_contiguous = is_contiguous(t) ? 1 : 0;
        for (int32_t i = 0; i < t.rank; ++i) {
            info.shape[i] = t.shape[i];
            info.strides[i] = t.strides[i];
        }
        info.offset = t.offset;
        info.element_count = t.element_count;
        write_info(out_info, info, "out_info", sizeof(ne_tensor_info));
    });
}

NE_API ne_status ne_tensor_write(ne_tensor* tensor, const void* source, uint64_t size_bytes) {
    return guard("ne_tensor_write", [&] {
        const ne_tensor& t = tensor_arg(tensor, "tensor");
        check_host_transfer(t, source, size_bytes, "tensor", "source");
        if (Device* device = device_of(t)) device->write(data_of<char>(t), source, byte_size(t));
        else std::memcpy(data_of<char>(t), source, size_bytes);
    });
}

NE_API ne_status ne_tensor_read(const ne_tensor* tensor, void* destination, uint64_t size_bytes) {
    return guard("ne_tensor_read", [&] {
        const ne_tensor& t = tensor_arg(tensor, "tensor");
        check_host_transfer(t, destination, size_bytes, "tensor", "destination");
        if (Device* device = device_of(t)) device->read(destination, data_of<const char>(t), byte_size(t));
        else std::memcpy(destination, data_of<const char>(t), size_bytes);
    });
}

NE_API ne_status ne_tensor_copy(ne_tensor* destination, const ne_tensor* source) {
    return guard("ne_tensor_copy", [&] {
        const ne_tensor& dst = tensor_arg(destination, "destination");
        const ne_tensor& src = tensor_arg(source, "source");
        expect_dtype(dst, src.dtype, "destination");
        bool same_shape = dst.rank == src.rank;
        for (int32_t i = 0; same_shape && i < dst.rank; ++i) same_shape = dst.shape[i] == src.shape[i];
        if (!same_shape) {
            fail(NE_STATUS_SHAPE_MISMATCH, "argument 'destination': expected shape ", shape_string(src),
                 " (the source's), got ", shape_string(dst));
        }
        expect_no_overlap(dst, "destination", src, "source");
        if (Device* device = device_of(dst) ? device_of(dst) : device_of(src)) {
            device->copy(dst, src);
            return;
        }
        const int64_t size = dtype_size(dst.dtype);
        char* dst_base = static_cast<char*>(dst.allocation->data);
        const char* src_base = static_cast<const char*>(src.allocation->data);
        if (is_contiguous(dst) && is_contiguous(src)) {
            std::memcpy(dst_base + dst.offset * size, src_base + src.offset * size,
                        static_cast<size_t>(byte_size(dst)));
            return;
        }
        for_each_position(dst, dst.strides, dst.offset, src.strides, src.offset, [&](int64_t to, int64_t from) {
            std::memcpy(dst_base + to * size, src_base + from * size, static_cast<size_t>(size));
        });
    });
}

NE_API ne_status ne_tensor_fill(ne_tensor* tensor, double value) {
    return guard("ne_tensor_fill", [&] {
        const ne_tensor& t = tensor_arg(tensor, "tensor");
        unsigned char pattern[4] = {};
        switch (t.dtype) {
            case NE_DTYPE_F32: {
                const float f = static_cast<float>(value);
                std::memcpy(pattern, &f, 4);
                break;
            }
            case NE_DTYPE_F16: {
                const uint16_t h = float_to_f16(static_cast<float>(value));
                std::memcpy(pattern, &h, 2);
                break;
            }
            case NE_DTYPE_BF16: {
                const uint16_t b = float_to_bf16(static_cast<float>(value));
                std::memcpy(pattern, &b, 2);
                break;
            }
            case NE_DTYPE_MAX_ENUM: break;
            case NE_DTYPE_I8:
            case NE_DTYPE_I32: {
                const double low = t.dtype == NE_DTYPE_I8 ? -128.0 : -2147483648.0;
                const double high = t.dtype == NE_DTYPE_I8 ? 127.0 : 2147483647.0;
                const double rounded = std::nearbyint(value);
                if (!(rounded >= low && rounded <= high)) {
                    fail(NE_STATUS_INVALID_ARGUMENT, "argument 'value' is ", value, "; expected a value in [", low, ", ",
                         high, "] for a ", dtype_name(t.dtype), " tensor");
                }
                if (t.dtype == NE_DTYPE_I8) {
                    pattern[0] = static_cast<unsigned char>(static_cast<int8_t>(rounded));
                } else {
                    const int32_t i = static_cast<int32_t>(rounded);
                    std::memcpy(pattern, &i, 4);
                }
                break;
            }
        }
        const int64_t size = dtype_size(t.dtype);
        if (Device* device = device_of(t)) {
            device->fill(t, pattern, size);
            return;
        }
        char* base = static_cast<char*>(t.allocation->data);
        for_each_position(t, t.strides, t.offset, t.strides, t.offset, [&](int64_t position, int64_t) {
            std::memcpy(base + position * size, pattern, static_cast<size_t>(size));
        });
    });
}

}  // extern "C"
