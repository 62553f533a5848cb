// The CUDA backend as each library build and machine offers it: the CPU library refuses CUDA
// contexts and names the library that has them; the CUDA library without a driver or device
// refuses them cleanly (no crash, nothing leaked); with a device, contexts, memory and copies
// behave as on the CPU, tensors stay with their context, and operations not yet ported are
// refused by name. The kernels themselves run against their references in each kernel suite,
// whose configurations include the device (test_support.hpp).
#include "test_support.hpp"

#include <dlfcn.h>

#include <limits>
#include <numeric>

using namespace ne_test;

namespace {

ne_status create_cuda_context(int32_t device_index, ne_context** out) {
    ne_context_options options{};
    options.struct_size = sizeof options;
    options.backend = NE_BACKEND_CUDA;
    options.device_index = device_index;
    return ne_context_create(&options, out);
}

ne_memory_stats global_stats() {
    ne_memory_stats stats{};
    stats.struct_size = sizeof stats;
    check(ne_get_memory_stats(&stats), "ne_get_memory_stats");
    return stats;
}

bool has_cuda_device() {
    const ne_system_info info = system_info();
    return info.cuda_compiled != 0 && info.cuda_device_count > 0;
}

Context cuda_context() {
    ne_context* context = nullptr;
    check(create_cuda_context(0, &context), "ne_context_create (CUDA)");
    return Context(context);
}

}  // namespace

TEST(CudaBackend, UnavailableWithoutTheCudaLibraryOrADevice) {
    const ne_system_info info = system_info();
    if (info.cuda_compiled != 0 && info.cuda_device_count > 0) GTEST_SKIP() << "a CUDA device is present";
    const ne_memory_stats before = global_stats();
    ne_context* context = nullptr;
    const ne_status status = create_cuda_context(0, &context);
    if (info.cuda_compiled == 0) {
        EXPECT_TRUE(fails_with(status, NE_STATUS_BACKEND_UNAVAILABLE, {"ne_context_create", "libnativeengine_cuda"}));
        EXPECT_EQ(info.cuda_device_count, 0);
    } else {
        EXPECT_TRUE(fails_with(status, NE_STATUS_BACKEND_UNAVAILABLE, {"ne_context_create", "no CUDA device"}));
    }
    EXPECT_EQ(context, nullptr);
    const ne_memory_stats after = global_stats();
    EXPECT_EQ(after.live_contexts, before.live_contexts);
    EXPECT_EQ(after.live_bytes, before.live_bytes);
}

TEST(CudaBackend, DeviceIndexIsValidated) {
    if (!has_cuda_device()) GTEST_SKIP() << "no CUDA device";
    ne_context* context = nullptr;
    EXPECT_TRUE(fails_with(create_cuda_context(-1, &context), NE_STATUS_INVALID_ARGUMENT, {"device_index", "-1"}));
    EXPECT_TRUE(fails_with(create_cuda_context(system_info().cuda_device_count, &context), NE_STATUS_INVALID_ARGUMENT,
                           {"device_index", "CUDA device"}));
    EXPECT_EQ(context, nullptr);
}

TEST(CudaBackend, ContextDescribesTheDevice) {
    if (!has_cuda_device()) GTEST_SKIP() << "no CUDA device";
    Context context = cuda_context();
    ne_context_info info{};
    info.struct_size = sizeof info;
    NE_ASSERT_OK(ne_context_get_info(context.get(), &info));
    EXPECT_EQ(info.backend, NE_BACKEND_CUDA);
    EXPECT_EQ(info.device_index, 0);
    EXPECT_STRNE(info.device_name, "");
    // The library's kernels are built for sm_80 and later.
    EXPECT_GE(info.compute_capability, 80);
    EXPECT_GT(info.multiprocessor_count, 0);
    EXPECT_GT(info.l2_cache_bytes, 0);
    EXPECT_GT(info.memory_bytes, info.l2_cache_bytes);
    NE_EXPECT_OK(ne_context_synchronize(context.get()));
}

TEST(CudaBackend, MemoryIsZeroedCountedAndReleased) {
    if (!has_cuda_device()) GTEST_SKIP() << "no CUDA device";
    const ne_memory_stats before = global_stats();
    {
        Context context = cuda_context();
        Tensor tensor = make_tensor(context.get(), NE_DTYPE_F32, {3, 5});
        EXPECT_EQ(read<float>(tensor.get()), std::vector<float>(15, 0.0f));
        ne_memory_stats stats{};
        stats.struct_size = sizeof stats;
        NE_ASSERT_OK(ne_context_get_memory_stats(context.get(), &stats));
        EXPECT_EQ(stats.live_tensors, 1);
        EXPECT_EQ(stats.live_allocations, 1);
        EXPECT_EQ(stats.live_bytes, 60);
    }
    const ne_memory_stats after = global_stats();
    EXPECT_EQ(after.live_contexts, before.live_contexts);
    EXPECT_EQ(after.live_allocations, before.live_allocations);
    EXPECT_EQ(after.live_bytes, before.live_bytes);
}

