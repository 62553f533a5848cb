// The draws of the log-uniform sampler (cpu/sampled_softmax.cpp documents them), written once for
// every backend: the CPU's translation units and the CUDA kernels (cuda/sampled_softmax.cu)
// include this header, so that both compute each class from the same operations in the same
// order and draw the same classes bit for bit.
//
// A class is floor(exp(u log(V + 1))) - 1, and the C library's exp and CUDA's exp may differ in
// the last place: where exp(x) lands within an ulp of an integer, the two backends would then
// disagree on the class. log_uniform_exp is therefore our own exp, built from IEEE operations that
// round identically everywhere (products, fused multiply-adds, rint, ldexp). Every multiply-add
// is an explicit fma: a product feeding an addition is contracted into an FMA or not by the
// compiler's choice (clang and nvcc contract by default, g++ does on some targets; the library
// turns contraction off with -ffp-contract=off and --fmad=false, but the tests that include this
// header do not), and one contraction would change the rounding on one backend only.
//
// log(V + 1) is not computed here: the host computes it once (std::log) and every backend takes it
// as a double. The expected counts are the same formulas on every backend in double (log1p and
// expm1 of each backend's math library, so they may differ in the last place of the double, which
// rarely survives the rounding to float).
//
// nvcc compiles this header with C++17; the functions are __host__ __device__ there.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define NE_LOG_UNIFORM_FUNCTION __host__ __device__ inline
#else
#define NE_LOG_UNIFORM_FUNCTION inline
#endif

namespace ne::log_uniform {

// SplitMix64 (Steele, Lea and Flood, 2014): the state starts at the seed and advances by this
// constant before each output, so output i (from 0) mixes seed + (i + 1) * kStateIncrement.
constexpr uint64_t kStateIncrement = 0x9e3779b97f4a7c15ull;

// Output `index` (from 0) of SplitMix64 seeded with `seed`, all arithmetic modulo 2^64.
NE_LOG_UNIFORM_FUNCTION uint64_t splitmix64(uint64_t seed, uint64_t index) {
    uint64_t z = seed + (index + 1) * kStateIncrement;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// exp(x) for 0 <= x <= 22 (the sampler's range: x < log(2^31 + 1) < 21.5), within about one ulp;
// the same bits on every backend (see the top of this file).
//
// x = k ln2 + r with k = rint(x / ln2) and |r| <= ln2 / 2 (Cody-Waite): ln2_hi has its low 21
// bits zero, so x - k ln2_hi is exact on this range (a multiple of x's ulp, below ln2 / 2), and
// ln2_lo carries the rest of ln2. exp(r) is its Taylor polynomial of degree 13, whose truncation
// error on |r| <= ln2 / 2 is below 0.35^14 / 14! < 5e-18 relative; exp(x) = 2^k exp(r), scaled
// exactly by ldexp. Measured at 2e7 random points: within 1.4e-16 of the long double exp.
NE_LOG_UNIFORM_FUNCTION double log_uniform_exp(double x) {
    constexpr double kInverseLn2 = 0x1.71547652b82fep+0;
    constexpr double kLn2High = 0x1.62e42fee00000p-1;
    constexpr double kLn2Low = 0x1.a39ef35793c76p-33;
    const double k = rint(x * kInverseLn2);
    const double r = fma(-k, kLn2Low, fma(-k, kLn2High, x));
    // Horner's rule from 1 / 13! down to 1 / 0!, each coefficient correctly rounded.
    double polynomial = 0x1.6124613a86d09p-33;
    polynomial = fma(polynomial, r, 0x1.1eed8eff8d898p-29);
    polynomial = fma(polynomial, r, 0x1.ae64567f544e4p-26);
    polynomial = fma(polynomial, r, 0x1.27e4fb7789f5cp-22);
    polynomial = fma(polynomial, r, 0x1.71de3a556c734p-19);
    polynomial = fma(polynomial, r, 0x1.a01a01a01a01ap-16);
    polynomial = fma(polynomial, r, 0x1.a01a01a01a01ap-13);
    polynomial = fma(polynomial, r, 0x1.6c16c16c16c17p-10);
    polynomial = fma(polynomial, r, 0x1.1111111111111p-7);
    polynomial = fma(polynomial, r, 0x1.5555555555555p-5);
    polynomial = fma(polynomial, r, 0x1.5555555555555p-3);
    polynomial = fma(polynomial, r, 0x1p-1);
    polynomial = fma(polynomial, r, 1.0);
    polynomial = fma(polynomial, r, 1.0);
    return ldexp(polynomial, static_cast<int>(k));
}

// The class of draw `index` (from 0) among V classes: u = (output >> 11) 2^-53 in [0, 1), then
// floor(exp(u log_range)) - 1 clamped to [0, V - 1], where log_range = log(V + 1).
NE_LOG_UNIFORM_FUNCTION int64_t log_uniform_class(uint64_t seed, uint64_t index, double log_range, int64_t V) {
    const double u = static_cast<double>(splitmix64(seed, index) >> 11) * 0x1p-53;
    const auto c = static_cast<int64_t>(floor(log_uniform_exp(u * log_range))) - 1;
    return c < 0 ? 0 : (c > V - 1 ? V - 1 : c);
}

// How many times class c is expected among the samples. P(c) = log((c + 2) / (c + 1)) /
// log_range, with log1p for the classes far down the tail where (c + 2) / (c + 1) is close to 1.
// Independent draws: S P(c). Unique sampling: 1 - (1 - P(c))^tries = -expm1(tries log1p(-P(c))),
// accurate where P(c) or the count is tiny (1 - (1 - p)^tries would lose the count to rounding).
NE_LOG_UNIFORM_FUNCTION double expected_count(int64_t c, double log_range, bool unique, int64_t S, int64_t tries) {
    const double p = log1p(1.0 / (static_cast<double>(c) + 1.0)) / log_range;
    return unique ? -expm1(static_cast<double>(tries) * log1p(-p)) : static_cast<double>(S) * p;
}

}  // namespace ne::log_uniform

#undef NE_LOG_UNIFORM_FUNCTION
