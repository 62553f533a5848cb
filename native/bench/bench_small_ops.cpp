// The small ops of the model against the memory-bandwidth ceiling: BM_memcpy (bench_memory.cpp)
// with the same N, C and threads. Bytes counted are those an op must move at least, in floats
// of N x C:
// - add (a bias [C] broadcast over [N, C]): reads a, writes out: 2;
// - gelu forward: reads x, writes y: 2; gelu backward: reads x and dy, writes dx: 3;
// - dropout forward: reads x, writes out: 2;
// - softmax forward: reads x, writes out: 2;
// - sum_rows, reduce_sum (squares): read x: 1;
// - embedding forward: reads N rows of the table, writes out: 2 (ids from V = 32768 rows);
// - embedding backward, accumulate = 1: reads dout and N rows of dtable, writes those rows: 3
//   (most of the N ids are distinct among V = 32768);
// - adamw step: reads param, grad, m and v, writes param, m and v: 7.
// Arguments: N rows, C channels, threads (0 = all). NE_MAX_SIMD=avx2 or =scalar caps the SIMD
// level.
#include "bench_support.hpp"

namespace {

using namespace ne_bench;

constexpr int64_t kVocabulary = 32768;

// The context and shape of one benchmark.
struct Rows {
    explicit Rows(const benchmark::State& state)
        : N(state.range(0)), C(state.range(1)), context(make_context(static_cast<int>(state.range(2)))) {}

    Tensor matrix(uint64_t seed) const {
        return make_tensor(context.get(), NE_DTYPE_F32, {N, C}, random_floats(static_cast<size_t>(N * C), seed));
    }
    Tensor zeros(std::vector<int64_t> shape) const { return make_tensor(context.get(), NE_DTYPE_F32, std::move(shape)); }
    ne_context* ctx() const { return context.get(); }

    int64_t N, C;
    Context context;
};

void count_bytes(benchmark::State& state, const Rows& rows, int64_t matrices_moved) {
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * matrices_moved * rows.N * rows.C *
                            static_cast<int64_t>(sizeof(float)));
}

void BM_add_bias(benchmark::State& state) {
    const Rows rows(state);
    const Tensor a = rows.matrix(1), out = rows.zeros({rows.N, rows.C});
    const Tensor bias = make_tensor(rows.ctx(), NE_DTYPE_F32, {rows.C}, random_floats(static_cast<size_t>(rows.C), 2));
    for (auto _ : state) check(ne_add(rows.ctx(), a.get(), bias.get(), out.get()), "ne_add");
    count_bytes(state, rows, 2);
}

void BM_gelu_forward(benchmark::State& state) {
    const Rows rows(state);
    const Tensor x = rows.matrix(1), y = rows.zeros({rows.N, rows.C});
    for (auto _ : state) check(ne_gelu_forward(rows.ctx(), x.get(), y.get()), "ne_gelu_forward");
    count_bytes(state, rows, 2);
}

void BM_gelu_backward(benchmark::State& state) {
    const Rows rows(state);
    const Tensor x = rows.matrix(1), dy = rows.matrix(2), dx = rows.zeros({rows.N, rows.C});
    for (auto _ : state) check(ne_gelu_backward(rows.ctx(), x.get(), dy.get(), dx.get()), "ne_gelu_backward");
    count_bytes(state, rows, 3);
}

void BM_dropout_forward(benchmark::State& state) {
    const Rows rows(state);
    const Tensor x = rows.matrix(1), out = rows.zeros({rows.N, rows.C});
    ne_dropout_params params{sizeof(ne_dropout_params), 0.1f, 0};
    for (auto _ : state) {
        ++params.seed;
        check(ne_dropout_forward(rows.ctx(), &params, x.get(), out.get()), "ne_dropout_forward");
    }
    count_bytes(state, rows, 2);
}

void BM_softmax_forward(benchmark::State& state) {
    const Rows rows(state);
    const Tensor x = rows.matrix(1), out = rows.zeros({rows.N, rows.C});
    for (auto _ : state) check(ne_softmax_forward(rows.ctx(), x.get(), out.get()), "ne_softmax_forward");
    count_bytes(state, rows, 2);
}

