// The SIMT emulator's WMMA (nvcuda::wmma) for 16x16x16 fragments. A fragment's elements are
// spread over the 32 lanes of the warp (lane e % 32 holds element e of the row-major logical
// matrix), so that a lane reading another lane's part must go through the warp: loads and stores
// touch only the calling lane's elements, and mma_sync gathers the operands through the warp's
// pointer slots between two warp barriers, as the hardware's collective does. Code that depends
// on the hardware's element layout (which CUDA leaves unspecified) is not supported; element-wise
// work on fragments is.
#pragma once

#include "simt.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace nvcuda::wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

namespace detail {
inline float to_float(float x) { return x; }
inline float to_float(__half x) { return __half2float(x); }
inline float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
constexpr int kElementsPerLane = 16 * 16 / 32;
}  // namespace detail

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
    static_assert(M == 16 && N == 16 && K == 16, "the emulator implements 16x16x16 fragments");
    static constexpr int num_elements = detail::kElementsPerLane;
    T x[num_elements];
};

template <class Use, class T, class Layout, class Value>
void fill_fragment(fragment<Use, 16, 16, 16, T, Layout>& f, const Value& value) {
    for (int i = 0; i < detail::kElementsPerLane; ++i) f.x[i] = static_cast<T>(value);
}

namespace detail {
// (row, column) of the calling lane's i-th element.
inline int row_of(int i) { return (i * 32 + ::simt::current_thread().lane) / 16; }
inline int column_of(int i) { return (i * 32 + ::simt::current_thread().lane) % 16; }
inline void require_aligned(const void* pointer, unsigned ld, unsigned element_bytes) {
    // The WMMA contract: 256-bit aligned pointers, leading dimensions a multiple of 16 bytes.
    if (reinterpret_cast<uintptr_t>(pointer) % 32 != 0) ::simt::kernel_fault("wmma: a pointer is not 32-byte aligned");
    if (ld * element_bytes % 16 != 0) ::simt::kernel_fault("wmma: a leading dimension is not a multiple of 16 bytes");
}
}  // namespace detail

// Operands: matrix_a is [M=16, K=16], matrix_b [K=16, N=16]; row_major stores (r, c) at r * ld + c.
template <class Use, class T, class Layout>
void load_matrix_sync(fragment<Use, 16, 16, 16, T, Layout>& f, const T* pointer, unsigned ld) {
    detail::require_aligned(pointer, ld, sizeof(T));
    ::simt::sync_warp(0xffffffffu);
    for (int i = 0; i < detail::kElementsPerLane; ++i) {
        const int r = detail::row_of(i), c = detail::column_of(i);
        f.x[i] = std::is_same_v<Layout, row_major> ? pointer[r * ld + c] : pointer[c * ld + r];
    }
}

template <class T>
void load_matrix_sync(fragment<accumulator, 16, 16, 16, T>& f, const T* pointer, unsigned ld, layout_t layout) {
    detail::require_aligned(pointer, ld, sizeof(T));
    ::simt::sync_warp(0xffffffffu);
    for (int i = 0; i < detail::kElementsPerLane; ++i) {
        const int r = detail::row_of(i), c = detail::column_of(i);
        f.x[i] = layout == mem_row_major ? pointer[r * ld + c] : pointer[c * ld + r];
    }
}

template <class T>
void store_matrix_sync(T* pointer, const fragment<accumulator, 16, 16, 16, T>& f, unsigned ld, layout_t layout) {
    detail::require_aligned(pointer, ld, sizeof(T));
    ::simt::sync_warp(0xffffffffu);
    for (int i = 0; i < detail::kElementsPerLane; ++i) {
        const int r = detail::row_of(i), c = detail::column_of(i);
        (layout == mem_row_major ? pointer[r * ld + c] : pointer[c * ld + r]) = f.x[i];
    }
}

// d = a b + c with f32 accumulation: products of the 16-bit inputs are exact in f32, summed in
// k order (the tensor cores' order and intermediate rounding are not specified).
template <class E, class LayoutA, class LayoutB>
void mma_sync(fragment<accumulator, 16, 16, 16, float>& d, const fragment<matrix_a, 16, 16, 16, E, LayoutA>& a,
              const fragment<matrix_b, 16, 16, 16, E, LayoutB>& b, const fragment<accumulator, 16, 16, 16, float>& c) {
    const int lane = ::simt::current_thread().lane;
    const void** slots = ::simt::warp_pointer_slots();
    slots[lane * 3] = &a;
    slots[lane * 3 + 1] = &b;
    ::simt::sync_warp(0xffffffffu);
    const auto element = [&](int matrix, int r, int col) {
        const int e = r * 16 + col;
        const void* owner = slots[(e % 32) * 3 + matrix];
        return matrix == 0 ? detail::to_float(static_cast<const fragment<matrix_a, 16, 16, 16, E, LayoutA>*>(owner)->x[e / 32])
                           : detail::to_float(static_cast<const fragment<matrix_b, 16, 16, 16, E, LayoutB>*>(owner)->x[e / 32]);
    };
    float result[detail::kElementsPerLane];
    for (int i = 0; i < detail::kElementsPerLane; ++i) {
        const int r = detail::row_of(i), col = detail::column_of(i);
        float sum = c.x[i];
        for (int k = 0; k < 16; ++k) sum += element(0, r, k) * element(1, k, col);
        result[i] = sum;
    }
    ::simt::sync_warp(0xffffffffu);  // every lane has read the operands before any lane changes them
    for (int i = 0; i < detail::kElementsPerLane; ++i) d.x[i] = result[i];
}

}  // namespace nvcuda::wmma
