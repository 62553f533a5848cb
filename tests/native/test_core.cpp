// The core of the C ABI: versions, errors, contexts, tensors, views, copies and live counters.
#include "test_support.hpp"

#include <cstddef>
#include <cstring>
#include <limits>
#include <thread>

using namespace ne_test;

TEST(Abi, VersionMatchesHeader) { EXPECT_EQ(ne_abi_version(), static_cast<uint32_t>(NE_ABI_VERSION)); }

TEST(Abi, StatusStringsNameEveryCode) {
    EXPECT_STREQ(ne_status_string(NE_STATUS_OK), "NE_STATUS_OK");
    EXPECT_STREQ(ne_status_string(NE_STATUS_SHAPE_MISMATCH), "NE_STATUS_SHAPE_MISMATCH");
    EXPECT_STREQ(ne_status_string(NE_STATUS_INTERNAL_ERROR), "NE_STATUS_INTERNAL_ERROR");
    EXPECT_STREQ(ne_status_string(static_cast<ne_status>(999)), "NE_STATUS_UNKNOWN");
}

TEST(Abi, SystemInfoReportsThisMachine) {
    ne_system_info info{};
    info.struct_size = sizeof info;
    NE_ASSERT_OK(ne_get_system_info(&info));
    EXPECT_GE(info.best_simd_level, NE_SIMD_LEVEL_SCALAR);
    EXPECT_GE(info.hardware_threads, 1);
    // 1 in libnativeengine_cuda (tests linked to it: nativeengine_cuda_tests), else 0.
    EXPECT_TRUE(info.cuda_compiled == 0 || info.cuda_compiled == 1) << info.cuda_compiled;
    EXPECT_GE(info.cuda_device_count, 0);
    if (info.cuda_compiled == 0) {
        EXPECT_EQ(info.cuda_device_count, 0);
    }
    EXPECT_STRNE(info.version, "");
}

TEST(Abi, InfoStructOfOlderVersionIsWrittenOnlyUpToItsSize) {
    // A caller compiled against a header whose ne_system_info ended after best_simd_level.
    struct OlderInfo {
        uint32_t struct_size;
        ne_simd_level best_simd_level;
        uint32_t guard;
    } older{};
    older.struct_size = 8;
    older.guard = 0xabcdef01u;
    EXPECT_TRUE(fails_with(ne_get_system_info(reinterpret_cast<ne_system_info*>(&older)),
                           NE_STATUS_VERSION_MISMATCH, {"out_info", "struct_size is 8"}));
    EXPECT_EQ(older.guard, 0xabcdef01u);
}

TEST(Abi, NullOutputsAreRefused) {
    EXPECT_TRUE(fails_with(ne_get_system_info(nullptr), NE_STATUS_NULL_POINTER, {"ne_get_system_info", "out_info"}));
    EXPECT_TRUE(fails_with(ne_get_memory_stats(nullptr), NE_STATUS_NULL_POINTER, {"out_stats"}));
}

TEST(Abi, LastErrorIsPerThread) {
    EXPECT_NE(ne_context_create(nullptr, nullptr), NE_STATUS_OK);
    const std::string here = ne_last_error();
    std::string there;
    std::thread other([&] {
        ne_tensor_create(nullptr, NE_DTYPE_F32, 0, nullptr, nullptr);
        there = ne_last_error();
    });
    other.join();
    EXPECT_NE(here.find("ne_context_create"), std::string::npos);
    EXPECT_NE(there.find("ne_tensor_create"), std::string::npos);
    EXPECT_EQ(std::string(ne_last_error()), here);
}

