// Flash attention on the CPU, forward and backward.
//
// Reads top-down: the scalar reference (what NE_SIMD_LEVEL_SCALAR runs, on one thread), the
// validation of the C arguments, the dispatch of the tiled kernels of attention_simd.inl
// (attention_avx2.cpp / attention_avx512.cpp) to the context's threads, and the exported
// functions.
//
// What the arguments may be, where the header leaves it open:
// - q, k, v, out, dout, dq, dk, dv: f32 (on a CUDA context also bf16 or f16, all of q's dtype,
//   NE_STATUS_DTYPE_MISMATCH otherwise) of rank 4 with a contiguous last dimension
//   (NE_STATUS_UNSUPPORTED otherwise); q fixes B, Tq, H and D, and k fixes Tk and Hkv. D outside
//   1..256 and H not a multiple of Hkv are NE_STATUS_SHAPE_MISMATCH. Tq and Tk must fit in 31
//   bits (NE_STATUS_UNSUPPORTED beyond; a [B, 2^31, Hkv, D] f32 tensor is at least 8 GiB).
// - key_lengths: i32 of shape [B], any stride, each value in [0, Tk]
//   (NE_STATUS_INVALID_ARGUMENT otherwise); read before any work starts (on a CUDA context,
//   copied to the host for the check, which waits for the work queued before).
// - lse: f32 [B, H, Tq], contiguous; optional in the forward pass, required in the backward.
// - params: struct_size from the first version (without allow_atomics) to sizeof(ne_attention_params);
//   scale finite and >= 0; causal and allow_atomics 0 or 1.
// - Outputs must not overlap any input nor each other (NE_STATUS_INVALID_ARGUMENT). The test is
//   on the memory span of each view, so interleaved views of one buffer (dq, dk and dv inside a
//   fused [B, T, 3, H, D] gradient) count as overlapping. Two elements of one output must not
//   share memory (a stride 0, NE_STATUS_UNSUPPORTED): threads write them concurrently.
#include "attention.hpp"

#include "core/device.hpp"
#include "core/validate.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <vector>

