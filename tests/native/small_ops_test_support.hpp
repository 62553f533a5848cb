// Helpers shared by the suites of the small ops (test_elementwise.cpp, test_reduce.cpp,
// test_embedding.cpp, test_adamw.cpp): tensors with padded rows, scalars.
#pragma once

#include "test_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

namespace ne_test::small_ops {

// Fills outputs before a call, so that writes outside the elements (and by refused calls) show.
constexpr float kSentinel = -777.0f;

inline int64_t element_count(const std::vector<int64_t>& shape) {
    return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<int64_t>());
}

inline std::string shape_name(const std::vector<int64_t>& shape) {
    std::string name = "[";
    for (size_t i = 0; i < shape.size(); ++i) name += (i ? ", " : "") + std::to_string(shape[i]);
    return name + "]";
}

// An f32 tensor of any shape. pad > 0 (rank >= 1): a view whose rows, of the last dimension,
// lie shape.back() + pad floats apart, the padding filled with kSentinel; pad = 0: contiguous.
class PaddedTensor {
public:
    PaddedTensor(ne_context* context, std::vector<int64_t> shape, int64_t pad = 0) : shape_(std::move(shape)), pad_(pad) {
        if (pad == 0) {
            base_ = make_tensor(context, NE_DTYPE_F32, shape_);
            return;
        }
        const int64_t cols = shape_.back(), rows = element_count(shape_) / cols;
        base_ = make_tensor(context, NE_DTYPE_F32, {rows, cols + pad});
        check(ne_tensor_fill(base_.get(), kSentinel), "ne_tensor_fill");
        std::vector<int64_t> strides(shape_.size(), 1);
        for (size_t i = shape_.size() - 1; i-- > 0;) {
            strides[i] = i + 2 == shape_.size() ? cols + pad : strides[i + 1] * shape_[i + 1];
        }
        ne_tensor* view = nullptr;
        check(ne_tensor_view(base_.get(), pad, static_cast<int32_t>(shape_.size()), shape_.data(), strides.data(), &view),
              "ne_tensor_view");
        view_.reset(view);
    }

    PaddedTensor(ne_context* context, std::vector<int64_t> shape, int64_t pad, const std::vector<float>& values)
        : PaddedTensor(context, std::move(shape), pad) {
        write(values);
    }

    ne_tensor* get() const { return view_ ? view_.get() : base_.get(); }
    const std::vector<int64_t>& shape() const { return shape_; }

    void write(const std::vector<float>& values) {
        if (pad_ == 0) return ne_test::write(base_.get(), values);
        std::vector<float> all = read<float>(base_.get());
        const int64_t cols = shape_.back();
        for (int64_t r = 0; r < rows(); ++r) std::copy_n(values.begin() + r * cols, cols, all.begin() + position(r));
        ne_test::write(base_.get(), all);
    }

    std::vector<float> read_values() const {
        if (pad_ == 0) return read<float>(base_.get());
        const std::vector<float> all = read<float>(base_.get());
        const int64_t cols = shape_.back();
        std::vector<float> values(static_cast<size_t>(rows() * cols));
        for (int64_t r = 0; r < rows(); ++r) std::copy_n(all.begin() + position(r), cols, values.begin() + r * cols);
        return values;
    }

    bool padding_untouched() const {
        if (pad_ == 0) return true;
        const std::vector<float> all = read<float>(base_.get());
        const int64_t cols = shape_.back();
        for (int64_t i = 0; i < static_cast<int64_t>(all.size()); ++i) {
            const bool in_rows = i >= pad_ && (i - pad_) % (cols + pad_) < cols;
            if (!in_rows && all[static_cast<size_t>(i)] != kSentinel) return false;
        }
        return true;
    }

private:
    int64_t rows() const { return element_count(shape_) / shape_.back(); }
    int64_t position(int64_t row) const { return pad_ + row * (shape_.back() + pad_); }

    std::vector<int64_t> shape_;
    int64_t pad_;
    Tensor base_, view_;
};

inline Tensor f32_tensor(ne_context* context, std::vector<int64_t> shape, const std::vector<float>& values) {
    return make_tensor(context, NE_DTYPE_F32, std::move(shape), values);
}

// A tensor filled with kSentinel, for outputs.
inline Tensor sentinel_tensor(ne_context* context, std::vector<int64_t> shape, ne_dtype dtype = NE_DTYPE_F32) {
    Tensor tensor = make_tensor(context, dtype, std::move(shape));
    check(ne_tensor_fill(tensor.get(), kSentinel), "ne_tensor_fill");
    return tensor;
}

// A view of base's elements [offset, offset + count of shape), contiguous.
inline Tensor view_of(const Tensor& base, int64_t offset, std::vector<int64_t> shape) {
    ne_tensor* raw = nullptr;
    check(ne_tensor_view(base.get(), offset, static_cast<int32_t>(shape.size()), shape.data(), nullptr, &raw), "ne_tensor_view");
    return Tensor(raw);
}

// Every element of the tensor is still kSentinel.
inline bool untouched(const Tensor& tensor) {
    const std::vector<float> values = read<float>(tensor.get());
    return std::all_of(values.begin(), values.end(), [](float v) { return v == kSentinel; });
}

inline float ulp(float value) {
    const float magnitude = std::abs(value);
    return std::nextafter(magnitude, INFINITY) - magnitude;
}

}  // namespace ne_test::small_ops