TEST(Context, CreatesCpuContextWithRequestedThreads) {
    Context context = make_cpu_context(3, NE_SIMD_LEVEL_SCALAR);
    ne_context_info info{};
    info.struct_size = sizeof info;
    NE_ASSERT_OK(ne_context_get_info(context.get(), &info));
    EXPECT_EQ(info.backend, NE_BACKEND_CPU);
    EXPECT_EQ(info.num_threads, 3);
    EXPECT_EQ(info.simd_level, NE_SIMD_LEVEL_SCALAR);
    EXPECT_STRNE(info.device_name, "");
    EXPECT_EQ(info.compute_capability, 0);
    EXPECT_EQ(info.multiprocessor_count, 0);
    EXPECT_EQ(info.l2_cache_bytes, 0);
    EXPECT_EQ(info.memory_bytes, 0);
    NE_EXPECT_OK(ne_context_synchronize(context.get()));
}

// A caller built before the device properties joined ne_context_info passes the shorter struct:
// it is filled up to its size and not a byte further; a size below that is refused.
TEST(Context, InfoServesTheStructOfEarlierCallers) {
    Context context = make_cpu_context(2, NE_SIMD_LEVEL_SCALAR);
    ne_context_info info{};
    std::memset(&info, 0x5a, sizeof info);
    info.struct_size = offsetof(ne_context_info, compute_capability);
    NE_ASSERT_OK(ne_context_get_info(context.get(), &info));
    EXPECT_EQ(info.num_threads, 2);
    EXPECT_STRNE(info.device_name, "");
    EXPECT_EQ(info.compute_capability, 0x5a5a5a5a);
    EXPECT_EQ(info.memory_bytes, 0x5a5a5a5a5a5a5a5a);
    info.struct_size = offsetof(ne_context_info, compute_capability) - 4;
    EXPECT_TRUE(fails_with(ne_context_get_info(context.get(), &info), NE_STATUS_VERSION_MISMATCH,
                           {"ne_context_get_info", "'out_info'", "struct_size"}));
}

// The CPU never queues work: no host waits, no pending checks; the struct's size is validated.
TEST(Context, ActivityOfACpuContextIsZero) {
    Context context = make_cpu_context();
    ne_context_activity activity{};
    activity.struct_size = sizeof activity;
    activity.host_waits = -5;
    NE_ASSERT_OK(ne_context_get_activity(context.get(), &activity));
    EXPECT_EQ(activity.host_waits, 0);
    EXPECT_EQ(activity.pending_checks, 0);
    activity.struct_size = sizeof activity + 8;
    EXPECT_TRUE(fails_with(ne_context_get_activity(context.get(), &activity), NE_STATUS_VERSION_MISMATCH,
                           {"ne_context_get_activity", "'out_activity'", "struct_size"}));
    EXPECT_TRUE(fails_with(ne_context_get_activity(nullptr, &activity), NE_STATUS_NULL_POINTER, {"'context'"}));
    EXPECT_TRUE(fails_with(ne_context_get_activity(context.get(), nullptr), NE_STATUS_NULL_POINTER, {"'out_activity'"}));
}

TEST(Context, AutoPicksBestLevelAndAllThreads) {
    Context context = make_cpu_context(0, NE_SIMD_LEVEL_AUTO);
    ne_context_info info{};
    info.struct_size = sizeof info;
    NE_ASSERT_OK(ne_context_get_info(context.get(), &info));
    ne_system_info system{};
    system.struct_size = sizeof system;
    NE_ASSERT_OK(ne_get_system_info(&system));
    EXPECT_EQ(info.simd_level, system.best_simd_level);
    EXPECT_EQ(info.num_threads, system.hardware_threads);
}

