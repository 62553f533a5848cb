// Embedding lookup and its gradient on the CPU: ne_embedding_forward and ne_embedding_backward.
//
// Reads top-down: the scalar reference (what NE_SIMD_LEVEL_SCALAR runs, on one thread), the
// validation of the C arguments, the multithreaded dispatch, and the exported functions. There
// is no ISA-specific code here: the forward pass copies rows (memcpy), the backward pass adds
// rows with the element-wise add of the context's SIMD level (elementwise.hpp).
//
// What the arguments may be, where the header leaves it open:
// - table, dtable: f32 [V, C], rank 2, the last dimension contiguous, any row stride.
// - ids: i32 of any shape, a scalar included, laid out as element-wise tensors may be (the last
//   dimension contiguous, the leading ones collapsing into rows of one stride). Every id must
//   lie in [0, V); all are checked before anything is written, and the first one out of range
//   is named by its flat (row-major) index and value.
// - out, dout: f32 of exactly ids' shape followed by C, rows of one stride.
// - No output overlaps any other argument.
//
// Order of the backward sums: dtable[ids[n], c] receives dout[n, c] for n = 0, 1, 2, ... in
// order (starting from 0 with accumulate = 0, from its old value with accumulate = 1). Threads
// split the channels, never the ids, so that the bits are those of the scalar reference at
// every SIMD level and thread count.
#include "elementwise.hpp"
#include "small_ops.hpp"

#include <cstring>
#include <string>

namespace ne::cpu {
namespace {

// The ids, in the row-major order of their tensor.
struct Ids {
    const int32_t* data;
    int64_t count;
    int64_t cols;
    int64_t row_stride;

