// The PTX instructions the tensor-core kernels use directly (sm_80+), as inline functions:
//   mma.sync m16n8k16   a warp-wide 16 x 8 x 16 product, 16-bit inputs, f32 accumulation;
//   ldmatrix .x4        a warp loads four 8 x 8 matrices of 16-bit elements from shared memory
//                       straight into mma.sync's operand layout (transposed with .trans);
//   cp.async            16-byte copies from global to shared memory that do not occupy registers
//                       and complete in the background, in commit groups that a thread waits for.
// Fragment layouts (PTX ISA). Lane = 4 g + t (g = lane / 4, t = lane % 4); a 32-bit register holds
// two 16-bit elements, the lower-indexed one in the low half:
//   a (A, 16 x 16, row-major): A(g, 2t..2t+1), A(g+8, 2t..2t+1), A(g, 2t+8..2t+9), A(g+8, 2t+8..2t+9)
//   b (B, 16 x 8, "col"):      B(2t..2t+1, g), B(2t+8..2t+9, g)
//   c (C, 16 x 8, f32):        C(g, 2t), C(g, 2t+1), C(g+8, 2t), C(g+8, 2t+1)
//   ldmatrix:                  lanes 8i..8i+7 give the addresses of rows 0..7 of matrix i (16 bytes
//                              each, 16-byte aligned); register i receives M_i(g, 2t..2t+1), or
//                              with .trans M_i(2t, g) and M_i(2t+1, g).
// The SIMT emulator (tests/emulator) supplies the same operations with these semantics, as it has
// no PTX.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

namespace ne::cuda {

// c += a b for one warp; E is __nv_bfloat16 or __half.
template <class E>
__device__ inline void mma_m16n8k16(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(NE_SIMT_EMULATOR)
    ::simt::mma_m16n8k16<E>(c, a, b);
#else
    static_assert(std::is_same_v<E, __nv_bfloat16> || std::is_same_v<E, __half>, "16-bit inputs");
    if constexpr (std::is_same_v<E, __nv_bfloat16>) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                     "{%0, %1, %2, %3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    } else {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                     "{%0, %1, %2, %3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
#endif
}

#if !defined(NE_SIMT_EMULATOR)
__device__ inline uint32_t shared_address(const void* pointer) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(pointer));
}
#endif

// Four 8 x 8 matrices of 16-bit elements for one warp; `row` is this lane's row address (see the
// layout above), in shared memory.
template <bool kTranspose>
__device__ inline void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
#if defined(NE_SIMT_EMULATOR)
    ::simt::load_matrices(r, row, kTranspose);
#else
    if constexpr (kTranspose) {
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(shared_address(row)));
    } else {
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(shared_address(row)));
    }
#endif
}

// Starts copying 16 bytes (both addresses 16-byte aligned) from global to shared memory; the
// copy joins this thread's next commit group.
__device__ inline void cp_async_16(void* shared, const void* global) {
#if defined(NE_SIMT_EMULATOR)
    ::simt::copy_async(shared, global, 16);
#else
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(shared_address(shared)), "l"(global) : "memory");
#endif
}

// Starts copying 4 bytes (both addresses 4-byte aligned) from global to shared memory, as
// cp_async_16 (through L1: .cg takes 16 bytes only).
__device__ inline void cp_async_4(void* shared, const void* global) {
#if defined(NE_SIMT_EMULATOR)
    ::simt::copy_async(shared, global, 4);
#else
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(shared_address(shared)), "l"(global) : "memory");
#endif
}

// Closes this thread's current commit group (an empty one when it started no copy).
__device__ inline void cp_async_commit() {
#if defined(NE_SIMT_EMULATOR)
    ::simt::commit_async();
#else
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

// Waits until at most kPending of this thread's newest commit groups are incomplete. Other
// threads see the copied bytes only after a barrier that follows their writers' waits.
template <int kPending>
__device__ inline void cp_async_wait() {
#if defined(NE_SIMT_EMULATOR)
    ::simt::wait_async(kPending);
#else
    asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
#endif
}

}  // namespace ne::cuda