TEST(Context, RejectsInvalidOptions) {
    ne_context* context = nullptr;
    ne_context_options options{};
    options.struct_size = sizeof options;

    EXPECT_TRUE(fails_with(ne_context_create(nullptr, &context), NE_STATUS_NULL_POINTER, {"options"}));
    EXPECT_TRUE(fails_with(ne_context_create(&options, nullptr), NE_STATUS_NULL_POINTER, {"out_context"}));

    ne_context_options bad = options;
    bad.struct_size = 3;
    EXPECT_TRUE(fails_with(ne_context_create(&bad, &context), NE_STATUS_VERSION_MISMATCH, {"struct_size is 3"}));

    bad = options;
    bad.backend = static_cast<ne_backend>(7);
    EXPECT_TRUE(fails_with(ne_context_create(&bad, &context), NE_STATUS_INVALID_ARGUMENT, {"backend 7"}));

    bad = options;
    bad.device_index = 1;
    EXPECT_TRUE(fails_with(ne_context_create(&bad, &context), NE_STATUS_INVALID_ARGUMENT, {"device_index is 1"}));

    bad = options;
    bad.num_threads = -2;
    EXPECT_TRUE(fails_with(ne_context_create(&bad, &context), NE_STATUS_INVALID_ARGUMENT, {"num_threads is -2"}));

    bad = options;
    bad.simd_level = static_cast<ne_simd_level>(9);
    EXPECT_TRUE(fails_with(ne_context_create(&bad, &context), NE_STATUS_INVALID_ARGUMENT, {"simd_level 9"}));
    EXPECT_EQ(context, nullptr);
}

TEST(Context, RefusesSimdLevelTheCpuLacks) {
    if (best_simd_level() >= NE_SIMD_LEVEL_AVX512) GTEST_SKIP() << "this CPU has every level";
    ne_context_options options{};
    options.struct_size = sizeof options;
    options.simd_level = NE_SIMD_LEVEL_AVX512;
    ne_context* context = nullptr;
    EXPECT_TRUE(fails_with(ne_context_create(&options, &context), NE_STATUS_UNSUPPORTED, {"avx512", "not supported"}));
}

TEST(Context, DestroyAcceptsNullAndRefusesStaleUse) {
    NE_EXPECT_OK(ne_context_destroy(nullptr));
    Context context = make_cpu_context();
    Tensor keep_alive = make_tensor(context.get(), NE_DTYPE_F32, {4});
    ne_context* raw = context.release();
    NE_ASSERT_OK(ne_context_destroy(raw));
    // The tensor keeps the object alive, but the owner's handle is no longer accepted.
    ne_tensor* tensor = nullptr;
    const int64_t shape[] = {2};
    EXPECT_TRUE(fails_with(ne_tensor_create(raw, NE_DTYPE_F32, 1, shape, &tensor), NE_STATUS_INVALID_HANDLE,
                           {"already destroyed"}));
    EXPECT_TRUE(fails_with(ne_context_destroy(raw), NE_STATUS_INVALID_HANDLE, {"already destroyed"}));
    // The tensor still works after its context's owner let go.
    NE_EXPECT_OK(ne_tensor_fill(keep_alive.get(), 2.0));
    EXPECT_EQ(read<float>(keep_alive.get()), std::vector<float>(4, 2.0f));
}

TEST(Context, WrongHandleTypeIsRefused) {
    Context context = make_cpu_context();
    Tensor tensor = make_tensor(context.get(), NE_DTYPE_F32, {4});
    ne_context_info info{};
    info.struct_size = sizeof info;
    EXPECT_TRUE(fails_with(ne_context_get_info(reinterpret_cast<ne_context*>(tensor.get()), &info),
                           NE_STATUS_INVALID_HANDLE, {"not a live context"}));
}

TEST(Tensor, CreateIsZeroFilledAndReportsLayout) {
    Context context = make_cpu_context();
    Tensor tensor = make_tensor(context.get(), NE_DTYPE_F32, {2, 3, 5});
    ne_tensor_info info{};
    info.struct_size = sizeof info;
    NE_ASSERT_OK(ne_tensor_get_info(tensor.get(), &info));
    EXPECT_EQ(info.dtype, NE_DTYPE_F32);
    EXPECT_EQ(info.rank, 3);
    EXPECT_EQ(info.element_count, 30);
    EXPECT_EQ(info.is_contiguous, 1);
    EXPECT_EQ(info.strides[0], 15);
    EXPECT_EQ(info.strides[1], 5);
    EXPECT_EQ(info.strides[2], 1);
    EXPECT_EQ(read<float>(tensor.get()), std::vector<float>(30, 0.0f));
}