TEST(CudaBackend, WritesReadsFillsAndStridedCopies) {
    if (!has_cuda_device()) GTEST_SKIP() << "no CUDA device";
    Context cuda = cuda_context();
    Context cpu = make_cpu_context();
    std::vector<float> values(4 * 6);
    std::iota(values.begin(), values.end(), 1.0f);
    Tensor device = make_tensor(cuda.get(), NE_DTYPE_F32, {4, 6}, values);
    EXPECT_EQ(read<float>(device.get()), values);

    // A transposed view of device memory, copied to the host, device and host again.
    const int64_t shape[] = {6, 4}, strides[] = {1, 6};
    ne_tensor* raw = nullptr;
    NE_ASSERT_OK(ne_tensor_view(device.get(), 0, 2, shape, strides, &raw));
    Tensor transposed(raw);
    std::vector<float> expected(24);
    for (int r = 0; r < 6; ++r) {
        for (int c = 0; c < 4; ++c) expected[static_cast<size_t>(r * 4 + c)] = values[static_cast<size_t>(c * 6 + r)];
    }
    Tensor on_host = make_tensor(cpu.get(), NE_DTYPE_F32, {6, 4});
    NE_ASSERT_OK(ne_tensor_copy(on_host.get(), transposed.get()));
    EXPECT_EQ(read<float>(on_host.get()), expected);
    Tensor on_device = make_tensor(cuda.get(), NE_DTYPE_F32, {6, 4});
    NE_ASSERT_OK(ne_tensor_copy(on_device.get(), transposed.get()));
    EXPECT_EQ(read<float>(on_device.get()), expected);

    // Host strided view into device strided view.
    Tensor host_source = make_tensor(cpu.get(), NE_DTYPE_F32, {4, 6}, values);
    ne_tensor* host_raw = nullptr;
    NE_ASSERT_OK(ne_tensor_view(host_source.get(), 0, 2, shape, strides, &host_raw));
    Tensor host_transposed(host_raw);
    Tensor device_target = make_tensor(cuda.get(), NE_DTYPE_F32, {4, 6});
    ne_tensor* target_raw = nullptr;
    NE_ASSERT_OK(ne_tensor_view(device_target.get(), 0, 2, shape, strides, &target_raw));
    Tensor target_view(target_raw);
    NE_ASSERT_OK(ne_tensor_copy(target_view.get(), host_transposed.get()));
    EXPECT_EQ(read<float>(device_target.get()), values);

    NE_ASSERT_OK(ne_tensor_fill(transposed.get(), -2.5));
    EXPECT_EQ(read<float>(device.get()), std::vector<float>(24, -2.5f));
    Tensor integers = make_tensor(cuda.get(), NE_DTYPE_I8, {7});
    NE_ASSERT_OK(ne_tensor_fill(integers.get(), -3.0));
    EXPECT_EQ(read<int8_t>(integers.get()), std::vector<int8_t>(7, -3));
}

// Strided copies and fills move elements of their own size: 2-byte (bf16) and 1-byte (int8)
// transposes on the device, and a fill of a strided 2-byte view.
TEST(CudaBackend, StridedCopiesAndFillsOfNarrowElements) {
    if (!has_cuda_device()) GTEST_SKIP() << "no CUDA device";
    Context cuda = cuda_context();
    const int64_t shape[] = {5, 3}, strides[] = {1, 5};
    std::vector<uint16_t> halves(15);
    std::vector<int8_t> bytes(15);
    for (int i = 0; i < 15; ++i) {
        halves[static_cast<size_t>(i)] = static_cast<uint16_t>(0x3f80 + i);  // bf16 1.0 and up
        bytes[static_cast<size_t>(i)] = static_cast<int8_t>(i - 7);
    }
    std::vector<uint16_t> halves_transposed(15);
    std::vector<int8_t> bytes_transposed(15);
    for (int r = 0; r < 5; ++r) {
        for (int c = 0; c < 3; ++c) {
            halves_transposed[static_cast<size_t>(r * 3 + c)] = halves[static_cast<size_t>(c * 5 + r)];
            bytes_transposed[static_cast<size_t>(r * 3 + c)] = bytes[static_cast<size_t>(c * 5 + r)];
        }
    }
    Tensor half_source = make_tensor(cuda.get(), NE_DTYPE_BF16, {3, 5}, halves);
    Tensor byte_source = make_tensor(cuda.get(), NE_DTYPE_I8, {3, 5}, bytes);
    ne_tensor* raw = nullptr;
    NE_ASSERT_OK(ne_tensor_view(half_source.get(), 0, 2, shape, strides, &raw));
    Tensor half_view(raw);
    NE_ASSERT_OK(ne_tensor_view(byte_source.get(), 0, 2, shape, strides, &raw));
    Tensor byte_view(raw);
    Tensor half_target = make_tensor(cuda.get(), NE_DTYPE_BF16, {5, 3});
    Tensor byte_target = make_tensor(cuda.get(), NE_DTYPE_I8, {5, 3});
    NE_ASSERT_OK(ne_tensor_copy(half_target.get(), half_view.get()));
    NE_ASSERT_OK(ne_tensor_copy(byte_target.get(), byte_view.get()));
    EXPECT_EQ(read<uint16_t>(half_target.get()), halves_transposed);
    EXPECT_EQ(read<int8_t>(byte_target.get()), bytes_transposed);

    NE_ASSERT_OK(ne_tensor_fill(half_view.get(), -2.0));
    EXPECT_EQ(read<uint16_t>(half_source.get()), std::vector<uint16_t>(15, 0xc000));  // bf16 -2.0
}

