/* A decoder step's self-attention in one call: one query position per row, every head, over the cache.
 *
 * Part of Segue's `native-int8` kernel library (native_int8.py builds it with int8_rows.c). In fast
 * mode a step's self-attention was ~10 small PyTorch ops per layer (the cache writes, a scaled
 * query, two batched matmuls, a softmax, the reshapes): ~100 us per layer of dispatch at 100 cached
 * positions, on one thread (waking the second for each op cost more than it saved), for 1.6 MB of
 * keys and values. This does the same per layer in one call:
 *
 * - writes the step's key and value (from the fused q/k/v projection's output) at `position` of the
 *   layer's cache, (rows, heads, capacity, head_dim) fp32;
 * - for each (row, head), in parallel: scores = q . k_j / sqrt(head_dim) for j <= position, their
 *   softmax (max subtracted, exp in AVX2 registers), and sum_j p_j v_j, each key and value read once;
 * - writes the result as (rows, heads x head_dim), the layout the output projection takes.
 *
 * fp32 throughout; the sums run in another order than PyTorch's matmuls, so results differ from
 * theirs by float rounding (fast mode's KL bound covers it: tests/test_engine_kernels.py).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define SEGUE_AVX2 1
#endif

#ifdef SEGUE_AVX2
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

static inline float horizontal_sum(__m256 v) {
    __m128 half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    half = _mm_add_ps(half, _mm_movehl_ps(half, half));
    half = _mm_add_ss(half, _mm_movehdup_ps(half));
    return _mm_cvtss_f32(half);
}

/* out[0 .. 8 blocks) = inverse x sum_k p_k values[k][0 .. 8 blocks), the blocks' sums in registers
 * (inlined with blocks = 8, a head of 64, the loop over them unrolls). */
static inline void weighted_sum(const float *p, const float *values, int64_t n, int64_t head_dim, int blocks,
                                float inverse, float *out) {
    __m256 acc[8];
    for (int b = 0; b < blocks; b++) acc[b] = _mm256_setzero_ps();
    for (int64_t k = 0; k < n; k++) {
        const __m256 weight = _mm256_set1_ps(p[k]);
        for (int b = 0; b < blocks; b++)
            acc[b] = _mm256_fmadd_ps(weight, _mm256_loadu_ps(values + k * head_dim + 8 * b), acc[b]);
    }
    for (int b = 0; b < blocks; b++) _mm256_storeu_ps(out + 8 * b, _mm256_mul_ps(acc[b], _mm256_set1_ps(inverse)));
}
#endif

/* One (row, head): scores over keys[0..n), softmax, weighted sum of values into out[head_dim]. */
static void attend(const float *query, const float *keys, const float *values, int64_t n, int64_t head_dim,
                   float scale, float *scores, float *out) {
    float max = -INFINITY, total = 0.0f;
#ifdef SEGUE_AVX2
    if (head_dim % 8 == 0) {
        for (int64_t j = 0; j < n; j++) {
            const float *key = keys + j * head_dim;
            __m256 sum = _mm256_mul_ps(_mm256_loadu_ps(query), _mm256_loadu_ps(key));
            for (int64_t d = 8; d < head_dim; d += 8)
                sum = _mm256_fmadd_ps(_mm256_loadu_ps(query + d), _mm256_loadu_ps(key + d), sum);
            scores[j] = horizontal_sum(sum) * scale;
            max = scores[j] > max ? scores[j] : max;
        }
        __m256 high = _mm256_set1_ps(max), sums = _mm256_setzero_ps();
        int64_t j = 0;
        for (; j + 8 <= n; j += 8) {
            __m256 p = exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(scores + j), high));
            _mm256_storeu_ps(scores + j, p);
            sums = _mm256_add_ps(sums, p);
        }
        total = horizontal_sum(sums);
        for (; j < n; j++) {
            scores[j] = expf(scores[j] - max);
            total += scores[j];
        }
        for (int64_t d = 0; d < head_dim; d += 64) {  /* 64 columns at a time: each value row read once */
            if (head_dim - d >= 64)
                weighted_sum(scores, values + d, n, head_dim, 8, 1.0f / total, out + d);
            else
                weighted_sum(scores, values + d, n, head_dim, (int)(head_dim - d) / 8, 1.0f / total, out + d);
        }
        return;
    }
#endif
    for (int64_t j = 0; j < n; j++) {
        float sum = 0.0f;
        for (int64_t d = 0; d < head_dim; d++) sum += query[d] * keys[j * head_dim + d];
        scores[j] = sum * scale;
        max = scores[j] > max ? scores[j] : max;
    }
    for (int64_t j = 0; j < n; j++) {
        scores[j] = expf(scores[j] - max);
        total += scores[j];
    }
    for (int64_t d = 0; d < head_dim; d++) out[d] = 0.0f;
    for (int64_t j = 0; j < n; j++)
        for (int64_t d = 0; d < head_dim; d++) out[d] += scores[j] * values[j * head_dim + d];
    for (int64_t d = 0; d < head_dim; d++) out[d] /= total;
}

/* qkv: (rows, 3, heads, head_dim) with row stride qkv_stride; keys, values: one layer's cache,
 * (rows, heads, capacity, head_dim) contiguous; out: (rows, heads x head_dim), row stride out_stride.
 * Returns 0, or 1 if a scores buffer could not be allocated (nothing is attended then). */
int segue_one_query_attention(const float *qkv, int64_t qkv_stride, float *keys, float *values, int64_t rows,
                              int64_t heads, int64_t head_dim, int64_t capacity, int64_t position, float *out,
                              int64_t out_stride, int threads) {
    const int64_t tasks = rows * heads, n = position + 1;
    const float scale = 1.0f / sqrtf((float)head_dim);
    int failed = 0;
    for (int64_t task = 0; task < tasks; task++) {
        const int64_t row = task / heads, head = task % heads;
        const float *projected = qkv + row * qkv_stride;
        float *cache_keys = keys + task * capacity * head_dim, *cache_values = values + task * capacity * head_dim;
        memcpy(cache_keys + position * head_dim, projected + (heads + head) * head_dim, head_dim * sizeof(float));
        memcpy(cache_values + position * head_dim, projected + (2 * heads + head) * head_dim, head_dim * sizeof(float));
    }
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        float *scores = malloc((size_t)n * sizeof(float));
        if (scores == NULL) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t task = 0; task < tasks; task++) {
            if (scores == NULL) continue;
            const int64_t row = task / heads, head = task % heads;
            attend(qkv + row * qkv_stride + head * head_dim, keys + task * capacity * head_dim,
                   values + task * capacity * head_dim, n, head_dim, scale, scores,
                   out + row * out_stride + head * head_dim);
        }
        free(scores);
    }
    return failed;
}
