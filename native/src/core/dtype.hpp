// Element types: sizes, names and the scalar conversions that host-side helpers need.
#pragma once

#include "nativeengine.h"

#include <cstdint>
#include <cstring>

namespace ne {

inline bool is_valid_dtype(int dtype) { return dtype >= NE_DTYPE_F32 && dtype <= NE_DTYPE_I32; }

inline int64_t dtype_size(ne_dtype dtype) {
    switch (dtype) {
        case NE_DTYPE_F32: return 4;
        case NE_DTYPE_F16: return 2;
        case NE_DTYPE_BF16: return 2;
        case NE_DTYPE_I8: return 1;
        case NE_DTYPE_I32: return 4;
        case NE_DTYPE_MAX_ENUM: break;
    }
    return 0;
}

inline const char* dtype_name(ne_dtype dtype) {
    switch (dtype) {
        case NE_DTYPE_F32: return "f32";
        case NE_DTYPE_F16: return "f16";
        case NE_DTYPE_BF16: return "bf16";
        case NE_DTYPE_I8: return "i8";
        case NE_DTYPE_I32: return "i32";
        case NE_DTYPE_MAX_ENUM: break;
    }
    return "unknown";
}

inline uint32_t float_bits(float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    return bits;
}

// Round to nearest even; NaN stays a (quiet) NaN.
inline uint16_t float_to_bf16(float value) {
    const uint32_t bits = float_bits(value);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
    const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
    return static_cast<uint16_t>((bits + rounding) >> 16);
}

// IEEE binary16, round to nearest even, overflow to infinity, subnormals kept.
inline uint16_t float_to_f16(float value) {
    const uint32_t bits = float_bits(value);
    const uint32_t sign = (bits >> 16) & 0x8000u;
    const uint32_t magnitude = bits & 0x7fffffffu;
    if (magnitude > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);
    if (magnitude >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to inf
    if (magnitude < 0x38800000u) {
        // Subnormal half (or zero): value = mantissa * 2^-24.
        if (magnitude < 0x33000000u) return static_cast<uint16_t>(sign);
        const uint32_t exponent = magnitude >> 23;
        const uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u;
        const uint32_t shift = 126u - exponent;  // value * 2^24 = mantissa * 2^(exponent - 126)
        const uint32_t half_mantissa = mantissa >> shift;
        const uint32_t remainder = mantissa & ((1u << shift) - 1u);
        const uint32_t halfway = 1u << (shift - 1u);
        const uint32_t rounded = half_mantissa +
            ((remainder > halfway || (remainder == halfway && (half_mantissa & 1u))) ? 1u : 0u);
        return static_cast<uint16_t>(sign | rounded);
    }
    const uint32_t rebased = magnitude - 0x38000000u;  // exponent bias 127 -> 15
    const uint32_t rounding = 0xfffu + ((rebased >> 13) & 1u);
    return static_cast<uint16_t>(sign | ((rebased + rounding) >> 13));
}

}  // namespace ne