TEST(CudaBackend, TensorsStayWithTheirContext) {
    if (!has_cuda_device()) GTEST_SKIP() << "no CUDA device";
    Context cuda = cuda_context();
    Context cpu = make_cpu_context();
    Tensor x = make_tensor(cpu.get(), NE_DTYPE_F32, {2, 8});
    Tensor y = make_tensor(cuda.get(), NE_DTYPE_F32, {2, 8});
    EXPECT_TRUE(fails_with(ne_gelu_forward(cuda.get(), x.get(), y.get()), NE_STATUS_CONTEXT_MISMATCH, {"'x'"}));
    EXPECT_TRUE(fails_with(ne_gelu_forward(cpu.get(), x.get(), y.get()), NE_STATUS_CONTEXT_MISMATCH, {"'y'"}));
}

ne_context_activity activity(ne_context* context) {
    ne_context_activity value{};
    value.struct_size = sizeof value;
    check(ne_context_get_activity(context, &value), "ne_context_get_activity");
    return value;
}

// Ids, targets, inputs to quantize and key lengths are checked by the device while the host goes
// on: the call succeeds, the next wait reports the first failure with the call's name, and the
// context works on afterwards.
TEST(CudaBackend, DataChecksReportAtTheNextWait) {
    if (!has_cuda_device()) GTEST_SKIP() << "no CUDA device";
    Context cuda = cuda_context();
    ne_context* ctx = cuda.get();
    Tensor table = make_tensor(ctx, NE_DTYPE_F32, {4, 3}, random_floats(12, 1));
    Tensor bad_ids = make_tensor(ctx, NE_DTYPE_I32, {5}, std::vector<int32_t>{0, 3, 1, 7, -1});
    Tensor good_ids = make_tensor(ctx, NE_DTYPE_I32, {5}, std::vector<int32_t>{0, 3, 1, 2, 2});
    Tensor out = make_tensor(ctx, NE_DTYPE_F32, {5, 3});

    NE_ASSERT_OK(ne_embedding_forward(ctx, table.get(), bad_ids.get(), out.get()));
    EXPECT_EQ(activity(ctx).pending_checks, 1);
    EXPECT_TRUE(fails_with(ne_context_synchronize(ctx), NE_STATUS_INVALID_ARGUMENT,
                           {"ne_context_synchronize: ne_embedding_forward: argument 'ids': element 3 is 7",
                            "expected a value in [0, 4)", "after that call had returned"}));
    EXPECT_EQ(activity(ctx).pending_checks, 0);
    NE_ASSERT_OK(ne_embedding_forward(ctx, table.get(), good_ids.get(), out.get()));
    NE_EXPECT_OK(ne_context_synchronize(ctx));

    // The first failure in queue order is reported, by a read as well; later ones are dropped.
    Tensor dtable = make_tensor(ctx, NE_DTYPE_F32, {4, 3});
    NE_ASSERT_OK(ne_embedding_backward(ctx, bad_ids.get(), out.get(), dtable.get(), 0));
    NE_ASSERT_OK(ne_embedding_forward(ctx, table.get(), bad_ids.get(), out.get()));
    std::vector<float> host(12);
    EXPECT_TRUE(fails_with(ne_tensor_read(dtable.get(), host.data(), host.size() * sizeof(float)), NE_STATUS_INVALID_ARGUMENT,
                           {"ne_tensor_read: ne_embedding_backward: argument 'ids': element 3 is 7"}));
    NE_EXPECT_OK(ne_context_synchronize(ctx));

    // Non-finite input to quantize, and key lengths past Tk.
    std::vector<float> values = random_floats(2 * 5, 2);
    values[7] = std::numeric_limits<float>::quiet_NaN();
    Tensor x = make_tensor(ctx, NE_DTYPE_F32, {2, 5}, values);
    Tensor q = make_tensor(ctx, NE_DTYPE_I8, {2, 5});
    Tensor scales = make_tensor(ctx, NE_DTYPE_F32, {2});
    NE_ASSERT_OK(ne_quantize_int8(ctx, NE_QUANT_AXIS_PER_ROW, x.get(), q.get(), scales.get()));
    EXPECT_TRUE(fails_with(ne_context_synchronize(ctx), NE_STATUS_INVALID_ARGUMENT,
                           {"ne_quantize_int8: argument 'x' contains a non-finite value (nan) at [1, 2]"}));
    const int64_t B = 2, T = 3, H = 1, D = 4;
    Tensor qkv = make_tensor(ctx, NE_DTYPE_F32, {B, T, H, D}, random_floats(static_cast<size_t>(B * T * H * D), 3));
    Tensor attention_out = make_tensor(ctx, NE_DTYPE_F32, {B, T, H, D});
    Tensor lengths = make_tensor(ctx, NE_DTYPE_I32, {B}, std::vector<int32_t>{3, 4});
    ne_attention_params params{};
    params.struct_size = sizeof params;
    NE_ASSERT_OK(ne_attention_forward(ctx, &params, qkv.get(), qkv.get(), qkv.get(), lengths.get(), attention_out.get(), nullptr));
    EXPECT_TRUE(fails_with(ne_context_synchronize(ctx), NE_STATUS_INVALID_ARGUMENT,
                           {"ne_attention_forward: argument 'key_lengths': element 1 is 4", "[0, 3]"}));
}

