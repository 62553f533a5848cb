// Times NativeEngine's CUDA kernels through the public C ABI, for tests/gpu/run.sh, which sets
// them beside PyTorch's (torch_bench.py prints the same names). Each case runs a few warm-up
// calls, then enough timed calls to fill about half a second, with the context synchronized
// before the clock starts and after it stops; the time is the mean per call.
//
// Output, one line per case: RESULT <name> <milliseconds> <rate> <unit>
#include "bench_support.hpp"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace bench;

// Uniform values in [-1, 1) rounded to bf16 (nearest, ties to even).
ne_tensor* random_bf16_tensor(ne_context* context, std::vector<int64_t> shape, uint64_t seed) {
    ne_tensor* t = tensor(context, NE_DTYPE_BF16, shape);
    int64_t count = 1;
    for (const int64_t d : shape) count *= d;
    std::vector<uint16_t> values(static_cast<size_t>(count));
    std::mt19937_64 generator(seed);
    std::uniform_real_distribution<float> distribution(-1.0f, 1.0f);
    for (uint16_t& v : values) {
        const float f = distribution(generator);
        uint32_t bits;
        std::memcpy(&bits, &f, sizeof bits);
        v = static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
    }
    check(ne_tensor_write(t, values.data(), values.size() * sizeof(uint16_t)), "ne_tensor_write");
    return t;
}

}  // namespace

