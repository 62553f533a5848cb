// The warp-wide m16n8k16 tensor-core product (PTX mma.sync, sm_80+) with 16-bit inputs and f32
// accumulation, in the PTX ISA's fragment layouts. Lane = 4 g + t (g = lane / 4, t = lane % 4);
// a 32-bit register holds two 16-bit elements, the lower-indexed one in the low half:
//   a (A, 16 x 16, row-major): A(g, 2t..2t+1), A(g+8, 2t..2t+1), A(g, 2t+8..2t+9), A(g+8, 2t+8..2t+9)
//   b (B, 16 x 8, "col"):      B(2t..2t+1, g), B(2t+8..2t+9, g)
//   c (C, 16 x 8, f32):        C(g, 2t), C(g, 2t+1), C(g+8, 2t), C(g+8, 2t+1)
// The SIMT emulator (tests/emulator) supplies the same operation with these layouts, as it has no PTX.
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

}  // namespace ne::cuda