// Uploads and data checks do not make the host wait: a loop of them counts no host wait, until
// the checks fill their 1024 slots of device memory (one wait) or a read (one more).
// The SIMT emulator's count of CUDA runtime calls that block the host (tests/emulator/runtime.cpp),
// or -1 outside it: a check of "no wait" that does not rest on the library's own count.
int64_t emulator_host_blocking_calls() {
    using Count = int64_t (*)();
    const auto count = reinterpret_cast<Count>(dlsym(RTLD_DEFAULT, "simt_host_blocking_calls"));
    return count ? count() : -1;
}

TEST(CudaBackend, UploadsAndChecksDoNotWait) {
    if (!has_cuda_device()) GTEST_SKIP() << "no CUDA device";
    Context cuda = cuda_context();
    ne_context* ctx = cuda.get();
    Tensor table = make_tensor(ctx, NE_DTYPE_F32, {16, 8}, random_floats(128, 4));
    Tensor ids = make_tensor(ctx, NE_DTYPE_I32, {32});
    Tensor out = make_tensor(ctx, NE_DTYPE_F32, {32, 8});
    NE_ASSERT_OK(ne_context_synchronize(ctx));
    const int64_t waits = activity(ctx).host_waits;
    const int64_t blocking_calls = emulator_host_blocking_calls();
    std::vector<int32_t> host_ids(32);
    for (int step = 0; step < 1000; ++step) {
        for (size_t i = 0; i < host_ids.size(); ++i) host_ids[i] = static_cast<int32_t>((i * 7 + static_cast<size_t>(step)) % 16);
        NE_ASSERT_OK(ne_tensor_write(ids.get(), host_ids.data(), host_ids.size() * sizeof(int32_t)));
        NE_ASSERT_OK(ne_embedding_forward(ctx, table.get(), ids.get(), out.get()));
    }
    EXPECT_EQ(activity(ctx).host_waits, waits);
    EXPECT_EQ(activity(ctx).pending_checks, 1000);
    EXPECT_EQ(emulator_host_blocking_calls(), blocking_calls) << "a CUDA runtime call made the host wait";
    for (int step = 0; step < 30; ++step) NE_ASSERT_OK(ne_embedding_forward(ctx, table.get(), ids.get(), out.get()));
    EXPECT_EQ(activity(ctx).host_waits, waits + 1);
    EXPECT_EQ(activity(ctx).pending_checks, 30 - (1024 - 1000));
    const std::vector<float> rows = read<float>(out.get());
    EXPECT_EQ(activity(ctx).host_waits, waits + 2);
    const std::vector<float> table_values = read<float>(table.get());
    for (size_t n = 0; n < host_ids.size(); ++n) {
        for (size_t c = 0; c < 8; ++c) EXPECT_EQ(rows[n * 8 + c], table_values[static_cast<size_t>(host_ids[n]) * 8 + c]);
    }
}
