#include "small_ops.hpp"

namespace ne::cpu::small_ops {

const ne_tensor& f32_arg(const ne_tensor* tensor, const char* name, const ne_context& context) {
    const ne_tensor& t = tensor_arg(tensor, name);
    expect_context(t, context, name);
    expect_dtype(t, NE_DTYPE_F32, name);
    return t;
}

RowMatrix element_rows(const ne_tensor& tensor, const char* name) {
    if (tensor.rank == 0) return RowMatrix{1, 1, 1};
    return row_matrix(tensor, name);
}

void expect_shape_of(const ne_tensor& tensor, const char* name, const ne_tensor& like, const char* like_name) {
    bool same = tensor.rank == like.rank;
    for (int32_t i = 0; same && i < like.rank; ++i) same = tensor.shape[i] == like.shape[i];
    if (!same) {
        fail(NE_STATUS_SHAPE_MISMATCH, "argument '", name, "': expected shape ", shape_string(like), " (the shape of '",
             like_name, "'), got ", shape_string(tensor));
    }
}

void expect_separate(const ne_tensor& output, const char* output_name, const ne_tensor& input, const char* input_name,
                     bool may_be_same) {
    if (may_be_same && same_view(output, input)) return;
    expect_no_overlap(output, output_name, input, input_name);
}

bool flag_arg(int32_t value, const char* name) {
    if (value != 0 && value != 1) {
        fail(NE_STATUS_INVALID_ARGUMENT, "argument '", name, "' is ", value, "; expected 0 or 1");
    }
    return value == 1;
}

void expect_one_element(const ne_tensor& tensor, const char* name) {
    if (!(tensor.rank == 0 || (tensor.rank == 1 && tensor.shape[0] == 1))) {
        fail(NE_STATUS_SHAPE_MISMATCH, "argument '", name, "': expected one element (shape [] or [1]), got ",
             shape_string(tensor));
    }
}

}  // namespace ne::cpu::small_ops