TEST(Tensor, ScalarHasRankZero) {
    Context context = make_cpu_context();
    ne_tensor* raw = nullptr;
    NE_ASSERT_OK(ne_tensor_create(context.get(), NE_DTYPE_I32, 0, nullptr, &raw));
    Tensor scalar(raw);
    NE_ASSERT_OK(ne_tensor_fill(scalar.get(), -7.0));
    EXPECT_EQ(read<int32_t>(scalar.get()), std::vector<int32_t>{-7});
}

TEST(Tensor, CreateRejectsBadArguments) {
    Context context = make_cpu_context();
    ne_tensor* tensor = nullptr;
    const int64_t shape[] = {4, 0};
    EXPECT_TRUE(fails_with(ne_tensor_create(nullptr, NE_DTYPE_F32, 1, shape, &tensor), NE_STATUS_NULL_POINTER, {"context"}));
    EXPECT_TRUE(fails_with(ne_tensor_create(context.get(), static_cast<ne_dtype>(42), 1, shape, &tensor),
                           NE_STATUS_INVALID_ARGUMENT, {"dtype"}));
    EXPECT_TRUE(fails_with(ne_tensor_create(context.get(), NE_DTYPE_F32, 9, shape, &tensor), NE_STATUS_INVALID_ARGUMENT,
                           {"rank", "0..8"}));
    EXPECT_TRUE(fails_with(ne_tensor_create(context.get(), NE_DTYPE_F32, -1, shape, &tensor), NE_STATUS_INVALID_ARGUMENT,
                           {"rank"}));
    EXPECT_TRUE(fails_with(ne_tensor_create(context.get(), NE_DTYPE_F32, 2, nullptr, &tensor), NE_STATUS_NULL_POINTER,
                           {"shape"}));
    EXPECT_TRUE(fails_with(ne_tensor_create(context.get(), NE_DTYPE_F32, 2, shape, &tensor), NE_STATUS_INVALID_ARGUMENT,
                           {"dimension 1 is 0", "positive"}));
    EXPECT_TRUE(fails_with(ne_tensor_create(context.get(), NE_DTYPE_F32, 1, shape, nullptr), NE_STATUS_NULL_POINTER,
                           {"out_tensor"}));
    const int64_t huge[] = {int64_t{1} << 40, int64_t{1} << 40};
    EXPECT_TRUE(fails_with(ne_tensor_create(context.get(), NE_DTYPE_F32, 2, huge, &tensor), NE_STATUS_OVERFLOW,
                           {"element count"}));
    const int64_t bytes_overflow[] = {int64_t{1} << 62};
    EXPECT_TRUE(fails_with(ne_tensor_create(context.get(), NE_DTYPE_F32, 1, bytes_overflow, &tensor), NE_STATUS_OVERFLOW,
                           {"byte size"}));
    const int64_t too_big[] = {int64_t{1} << 50};
    EXPECT_TRUE(fails_with(ne_tensor_create(context.get(), NE_DTYPE_I8, 1, too_big, &tensor), NE_STATUS_OUT_OF_MEMORY,
                           {"could not allocate"}));
    EXPECT_EQ(tensor, nullptr);
}

TEST(Tensor, WriteAndReadRoundTripAndCheckSizes) {
    Context context = make_cpu_context();
    Tensor tensor = make_tensor(context.get(), NE_DTYPE_I8, {3, 2});
    const std::vector<int8_t> values{1, -2, 3, -128, 127, 0};
    write(tensor.get(), values);
    EXPECT_EQ(read<int8_t>(tensor.get()), values);
    EXPECT_TRUE(fails_with(ne_tensor_write(tensor.get(), values.data(), 5), NE_STATUS_SHAPE_MISMATCH,
                           {"size_bytes", "expected 6"}));
    EXPECT_TRUE(fails_with(ne_tensor_write(tensor.get(), nullptr, 6), NE_STATUS_NULL_POINTER, {"source"}));
    std::vector<int8_t> out(6);
    EXPECT_TRUE(fails_with(ne_tensor_read(tensor.get(), out.data(), 7), NE_STATUS_SHAPE_MISMATCH, {"expected 6"}));
}

