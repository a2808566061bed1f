/* A decoder step's self-attention in one call: one query position per row, every head, over the cache.
 *
 * Part of Segue's `native-int8` kernel library (native_int8.py builds it with int8_rows.c). In fast
 * mode a step's self-attention was ~10 small PyTorch ops per layer (the cache writes, a scaled
 * query, two batched matmuls, a softmax, the reshapes): ~100 us per layer of dispatch at 100 cached
 * positions, on one thread (waking the second for each op cost more than it saved), for 1.6 MB of
 * keys and values. This does the same per layer in one call:
 *
 * - writes the step's key and value (from the fused q/k/v projection's output) at `position` of the
 *   layer's cache, (rows, heads, capacity, head_dim), fp32 or fp16 (IEEE half, rounded to nearest even
 *   as PyTorch rounds: half the bytes a step reads, converted in registers by F16C);
 * - for each (row, head), in parallel: scores = q . k_j / sqrt(head_dim) for j <= position, their
 *   softmax (max subtracted, exp in AVX2 registers), and sum_j p_j v_j, each key and value read once;
 * - writes the result as (rows, heads x head_dim), the layout the output projection takes.
 * The same call, told not to write, attends to the text's keys and values (cross-attention: ~60 us a
 * layer as PyTorch's SDPA for a dozen tokens).
 *
 * fp32 arithmetic throughout; the sums run in another order than PyTorch's matmuls, so results differ
 * from theirs by float rounding, and an fp16 cache by its rounding of the keys and values (fast mode's
 * KL bound covers both: tests/test_engine_kernels.py).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define SEGUE_AVX2 1
#endif

#include "vector_math.h" /* exp_nonpositive, sum_each */

#ifdef SEGUE_AVX2
static inline float horizontal_sum(__m256 v) {
    __m128 half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    half = _mm_add_ps(half, _mm_movehl_ps(half, half));
    half = _mm_add_ss(half, _mm_movehdup_ps(half));
    return _mm_cvtss_f32(half);
}

static inline float horizontal_max(__m256 v) {
    __m128 half = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    half = _mm_max_ps(half, _mm_movehl_ps(half, half));
    half = _mm_max_ss(half, _mm_movehdup_ps(half));
    return _mm_cvtss_f32(half);
}

/* Eight floats of a cache at element `index`: fp32, or fp16 widened by F16C. */
static inline __attribute__((always_inline)) __m256 load8(const void *cache, int64_t index, int half) {
    return half ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)cache + index)))
                : _mm256_loadu_ps((const float *)cache + index);
}

/* One (row, head) over a cache of `half` or fp32 elements, head_dim a multiple of 8 (inlined per
 * element type). Scores eight keys at a time: eight independent FMA chains, not one chain per key
 * waiting on its own latency; the weighted sum keeps up to 64 columns in registers, so each value
 * row is read once. */
static inline __attribute__((always_inline)) void attend_vectors(const float *query, const void *keys,
                                                                  const void *values, int64_t n, int64_t head_dim,
                                                                  float scale, float *scores, float *out, int half) {
    const __m256 scales = _mm256_set1_ps(scale);
    __m256 highest = _mm256_set1_ps(-INFINITY);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 sums[8];
        for (int k = 0; k < 8; k++) sums[k] = _mm256_setzero_ps();
        for (int64_t d = 0; d < head_dim; d += 8) {
            const __m256 q = _mm256_loadu_ps(query + d);
            for (int k = 0; k < 8; k++) sums[k] = _mm256_fmadd_ps(q, load8(keys, (j + k) * head_dim + d, half), sums[k]);
        }
        const __m256 block = _mm256_mul_ps(sum_each(sums), scales);
        _mm256_storeu_ps(scores + j, block);
        highest = _mm256_max_ps(highest, block);
    }
    float max = horizontal_max(highest);
    for (; j < n; j++) {
        __m256 sum = _mm256_setzero_ps();
        for (int64_t d = 0; d < head_dim; d += 8) sum = _mm256_fmadd_ps(_mm256_loadu_ps(query + d), load8(keys, j * head_dim + d, half), sum);
        scores[j] = horizontal_sum(sum) * scale;
        max = scores[j] > max ? scores[j] : max;
    }
    const __m256 high = _mm256_set1_ps(max);
    __m256 totals = _mm256_setzero_ps();
    j = 0;
    for (; j + 8 <= n; j += 8) {
        const __m256 p = exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(scores + j), high));
        _mm256_storeu_ps(scores + j, p);
        totals = _mm256_add_ps(totals, p);
    }
    float total = horizontal_sum(totals);
    for (; j < n; j++) {
        scores[j] = expf(scores[j] - max);
        total += scores[j];
    }
    const __m256 inverse = _mm256_set1_ps(1.0f / total);
    for (int64_t d = 0; d < head_dim; d += 64) {
        const int blocks = head_dim - d >= 64 ? 8 : (int)(head_dim - d) / 8;
        __m256 acc[8];
        for (int b = 0; b < blocks; b++) acc[b] = _mm256_setzero_ps();
        for (int64_t k = 0; k < n; k++) {
            const __m256 weight = _mm256_set1_ps(scores[k]);
            for (int b = 0; b < blocks; b++) acc[b] = _mm256_fmadd_ps(weight, load8(values, k * head_dim + d + 8 * b, half), acc[b]);
        }
        for (int b = 0; b < blocks; b++) _mm256_storeu_ps(out + d + 8 * b, _mm256_mul_ps(acc[b], inverse));
    }
}

