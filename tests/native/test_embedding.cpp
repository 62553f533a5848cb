// Embedding lookup and its gradient: ne_embedding_forward, ne_embedding_backward. Exact checks:
// the forward copies rows bit for bit; the backward adds each id's dout rows in id order, in
// float, so the test repeats those float additions and compares bits (and checks the double
// sums within 1e-5 * (1 + |sum|): up to 100 repeats of an id, 3.4e-6 measured). Repeated ids, accumulation, ids of any rank (a scalar
// included), padded and strided views, thread counts, and argument checks.
#include "small_ops_test_support.hpp"

#include <limits>

using namespace ne_test;
using namespace ne_test::small_ops;

namespace {

std::vector<int32_t> random_ids(size_t count, int32_t V, uint64_t seed) {
    std::mt19937_64 generator(seed);
    std::uniform_int_distribution<int32_t> distribution(0, V - 1);
    std::vector<int32_t> ids(count);
    for (int32_t& id : ids) id = distribution(generator);
    return ids;
}

Tensor ids_tensor(ne_context* context, std::vector<int64_t> shape, const std::vector<int32_t>& ids) {
    return make_tensor(context, NE_DTYPE_I32, std::move(shape), ids);
}

std::vector<int64_t> with_channels(std::vector<int64_t> shape, int64_t C) {
    shape.push_back(C);
    return shape;
}

// dtable after the backward pass: `before` plus each dout row added to its id's row, in order.
std::vector<float> scatter_add(std::vector<float> before, const std::vector<int32_t>& ids, const std::vector<float>& dout,
                               int64_t C) {
    for (size_t n = 0; n < ids.size(); ++n) {
        for (int64_t c = 0; c < C; ++c) before[static_cast<size_t>(ids[n] * C + c)] += dout[n * C + c];
    }
    return before;
}

std::vector<double> scatter_add_in_double(const std::vector<float>& before, const std::vector<int32_t>& ids,
                                          const std::vector<float>& dout, int64_t C) {
    std::vector<double> result(before.begin(), before.end());
    for (size_t n = 0; n < ids.size(); ++n) {
        for (int64_t c = 0; c < C; ++c) result[static_cast<size_t>(ids[n] * C + c)] += dout[n * C + c];
    }
    return result;
}

class EmbeddingOps : public ::testing::TestWithParam<BackendConfig> {
protected:
    Context context = make_context(GetParam());
};

const std::vector<std::vector<int64_t>> kIdShapes = {{}, {1}, {7}, {2, 5}, {3, 2, 4}, {700}};
const int64_t kChannels[] = {1, 3, 17, 33, 1025};

TEST_P(EmbeddingOps, ForwardCopiesTheRowsOfTheIds) {
    constexpr int32_t V = 50;
    uint64_t seed = 10;
    for (const auto& ids_shape : kIdShapes) {
        for (int64_t C : kChannels) {
            for (int64_t pad : {0, 3}) {
                SCOPED_TRACE("ids " + shape_name(ids_shape) + " C=" + std::to_string(C) + " pad=" + std::to_string(pad));
                const std::vector<int32_t> ids = random_ids(static_cast<size_t>(element_count(ids_shape)), V, ++seed);
                const std::vector<float> table = random_floats(static_cast<size_t>(V * C), ++seed);
                PaddedTensor ttable(context.get(), {V, C}, pad, table), out(context.get(), with_channels(ids_shape, C), pad);
                Tensor tids = ids_tensor(context.get(), ids_shape, ids);
                NE_ASSERT_OK(ne_embedding_forward(context.get(), ttable.get(), tids.get(), out.get()));
                std::vector<float> expected;
                for (int32_t id : ids) expected.insert(expected.end(), table.begin() + id * C, table.begin() + (id + 1) * C);
                EXPECT_TRUE(bitwise_equal(out.read_values(), expected));
                EXPECT_TRUE(out.padding_untouched());
            }
        }
    }
}

// ids as a view of every row's first T of T + 1 tokens (inputs, next to the targets).
TEST_P(EmbeddingOps, IdsMayBeARowStridedView) {
    constexpr int32_t V = 40;
    constexpr int64_t B = 3, T = 6, C = 9;
    const std::vector<int32_t> tokens = random_ids(B * (T + 1), V, 21);
    const std::vector<float> table = random_floats(V * C, 22), dout = random_floats(B * T * C, 23);
    Tensor all_tokens = ids_tensor(context.get(), {B, T + 1}, tokens);
    const int64_t shape[] = {B, T}, strides[] = {T + 1, 1};
    ne_tensor* raw = nullptr;
    NE_ASSERT_OK(ne_tensor_view(all_tokens.get(), 0, 2, shape, strides, &raw));
    Tensor inputs(raw);
    std::vector<int32_t> ids;
    for (int64_t b = 0; b < B; ++b) ids.insert(ids.end(), tokens.begin() + b * (T + 1), tokens.begin() + b * (T + 1) + T);

    Tensor ttable = f32_tensor(context.get(), {V, C}, table), out = make_tensor(context.get(), NE_DTYPE_F32, {B, T, C});
    NE_ASSERT_OK(ne_embedding_forward(context.get(), ttable.get(), inputs.get(), out.get()));
    std::vector<float> expected;
    for (int32_t id : ids) expected.insert(expected.end(), table.begin() + id * C, table.begin() + (id + 1) * C);
    EXPECT_TRUE(bitwise_equal(read<float>(out.get()), expected));

    Tensor tdout = f32_tensor(context.get(), {B, T, C}, dout), dtable = sentinel_tensor(context.get(), {V, C});
    NE_ASSERT_OK(ne_embedding_backward(context.get(), inputs.get(), tdout.get(), dtable.get(), 0));
    EXPECT_TRUE(bitwise_equal(read<float>(dtable.get()), scatter_add(std::vector<float>(V * C, 0.0f), ids, dout, C)));
}

TEST_P(EmbeddingOps, BackwardAddsRepeatedIdsInOrder) {
    uint64_t seed = 100;
    for (const auto& ids_shape : kIdShapes) {
        for (int64_t C : kChannels) {
            for (int32_t accumulate : {0, 1}) {
                for (int64_t pad : {0, 2}) {
                    SCOPED_TRACE("ids " + shape_name(ids_shape) + " C=" + std::to_string(C) + " accumulate=" +
                                 std::to_string(accumulate) + " pad=" + std::to_string(pad));
                    // Few rows for many ids: most ids repeat, and some rows are never used.
                    constexpr int32_t V = 9;
                    std::vector<int32_t> ids = random_ids(static_cast<size_t>(element_count(ids_shape)), V - 2, ++seed);
                    const std::vector<float> dout = random_floats(ids.size() * C, ++seed);
                    const std::vector<float> before = random_floats(static_cast<size_t>(V * C), ++seed);
                    PaddedTensor tdout(context.get(), with_channels(ids_shape, C), pad, dout);
                    PaddedTensor dtable(context.get(), {V, C}, pad, before);
                    Tensor tids = ids_tensor(context.get(), ids_shape, ids);
                    NE_ASSERT_OK(ne_embedding_backward(context.get(), tids.get(), tdout.get(), dtable.get(), accumulate));
                    const std::vector<float> start = accumulate ? before : std::vector<float>(before.size(), 0.0f);
                    const std::vector<float> got = dtable.read_values();
                    EXPECT_TRUE(bitwise_equal(got, scatter_add(start, ids, dout, C)));
                    EXPECT_TRUE(all_near(got, scatter_add_in_double(start, ids, dout, C), 1e-5));
                    // Rows V - 2 and V - 1 are in no id: zeroed, or untouched when accumulating.
                    for (int64_t i = (V - 2) * C; i < V * C; ++i) EXPECT_EQ(got[i], accumulate ? before[i] : 0.0f) << i;
                    EXPECT_TRUE(dtable.padding_untouched());
                }
            }
        }
    }
}

// A row summed from 2000 repeats of one id exercises long float chains; the channels are split
// among threads, and every thread count and level gives the scalar reference's bits.
TEST_P(EmbeddingOps, BackwardGivesTheScalarReferenceBits) {
    constexpr int32_t V = 300;
    constexpr int64_t N = 3000, C = 200;
    std::vector<int32_t> ids = random_ids(N, V, 200);
    for (size_t n = 0; n < 2000; n += 3) ids[n] = 17;
    const std::vector<float> dout = random_floats(N * C, 201);
    Context reference = make_cpu_context(1, NE_SIMD_LEVEL_SCALAR);
    std::vector<std::vector<float>> results;
    for (ne_context* ctx : {context.get(), reference.get()}) {
        Tensor tids = ids_tensor(ctx, {N}, ids), tdout = f32_tensor(ctx, {N, C}, dout);
        Tensor dtable = sentinel_tensor(ctx, {V, C});
        NE_ASSERT_OK(ne_embedding_backward(ctx, tids.get(), tdout.get(), dtable.get(), 0));
        results.push_back(read<float>(dtable.get()));
    }
    EXPECT_TRUE(bitwise_equal(results[0], results[1]));
    EXPECT_TRUE(bitwise_equal(results[0], scatter_add(std::vector<float>(V * C, 0.0f), ids, dout, C)));
}

// The backward pass is the forward pass's transpose: for any table and dout,
// sum(dout * forward(table)) = sum(table * backward(dout)). Checked in double.
TEST_P(EmbeddingOps, BackwardIsTheTransposeOfTheForward) {
    constexpr int32_t V = 23;
    constexpr int64_t C = 19;
    const std::vector<int32_t> ids = random_ids(64, V, 300);
    const std::vector<float> table = random_floats(V * C, 301), dout = random_floats(64 * C, 302);
    Tensor ttable = f32_tensor(context.get(), {V, C}, table), tids = ids_tensor(context.get(), {8, 8}, ids);
    Tensor out = make_tensor(context.get(), NE_DTYPE_F32, {8, 8, C}), tdout = f32_tensor(context.get(), {8, 8, C}, dout);
    Tensor dtable = make_tensor(context.get(), NE_DTYPE_F32, {V, C});
    NE_ASSERT_OK(ne_embedding_forward(context.get(), ttable.get(), tids.get(), out.get()));
    NE_ASSERT_OK(ne_embedding_backward(context.get(), tids.get(), tdout.get(), dtable.get(), 0));
    const std::vector<float> forward = read<float>(out.get()), backward = read<float>(dtable.get());
    double left = 0.0, right = 0.0;
    for (size_t i = 0; i < forward.size(); ++i) left += static_cast<double>(dout[i]) * forward[i];
    for (size_t i = 0; i < backward.size(); ++i) right += static_cast<double>(table[i]) * backward[i];
    EXPECT_NEAR(left, right, 1e-5 * (1.0 + std::abs(left)));
}

INSTANTIATE_TEST_SUITE_P(Cpu, EmbeddingOps, ::testing::ValuesIn(backend_configurations()), config_name);

// ---- Argument checks ------------------------------------------------------------------------

class EmbeddingArguments : public ::testing::Test {
protected:
    static constexpr int64_t V = 8, C = 4;