int main() {
    ne_context* context = cuda_context();
    ne_context_info info{};
    info.struct_size = sizeof info;
    check(ne_context_get_info(context, &info), "ne_context_get_info");
    std::printf("DEVICE %s\n", info.device_name);

    // Fused residual + LayerNorm at [4096, 1024] f32, and a device-to-device copy of the same
    // bytes as the ceiling of these bandwidth-bound kernels, measured in the same run. One call
    // moves 32 to 64 MiB, which an H100's 50 MB L2 would mostly keep between calls: the cases
    // rotate over sets of tensors (`rotation_sets`) so that every call reads memory, not L2.
    if (selected("copy_f32_4096x1024") || selected("layernorm_forward_4096x1024") ||
        selected("layernorm_residual_forward_4096x1024") || selected("layernorm_backward_4096x1024")) {
        const int64_t N = scaled(4096, 8), C = 1024;
        const double bytes = static_cast<double>(N * C) * sizeof(float);
        const int sets = rotation_sets(info, 2 * bytes);
        std::printf("ROTATION layernorm and copy: %d sets of tensors (L2 %lld bytes)\n", sets,
                    static_cast<long long>(info.l2_cache_bytes));
        struct Set {
            ne_tensor *x, *residual, *y, *sum, *mean, *rstd, *dy, *dx;
        };
        std::vector<Set> rotation;
        for (int i = 0; i < sets; ++i) {
            const uint64_t seed = 16 * static_cast<uint64_t>(i);
            rotation.push_back({random_tensor(context, {N, C}, seed + 1), random_tensor(context, {N, C}, seed + 2),
                                tensor(context, NE_DTYPE_F32, {N, C}), tensor(context, NE_DTYPE_F32, {N, C}),
                                tensor(context, NE_DTYPE_F32, {N}), tensor(context, NE_DTYPE_F32, {N}),
                                random_tensor(context, {N, C}, seed + 5), tensor(context, NE_DTYPE_F32, {N, C})});
        }
        ne_tensor* gamma = random_tensor(context, {C}, 3);
        ne_tensor* beta = random_tensor(context, {C}, 4);
        ne_tensor* dgamma = tensor(context, NE_DTYPE_F32, {C});
        ne_tensor* dbeta = tensor(context, NE_DTYPE_F32, {C});
        const ne_norm_params params{sizeof(ne_norm_params), 1e-5f, 0};
        size_t call = 0;
        const auto next = [&]() -> Set& { return rotation[call++ % rotation.size()]; };
        if (selected("copy_f32_4096x1024")) {
            const double ms = time_ms(context, [&] { const Set& t = next(); return ne_tensor_copy(t.y, t.x); }, "ne_tensor_copy");
            report("copy_f32_4096x1024", ms, 2 * bytes / (ms * 1e-3) / 1e12, "TB/s");
        }
        if (selected("layernorm_forward_4096x1024")) {
            const double ms = time_ms(context, [&] {
                const Set& t = next();
                return ne_layernorm_forward(context, &params, t.x, nullptr, gamma, beta, t.y, nullptr, t.mean, t.rstd);
            }, "ne_layernorm_forward");
            report("layernorm_forward_4096x1024", ms, 2 * bytes / (ms * 1e-3) / 1e12, "TB/s");
        }
        // Every set's sum, mean and rstd, which the backward reads, come from this forward.
        const auto residual_forward = [&] {
            const Set& t = next();
            return ne_layernorm_forward(context, &params, t.x, t.residual, gamma, beta, t.y, t.sum, t.mean, t.rstd);
        };
        for (int i = 0; i < sets; ++i) check(residual_forward(), "ne_layernorm_forward (residual)");
        if (selected("layernorm_residual_forward_4096x1024")) {
            const double ms = time_ms(context, residual_forward, "ne_layernorm_forward (residual)");
            report("layernorm_residual_forward_4096x1024", ms, 4 * bytes / (ms * 1e-3) / 1e12, "TB/s");
        }
        if (selected("layernorm_backward_4096x1024")) {
            const double ms = time_ms(context, [&] {
                const Set& t = next();
                return ne_layernorm_backward(context, &params, t.dy, nullptr, t.sum, gamma, t.mean, t.rstd, t.dx, dgamma, dbeta);
            }, "ne_layernorm_backward");
            report("layernorm_backward_4096x1024", ms, 3 * bytes / (ms * 1e-3) / 1e12, "TB/s");
        }
        for (const Set& t : rotation) {
            for (ne_tensor* each : {t.x, t.residual, t.y, t.sum, t.mean, t.rstd, t.dy, t.dx}) ne_tensor_destroy(each);
        }
        for (ne_tensor* t : {gamma, beta, dgamma, dbeta}) ne_tensor_destroy(t);
    }

    // GEMMs at 4096^3: int8 (int32 output, and f32 with the dequantizing epilogue), f32 and bf16.
    if (selected("gemm_int8_i32_4096") || selected("gemm_int8_f32_4096") || selected("gemm_f32_4096") ||
        selected("gemm_tf32_4096") || selected("gemm_bf16_4096")) {
        const int64_t n = scaled(4096, 64);
        const double operations = 2.0 * static_cast<double>(n) * n * n;
        ne_tensor* a = tensor(context, NE_DTYPE_I8, {n, n});
        ne_tensor* b = tensor(context, NE_DTYPE_I8, {n, n});
        check(ne_tensor_fill(a, 3.0), "ne_tensor_fill");
        check(ne_tensor_fill(b, -2.0), "ne_tensor_fill");
        ne_tensor* acc = tensor(context, NE_DTYPE_I32, {n, n});
        ne_tensor* c = tensor(context, NE_DTYPE_F32, {n, n});
        ne_tensor* scales = random_tensor(context, {n}, 6);
        double ms = time_ms(context, [&] { return ne_gemm_int8(context, a, b, nullptr, nullptr, nullptr, acc); }, "ne_gemm_int8 (i32)");
        report("gemm_int8_i32_4096", ms, operations / (ms * 1e-3) / 1e12, "TOPS");
        ms = time_ms(context, [&] { return ne_gemm_int8(context, a, b, scales, scales, scales, c); }, "ne_gemm_int8 (f32)");
        report("gemm_int8_f32_4096", ms, operations / (ms * 1e-3) / 1e12, "TOPS");
        ne_tensor* fa = random_tensor(context, {n, n}, 7);
        ne_tensor* fb = random_tensor(context, {n, n}, 8);
        const ne_gemm_params params{sizeof(ne_gemm_params), 0, 1, 1.0f, 0.0f, 0};
        ms = time_ms(context, [&] { return ne_gemm(context, &params, fa, fb, c); }, "ne_gemm (f32)");
        report("gemm_f32_4096", ms, operations / (ms * 1e-3) / 1e12, "TFLOP/s");
        const ne_gemm_params tf32{sizeof(ne_gemm_params), 0, 1, 1.0f, 0.0f, 1};
        ms = time_ms(context, [&] { return ne_gemm(context, &tf32, fa, fb, c); }, "ne_gemm (f32, allow_tf32)");
        report("gemm_tf32_4096", ms, operations / (ms * 1e-3) / 1e12, "TFLOP/s");
        ne_tensor* ha = tensor(context, NE_DTYPE_BF16, {n, n});
        ne_tensor* hb = tensor(context, NE_DTYPE_BF16, {n, n});
        ne_tensor* hc = tensor(context, NE_DTYPE_BF16, {n, n});
        check(ne_tensor_fill(ha, 0.5), "ne_tensor_fill");
        check(ne_tensor_fill(hb, -0.25), "ne_tensor_fill");
        ms = time_ms(context, [&] { return ne_gemm(context, &params, ha, hb, hc); }, "ne_gemm (bf16)");
        report("gemm_bf16_4096", ms, operations / (ms * 1e-3) / 1e12, "TFLOP/s");
        for (ne_tensor* t : {a, b, acc, c, scales, fa, fb, ha, hb, hc}) ne_tensor_destroy(t);
    }

    // Flash attention, bf16 [B, T, H, D], T = 4096, forward and backward (deterministic, and with
    // atomic adds into dq: params.allow_atomics), causal and not. FLOPs
    // of exact attention: 4 B H T^2 D forward (two products), 2.5 times that backward (five),
    // halved under causal masking; the same counts as torch_bench.py.
    for (const auto& shape : {std::vector<int64_t>{2, 16, 128}, std::vector<int64_t>{2, 32, 64}}) {
        const int64_t B = shape[0], T = scaled(4096, 80), H = shape[1], D = shape[2];
        ne_tensor* q = random_bf16_tensor(context, {B, T, H, D}, 11);
        ne_tensor* k = random_bf16_tensor(context, {B, T, H, D}, 12);
        ne_tensor* v = random_bf16_tensor(context, {B, T, H, D}, 13);
        ne_tensor* dout = random_bf16_tensor(context, {B, T, H, D}, 14);
        ne_tensor* out = tensor(context, NE_DTYPE_BF16, {B, T, H, D});
        ne_tensor* lse = tensor(context, NE_DTYPE_F32, {B, H, T});
        ne_tensor* dq = tensor(context, NE_DTYPE_BF16, {B, T, H, D});
        ne_tensor* dk = tensor(context, NE_DTYPE_BF16, {B, T, H, D});
        ne_tensor* dv = tensor(context, NE_DTYPE_BF16, {B, T, H, D});
        for (const int causal : {0, 1}) {
            const ne_attention_params params{sizeof(ne_attention_params), 0.0f, causal, 0};
            const ne_attention_params atomic_params{sizeof(ne_attention_params), 0.0f, causal, 1};
            const double forward_flops = 4.0 * B * H * static_cast<double>(T) * T * D / (causal ? 2.0 : 1.0);
            const std::string name = "attention_bf16_b" + std::to_string(B) + "_h" + std::to_string(H) + "_d" + std::to_string(D) +
                                     "_t" + std::to_string(T) + (causal ? "_causal" : "");
            if (!selected(name)) continue;
            double ms = time_ms(context, [&] { return ne_attention_forward(context, &params, q, k, v, nullptr, out, lse); },
                                "ne_attention_forward");
            report((name + "_forward").c_str(), ms, forward_flops / (ms * 1e-3) / 1e12, "TFLOP/s");
            ms = time_ms(context,
                         [&] { return ne_attention_backward(context, &params, q, k, v, nullptr, out, lse, dout, dq, dk, dv); },
                         "ne_attention_backward");
            report((name + "_backward").c_str(), ms, 2.5 * forward_flops / (ms * 1e-3) / 1e12, "TFLOP/s");
            // One pass with dq summed by atomic adds, as PyTorch's default backward does.
            ms = time_ms(context,
                         [&] { return ne_attention_backward(context, &atomic_params, q, k, v, nullptr, out, lse, dout, dq, dk, dv); },
                         "ne_attention_backward (atomic dq)");
            report((name + "_backward_atomic").c_str(), ms, 2.5 * forward_flops / (ms * 1e-3) / 1e12, "TFLOP/s");
        }
        for (ne_tensor* t : {q, k, v, dout, out, lse, dq, dk, dv}) ne_tensor_destroy(t);
    }

    // Decoding one token against a bf16 key/value cache: B = 4, H = 32 over Hkv = 8, D = 128, 8192
    // cached keys; the rate is the cache bytes read per second. The 128 MiB of cache is rotated
    // over like LayerNorm's tensors, so that it is read from memory.
    if (selected("attention_bf16_decode_b4_h32_kv8_d128_t8192")) {
        const int64_t B = 4, H = 32, Hkv = 8, D = 128, Tk = scaled(8192, 300);
        const double bytes = 2.0 * B * Tk * Hkv * D * 2;
        ne_tensor* q = random_bf16_tensor(context, {B, 1, H, D}, 21);
        ne_tensor* out = tensor(context, NE_DTYPE_BF16, {B, 1, H, D});
        std::vector<std::pair<ne_tensor*, ne_tensor*>> caches;
        for (int i = 0, sets = rotation_sets(info, bytes); i < sets; ++i) {
            const uint64_t seed = 22 + 2 * static_cast<uint64_t>(i);
            caches.emplace_back(random_bf16_tensor(context, {B, Tk, Hkv, D}, seed),
                                random_bf16_tensor(context, {B, Tk, Hkv, D}, seed + 1));
        }
        const ne_attention_params params{sizeof(ne_attention_params), 0.0f, 1, 0};
        size_t call = 0;
        const double ms = time_ms(context, [&] {
            const auto [k, v] = caches[call++ % caches.size()];
            return ne_attention_forward(context, &params, q, k, v, nullptr, out, nullptr);
        }, "ne_attention_forward (decode)");
        report("attention_bf16_decode_b4_h32_kv8_d128_t8192", ms, bytes / (ms * 1e-3) / 1e12, "TB/s");
        for (const auto& [k, v] : caches) {
            ne_tensor_destroy(k);
            ne_tensor_destroy(v);
        }
        for (ne_tensor* t : {q, out}) ne_tensor_destroy(t);
    }

    check(ne_context_destroy(context), "ne_context_destroy");
    return 0;
}