TEST(Tensor, ViewsSeeTheSameMemoryAndOutliveTheirBase) {
    Context context = make_cpu_context();
    std::vector<float> values(24);
    for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i);
    Tensor base = make_tensor(context.get(), NE_DTYPE_F32, {4, 6}, values);

    // Column block [:, 2:5] of the 4x6 matrix: shape [4, 3], strides [6, 1], offset 2.
    const int64_t shape[] = {4, 3};
    const int64_t strides[] = {6, 1};
    ne_tensor* raw = nullptr;
    NE_ASSERT_OK(ne_tensor_view(base.get(), 2, 2, shape, strides, &raw));
    Tensor view(raw);
    base.reset();

    ne_tensor_info info{};
    info.struct_size = sizeof info;
    NE_ASSERT_OK(ne_tensor_get_info(view.get(), &info));
    EXPECT_EQ(info.is_contiguous, 0);
    EXPECT_EQ(info.offset, 2);

    Tensor dense = make_tensor(context.get(), NE_DTYPE_F32, {4, 3});
    NE_ASSERT_OK(ne_tensor_copy(dense.get(), view.get()));
    EXPECT_EQ(read<float>(dense.get()), (std::vector<float>{2, 3, 4, 8, 9, 10, 14, 15, 16, 20, 21, 22}));

    std::vector<float> out(12);
    EXPECT_TRUE(fails_with(ne_tensor_read(view.get(), out.data(), 48), NE_STATUS_UNSUPPORTED, {"contiguous"}));

    NE_ASSERT_OK(ne_tensor_fill(view.get(), -1.0));
    const int64_t whole[] = {24};
    NE_ASSERT_OK(ne_tensor_view(view.get(), 0, 1, whole, nullptr, &raw));
    Tensor all(raw);
    const std::vector<float> after = read<float>(all.get());
    for (int64_t i = 0; i < 24; ++i) {
        const int64_t column = i % 6;
        EXPECT_EQ(after[static_cast<size_t>(i)], column >= 2 && column < 5 ? -1.0f : static_cast<float>(i)) << i;
    }
}

TEST(Tensor, ViewRejectsOutOfBoundsAndBadStrides) {
    Context context = make_cpu_context();
    Tensor base = make_tensor(context.get(), NE_DTYPE_F32, {4, 6});
    ne_tensor* view = nullptr;
    const int64_t shape[] = {4, 6};
    const int64_t strides[] = {6, 1};
    EXPECT_TRUE(fails_with(ne_tensor_view(base.get(), 1, 2, shape, strides, &view), NE_STATUS_SHAPE_MISMATCH,
                           {"reaches element 24", "holds 24"}));
    const int64_t negative[] = {-6, 1};
    EXPECT_TRUE(fails_with(ne_tensor_view(base.get(), 0, 2, shape, negative, &view), NE_STATUS_INVALID_ARGUMENT,
                           {"stride 0 is -6"}));
    EXPECT_TRUE(fails_with(ne_tensor_view(base.get(), -1, 2, shape, strides, &view), NE_STATUS_INVALID_ARGUMENT,
                           {"offset"}));
    const int64_t huge_strides[] = {int64_t{1} << 62, 1};
    EXPECT_TRUE(fails_with(ne_tensor_view(base.get(), 0, 2, shape, huge_strides, &view), NE_STATUS_OVERFLOW, {"view extent"}));
    EXPECT_EQ(view, nullptr);
}

