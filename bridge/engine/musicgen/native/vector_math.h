/* Vector maths shared by Segue's native kernels (one_query_attention.c, causal_attention.c,
 * int8_rows.c, lstm.c): AVX2 + FMA only. */
#ifndef SEGUE_VECTOR_MATH_H
#define SEGUE_VECTOR_MATH_H
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

/* Lane i: the sum of v[i]'s eight lanes. */
static inline __m256 sum_each(const __m256 v[8]) {
    __m256 low = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
    __m256 high = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(low, high, 0x20), _mm256_permute2f128_ps(low, high, 0x31));
}

/* e^x for x <= 0 (softmax after its max is subtracted), Cephes' expf: a degree-6 polynomial on
 * x - n ln 2 and 2^n in the exponent bits; ~1 ulp. Below -87 it returns ~1e-38 (exp underflows). */
static inline __m256 exp_nonpositive(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    __m256i power = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(power));
}

/* The exact GELU, x/2 (1 + erf(x/sqrt 2)), as PyTorch's CPU kernel computes it on AVX2 (ATen's
 * Vectorized<float>::erf: Abramowitz and Stegun 7.1.26, |error| < 1.5e-7, with e^(-x^2) above). */
static inline __m256 gelu(__m256 x) {
    const __m256 negative_zero = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
    __m256 z = _mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f));
    __m256 sign = _mm256_and_ps(negative_zero, z), magnitude = _mm256_xor_ps(sign, z);
    __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), magnitude, one));
    __m256 r = _mm256_fmadd_ps(_mm256_set1_ps(1.061405429f), t, _mm256_set1_ps(-1.453152027f));
    r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(1.421413741f));
    r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(-0.284496736f));
    r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(0.254829592f));
    __m256 decay = exp_nonpositive(_mm256_xor_ps(negative_zero, _mm256_mul_ps(z, z)));
    __m256 error_function = _mm256_xor_ps(sign, _mm256_fnmadd_ps(_mm256_mul_ps(decay, t), r, one));
    return _mm256_mul_ps(_mm256_mul_ps(x, _mm256_set1_ps(0.5f)), _mm256_add_ps(one, error_function));
}
#endif
#endif