    int32_t operator[](int64_t n) const { return data[n / cols * row_stride + n % cols]; }
};

struct EmbeddingForwardArgs {
    Ids ids;
    int64_t V;  // a device skips ids outside [0, V), which its deferred check reports
    int64_t C;
    const float* table;
    int64_t table_stride;
    float* out;
    int64_t out_stride;
};

struct EmbeddingBackwardArgs {
    Ids ids;
    int64_t V;
    int64_t C;
    const float* dout;
    int64_t dout_stride;
    float* dtable;
    int64_t dtable_stride;
    bool accumulate;
};

// ------------------------------------------------------------------------------------------
// Scalar reference
// ------------------------------------------------------------------------------------------

void embedding_forward_reference(const EmbeddingForwardArgs& a) {
    for (int64_t n = 0; n < a.ids.count; ++n) {
        const float* row = a.table + a.ids[n] * a.table_stride;
        float* out = a.out + n * a.out_stride;
        for (int64_t c = 0; c < a.C; ++c) out[c] = row[c];
    }
}

void embedding_backward_reference(const EmbeddingBackwardArgs& a) {
    if (!a.accumulate) {
        for (int64_t v = 0; v < a.V; ++v) {
            for (int64_t c = 0; c < a.C; ++c) a.dtable[v * a.dtable_stride + c] = 0.0f;
        }
    }
    for (int64_t n = 0; n < a.ids.count; ++n) {
        float* row = a.dtable + a.ids[n] * a.dtable_stride;
        const float* dout = a.dout + n * a.dout_stride;
        for (int64_t c = 0; c < a.C; ++c) row[c] += dout[c];
    }
}

// ------------------------------------------------------------------------------------------
// Validation
// ------------------------------------------------------------------------------------------

using small_ops::f32_arg;

const ne_tensor& i32_arg(const ne_tensor* tensor, const char* name, const ne_context& context) {
    const ne_tensor& t = tensor_arg(tensor, name);
    expect_context(t, context, name);
    expect_dtype(t, NE_DTYPE_I32, name);
    return t;
}

// table or dtable: [V, C].
RowMatrix table_rows_arg(const ne_tensor& table, const char* name) {
    if (table.rank != 2) {
        fail(NE_STATUS_SHAPE_MISMATCH, "argument '", name, "': expected rank 2 (shape [V, C]), got shape ", shape_string(table));
    }
    return row_matrix(table, name);
}

// out or dout: ids' shape followed by C.
RowMatrix rows_per_id_arg(const ne_tensor& rows, const char* name, const ne_tensor& ids, int64_t C) {
    bool same = rows.rank == ids.rank + 1 && rows.shape[ids.rank] == C;
    for (int32_t i = 0; same && i < ids.rank; ++i) same = rows.shape[i] == ids.shape[i];
    if (!same) {
        std::string expected = "[";
        for (int32_t i = 0; i < ids.rank; ++i) expected += std::to_string(ids.shape[i]) + ", ";
        expected += std::to_string(C) + "]";
        fail(NE_STATUS_SHAPE_MISMATCH, "argument '", name, "': expected shape ", expected, " (the shape of 'ids' followed by C = ",
             C, "), got ", shape_string(rows));
    }
    return row_matrix(rows, name);
}

// The ids, each checked to lie in [0, V): the last check, as it reads them all (on a device
// context, a deferred check: see Device::check_int_range).
Ids checked_ids(const ne_context& context, const ne_tensor& tensor, int64_t V, const char* table_name) {
    const RowMatrix rows = small_ops::element_rows(tensor, "ids");
    const Ids ids{data_of<int32_t>(tensor), rows.rows * rows.cols, rows.cols, rows.row_stride};
    auto describe = [V, table_name](int64_t index, uint32_t bits) {
        return str("argument 'ids': ", flat_position(index), " is ", static_cast<int32_t>(bits), "; expected a value in [0, ",
                   V, ") (the rows of '", table_name, "')");
    };
    if (context.device) {
        context.device->check_int_range({{ids.data, ids.count, ids.cols, ids.row_stride}, 0, V, false}, describe);
        return ids;
    }
    for (int64_t n = 0; n < ids.count; ++n) {
        if (ids[n] < 0 || ids[n] >= V) fail(NE_STATUS_INVALID_ARGUMENT, describe(n, static_cast<uint32_t>(ids[n])));
    }
    return ids;
}

EmbeddingForwardArgs forward_args(const ne_context& context, const ne_tensor* table_arg, const ne_tensor* ids_arg,
                                  const ne_tensor* out_arg) {
    const ne_tensor& table = f32_arg(table_arg, "table", context);
    const ne_tensor& ids = i32_arg(ids_arg, "ids", context);
    const ne_tensor& out = f32_arg(out_arg, "out", context);
    const RowMatrix table_rows = table_rows_arg(table, "table");
    const RowMatrix out_rows = rows_per_id_arg(out, "out", ids, table_rows.cols);
    expect_no_overlap(out, "out", table, "table");
    expect_no_overlap(out, "out", ids, "ids");
    return {checked_ids(context, ids, table_rows.rows, "table"),
            table_rows.rows,
            table_rows.cols,
            data_of<float>(table),
            table_rows.row_stride,
            data_of<float>(out),
            out_rows.row_stride};
}

EmbeddingBackwardArgs backward_args(const ne_context& context, const ne_tensor* ids_arg, const ne_tensor* dout_arg,
                                    const ne_tensor* dtable_arg, int32_t accumulate) {
    const ne_tensor& ids = i32_arg(ids_arg, "ids", context);
    const ne_tensor& dout = f32_arg(dout_arg, "dout", context);
    const ne_tensor& dtable = f32_arg(dtable_arg, "dtable", context);
    const bool accumulating = small_ops::flag_arg(accumulate, "accumulate");
    const RowMatrix dtable_rows = table_rows_arg(dtable, "dtable");
    const RowMatrix dout_rows = rows_per_id_arg(dout, "dout", ids, dtable_rows.cols);
    expect_no_overlap(dtable, "dtable", dout, "dout");
    expect_no_overlap(dtable, "dtable", ids, "ids");
    return {checked_ids(context, ids, dtable_rows.rows, "dtable"),
            dtable_rows.rows,
            dtable_rows.cols,
            data_of<float>(dout),
            dout_rows.row_stride,
            data_of<float>(dtable),
            dtable_rows.row_stride,
            accumulating};
}

// ------------------------------------------------------------------------------------------
// Dispatch
// ------------------------------------------------------------------------------------------

using small_ops::kLineFloats;
using small_ops::kMinElementsPerThread;

EmbeddingLaunch device_launch(const Ids& ids, int64_t V, int64_t C, const float* source, int64_t source_stride, float* destination,
                              int64_t destination_stride, bool accumulate) {
    return {{ids.data, ids.count, ids.cols, ids.row_stride}, V, C, source, source_stride, destination, destination_stride, accumulate};
}

void run_forward(ne_context& context, const EmbeddingForwardArgs& a) {
    if (context.device) {
        context.device->embedding_forward(device_launch(a.ids, a.V, a.C, a.table, a.table_stride, a.out, a.out_stride, false));
        return;
    }
    if (context.simd_level == NE_SIMD_LEVEL_SCALAR) {
        embedding_forward_reference(a);
        return;
    }
    const size_t row_bytes = static_cast<size_t>(a.C) * sizeof(float);
    context.pool->parallel_for(a.ids.count, std::max<int64_t>(1, kMinElementsPerThread / a.C), [&](int64_t begin, int64_t end) {
        for (int64_t n = begin; n < end; ++n) std::memcpy(a.out + n * a.out_stride, a.table + a.ids[n] * a.table_stride, row_bytes);
    });
}

// Each thread owns a range of channels, in blocks of 16 (a 64-byte line of an aligned row), of
// every row of dtable and walks all ids in order: the sums are the reference's whatever the
// thread count.
void run_backward(ne_context& context, const EmbeddingBackwardArgs& a) {
    if (context.device) {
        context.device->embedding_backward(
            device_launch(a.ids, a.V, a.C, a.dout, a.dout_stride, a.dtable, a.dtable_stride, a.accumulate));
        return;
    }
    if (context.simd_level == NE_SIMD_LEVEL_SCALAR) {
        embedding_backward_reference(a);
        return;
    }
    const ElementwiseKernels& kernels = elementwise_kernels_for(context.simd_level);
    const int64_t lines = (a.C + kLineFloats - 1) / kLineFloats;
    const int64_t work_per_line = kLineFloats * (a.ids.count + (a.accumulate ? 0 : a.V));
    context.pool->parallel_for(lines, std::max<int64_t>(1, kMinElementsPerThread / work_per_line), [&](int64_t first, int64_t last) {
        const int64_t begin = first * kLineFloats, count = std::min(a.C, last * kLineFloats) - begin;
        if (!a.accumulate) {
            for (int64_t v = 0; v < a.V; ++v) std::memset(a.dtable + v * a.dtable_stride + begin, 0, static_cast<size_t>(count) * sizeof(float));
        }
        for (int64_t n = 0; n < a.ids.count; ++n) {
            float* row = a.dtable + a.ids[n] * a.dtable_stride + begin;
            kernels.add(row, a.dout + n * a.dout_stride + begin, row, count);
        }
    });
}

}  // namespace
}  // namespace ne::cpu

// ------------------------------------------------------------------------------------------
// Exported functions
// ------------------------------------------------------------------------------------------

extern "C" {

NE_API ne_status ne_embedding_forward(ne_context* context, const ne_tensor* table, const ne_tensor* ids, ne_tensor* out) {
    return ne::guard("ne_embedding_forward", [&] {
        ne_context& ctx = ne::context_arg(context, "context");
        const auto args = ne::cpu::forward_args(ctx, table, ids, out);
        ne::cpu::run_forward(ctx, args);
    });
}

NE_API ne_status ne_embedding_backward(ne_context* context, const ne_tensor* ids, const ne_tensor* dout, ne_tensor* dtable,
                                       int32_t accumulate) {
    return ne::guard("ne_embedding_backward", [&] {
        ne_context& ctx = ne::context_arg(context, "context");
        const auto args = ne::cpu::backward_args(ctx, ids, dout, dtable, accumulate);
        ne::cpu::run_backward(ctx, args);
    });
}

}  // extern "C"