TEST(Tensor, CopyChecksShapeDtypeAndOverlap) {
    Context context = make_cpu_context();
    Tensor a = make_tensor(context.get(), NE_DTYPE_F32, {2, 3});
    Tensor b = make_tensor(context.get(), NE_DTYPE_F32, {3, 2});
    Tensor c = make_tensor(context.get(), NE_DTYPE_I32, {2, 3});
    EXPECT_TRUE(fails_with(ne_tensor_copy(a.get(), b.get()), NE_STATUS_SHAPE_MISMATCH, {"expected shape [3, 2]", "got [2, 3]"}));
    EXPECT_TRUE(fails_with(ne_tensor_copy(c.get(), a.get()), NE_STATUS_DTYPE_MISMATCH, {"expected dtype f32, got i32"}));
    EXPECT_TRUE(fails_with(ne_tensor_copy(a.get(), a.get()), NE_STATUS_INVALID_ARGUMENT, {"overlaps"}));
}

TEST(Tensor, CopyWorksAcrossContexts) {
    Context first = make_cpu_context();
    Context second = make_cpu_context();
    Tensor a = make_tensor(first.get(), NE_DTYPE_I32, {3}, std::vector<int32_t>{4, 5, 6});
    Tensor b = make_tensor(second.get(), NE_DTYPE_I32, {3});
    NE_ASSERT_OK(ne_tensor_copy(b.get(), a.get()));
    EXPECT_EQ(read<int32_t>(b.get()), (std::vector<int32_t>{4, 5, 6}));
}

TEST(Tensor, FillConvertsAndRangeChecksIntegers) {
    Context context = make_cpu_context();
    Tensor i8 = make_tensor(context.get(), NE_DTYPE_I8, {3});
    NE_ASSERT_OK(ne_tensor_fill(i8.get(), -127.4));
    EXPECT_EQ(read<int8_t>(i8.get()), std::vector<int8_t>(3, -127));
    EXPECT_TRUE(fails_with(ne_tensor_fill(i8.get(), 128.0), NE_STATUS_INVALID_ARGUMENT, {"[-128, 127]"}));
    EXPECT_TRUE(fails_with(ne_tensor_fill(i8.get(), std::numeric_limits<double>::quiet_NaN()), NE_STATUS_INVALID_ARGUMENT,
                           {"value"}));

    Tensor bf16 = make_tensor(context.get(), NE_DTYPE_BF16, {2});
    NE_ASSERT_OK(ne_tensor_fill(bf16.get(), 1.0));
    EXPECT_EQ(read<uint16_t>(bf16.get()), std::vector<uint16_t>(2, 0x3f80));
    Tensor f16 = make_tensor(context.get(), NE_DTYPE_F16, {4});
    NE_ASSERT_OK(ne_tensor_fill(f16.get(), -2.5));
    EXPECT_EQ(read<uint16_t>(f16.get()), std::vector<uint16_t>(4, 0xc100));
    NE_ASSERT_OK(ne_tensor_fill(f16.get(), 65520.0));  // halfway past the largest half: rounds to infinity
    EXPECT_EQ(read<uint16_t>(f16.get()), std::vector<uint16_t>(4, 0x7c00));
    NE_ASSERT_OK(ne_tensor_fill(f16.get(), 1.0 / 16777216.0));  // 2^-24, the smallest subnormal
    EXPECT_EQ(read<uint16_t>(f16.get()), std::vector<uint16_t>(4, 0x0001));
}

TEST(Tensor, DestroyAcceptsNullAndRefusesDoubleDestroyOfLiveTypeConfusion) {
    NE_EXPECT_OK(ne_tensor_destroy(nullptr));
    Context context = make_cpu_context();
    EXPECT_TRUE(fails_with(ne_tensor_destroy(reinterpret_cast<ne_tensor*>(context.get())), NE_STATUS_INVALID_HANDLE,
                           {"not a live tensor"}));
}

