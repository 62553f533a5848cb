// The SIMT emulator's own tests: each built-in it emulates against a result computed
// independently on the host, and each misuse it exists to catch (a missing barrier, a barrier
// some threads skip, a shuffle naming an exited lane, a copy outside an allocation) caught.
// Compiled like the library's kernels: translate.py, then the host compiler with simt.hpp.
#include <cub/block/block_radix_sort.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <mma.h>

#include "ptx.cuh"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

namespace {

template <class T>
struct DeviceBuffer {
    explicit DeviceBuffer(size_t elements) : count(elements) { EXPECT_EQ(cudaMalloc(&data, count * sizeof(T)), cudaSuccess); }
    explicit DeviceBuffer(const std::vector<T>& values) : DeviceBuffer(values.size()) {
        EXPECT_EQ(cudaMemcpy(data, values.data(), values.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
    }
    ~DeviceBuffer() { cudaFree(data); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;

    std::vector<T> read() const {
        std::vector<T> values(count);
        EXPECT_EQ(cudaMemcpy(values.data(), data, count * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
        return values;
    }

    T* data = nullptr;
    size_t count;
};

// ---- Barriers ------------------------------------------------------------------------------

// Every thread writes its value, then thread t reads thread (t + 1)'s: right only when the
// barrier orders the writes before the reads.
__global__ void rotate_kernel(const int* in, int* out, bool with_barrier) {
    __shared__ int values[256];
    const int t = static_cast<int>(threadIdx.x);
    values[t] = in[blockIdx.x * blockDim.x + t];
    if (with_barrier) __syncthreads();
    out[blockIdx.x * blockDim.x + t] = values[(t + 1) % blockDim.x];
}

TEST(SimtEmulator, ABarrierOrdersSharedMemoryAndItsAbsenceShows) {
    std::vector<int> input(2 * 256);
    std::iota(input.begin(), input.end(), 1);
    DeviceBuffer<int> in(input), out(input.size());
    rotate_kernel<<<2, 256>>>(in.data, out.data, true);
    ASSERT_EQ(cudaGetLastError(), cudaSuccess);
    const std::vector<int> rotated = out.read();
    for (int b = 0; b < 2; ++b) {
        for (int t = 0; t < 256; ++t) EXPECT_EQ(rotated[b * 256 + t], input[b * 256 + (t + 1) % 256]);
    }
    // Without the barrier one of the two blocks (they run their threads in opposite orders)
    // reads values the other threads have not written yet.
    rotate_kernel<<<2, 256>>>(in.data, out.data, false);
    ASSERT_EQ(cudaGetLastError(), cudaSuccess);
    const std::vector<int> racy = out.read();
    EXPECT_NE(racy, rotated);
}

__global__ void divergent_barrier_kernel(int* out) {
    if (threadIdx.x < 32) __syncthreads();
    else __syncwarp();
    out[threadIdx.x] = 1;
}

TEST(SimtEmulator, ThreadsWaitingAtDifferentBarriersAreADeadlockNotAHang) {
    DeviceBuffer<int> out(64);
    divergent_barrier_kernel<<<1, 64>>>(out.data);
    EXPECT_EQ(cudaGetLastError(), cudaErrorLaunchFailure);
    EXPECT_EQ(cudaGetLastError(), cudaSuccess);  // reported once
}

__global__ void early_exit_shuffle_kernel(int* out) {
    const int lane = static_cast<int>(threadIdx.x);
    if (lane == 5) return;
    out[lane] = __shfl_xor_sync(0xffffffffu, lane, 1);
}

TEST(SimtEmulator, AShuffleWithAnExitedLaneInItsMaskFails) {
    DeviceBuffer<int> out(32);
    early_exit_shuffle_kernel<<<1, 32>>>(out.data);
    EXPECT_EQ(cudaGetLastError(), cudaErrorLaunchFailure);
}

TEST(SimtEmulator, LaunchConfigurationsBeyondTheLimitsAreRefused) {
    DeviceBuffer<int> out(64);
    rotate_kernel<<<1, 2048>>>(out.data, out.data, true);
    EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
    rotate_kernel<<<dim3(1, 70000), 32>>>(out.data, out.data, true);
    EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
    // More than 48 KiB of dynamic shared memory needs cudaFuncSetAttribute first.
    rotate_kernel<<<1, 32, 64 * 1024>>>(out.data, out.data, true);
    EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
    ASSERT_EQ(cudaFuncSetAttribute(rotate_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024), cudaSuccess);
    rotate_kernel<<<1, 32, 64 * 1024>>>(out.data, out.data, true);
    EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

// ---- Built-in variables, shuffles, atomics ------------------------------------------------

__global__ void index_kernel(int* out) {
    const int x = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
    const int y = static_cast<int>(blockIdx.y * blockDim.y + threadIdx.y);
    out[y * static_cast<int>(gridDim.x * blockDim.x) + x] = y * 1000 + x;
}

TEST(SimtEmulator, EveryThreadOfA2dGridRunsOnceWithItsIndices) {
    DeviceBuffer<int> out(6 * 4 * 3 * 2);
    index_kernel<<<dim3(6, 3), dim3(4, 2)>>>(out.data);
    ASSERT_EQ(cudaGetLastError(), cudaSuccess);
    const std::vector<int> values = out.read();
    for (int y = 0; y < 6; ++y) {
        for (int x = 0; x < 24; ++x) EXPECT_EQ(values[static_cast<size_t>(y * 24 + x)], y * 1000 + x);
    }
}

__global__ void shuffle_kernel(const float* in, float* sums, int* rotated, unsigned long long* maxima) {
    const int lane = static_cast<int>(threadIdx.x) % 32;
    float value = in[threadIdx.x];
    for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
    sums[threadIdx.x] = value;
    rotated[threadIdx.x] = __shfl_sync(0xffffffffu, lane, (lane + 3) % 32);
    atomicMax(maxima, static_cast<unsigned long long>(threadIdx.x) * 7);
}

TEST(SimtEmulator, ShufflesExchangeAcrossTheWarpAndAtomicsCombine) {
    std::vector<float> input(64);
    std::iota(input.begin(), input.end(), 0.0f);
    DeviceBuffer<float> in(input), sums(64);
    DeviceBuffer<int> rotated(64);
    DeviceBuffer<unsigned long long> maxima(std::vector<unsigned long long>{0});
    shuffle_kernel<<<1, 64>>>(in.data, sums.data, rotated.data, maxima.data);
    ASSERT_EQ(cudaGetLastError(), cudaSuccess);
    const std::vector<float> s = sums.read();
    const std::vector<int> r = rotated.read();
    for (int t = 0; t < 64; ++t) {
        const int warp = t / 32;
        EXPECT_EQ(s[static_cast<size_t>(t)], static_cast<float>(warp * 32 * 32 + 31 * 32 / 2)) << t;
        EXPECT_EQ(r[static_cast<size_t>(t)], (t % 32 + 3) % 32) << t;
    }
    EXPECT_EQ(maxima.read()[0], 63u * 7);
}

// ---- WMMA ---------------------------------------------------------------------------------

__global__ void wmma_kernel(const __half* a, const __half* b, float* c) {
    namespace wmma = nvcuda::wmma;
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> fc;
    wmma::fill_fragment(fc, 1.0f);
    wmma::load_matrix_sync(fa, a, 16);
    wmma::load_matrix_sync(fb, b, 16);
    wmma::mma_sync(fc, fa, fb, fc);
    wmma::store_matrix_sync(c, fc, 16, wmma::mem_row_major);
}

TEST(SimtEmulator, WmmaMultipliesRowMajorAByColumnMajorB) {
    std::vector<__half> a(256), b(256);
    std::vector<float> af(256), bf(256);
    std::mt19937 generator(7);
    std::uniform_int_distribution<int> small(-4, 4);
    for (size_t i = 0; i < 256; ++i) {
        af[i] = static_cast<float>(small(generator));
        bf[i] = static_cast<float>(small(generator));
        a[i] = __float2half_rn(af[i]);
        b[i] = __float2half_rn(bf[i]);
    }
    DeviceBuffer<__half> da(a), db(b);
    DeviceBuffer<float> dc(256);
    wmma_kernel<<<1, 32>>>(da.data, db.data, dc.data);
    ASSERT_EQ(cudaGetLastError(), cudaSuccess);
    const std::vector<float> c = dc.read();
    for (int m = 0; m < 16; ++m) {
        for (int n = 0; n < 16; ++n) {
            float expected = 1.0f;  // b is column-major: element (k, n) at n * 16 + k
            for (int k = 0; k < 16; ++k) expected += af[static_cast<size_t>(m * 16 + k)] * bf[static_cast<size_t>(n * 16 + k)];
            EXPECT_EQ(c[static_cast<size_t>(m * 16 + n)], expected) << m << ", " << n;
        }
    }
}

// PTX mma.sync m16n8k16 (the emulator's stand-in): each lane gathers its registers as the PTX ISA
// lays them out, from row-major A [16, 16] and B [16, 8], and scatters its part of C.
__global__ void mma_kernel(const __nv_bfloat16* A, const __nv_bfloat16* B, float* C) {
    const int lane = static_cast<int>(threadIdx.x), g = lane / 4, t = lane % 4;
    const auto pair = [](__nv_bfloat16 low, __nv_bfloat16 high) {
        uint16_t l, h;
        memcpy(&l, &low, 2);
        memcpy(&h, &high, 2);
        return uint32_t{l} | uint32_t{h} << 16;
    };
    const uint32_t a[4] = {pair(A[g * 16 + 2 * t], A[g * 16 + 2 * t + 1]), pair(A[(g + 8) * 16 + 2 * t], A[(g + 8) * 16 + 2 * t + 1]),
                           pair(A[g * 16 + 2 * t + 8], A[g * 16 + 2 * t + 9]),
                           pair(A[(g + 8) * 16 + 2 * t + 8], A[(g + 8) * 16 + 2 * t + 9])};
    const uint32_t b[2] = {pair(B[(2 * t) * 8 + g], B[(2 * t + 1) * 8 + g]), pair(B[(2 * t + 8) * 8 + g], B[(2 * t + 9) * 8 + g])};
    float c[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    ::simt::mma_m16n8k16<__nv_bfloat16>(c, a, b);
    C[g * 8 + 2 * t] = c[0];
    C[g * 8 + 2 * t + 1] = c[1];
    C[(g + 8) * 8 + 2 * t] = c[2];
    C[(g + 8) * 8 + 2 * t + 1] = c[3];
}

TEST(SimtEmulator, MmaSyncFollowsThePtxFragmentLayouts) {
    std::vector<__nv_bfloat16> a(16 * 16), b(16 * 8);
    std::vector<float> af(a.size()), bf(b.size());
    std::mt19937 generator(11);
    std::uniform_int_distribution<int> small(-4, 4);
    for (size_t i = 0; i < a.size(); ++i) a[i] = __float2bfloat16_rn(af[i] = static_cast<float>(small(generator)));
    for (size_t i = 0; i < b.size(); ++i) b[i] = __float2bfloat16_rn(bf[i] = static_cast<float>(small(generator)));
    DeviceBuffer<__nv_bfloat16> da(a), db(b);
    DeviceBuffer<float> dc(16 * 8);
    mma_kernel<<<1, 32>>>(da.data, db.data, dc.data);
    ASSERT_EQ(cudaGetLastError(), cudaSuccess);
    const std::vector<float> c = dc.read();
    for (int m = 0; m < 16; ++m) {
        for (int n = 0; n < 8; ++n) {
            float expected = 0.5f;
            for (int k = 0; k < 16; ++k) expected += af[static_cast<size_t>(m * 16 + k)] * bf[static_cast<size_t>(k * 8 + n)];
            EXPECT_EQ(c[static_cast<size_t>(m * 8 + n)], expected) << m << ", " << n;
        }
    }
}

// ldmatrix.x4 from a row-major 16 x 16 matrix in shared memory, lane l naming row l % 8 of matrix
// l / 8 at offset `offset` elements into the row (16 bytes apart for aligned rows): matrix m
// covers rows 8 (m % 2).. and columns 8 (m / 2).., the A fragment's order. Each lane writes its
// four registers of the plain and of the transposed load.
__global__ void ldmatrix_kernel(const uint16_t* M, uint32_t* plain, uint32_t* transposed, int offset) {
    extern __shared__ uint16_t tile[];
    const int lane = static_cast<int>(threadIdx.x);
    for (int i = lane; i < 16 * 16; i += 32) tile[i] = M[i];
    __syncwarp();
    const int m = lane / 8;
    const uint16_t* row = tile + (m % 2 * 8 + lane % 8) * 16 + m / 2 * 8 + offset;
    uint32_t r[4];
    ne::cuda::ldmatrix_x4<false>(r, row);
    for (int i = 0; i < 4; ++i) plain[lane * 4 + i] = r[i];
    ne::cuda::ldmatrix_x4<true>(r, row);
    for (int i = 0; i < 4; ++i) transposed[lane * 4 + i] = r[i];
}

TEST(SimtEmulator, LdmatrixDeliversThePtxFragmentLayouts) {
    std::vector<uint16_t> matrix(256);
    std::iota(matrix.begin(), matrix.end(), uint16_t{0});
    DeviceBuffer<uint16_t> dm(matrix);
    DeviceBuffer<uint32_t> plain(128), transposed(128);
    ldmatrix_kernel<<<1, 32, 512>>>(dm.data, plain.data, transposed.data, 0);
    ASSERT_EQ(cudaGetLastError(), cudaSuccess);
    const std::vector<uint32_t> p = plain.read(), q = transposed.read();
    const auto element = [&](int row, int column) { return uint32_t{matrix[static_cast<size_t>(row * 16 + column)]}; };
    for (int lane = 0; lane < 32; ++lane) {
        const int g = lane / 4, t = lane % 4;
        for (int m = 0; m < 4; ++m) {
            const int row0 = m % 2 * 8, column0 = m / 2 * 8;
            const size_t at = static_cast<size_t>(lane * 4 + m);
            EXPECT_EQ(p[at], element(row0 + g, column0 + 2 * t) | element(row0 + g, column0 + 2 * t + 1) << 16) << lane << ", " << m;
            EXPECT_EQ(q[at], element(row0 + 2 * t, column0 + g) | element(row0 + 2 * t + 1, column0 + g) << 16) << lane << ", " << m;
        }
    }
    ldmatrix_kernel<<<1, 32, 512>>>(dm.data, plain.data, transposed.data, 1);  // rows 2 bytes off alignment
    EXPECT_EQ(cudaGetLastError(), cudaErrorLaunchFailure);
}

// Each thread starts a 16-byte cp.async in group 0 and one in group 1, then reads both
// destinations after waiting for all but the newest group and after waiting for all.
__global__ void copy_async_kernel(const uint4* in, uint4* seen, bool to_global) {
    extern __shared__ uint4 staging[];
    const int t = static_cast<int>(threadIdx.x);
    uint4* first = to_global ? seen + t : staging + t;
    ne::cuda::cp_async_16(first, in + t);
    ne::cuda::cp_async_commit();
    ne::cuda::cp_async_16(staging + 32 + t, in + 32 + t);
    ne::cuda::cp_async_commit();
    ne::cuda::cp_async_wait<1>();
    seen[t] = staging[t];
    seen[32 + t] = staging[32 + t];
    ne::cuda::cp_async_wait<0>();
    seen[64 + t] = staging[32 + t];
}

TEST(SimtEmulator, CpAsyncLandsAtTheWaitForItsGroup) {
    std::vector<uint4> input(64);
    for (size_t i = 0; i < input.size(); ++i) {
        const auto v = static_cast<unsigned>(i);
        input[i] = make_uint4(v, v + 1000, v + 2000, v + 3000);
    }
    DeviceBuffer<uint4> in(input), seen(96);
    copy_async_kernel<<<1, 32, 64 * sizeof(uint4)>>>(in.data, seen.data, false);
    ASSERT_EQ(cudaGetLastError(), cudaSuccess);
    const std::vector<uint4> s = seen.read();
    for (size_t t = 0; t < 32; ++t) {
        EXPECT_EQ(s[t].x, input[t].x) << t;
        EXPECT_EQ(s[t].w, input[t].w) << t;
        EXPECT_EQ(s[32 + t].x, 0xffffffffu) << t << ": the newest group is still in flight";
        EXPECT_EQ(s[64 + t].x, input[32 + t].x) << t;
        EXPECT_EQ(s[64 + t].w, input[32 + t].w) << t;
    }
    copy_async_kernel<<<1, 32, 64 * sizeof(uint4)>>>(in.data, seen.data, true);  // a destination in global memory
    EXPECT_EQ(cudaGetLastError(), cudaErrorLaunchFailure);
}

// ---- CUB ----------------------------------------------------------------------------------

constexpr int kSortThreads = 128;

__global__ void block_sort_and_scan_kernel(const unsigned* keys, unsigned* sorted, int* flags_in, int* ranks, int* total) {
    using Sort = cub::BlockRadixSort<unsigned, kSortThreads, 2>;
    using Scan = cub::BlockScan<int, kSortThreads>;
    __shared__ union {
        typename Sort::TempStorage sort;
        typename Scan::TempStorage scan;
    } storage;
    const int t = static_cast<int>(threadIdx.x);
    unsigned items[2] = {keys[2 * t], keys[2 * t + 1]};
    Sort(storage.sort).Sort(items, 0, 8);  // the low byte only: equal bytes keep their order
    sorted[2 * t] = items[0];
    sorted[2 * t + 1] = items[1];
    __syncthreads();
    int aggregate = 0;
    Scan(storage.scan).ExclusiveSum(flags_in[t], ranks[t], aggregate);
    if (t == 0) *total = aggregate;
}

TEST(SimtEmulator, BlockRadixSortIsStableOnTheChosenBitsAndBlockScanIsExclusive) {
    std::vector<unsigned> keys(2 * kSortThreads);
    std::vector<int> flags(kSortThreads);
    std::mt19937 generator(3);
    for (size_t i = 0; i < keys.size(); ++i) keys[i] = static_cast<unsigned>(i) << 8 | (generator() % 16);
    for (int& f : flags) f = static_cast<int>(generator() % 2);
    DeviceBuffer<unsigned> in(keys), sorted(keys.size());
    DeviceBuffer<int> flags_in(flags), ranks(flags.size()), total(1);
    block_sort_and_scan_kernel<<<1, kSortThreads>>>(in.data, sorted.data, flags_in.data, ranks.data, total.data);
    ASSERT_EQ(cudaGetLastError(), cudaSuccess);
    std::vector<unsigned> expected = keys;
    std::stable_sort(expected.begin(), expected.end(), [](unsigned a, unsigned b) { return (a & 0xff) < (b & 0xff); });
    EXPECT_EQ(sorted.read(), expected);
    std::vector<int> prefix(flags.size());
    std::exclusive_scan(flags.begin(), flags.end(), prefix.begin(), 0);
    EXPECT_EQ(ranks.read(), prefix);
    EXPECT_EQ(total.read()[0], std::accumulate(flags.begin(), flags.end(), 0));
}

TEST(SimtEmulator, DeviceRadixSortPairsOrdersSignedKeysStably) {
    const std::vector<int32_t> keys = {5, -3, 5, 0, -3, 7, 0};
    const std::vector<int32_t> values = {0, 1, 2, 3, 4, 5, 6};
    DeviceBuffer<int32_t> keys_in(keys), keys_out(keys.size()), values_in(values), values_out(values.size());
    size_t bytes = 0;
    ASSERT_EQ(cub::DeviceRadixSort::SortPairs(nullptr, bytes, keys_in.data, keys_out.data, values_in.data, values_out.data,
                                              static_cast<int>(keys.size())),
              cudaSuccess);
    DeviceBuffer<unsigned char> temp(bytes);
    size_t too_few = bytes - 1;
    EXPECT_EQ(cub::DeviceRadixSort::SortPairs(temp.data, too_few, keys_in.data, keys_out.data, values_in.data, values_out.data,
                                              static_cast<int>(keys.size())),
              cudaErrorInvalidValue);
    ASSERT_EQ(cub::DeviceRadixSort::SortPairs(temp.data, bytes, keys_in.data, keys_out.data, values_in.data, values_out.data,
                                              static_cast<int>(keys.size())),
              cudaSuccess);
    EXPECT_EQ(keys_out.read(), (std::vector<int32_t>{-3, -3, 0, 0, 5, 5, 7}));
    EXPECT_EQ(values_out.read(), (std::vector<int32_t>{1, 4, 3, 6, 0, 2, 5}));
}

// ---- Runtime and cuBLAS -------------------------------------------------------------------

TEST(SimtEmulator, CopiesMustStayInsideAllocationsAndNewMemoryIsNotZero) {
    DeviceBuffer<float> buffer(4);
    EXPECT_TRUE(std::isnan(buffer.read()[0]));
    std::vector<float> host(8, 1.0f);
    EXPECT_EQ(cudaMemcpy(buffer.data, host.data(), 8 * sizeof(float), cudaMemcpyHostToDevice), cudaErrorInvalidValue);
    EXPECT_EQ(cudaMemcpy(host.data(), buffer.data, 4 * sizeof(float), cudaMemcpyHostToDevice), cudaErrorInvalidValue);
    EXPECT_EQ(cudaMemcpy(buffer.data, host.data(), 4 * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
    int stack_value = 0;
    EXPECT_EQ(cudaFree(&stack_value), cudaErrorInvalidValue);
}

TEST(SimtEmulator, CublasGemmIsColumnMajorAndBetaZeroNeverReadsC) {
    // Column-major A [2 x 3] and B [3 x 2]: C = A B is [2 x 2].
    const std::vector<float> a = {1, 4, 2, 5, 3, 6};  // rows (1 2 3) and (4 5 6)
    const std::vector<float> b = {7, 9, 11, 8, 10, 12};  // rows (7 8), (9 10), (11 12)
    DeviceBuffer<float> da(a), db(b), dc(4);  // dc holds NaN
    cublasHandle_t handle = nullptr;
    ASSERT_EQ(cublasCreate(&handle), CUBLAS_STATUS_SUCCESS);
    const float one = 1.0f, zero = 0.0f;
    ASSERT_EQ(cublasSgemmStridedBatched(handle, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &one, da.data, 2, 0, db.data, 3, 0, &zero,
                                        dc.data, 2, 0, 1),
              CUBLAS_STATUS_SUCCESS);
    EXPECT_EQ(dc.read(), (std::vector<float>{58, 139, 64, 154}));
    // C^T = B^T A^T through the transposes.
    ASSERT_EQ(cublasSgemmStridedBatched(handle, CUBLAS_OP_T, CUBLAS_OP_T, 2, 2, 3, &one, db.data, 3, 0, da.data, 2, 0, &zero,
                                        dc.data, 2, 0, 1),
              CUBLAS_STATUS_SUCCESS);
    EXPECT_EQ(dc.read(), (std::vector<float>{58, 64, 139, 154}));
    // An operand that overruns its allocation is refused, as a GPU would fault.
    EXPECT_EQ(cublasSgemmStridedBatched(handle, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &one, da.data, 2, 6, db.data, 3, 0, &zero,
                                        dc.data, 2, 0, 2),
              CUBLAS_STATUS_INVALID_VALUE);
    EXPECT_EQ(cublasDestroy(handle), CUBLAS_STATUS_SUCCESS);
}

}  // namespace
