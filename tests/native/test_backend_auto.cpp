// NE_BACKEND_AUTO: CUDA device 0 where this library has the CUDA backend and a device is visible,
// the CPU everywhere else (the CPU library; the CUDA library without a driver or device), never
// an error for the lack of a device. The context reports the backend it got, and the options of
// the CPU backend are checked on every machine, whichever backend AUTO picks.
#include "test_support.hpp"

using namespace ne_test;

namespace {

ne_status create_auto_context(int32_t device_index, int32_t num_threads, ne_simd_level simd_level, ne_context** out) {
    ne_context_options options{};
    options.struct_size = sizeof options;
    options.backend = NE_BACKEND_AUTO;
    options.device_index = device_index;
    options.num_threads = num_threads;
    options.simd_level = simd_level;
    return ne_context_create(&options, out);
}

ne_context_info context_info(const ne_context* context) {
    ne_context_info info{};
    info.struct_size = sizeof info;
    check(ne_context_get_info(context, &info), "ne_context_get_info");
    return info;
}

}  // namespace

TEST(BackendAuto, PicksCudaExactlyWhenTheLibraryHasItAndADeviceIsVisible) {
    const ne_system_info system = system_info();
    const bool cuda = system.cuda_compiled != 0 && system.cuda_device_count > 0;
    ne_context* raw = nullptr;
    NE_ASSERT_OK(create_auto_context(0, 2, NE_SIMD_LEVEL_SCALAR, &raw));
    Context context(raw);
    const ne_context_info info = context_info(context.get());
    EXPECT_EQ(info.device_index, 0);
    if (cuda) {
        EXPECT_EQ(info.backend, NE_BACKEND_CUDA);
    } else {
        EXPECT_EQ(info.backend, NE_BACKEND_CPU);
        EXPECT_EQ(info.num_threads, 2);
        EXPECT_EQ(info.simd_level, NE_SIMD_LEVEL_SCALAR);
    }
}

TEST(BackendAuto, OnTheCpuTheDefaultsAreEveryThreadAndTheBestSimdLevel) {
    const ne_system_info system = system_info();
    if (system.cuda_compiled != 0 && system.cuda_device_count > 0) GTEST_SKIP() << "a CUDA device is present";
    ne_context* raw = nullptr;
    NE_ASSERT_OK(create_auto_context(0, 0, NE_SIMD_LEVEL_AUTO, &raw));
    Context context(raw);
    const ne_context_info info = context_info(context.get());
    EXPECT_EQ(info.backend, NE_BACKEND_CPU);
    EXPECT_EQ(info.num_threads, system.hardware_threads);
    EXPECT_EQ(info.simd_level, system.best_simd_level);
}

TEST(BackendAuto, ADeviceIndexOtherThanZeroIsRefusedOnEveryMachine) {
    ne_context* context = nullptr;
    EXPECT_TRUE(fails_with(create_auto_context(1, 0, NE_SIMD_LEVEL_AUTO, &context), NE_STATUS_INVALID_ARGUMENT,
                           {"ne_context_create", "device_index is 1", "NE_BACKEND_AUTO", "NE_BACKEND_CUDA"}));
    EXPECT_EQ(context, nullptr);
}

TEST(BackendAuto, TheCpuOptionsAreCheckedWhicheverBackendItPicks) {
    ne_context* context = nullptr;
    EXPECT_TRUE(fails_with(create_auto_context(0, -1, NE_SIMD_LEVEL_AUTO, &context), NE_STATUS_INVALID_ARGUMENT,
                           {"num_threads is -1"}));
    EXPECT_TRUE(fails_with(create_auto_context(0, 0, static_cast<ne_simd_level>(9), &context),
                           NE_STATUS_INVALID_ARGUMENT, {"simd_level 9"}));
    EXPECT_EQ(context, nullptr);
}

TEST(BackendAuto, AnUnknownBackendIsRefusedNamingTheThreeValid) {
    ne_context_options options{};
    options.struct_size = sizeof options;
    options.backend = static_cast<ne_backend>(3);
    ne_context* context = nullptr;
    EXPECT_TRUE(fails_with(ne_context_create(&options, &context), NE_STATUS_INVALID_ARGUMENT,
                           {"backend 3", "NE_BACKEND_CPU (0)", "NE_BACKEND_CUDA (1)", "NE_BACKEND_AUTO (2)"}));
    EXPECT_EQ(context, nullptr);
}