namespace ne::cpu {
namespace {

constexpr float kMinusInfinity = -std::numeric_limits<float>::infinity();

// Keys [0, visible) of a sequence of `length` keys are what query i sees: the key lengths cut
// the end, and the causal mask j <= i + (length - Tq) cuts a longer or shorter end per query.
int64_t visible_keys(const AttentionInputs& in, int64_t length, int64_t i) {
    return in.causal ? std::max<int64_t>(0, i + length - in.Tq + 1) : length;
}

template <class Float>
Float* row_of(const HeadTensor<Float>& t, int64_t b, int64_t token, int64_t head) {
    return t.data + b * t.batch_stride + token * t.token_stride + head * t.head_stride;
}

// ------------------------------------------------------------------------------------------
// Scalar reference, in the style of llm.c: one query row at a time with an online softmax over
// its visible keys, so that nothing of size Tq x Tk exists here either. Float accumulation.
// ------------------------------------------------------------------------------------------

float dot(const float* a, const float* b, int64_t D) {
    float sum = 0.0f;
    for (int64_t d = 0; d < D; ++d) sum += a[d] * b[d];
    return sum;
}

void forward_reference(ne_context& context, const AttentionForwardArgs& a) {
    const AttentionInputs& in = a.in;
    const int64_t D = in.D;
    const int64_t group = in.H / in.Hkv;
    const Scratch acc_memory(context, D * static_cast<int64_t>(sizeof(float)));
    float* acc = acc_memory.as<float>();
    for (int64_t b = 0; b < in.B; ++b) {
        for (int64_t h = 0; h < in.H; ++h) {
            for (int64_t i = 0; i < in.Tq; ++i) {
                const float* q = row_of(in.q, b, i, h);
                const int64_t visible = visible_keys(in, in.key_lengths[b], i);
                // Running max m and sum l of exp(s - m); acc = sum of exp(s - m) v.
                float max = kMinusInfinity;
                float sum = 0.0f;
                std::fill(acc, acc + D, 0.0f);
                for (int64_t j = 0; j < visible; ++j) {
                    const float s = in.scale * dot(q, row_of(in.k, b, j, h / group), D);
                    const float new_max = std::max(max, s);
                    const float alpha = std::exp(max - new_max);  // rescales the old terms; 0 at the first key
                    const float p = std::exp(s - new_max);
                    const float* v = row_of(in.v, b, j, h / group);
                    sum = sum * alpha + p;
                    for (int64_t d = 0; d < D; ++d) acc[d] = acc[d] * alpha + p * v[d];
                    max = new_max;
                }
                float* out = row_of(a.out, b, i, h);
                for (int64_t d = 0; d < D; ++d) out[d] = visible > 0 ? acc[d] / sum : 0.0f;
                if (a.lse) a.lse[(b * in.H + h) * in.Tq + i] = visible > 0 ? max + std::log(sum) : kMinusInfinity;
            }
        }
    }
}

// With P = exp(S - lse) recomputed from the saved lse, dP = dO V^T, Delta = rowsum(dO * O) and
// dS = P * (dP - Delta), the gradients are dV = P^T dO, dK = scale dS^T Q and dQ = scale dS K.
// The query heads of a group add into the same dk and dv rows, in (head, query) order.
void backward_reference(ne_context& context, const AttentionBackwardArgs& a) {
    const AttentionInputs& in = a.in;
    const int64_t D = in.D;
    const int64_t group = in.H / in.Hkv;
    const Scratch dq_memory(context, D * static_cast<int64_t>(sizeof(float)));
    float* dq_acc = dq_memory.as<float>();
    for (int64_t b = 0; b < in.B; ++b) {
        for (int64_t j = 0; j < in.Tk; ++j) {
            for (int64_t kv = 0; kv < in.Hkv; ++kv) {
                std::fill(row_of(a.dk, b, j, kv), row_of(a.dk, b, j, kv) + D, 0.0f);
                std::fill(row_of(a.dv, b, j, kv), row_of(a.dv, b, j, kv) + D, 0.0f);
            }
        }
    }
    for (int64_t b = 0; b < in.B; ++b) {
        for (int64_t h = 0; h < in.H; ++h) {
            for (int64_t i = 0; i < in.Tq; ++i) {
                const float* q = row_of(in.q, b, i, h);
                const float* dout = row_of(a.dout, b, i, h);
                const int64_t visible = visible_keys(in, in.key_lengths[b], i);
                const float lse = a.lse[(b * in.H + h) * in.Tq + i];
                const float delta = dot(dout, row_of(a.out, b, i, h), D);
                std::fill(dq_acc, dq_acc + D, 0.0f);
                for (int64_t j = 0; j < visible; ++j) {
                    const float* k = row_of(in.k, b, j, h / group);
                    const float* v = row_of(in.v, b, j, h / group);
                    float* dk = row_of(a.dk, b, j, h / group);
                    float* dv = row_of(a.dv, b, j, h / group);
                    const float p = std::exp(in.scale * dot(q, k, D) - lse);
                    const float ds = p * (dot(dout, v, D) - delta);
                    for (int64_t d = 0; d < D; ++d) {
                        dv[d] += p * dout[d];
                        dk[d] += in.scale * ds * q[d];
                        dq_acc[d] += ds * k[d];
                    }
                }
                float* dq = row_of(a.dq, b, i, h);
                for (int64_t d = 0; d < D; ++d) dq[d] = in.scale * dq_acc[d];
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Validation
// ------------------------------------------------------------------------------------------

ne_attention_params attention_params_arg(const ne_attention_params* params) {
    const ne_attention_params defaults{sizeof(ne_attention_params), 0.0f, 0, 0};
    // The first version of the struct ended before allow_atomics.
    const ne_attention_params p = params_arg(params, "params", offsetof(ne_attention_params, allow_atomics), defaults);
    if (!std::isfinite(p.scale) || p.scale < 0.0f) {
        fail(NE_STATUS_INVALID_ARGUMENT, "argument 'params': scale is ", p.scale,
             "; expected a finite value >= 0 (0 means 1/sqrt(D))");
    }
    if (p.causal != 0 && p.causal != 1) {
        fail(NE_STATUS_INVALID_ARGUMENT, "argument 'params': causal is ", p.causal, "; expected 0 or 1");
    }
    if (p.allow_atomics != 0 && p.allow_atomics != 1) {
        fail(NE_STATUS_INVALID_ARGUMENT, "argument 'params': allow_atomics is ", p.allow_atomics, "; expected 0 or 1");
    }
    return p;
}

const ne_tensor& typed_arg(const ne_tensor* tensor, const char* name, ne_dtype dtype, const ne_context& context) {
    const ne_tensor& t = tensor_arg(tensor, name);
    expect_context(t, context, name);
    expect_dtype(t, dtype, name);
    return t;
}

// The dtype of q, k, v, out and the gradients: f32, or on a device also bf16 or f16 (q's).
ne_dtype element_dtype_arg(const ne_tensor* q_arg, const ne_context& context) {
    const ne_tensor& q = tensor_arg(q_arg, "q");
    const bool half = context.device && (q.dtype == NE_DTYPE_BF16 || q.dtype == NE_DTYPE_F16);
    return half ? q.dtype : NE_DTYPE_F32;
}

const ne_tensor* optional_typed_arg(const ne_tensor* tensor, const char* name, ne_dtype dtype,
                                    const ne_context& context) {
    return tensor == nullptr ? nullptr : &typed_arg(tensor, name, dtype, context);
}

// letters names the dimensions in the message: "expected shape [2, 128, 4, 64] ([B, Tk, Hkv, D])".
void expect_dims(const ne_tensor& t, const char* name, std::initializer_list<int64_t> dims, const char* letters) {
    bool same = t.rank == static_cast<int32_t>(dims.size());
    int32_t i = 0;
    for (int64_t dim : dims) {
        if (!same) break;
        same = t.shape[i++] == dim;
    }
    if (!same) {
        fail(NE_STATUS_SHAPE_MISMATCH, "argument '", name, "': expected shape ", shape_string(dims), " (", letters,
             "), got ", shape_string(t));
    }
}

void expect_rank4(const ne_tensor& t, const char* name, const char* letters) {
    if (t.rank != 4) {
        fail(NE_STATUS_SHAPE_MISMATCH, "argument '", name, "': expected rank 4 (", letters, "), got shape ",
             shape_string(t));
    }
}

template <class Float>
HeadTensor<Float> head_tensor_arg(const ne_tensor& t, const char* name, std::initializer_list<int64_t> dims,
                                  const char* letters) {
    expect_dims(t, name, dims, letters);
    if (t.shape[3] != 1 && t.strides[3] != 1) {
        fail(NE_STATUS_UNSUPPORTED, "argument '", name,
             "': expected the last dimension (D) to be contiguous (stride 1), got stride ", t.strides[3]);
    }
    return {data_of<Float>(t), t.strides[0], t.strides[1], t.strides[2]};
}

// Threads write the elements of an output concurrently, so no two may share memory: taken from
// the smallest stride up, each dimension must step over everything the smaller ones reach.
void expect_distinct_elements(const ne_tensor& t, const char* name) {
    std::vector<int32_t> dims;
    for (int32_t i = 0; i < t.rank; ++i) {
        if (t.shape[i] > 1) dims.push_back(i);
    }
    std::sort(dims.begin(), dims.end(), [&](int32_t x, int32_t y) { return t.strides[x] < t.strides[y]; });
    int64_t reach = 1;  // elements spanned by the dimensions taken so far
    for (int32_t i : dims) {
        if (t.strides[i] < reach) {
            fail(NE_STATUS_UNSUPPORTED, "argument '", name, "': elements of shape ", shape_string(t),
                 " share memory (stride ", t.strides[i], " of dimension ", i, "); expected an output whose elements are distinct");
        }
        reach += (t.shape[i] - 1) * t.strides[i];
    }
}

void expect_lse(const ne_tensor& lse, int64_t B, int64_t H, int64_t Tq) {
    expect_dims(lse, "lse", {B, H, Tq}, "[B, H, Tq]");
    expect_contiguous(lse, "lse");
}

struct Named {
    const ne_tensor* tensor;  // nullptr for an absent optional argument
    const char* name;
};

void expect_separate(Named output, std::initializer_list<Named> others) {
    if (output.tensor == nullptr) return;
    for (const Named& other : others) {
        if (other.tensor) expect_no_overlap(*output.tensor, output.name, *other.tensor, other.name);
    }
}

// q, k, v, key_lengths and the parameters. lengths receives the key lengths (Tk everywhere
// without key_lengths); the inputs point into it.
AttentionInputs inputs_arg(const ne_context& context, const ne_attention_params& params, const ne_tensor& q, const ne_tensor& k,
                           const ne_tensor& v, const ne_tensor* key_lengths, std::vector<int32_t>& lengths) {
    AttentionInputs in{};
    expect_rank4(q, "q", "[B, Tq, H, D]");
    in.B = q.shape[0];
    in.Tq = q.shape[1];
    in.H = q.shape[2];
    in.D = q.shape[3];
    if (in.D < 1 || in.D > AttentionTiles::kMaxHeadDim) {
        fail(NE_STATUS_SHAPE_MISMATCH, "argument 'q': head dimension D is ", in.D, " (shape ", shape_string(q),
             "); expected 1 to ", AttentionTiles::kMaxHeadDim);
    }
    expect_rank4(k, "k", "[B, Tk, Hkv, D]");
    in.Tk = k.shape[1];
    in.Hkv = k.shape[2];
    in.q = head_tensor_arg<const float>(q, "q", {in.B, in.Tq, in.H, in.D}, "[B, Tq, H, D]");
    in.k = head_tensor_arg<const float>(k, "k", {in.B, in.Tk, in.Hkv, in.D}, "[B, Tk, Hkv, D]");
    in.v = head_tensor_arg<const float>(v, "v", {in.B, in.Tk, in.Hkv, in.D}, "[B, Tk, Hkv, D]");
    if (in.H % in.Hkv != 0) {
        fail(NE_STATUS_SHAPE_MISMATCH, "arguments 'q' and 'k': H = ", in.H, " query heads is not a multiple of Hkv = ", in.Hkv,
             " key/value heads");
    }
    constexpr int64_t kMaxTokens = std::numeric_limits<int32_t>::max();
    if (in.Tq > kMaxTokens || in.Tk > kMaxTokens) {
        fail(NE_STATUS_UNSUPPORTED, "arguments 'q' and 'k': Tq = ", in.Tq, " and Tk = ", in.Tk, "; expected at most ",
             kMaxTokens);
    }

    lengths.assign(static_cast<size_t>(in.B), static_cast<int32_t>(in.Tk));
    if (key_lengths) {
        expect_dims(*key_lengths, "key_lengths", {in.B}, "[B]");
        const int64_t stride = key_lengths->strides[0];
        const int32_t* values = data_of<int32_t>(*key_lengths);
        const int64_t Tk = in.Tk;
        auto describe = [Tk](int64_t index, uint32_t bits) {
            return str("argument 'key_lengths': ", flat_position(index), " is ", static_cast<int32_t>(bits),
                       "; expected a length in [0, ", Tk, "] (Tk)");
        };
        if (context.device) {
            context.device->check_int_range({{values, in.B, 1, stride}, 0, in.Tk + 1, false}, describe);
        } else {
            for (int64_t b = 0; b < in.B; ++b) {
                const int32_t length = values[b * stride];
                if (length < 0 || length > in.Tk) fail(NE_STATUS_INVALID_ARGUMENT, describe(b, static_cast<uint32_t>(length)));
                lengths[static_cast<size_t>(b)] = length;
            }
        }
    }
    in.key_lengths = lengths.data();
    in.causal = params.causal == 1;
    in.scale = params.scale != 0.0f ? params.scale : static_cast<float>(1.0 / std::sqrt(static_cast<double>(in.D)));
    return in;
}

AttentionForwardArgs forward_args(const ne_context& context, const ne_attention_params& params, const ne_tensor* q_arg,
                                  const ne_tensor* k_arg, const ne_tensor* v_arg, const ne_tensor* key_lengths_arg,
                                  const ne_tensor* out_arg, const ne_tensor* lse_arg, std::vector<int32_t>& lengths) {
    const ne_dtype dtype = element_dtype_arg(q_arg, context);
    const ne_tensor& q = typed_arg(q_arg, "q", dtype, context);
    const ne_tensor& k = typed_arg(k_arg, "k", dtype, context);
    const ne_tensor& v = typed_arg(v_arg, "v", dtype, context);
    const ne_tensor* key_lengths = optional_typed_arg(key_lengths_arg, "key_lengths", NE_DTYPE_I32, context);
    const ne_tensor& out = typed_arg(out_arg, "out", dtype, context);
    const ne_tensor* lse = optional_typed_arg(lse_arg, "lse", NE_DTYPE_F32, context);

    AttentionForwardArgs args{};
    args.in = inputs_arg(context, params, q, k, v, key_lengths, lengths);
    const AttentionInputs& in = args.in;
    args.out = head_tensor_arg<float>(out, "out", {in.B, in.Tq, in.H, in.D}, "[B, Tq, H, D]");
    if (lse) expect_lse(*lse, in.B, in.H, in.Tq);
    expect_distinct_elements(out, "out");

    const Named in_q{&q, "q"}, in_k{&k, "k"}, in_v{&v, "v"}, in_key_lengths{key_lengths, "key_lengths"};
    expect_separate({&out, "out"}, {in_q, in_k, in_v, in_key_lengths});
    expect_separate({lse, "lse"}, {in_q, in_k, in_v, in_key_lengths, {&out, "out"}});
    args.lse = lse ? data_of<float>(*lse) : nullptr;
    return args;
}

AttentionBackwardArgs backward_args(const ne_context& context, const ne_attention_params& params,
                                    const ne_tensor* q_arg, const ne_tensor* k_arg, const ne_tensor* v_arg,
                                    const ne_tensor* key_lengths_arg, const ne_tensor* out_arg,
                                    const ne_tensor* lse_arg, const ne_tensor* dout_arg, const ne_tensor* dq_arg,
                                    const ne_tensor* dk_arg, const ne_tensor* dv_arg, std::vector<int32_t>& lengths) {
    const ne_dtype dtype = element_dtype_arg(q_arg, context);
    const ne_tensor& q = typed_arg(q_arg, "q", dtype, context);
    const ne_tensor& k = typed_arg(k_arg, "k", dtype, context);
    const ne_tensor& v = typed_arg(v_arg, "v", dtype, context);
    const ne_tensor* key_lengths = optional_typed_arg(key_lengths_arg, "key_lengths", NE_DTYPE_I32, context);
    const ne_tensor& out = typed_arg(out_arg, "out", dtype, context);
    const ne_tensor& lse = typed_arg(lse_arg, "lse", NE_DTYPE_F32, context);
    const ne_tensor& dout = typed_arg(dout_arg, "dout", dtype, context);
    const ne_tensor& dq = typed_arg(dq_arg, "dq", dtype, context);
    const ne_tensor& dk = typed_arg(dk_arg, "dk", dtype, context);
    const ne_tensor& dv = typed_arg(dv_arg, "dv", dtype, context);

    AttentionBackwardArgs args{};
    args.in = inputs_arg(context, params, q, k, v, key_lengths, lengths);
    const AttentionInputs& in = args.in;
    args.out = head_tensor_arg<const float>(out, "out", {in.B, in.Tq, in.H, in.D}, "[B, Tq, H, D]");
    expect_lse(lse, in.B, in.H, in.Tq);
    args.dout = head_tensor_arg<const float>(dout, "dout", {in.B, in.Tq, in.H, in.D}, "[B, Tq, H, D]");
    args.dq = head_tensor_arg<float>(dq, "dq", {in.B, in.Tq, in.H, in.D}, "[B, Tq, H, D]");
    args.dk = head_tensor_arg<float>(dk, "dk", {in.B, in.Tk, in.Hkv, in.D}, "[B, Tk, Hkv, D]");
    args.dv = head_tensor_arg<float>(dv, "dv", {in.B, in.Tk, in.Hkv, in.D}, "[B, Tk, Hkv, D]");
    expect_distinct_elements(dq, "dq");
    expect_distinct_elements(dk, "dk");
    expect_distinct_elements(dv, "dv");

    const std::initializer_list<Named> inputs{{&q, "q"}, {&k, "k"},       {&v, "v"},      {key_lengths, "key_lengths"},
                                              {&out, "out"}, {&lse, "lse"}, {&dout, "dout"}};
    const Named out_dq{&dq, "dq"}, out_dk{&dk, "dk"}, out_dv{&dv, "dv"};
    for (const Named& output : {out_dq, out_dk, out_dv}) expect_separate(output, inputs);
    expect_separate(out_dq, {out_dk, out_dv});
    expect_separate(out_dk, {out_dv});
    args.lse = data_of<float>(lse);
    args.allow_atomics = params.allow_atomics == 1;
    return args;
}

// ------------------------------------------------------------------------------------------
// Dispatch
// ------------------------------------------------------------------------------------------

// Computing delta for this many elements costs about as much as waking a worker.
constexpr int64_t kMinDeltaElementsPerThread = int64_t{1} << 15;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Block products per (row block, key block) tile of the backward: S, dP, dV, dK and dQ fused;
// S, dP, dV, dK then S, dP, dQ in two passes.
constexpr int64_t kFusedCost = 5;
constexpr int64_t kTwoPassCost = 7;

const AttentionKernels& kernels_for(ne_simd_level level) {
    return level == NE_SIMD_LEVEL_AVX512 ? avx512::attention_kernels : avx2::attention_kernels;
}

// Per-thread workspaces in one counted allocation, whole cache lines each so that threads
// never share one.
class Workspaces {
public:
    Workspaces(ne_context& context, int threads, int64_t bytes_per_thread)
        : stride_(ceil_div(bytes_per_thread, 64) * 64), memory_(context, stride_ * threads) {}

    void* of_thread(int index) const { return memory_.as<unsigned char>() + index * stride_; }

private:
    int64_t stride_;
    Scratch memory_;
};

// Runs task(t, workspace) for every t in [0, count) on `threads` threads of the pool. Tasks
// differ in cost (causal masking), so each thread takes the next task when it finishes one.
// Every task writes only the outputs it owns, in a fixed order, so which thread runs it does
// not change a bit of the result.
template <class Task>
void run_tasks(ne_context& context, const Workspaces& workspaces, int threads, int64_t count, Task&& task) {
    std::atomic<int64_t> next{0};
    context.pool->run(threads, [&](int index, int) {
        void* workspace = workspaces.of_thread(index);
        for (int64_t t = next.fetch_add(1, std::memory_order_relaxed); t < count;
             t = next.fetch_add(1, std::memory_order_relaxed)) {
            task(t, workspace);
        }
    });
}

int task_threads(const ne_context& context, int64_t tasks) {
    return static_cast<int>(std::min<int64_t>(context.pool->size(), tasks));
}

void run_forward(ne_context& context, const AttentionForwardArgs& args) {
    if (context.simd_level == NE_SIMD_LEVEL_SCALAR) {
        forward_reference(context, args);
        return;
    }
    const AttentionKernels& kernels = kernels_for(context.simd_level);
    const AttentionInputs& in = args.in;
    const int64_t row_blocks = ceil_div(in.Tq * (in.H / in.Hkv), AttentionTiles::kRowBlock);
    const int64_t kv_heads = in.B * in.Hkv;
    const int64_t tasks = row_blocks * kv_heads;
    const int threads = task_threads(context, tasks);
    const Workspaces workspaces(context, threads, kernels.forward_workspace_bytes(in.D));
    run_tasks(context, workspaces, threads, tasks, [&](int64_t t, void* workspace) {
        // Under causal masking the last row blocks see the most keys: they start first.
        const int64_t block = row_blocks - 1 - t / kv_heads;
        const int64_t kv_head = t % kv_heads;
        kernels.forward_rows(args, kv_head / in.Hkv, kv_head % in.Hkv, block * AttentionTiles::kRowBlock, workspace);
    });
}

void run_backward(ne_context& context, AttentionBackwardArgs args) {
    if (context.simd_level == NE_SIMD_LEVEL_SCALAR) {
        backward_reference(context, args);
        return;
    }
    const AttentionKernels& kernels = kernels_for(context.simd_level);
    const AttentionInputs& in = args.in;
    const int64_t rows = in.B * in.H * in.Tq;
    const int64_t row_blocks = ceil_div(in.Tq * (in.H / in.Hkv), AttentionTiles::kRowBlock);
    const int64_t key_blocks = ceil_div(in.Tk, AttentionTiles::kKeyBlock);
    const int64_t kv_heads = in.B * in.Hkv;
    const int threads = task_threads(context, std::max(row_blocks, key_blocks) * kv_heads);
    const Scratch delta(context, rows * static_cast<int64_t>(sizeof(float)));
    const Workspaces workspaces(context, threads, kernels.backward_workspace_bytes(in.D));
    args.delta = delta.as<float>();

    context.pool->parallel_for(rows, std::max<int64_t>(1, kMinDeltaElementsPerThread / in.D),
                               [&](int64_t begin, int64_t end) { kernels.backward_delta(args, begin, end); });
    // The fused pass does 5 of the 7 block products of the two passes, but its tasks are whole
    // heads: it wins unless too few heads leave threads idle. Both give the same bits (with
    // finite keys: the fused pass also multiplies the masked keys of a block by a zero dS), so
    // the choice may depend on the thread count.
    const int64_t pool_threads = context.pool->size();
    if (kFusedCost * ceil_div(kv_heads, pool_threads) * pool_threads <= kTwoPassCost * kv_heads) {
        run_tasks(context, workspaces, task_threads(context, kv_heads), kv_heads, [&](int64_t t, void* workspace) {
            kernels.backward_head(args, t / in.Hkv, t % in.Hkv, workspace);
        });
        return;
    }
    // Pass 1: dk and dv per key block. Under causal masking the first key blocks are seen by
    // the most queries: they start first.
    run_tasks(context, workspaces, task_threads(context, key_blocks * kv_heads), key_blocks * kv_heads,
              [&](int64_t t, void* workspace) {
                  const int64_t kv_head = t % kv_heads;
                  kernels.backward_keys(args, kv_head / in.Hkv, kv_head % in.Hkv, t / kv_heads * AttentionTiles::kKeyBlock,
                                        workspace);
              });
    // Pass 2: dq per row block, the last first.
    run_tasks(context, workspaces, task_threads(context, row_blocks * kv_heads), row_blocks * kv_heads,
              [&](int64_t t, void* workspace) {
                  const int64_t block = row_blocks - 1 - t / kv_heads;
                  const int64_t kv_head = t % kv_heads;
                  kernels.backward_rows(args, kv_head / in.Hkv, kv_head % in.Hkv, block * AttentionTiles::kRowBlock,
                                        workspace);
              });
}

// The key lengths as a device reads them; called after validation.
DeviceKeyLengths device_key_lengths(const ne_tensor* key_lengths) {
    if (key_lengths == nullptr) return {nullptr, 0};
    return {data_of<const int32_t>(*key_lengths), key_lengths->strides[0]};
}

}  // namespace
}  // namespace ne::cpu

// ------------------------------------------------------------------------------------------
// Exported functions
// ------------------------------------------------------------------------------------------

extern "C" {

NE_API ne_status ne_attention_forward(ne_context* context, const ne_attention_params* params, const ne_tensor* q,
                                      const ne_tensor* k, const ne_tensor* v, const ne_tensor* key_lengths,
                                      ne_tensor* out, ne_tensor* lse) {
    return ne::guard("ne_attention_forward", [&] {
        ne_context& ctx = ne::context_arg(context, "context");
        const ne_attention_params p = ne::cpu::attention_params_arg(params);
        std::vector<int32_t> lengths;
        const auto args = ne::cpu::forward_args(ctx, p, q, k, v, key_lengths, out, lse, lengths);
        if (ctx.device) ctx.device->attention_forward(args, q->dtype, ne::cpu::device_key_lengths(key_lengths));
        else ne::cpu::run_forward(ctx, args);
    });
}

NE_API ne_status ne_attention_backward(ne_context* context, const ne_attention_params* params, const ne_tensor* q,
                                       const ne_tensor* k, const ne_tensor* v, const ne_tensor* key_lengths,
                                       const ne_tensor* out, const ne_tensor* lse, const ne_tensor* dout,
                                       ne_tensor* dq, ne_tensor* dk, ne_tensor* dv) {
    return ne::guard("ne_attention_backward", [&] {
        ne_context& ctx = ne::context_arg(context, "context");
        const ne_attention_params p = ne::cpu::attention_params_arg(params);
        std::vector<int32_t> lengths;
        const auto args = ne::cpu::backward_args(ctx, p, q, k, v, key_lengths, out, lse, dout, dq, dk, dv, lengths);
        if (ctx.device) ctx.device->attention_backward(args, q->dtype, ne::cpu::device_key_lengths(key_lengths));
        else ne::cpu::run_backward(ctx, args);
    });
}

}  // extern "C"