TEST(Memory, CountersReturnToZero) {
    Context context = make_cpu_context();
    ne_memory_stats stats{};
    stats.struct_size = sizeof stats;
    {
        Tensor a = make_tensor(context.get(), NE_DTYPE_F32, {100});
        const int64_t shape[] = {10};
        ne_tensor* raw = nullptr;
        NE_ASSERT_OK(ne_tensor_view(a.get(), 0, 1, shape, nullptr, &raw));
        Tensor view(raw);
        NE_ASSERT_OK(ne_context_get_memory_stats(context.get(), &stats));
        EXPECT_EQ(stats.live_tensors, 2);
        EXPECT_EQ(stats.live_allocations, 1);
        EXPECT_EQ(stats.live_bytes, 400);
        EXPECT_EQ(stats.live_contexts, 0);
    }
    NE_ASSERT_OK(ne_context_get_memory_stats(context.get(), &stats));
    EXPECT_EQ(stats.live_tensors, 0);
    EXPECT_EQ(stats.live_allocations, 0);
    EXPECT_EQ(stats.live_bytes, 0);
    EXPECT_EQ(stats.peak_bytes, 400);
}

TEST(Memory, GlobalCountersTrackContexts) {
    ne_memory_stats before{}, during{}, after{};
    before.struct_size = during.struct_size = after.struct_size = sizeof(ne_memory_stats);
    NE_ASSERT_OK(ne_get_memory_stats(&before));
    {
        Context context = make_cpu_context();
        Tensor tensor = make_tensor(context.get(), NE_DTYPE_F32, {8});
        NE_ASSERT_OK(ne_get_memory_stats(&during));
    }
    NE_ASSERT_OK(ne_get_memory_stats(&after));
    EXPECT_EQ(during.live_contexts, before.live_contexts + 1);
    EXPECT_EQ(during.live_tensors, before.live_tensors + 1);
    EXPECT_EQ(after.live_contexts, before.live_contexts);
    EXPECT_EQ(after.live_tensors, before.live_tensors);
    EXPECT_EQ(after.live_bytes, before.live_bytes);
}

TEST(Abi, EveryCoreFunctionRefusesNullHandles) {
    ne_context_info context_info{};
    context_info.struct_size = sizeof context_info;
    ne_memory_stats stats{};
    stats.struct_size = sizeof stats;
    ne_tensor_info tensor_info{};
    tensor_info.struct_size = sizeof tensor_info;
    float host[4] = {};
    const int64_t shape[] = {4};
    ne_tensor* out = nullptr;

    EXPECT_TRUE(fails_with(ne_context_get_info(nullptr, &context_info), NE_STATUS_NULL_POINTER, {"ne_context_get_info", "'context'"}));
    EXPECT_TRUE(fails_with(ne_context_synchronize(nullptr), NE_STATUS_NULL_POINTER, {"ne_context_synchronize", "'context'"}));
    EXPECT_TRUE(fails_with(ne_context_get_memory_stats(nullptr, &stats), NE_STATUS_NULL_POINTER, {"'context'"}));
    EXPECT_TRUE(fails_with(ne_tensor_view(nullptr, 0, 1, shape, nullptr, &out), NE_STATUS_NULL_POINTER, {"ne_tensor_view", "'base'"}));
    EXPECT_TRUE(fails_with(ne_tensor_get_info(nullptr, &tensor_info), NE_STATUS_NULL_POINTER, {"'tensor'"}));
    EXPECT_TRUE(fails_with(ne_tensor_write(nullptr, host, sizeof host), NE_STATUS_NULL_POINTER, {"ne_tensor_write", "'tensor'"}));
    EXPECT_TRUE(fails_with(ne_tensor_read(nullptr, host, sizeof host), NE_STATUS_NULL_POINTER, {"ne_tensor_read", "'tensor'"}));
    EXPECT_TRUE(fails_with(ne_tensor_fill(nullptr, 1.0), NE_STATUS_NULL_POINTER, {"ne_tensor_fill", "'tensor'"}));

    Context context = make_cpu_context();
    Tensor tensor = make_tensor(context.get(), NE_DTYPE_F32, {4});
    EXPECT_TRUE(fails_with(ne_context_get_info(context.get(), nullptr), NE_STATUS_NULL_POINTER, {"out_info"}));
    EXPECT_TRUE(fails_with(ne_context_get_memory_stats(context.get(), nullptr), NE_STATUS_NULL_POINTER, {"out_stats"}));
    EXPECT_TRUE(fails_with(ne_tensor_get_info(tensor.get(), nullptr), NE_STATUS_NULL_POINTER, {"out_info"}));
    EXPECT_TRUE(fails_with(ne_tensor_view(tensor.get(), 0, 1, shape, nullptr, nullptr), NE_STATUS_NULL_POINTER, {"out_view"}));
    EXPECT_TRUE(fails_with(ne_tensor_copy(nullptr, tensor.get()), NE_STATUS_NULL_POINTER, {"'destination'"}));
    EXPECT_TRUE(fails_with(ne_tensor_copy(tensor.get(), nullptr), NE_STATUS_NULL_POINTER, {"'source'"}));
    EXPECT_TRUE(fails_with(ne_tensor_read(tensor.get(), nullptr, sizeof host), NE_STATUS_NULL_POINTER, {"'destination'"}));
}