static void store_half(uint16_t *to, const float *from, int64_t count) {
    for (int64_t d = 0; d < count; d += 8)
        _mm_storeu_si128((__m128i *)(to + d), _mm256_cvtps_ph(_mm256_loadu_ps(from + d), _MM_FROUND_TO_NEAREST_INT));
}
#endif

/* One (row, head) over an fp32 cache: scores over keys[0..n), softmax, weighted sum of values into
 * out[head_dim]; the portable loop where no vector path applies. */
static void attend(const float *query, const float *keys, const float *values, int64_t n, int64_t head_dim,
                   float scale, float *scores, float *out) {
#ifdef SEGUE_AVX2
    if (head_dim % 8 == 0) {
        attend_vectors(query, keys, values, n, head_dim, scale, scores, out, 0);
        return;
    }
#endif
    float max = -INFINITY, total = 0.0f;
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
 * (rows, heads, capacity, head_dim) contiguous, fp32, or fp16 with `half` (AVX2 builds, head_dim a
 * multiple of 8); out: (rows, heads x head_dim), row stride out_stride. Without `write` nothing is
 * written to the cache and only qkv's queries are read: the cross-attention to the text's keys.
 * Returns 0; 1 if a scores buffer could not be allocated (nothing is attended then); 2 for an fp16
 * cache this build or head size cannot take (nothing is written). */
int segue_one_query_attention(const float *qkv, int64_t qkv_stride, void *keys, void *values, int64_t rows,
                              int64_t heads, int64_t head_dim, int64_t capacity, int64_t position, int write,
                              int half, float *out, int64_t out_stride, int threads) {
    const int64_t tasks = rows * heads, n = position + 1;
    const float scale = 1.0f / sqrtf((float)head_dim);
#ifdef SEGUE_AVX2
    if (half && head_dim % 8 != 0) return 2;
#else
    if (half) return 2;
#endif
    for (int64_t task = 0; task < tasks && write; task++) {
        const int64_t row = task / heads, head = task % heads;
        const float *projected = qkv + row * qkv_stride;
        const int64_t at = (task * capacity + position) * head_dim;
        if (half) {
#ifdef SEGUE_AVX2
            store_half((uint16_t *)keys + at, projected + (heads + head) * head_dim, head_dim);
            store_half((uint16_t *)values + at, projected + (2 * heads + head) * head_dim, head_dim);
#endif
        } else {
            memcpy((float *)keys + at, projected + (heads + head) * head_dim, head_dim * sizeof(float));
            memcpy((float *)values + at, projected + (2 * heads + head) * head_dim, head_dim * sizeof(float));
        }
    }
    int failed = 0;
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
            const int64_t row = task / heads, head = task % heads, first = task * capacity * head_dim;
            const float *query = qkv + row * qkv_stride + head * head_dim;
            float *result = out + row * out_stride + head * head_dim;
#ifdef SEGUE_AVX2
            if (half) {
                attend_vectors(query, (const uint16_t *)keys + first, (const uint16_t *)values + first, n, head_dim,
                               scale, scores, result, 1);
                continue;
            }
#endif
            attend(query, (const float *)keys + first, (const float *)values + first, n, head_dim, scale, scores,
                   result);
        }
        free(scores);
    }
    return failed;
}