    void expect_refused(ne_status status, ne_status expected, std::initializer_list<const char*> fragments) {
        EXPECT_TRUE(fails_with(status, expected, fragments));
        for (const Tensor* output : {&out, &dtable}) {
            EXPECT_TRUE(untouched(*output)) << "an output was written by a refused call (" << ne_last_error() << ")";
        }
    }

    Context context = make_cpu_context();
    Context other_context = make_cpu_context();
    ne_context* ctx = context.get();
    Tensor table = f32_tensor(ctx, {V, C}, random_floats(V * C, 1));
    Tensor ids = ids_tensor(ctx, {2, 3}, {0, 7, 3, 3, 1, 5});
    Tensor out = sentinel_tensor(ctx, {2, 3, C});
    Tensor dout = f32_tensor(ctx, {2, 3, C}, random_floats(6 * C, 2));
    Tensor dtable = sentinel_tensor(ctx, {V, C});
};

TEST_F(EmbeddingArguments, ForwardRefusesBadArguments) {
    ne_tensor *W = table.get(), *I = ids.get(), *O = out.get();
    expect_refused(ne_embedding_forward(nullptr, W, I, O), NE_STATUS_NULL_POINTER, {"ne_embedding_forward", "'context'"});
    expect_refused(ne_embedding_forward(ctx, nullptr, I, O), NE_STATUS_NULL_POINTER, {"'table'"});
    expect_refused(ne_embedding_forward(ctx, W, nullptr, O), NE_STATUS_NULL_POINTER, {"'ids'"});
    expect_refused(ne_embedding_forward(ctx, W, I, nullptr), NE_STATUS_NULL_POINTER, {"'out'"});
    Tensor ids_f32 = make_tensor(ctx, NE_DTYPE_F32, {2, 3});
    expect_refused(ne_embedding_forward(ctx, W, ids_f32.get(), O), NE_STATUS_DTYPE_MISMATCH, {"'ids'", "expected dtype i32", "got f32"});
    Tensor table_f16 = make_tensor(ctx, NE_DTYPE_F16, {V, C});
    expect_refused(ne_embedding_forward(ctx, table_f16.get(), I, O), NE_STATUS_DTYPE_MISMATCH, {"'table'", "got f16"});
    Tensor foreign_table = f32_tensor(other_context.get(), {V, C}, random_floats(V * C, 3));
    expect_refused(ne_embedding_forward(ctx, foreign_table.get(), I, O), NE_STATUS_CONTEXT_MISMATCH, {"'table'", "another context"});
    Tensor foreign_ids = ids_tensor(other_context.get(), {2, 3}, {0, 1, 2, 3, 4, 5});
    expect_refused(ne_embedding_forward(ctx, W, foreign_ids.get(), O), NE_STATUS_CONTEXT_MISMATCH, {"'ids'"});

    Tensor flat_table = f32_tensor(ctx, {V * C}, random_floats(V * C, 4));
    expect_refused(ne_embedding_forward(ctx, flat_table.get(), I, O), NE_STATUS_SHAPE_MISMATCH, {"'table'", "rank 2", "got shape [32]"});
    Tensor flat_out = sentinel_tensor(ctx, {6, C});
    expect_refused(ne_embedding_forward(ctx, W, I, flat_out.get()), NE_STATUS_SHAPE_MISMATCH,
                   {"'out'", "expected shape [2, 3, 4] (the shape of 'ids' followed by C = 4)", "got [6, 4]"});
    Tensor narrow_out = sentinel_tensor(ctx, {2, 3, C - 1});
    expect_refused(ne_embedding_forward(ctx, W, I, narrow_out.get()), NE_STATUS_SHAPE_MISMATCH, {"'out'", "got [2, 3, 3]"});
    EXPECT_TRUE(untouched(flat_out) && untouched(narrow_out));

    for (const auto& [bad_ids, fragment] : {std::pair{std::vector<int32_t>{0, 1, 2, 8, 4, 5}, "element 3 is 8"},
                                            std::pair{std::vector<int32_t>{0, 1, 2, 3, -1, 9}, "element 4 is -1"},
                                            std::pair{std::vector<int32_t>{0, 1, 2, 3, 4, std::numeric_limits<int32_t>::max()},
                                                      "element 5 is 2147483647"}}) {
        Tensor out_of_range = ids_tensor(ctx, {2, 3}, bad_ids);
        expect_refused(ne_embedding_forward(ctx, W, out_of_range.get(), O), NE_STATUS_INVALID_ARGUMENT,
                       {"'ids'", fragment, "expected a value in [0, 8) (the rows of 'table')"});
    }

    Tensor shared = sentinel_tensor(ctx, {V + 6, C});
    Tensor table_rows = view_of(shared, 0, {V, C}), out_rows = view_of(shared, (V - 1) * C, {2, 3, C});
    expect_refused(ne_embedding_forward(ctx, table_rows.get(), I, out_rows.get()), NE_STATUS_INVALID_ARGUMENT,
                   {"'out' overlaps argument 'table'"});
    NE_EXPECT_OK(ne_embedding_forward(ctx, W, I, O));
}

TEST_F(EmbeddingArguments, BackwardRefusesBadArguments) {
    ne_tensor *I = ids.get(), *D = dout.get(), *T = dtable.get();
    expect_refused(ne_embedding_backward(nullptr, I, D, T, 0), NE_STATUS_NULL_POINTER, {"ne_embedding_backward", "'context'"});
    expect_refused(ne_embedding_backward(ctx, nullptr, D, T, 0), NE_STATUS_NULL_POINTER, {"'ids'"});
    expect_refused(ne_embedding_backward(ctx, I, nullptr, T, 0), NE_STATUS_NULL_POINTER, {"'dout'"});
    expect_refused(ne_embedding_backward(ctx, I, D, nullptr, 0), NE_STATUS_NULL_POINTER, {"'dtable'"});
    expect_refused(ne_embedding_backward(ctx, I, D, T, 2), NE_STATUS_INVALID_ARGUMENT, {"'accumulate' is 2", "0 or 1"});
    Tensor dout_f16 = make_tensor(ctx, NE_DTYPE_F16, {2, 3, C});
    expect_refused(ne_embedding_backward(ctx, I, dout_f16.get(), T, 0), NE_STATUS_DTYPE_MISMATCH, {"'dout'", "got f16"});
    Tensor foreign_dtable = sentinel_tensor(other_context.get(), {V, C});
    expect_refused(ne_embedding_backward(ctx, I, D, foreign_dtable.get(), 0), NE_STATUS_CONTEXT_MISMATCH, {"'dtable'"});
    Tensor dtable_3d = sentinel_tensor(ctx, {1, V, C});
    expect_refused(ne_embedding_backward(ctx, I, D, dtable_3d.get(), 0), NE_STATUS_SHAPE_MISMATCH, {"'dtable'", "rank 2", "[1, 8, 4]"});
    Tensor dtable_wide = sentinel_tensor(ctx, {V, C + 1});
    expect_refused(ne_embedding_backward(ctx, I, D, dtable_wide.get(), 0), NE_STATUS_SHAPE_MISMATCH,
                   {"'dout'", "expected shape [2, 3, 5] (the shape of 'ids' followed by C = 5)", "got [2, 3, 4]"});
    Tensor short_ids = ids_tensor(ctx, {5}, {0, 1, 2, 3, 4});
    expect_refused(ne_embedding_backward(ctx, short_ids.get(), D, T, 0), NE_STATUS_SHAPE_MISMATCH, {"'dout'", "[5, 4]", "got [2, 3, 4]"});
    Tensor out_of_range = ids_tensor(ctx, {2, 3}, {0, 1, 2, 3, 4, 8});
    expect_refused(ne_embedding_backward(ctx, out_of_range.get(), D, T, 0), NE_STATUS_INVALID_ARGUMENT,
                   {"'ids'", "element 5 is 8", "[0, 8) (the rows of 'dtable')"});
    Tensor shared = sentinel_tensor(ctx, {V + 6, C});
    Tensor dout_rows = view_of(shared, 0, {2, 3, C}), dtable_rows = view_of(shared, 5 * C, {V, C});
    expect_refused(ne_embedding_backward(ctx, I, dout_rows.get(), dtable_rows.get(), 1), NE_STATUS_INVALID_ARGUMENT,
                   {"'dtable' overlaps argument 'dout'"});
    EXPECT_TRUE(untouched(shared));
    NE_EXPECT_OK(ne_embedding_backward(ctx, I, D, T, 0));
}

}  // namespace