// q, k and v as interleaved views of one fused QKV buffer [B, T, 3, H, D] share no element, so a
// copy between them is allowed; views that do share elements are still refused.
TEST(Tensor, InterleavedViewsOfAFusedBufferAreDisjoint) {
    Context context = make_cpu_context();
    constexpr int64_t B = 2, T = 3, H = 2, D = 4, C = H * D;
    std::vector<float> values(static_cast<size_t>(B * T * 3 * C));
    for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i);
    Tensor qkv = make_tensor(context.get(), NE_DTYPE_F32, {B, T, 3, H, D}, values);
    const int64_t shape[] = {B, T, H, D};
    const int64_t strides[] = {T * 3 * C, 3 * C, D, 1};
    auto view = [&](int64_t offset) {
        ne_tensor* raw = nullptr;
        check(ne_tensor_view(qkv.get(), offset, 4, shape, strides, &raw), "ne_tensor_view");
        return Tensor(raw);
    };
    Tensor q = view(0), k = view(C), v = view(2 * C);

    NE_ASSERT_OK(ne_tensor_copy(k.get(), q.get()));
    NE_ASSERT_OK(ne_tensor_copy(v.get(), k.get()));
    const std::vector<float> after = read<float>(qkv.get());
    for (int64_t row = 0; row < B * T; ++row) {
        for (int64_t c = 0; c < C; ++c) {
            const float q_value = values[static_cast<size_t>(row * 3 * C + c)];
            EXPECT_EQ(after[static_cast<size_t>(row * 3 * C + C + c)], q_value);
            EXPECT_EQ(after[static_cast<size_t>(row * 3 * C + 2 * C + c)], q_value);
        }
    }

    Tensor shifted = view(D);  // head 1 of q's first row is head 0 of this view's: shared elements
    EXPECT_TRUE(fails_with(ne_tensor_copy(shifted.get(), q.get()), NE_STATUS_INVALID_ARGUMENT, {"overlaps"}));
    // Rows 0..T-2 and rows 1..T-1 of q: they share rows 1..T-2.
    const int64_t fewer_rows[] = {B, T - 1, H, D};
    ne_tensor* raw = nullptr;
    NE_ASSERT_OK(ne_tensor_view(qkv.get(), 0, 4, fewer_rows, strides, &raw));
    Tensor first_rows(raw);
    NE_ASSERT_OK(ne_tensor_view(qkv.get(), 3 * C, 4, fewer_rows, strides, &raw));
    Tensor last_rows(raw);
    EXPECT_TRUE(fails_with(ne_tensor_copy(last_rows.get(), first_rows.get()), NE_STATUS_INVALID_ARGUMENT, {"overlaps"}));
}