void BM_sum_rows(benchmark::State& state) {
    const Rows rows(state);
    const Tensor x = rows.matrix(1), out = rows.zeros({rows.C});
    for (auto _ : state) check(ne_sum_rows(rows.ctx(), x.get(), out.get(), 0), "ne_sum_rows");
    count_bytes(state, rows, 1);
}

void BM_reduce_sum_squares(benchmark::State& state) {
    const Rows rows(state);
    const Tensor x = rows.matrix(1), out = rows.zeros({});
    for (auto _ : state) check(ne_reduce_sum(rows.ctx(), x.get(), 1, out.get(), 0), "ne_reduce_sum");
    count_bytes(state, rows, 1);
}

Tensor random_ids(const Rows& rows) {
    std::mt19937_64 generator(3);
    std::uniform_int_distribution<int32_t> distribution(0, kVocabulary - 1);
    std::vector<int32_t> ids(static_cast<size_t>(rows.N));
    for (int32_t& id : ids) id = distribution(generator);
    return make_tensor(rows.ctx(), NE_DTYPE_I32, {rows.N}, ids);
}

void BM_embedding_forward(benchmark::State& state) {
    const Rows rows(state);
    const Tensor table = make_tensor(rows.ctx(), NE_DTYPE_F32, {kVocabulary, rows.C},
                                     random_floats(static_cast<size_t>(kVocabulary * rows.C), 1));
    const Tensor ids = random_ids(rows), out = rows.zeros({rows.N, rows.C});
    for (auto _ : state) check(ne_embedding_forward(rows.ctx(), table.get(), ids.get(), out.get()), "ne_embedding_forward");
    count_bytes(state, rows, 2);
}

void BM_embedding_backward(benchmark::State& state) {
    const Rows rows(state);
    const Tensor ids = random_ids(rows), dout = rows.matrix(1), dtable = rows.zeros({kVocabulary, rows.C});
    for (auto _ : state) {
        check(ne_embedding_backward(rows.ctx(), ids.get(), dout.get(), dtable.get(), 1), "ne_embedding_backward");
    }
    count_bytes(state, rows, 3);
}

void BM_adamw_step(benchmark::State& state) {
    const Rows rows(state);
    const Tensor param = rows.matrix(1), grad = rows.matrix(2), m = rows.zeros({rows.N, rows.C}), v = rows.zeros({rows.N, rows.C});
    ne_adamw_params params{sizeof(ne_adamw_params), 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 0, 1.0f, 0.0f};
    for (auto _ : state) {
        ++params.step;
        check(ne_adamw_step(rows.ctx(), &params, param.get(), grad.get(), m.get(), v.get(), nullptr), "ne_adamw_step");
    }
    count_bytes(state, rows, 7);
}

// A small model's activations and a parameter matrix of the same size, on one thread and all.
void small_op_arguments(benchmark::internal::Benchmark* bench) {
    bench->ArgNames({"N", "C", "threads"});
    for (int64_t threads : {1, 0}) bench->Args({4096, 1024, threads});
    bench->UseRealTime();
}

}  // namespace

BENCHMARK(BM_add_bias)->Apply(small_op_arguments);
BENCHMARK(BM_gelu_forward)->Apply(small_op_arguments);
BENCHMARK(BM_gelu_backward)->Apply(small_op_arguments);
BENCHMARK(BM_dropout_forward)->Apply(small_op_arguments);
BENCHMARK(BM_softmax_forward)->Apply(small_op_arguments);
BENCHMARK(BM_sum_rows)->Apply(small_op_arguments);
BENCHMARK(BM_reduce_sum_squares)->Apply(small_op_arguments);
BENCHMARK(BM_embedding_forward)->Apply(small_op_arguments);
BENCHMARK(BM_embedding_backward)->Apply(small_op_arguments);
BENCHMARK(BM_adamw_step)->Apply(small_op_arguments);
