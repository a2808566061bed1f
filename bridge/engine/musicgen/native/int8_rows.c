/* A few rows of fp32 activations times int8 weights, reading the weights once from one stream.
 *
 * Segue's `native-int8` kernel (bridge/engine/musicgen/native_int8.py compiles this file with the
 * machine's C compiler at the first load and loads it through ctypes). A decoder step multiplies
 * two rows (guided and unguided) by every weight matrix, so its speed is the speed at which the
 * weights stream from memory. On CPUs without AVX-512 bf16 or VNNI, PyTorch's int8 kernels read
 * them at a fraction of that (bench/kernels.py): this one keeps the memory system busy instead.
 *
 * - Weights: int8, one fp32 scale per output channel, packed as (n/4, k/16, 4, 16): four output
 *   channels' next 16 inputs sit together, so a pass is one sequential stream, prefetched ahead.
 * - Activations: each row quantised to int16 with its own scale (2^-15 of its largest value: the
 *   error is ~1000x below the weights' own rounding). Products of int16 and int8 are summed
 *   exactly in int32 (`vpmaddwd` on AVX2), and each 512 inputs' sum is added to an fp32 total
 *   before it could overflow: 512 * 32767 * 127 < 2^31. Integer sums are exact in any order, so
 *   a row's result depends on its own values only, never on the other rows or the kernel.
 * - segue_int8_rows (a decoder step): rows are taken two at a time, each pair one pass over the
 *   weights; threads split the output channels (OpenMP where the compiler has it).
 * - segue_int8_rows_fused: the same, with what a decoder step does around the layer in the same call:
 *   the input rows' LayerNorm, the output's GELU, a residual added. As PyTorch ops each cost ~10-60 us
 *   on a few thousand numbers, ~5 of them per layer; here a few us.
 * - segue_int8_gemm (a prefill: hundreds of rows): arithmetic, not bytes, sets its speed. Three rows
 *   by four channels are held in twelve registers, so each weight and activation loaded feeds
 *   several `vpmaddwd` (16 multiply-adds each, twice an fp32 FMA's 8). Threads take blocks of 128
 *   channels; a block's next 512 inputs of weights (64 kB) stay in the L2 cache while every row
 *   passes over them. Its results are the bits segue_int8_rows gives for the same rows.
 *
 * The AVX2 path and the portable path compute the same integer sums; the portable one is left to
 * the compiler's vectoriser (NEON on Arm).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define SEGUE_AVX2 1
#endif

#include "vector_math.h" /* gelu */

#define CHANNELS 4        /* output channels per block */
#define INPUTS 16         /* inputs per block */
#define FLUSH 512         /* inputs summed in int32 before adding to fp32: 512 * 32767 * 127 < 2^31 */
#define GEMM_ROWS 3       /* rows a GEMM tile holds in registers, by CHANNELS channels */
#define GEMM_BLOCK 128    /* channels per thread's block of a GEMM (FLUSH inputs of them: 64 kB) */
#ifndef PREFETCH
#define PREFETCH 2048     /* bytes of packed weights prefetched ahead of the read */
#endif
#define INT16_LEVELS 32767.0f

int segue_int8_rows_version(void) { return 6; }

int segue_int8_rows_isa(void) {
#ifdef SEGUE_AVX2
    return 2; /* AVX2 + FMA */
#else
    return 0; /* portable C */
#endif
}

/* Sums of one block row range [start, end) for 4 channels x 2 rows, added to `total`. */
static void dot_blocks(const int8_t *packed, const int16_t *x0, const int16_t *x1, int64_t start, int64_t end,
                       float total[CHANNELS][2]) {
    const int8_t *p = packed + start * CHANNELS;
#ifdef SEGUE_AVX2
    __m256i sum[CHANNELS][2];
    for (int c = 0; c < CHANNELS; c++) sum[c][0] = sum[c][1] = _mm256_setzero_si256();
    for (int64_t i = start; i < end; i += INPUTS, p += CHANNELS * INPUTS) {
        _mm_prefetch((const char *)(p + PREFETCH), _MM_HINT_T0);
        __m256i a = _mm256_loadu_si256((const __m256i *)(x0 + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(x1 + i));
        for (int c = 0; c < CHANNELS; c++) {
            __m256i w = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(p + INPUTS * c)));
            sum[c][0] = _mm256_add_epi32(sum[c][0], _mm256_madd_epi16(w, a));
            sum[c][1] = _mm256_add_epi32(sum[c][1], _mm256_madd_epi16(w, b));
        }
    }
    for (int c = 0; c < CHANNELS; c++) {
        for (int r = 0; r < 2; r++) {
            __m128i s = _mm_add_epi32(_mm256_castsi256_si128(sum[c][r]), _mm256_extracti128_si256(sum[c][r], 1));
            s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
            s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
            total[c][r] += (float)_mm_cvtsi128_si32(s);
        }
    }
#else
    int32_t sum[CHANNELS][2] = {{0}};
    for (int64_t i = start; i < end; i += INPUTS, p += CHANNELS * INPUTS) {
        __builtin_prefetch(p + PREFETCH);
        for (int c = 0; c < CHANNELS; c++) {
            int32_t s0 = 0, s1 = 0;
            for (int t = 0; t < INPUTS; t++) {
                int32_t w = p[INPUTS * c + t];
                s0 += w * x0[i + t];
                s1 += w * x1[i + t];
            }
            sum[c][0] += s0;
            sum[c][1] += s1;
        }
    }
    for (int c = 0; c < CHANNELS; c++) {
        total[c][0] += (float)sum[c][0];
        total[c][1] += (float)sum[c][1];
    }
#endif
}

/* Quantise `count` values to int16 with one scale (returned): 0 for an all-zero row, NaN for a row
 * holding inf or NaN (so its outputs are NaN, as a float kernel's would be). */
static float quantise_row(const float *x, int64_t count, int16_t *out) {
    float largest = 0.0f;
    int finite = 1;
    for (int64_t i = 0; i < count; i++) {
        finite &= isfinite(x[i]) != 0;
        largest = fmaxf(largest, fabsf(x[i]));
    }
    if (!finite || largest == 0.0f) {
        memset(out, 0, (size_t)count * sizeof(int16_t));
        return finite ? 0.0f : NAN;
    }
    float inverse = INT16_LEVELS / largest;
    for (int64_t i = 0; i < count; i++) out[i] = (int16_t)lrintf(x[i] * inverse);
    return largest / INT16_LEVELS;
}

/* Each of `rows` rows of x quantised into `quantised` (row stride padded_in, zero beyond in_features)
 * with its scale in row_scales. Returns the buffer (rows_allocated rows, the rest zero), or NULL. */
static int16_t *quantise_rows(const float *x, int64_t rows, int64_t rows_allocated, int64_t in_features,
                              int64_t x_stride, int64_t padded_in, float *row_scales, int threads) {
    int16_t *quantised = calloc((size_t)rows_allocated * (size_t)padded_in, sizeof(int16_t));
    if (quantised == NULL) return NULL;
#pragma omp parallel for schedule(static) num_threads(threads) if (rows > 16)
    for (int64_t r = 0; r < rows; r++) row_scales[r] = quantise_row(x + r * x_stride, in_features, quantised + r * padded_in);
    for (int64_t r = rows; r < rows_allocated; r++) row_scales[r] = 0.0f;
    return quantised;
}

/* out[r, j] = scales[j] * sum_i x[r, i] * W[j, i] for r < rows, j < out_features.
 * x: (rows, in_features) fp32, row stride x_stride; packed: (padded_out/4, padded_in/16, 4, 16) int8;
 * out: (rows, out_features) fp32, row stride out_stride. Returns 0, or -1 if memory ran out. */
int segue_int8_rows(const float *x, int64_t rows, int64_t in_features, int64_t x_stride, const int8_t *packed,
                    const float *scales, int64_t out_features, int64_t padded_out, int64_t padded_in, float *out,
                    int64_t out_stride, int threads) {
    if (threads < 1) threads = 1;
    float *row_scales = malloc((size_t)(rows + 1) * sizeof(float));
    int16_t *quantised = row_scales == NULL ? NULL /* +1: a zero row */
                       : quantise_rows(x, rows, rows + 1, in_features, x_stride, padded_in, row_scales, threads);
    if (quantised == NULL) {
        free(row_scales);
        return -1;
    }
    for (int64_t r = 0; r < rows; r += 2) {
        int64_t second = r + 1 < rows ? r + 1 : rows; /* an odd last row pairs with the zero row */
        const int16_t *x0 = quantised + r * padded_in, *x1 = quantised + second * padded_in;
        float scale0 = row_scales[r], scale1 = row_scales[second];
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int64_t j = 0; j < padded_out; j += CHANNELS) {
            float total[CHANNELS][2] = {{0}};
            const int8_t *block = packed + j * padded_in;
            for (int64_t start = 0; start < padded_in; start += FLUSH) {
                int64_t end = start + FLUSH < padded_in ? start + FLUSH : padded_in;
                dot_blocks(block, x0, x1, start, end, total);
            }
            for (int c = 0; c < CHANNELS && j + c < out_features; c++) {
                out[r * out_stride + j + c] = total[c][0] * scale0 * scales[j + c];
                if (second < rows) out[second * out_stride + j + c] = total[c][1] * scale1 * scales[j + c];
            }
        }
    }
    free(quantised);
    free(row_scales);
    return 0;
}


/* out = (x - mean) / sqrt(variance + eps) * weight + bias over one row of n, the moments summed in double. */
static void layer_norm_row(const float *x, int64_t n, const float *weight, const float *bias, double eps, float *out) {
    double sum = 0.0, squares = 0.0;
    for (int64_t i = 0; i < n; i++) sum += x[i];
    double mean = sum / (double)n;
    for (int64_t i = 0; i < n; i++) squares += ((double)x[i] - mean) * ((double)x[i] - mean);
    float inverse = (float)(1.0 / sqrt(squares / (double)n + eps)), centre = (float)mean;
    for (int64_t i = 0; i < n; i++) out[i] = (x[i] - centre) * inverse * weight[i] + bias[i];
}

static void gelu_in_place(float *values, int64_t n) {
    int64_t i = 0;
#ifdef SEGUE_AVX2
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(values + i, gelu(_mm256_loadu_ps(values + i)));
#endif
    for (; i < n; i++) values[i] = 0.5f * values[i] * (1.0f + erff(values[i] * 0.70710678118654752f));
}

/* segue_int8_rows with, where given: x's rows layer-normalised first (norm_weight, norm_bias, norm_eps),
 * the GELU applied to the result (apply_gelu), then `residual` (rows with stride residual_stride; not
 * `out` itself) added: out = residual + gelu(norm(x) W^T). Returns 0, or -1 if memory ran out. */
int segue_int8_rows_fused(const float *x, int64_t rows, int64_t in_features, int64_t x_stride, const int8_t *packed,
                          const float *scales, int64_t out_features, int64_t padded_out, int64_t padded_in, float *out,
                          int64_t out_stride, int threads, const float *norm_weight, const float *norm_bias,
                          double norm_eps, int apply_gelu, const float *residual, int64_t residual_stride) {
    float *normed = NULL;
    if (norm_weight != NULL) {
        normed = malloc((size_t)(rows * in_features) * sizeof(float));
        if (normed == NULL) return -1;
        for (int64_t r = 0; r < rows; r++)
            layer_norm_row(x + r * x_stride, in_features, norm_weight, norm_bias, norm_eps, normed + r * in_features);
        x = normed;
        x_stride = in_features;
    }
    int status = segue_int8_rows(x, rows, in_features, x_stride, packed, scales, out_features, padded_out, padded_in,
                                 out, out_stride, threads);
    free(normed);
    if (status != 0) return status;
    for (int64_t r = 0; r < rows; r++) {
        float *row = out + r * out_stride;
        if (apply_gelu) gelu_in_place(row, out_features);
        if (residual != NULL)
            for (int64_t j = 0; j < out_features; j++) row[j] += residual[r * residual_stride + j];
    }
    return 0;
}

/* The integer sums of inputs [start, end) of three rows by one block of 4 channels, each sum added to
 * `total` (fp32, CHANNELS per row, row stride `stride`) as one exact int32 per call: end - start <= FLUSH. */
static void tile_sums(const int8_t *block, const int16_t *x0, const int16_t *x1, const int16_t *x2, int64_t start,
                      int64_t end, float *total, int64_t stride) {
    const int8_t *p = block + start * CHANNELS;
#ifdef SEGUE_AVX2
    __m256i s00 = _mm256_setzero_si256(), s01 = s00, s02 = s00, s03 = s00;
    __m256i s10 = s00, s11 = s00, s12 = s00, s13 = s00, s20 = s00, s21 = s00, s22 = s00, s23 = s00;
    for (int64_t i = start; i < end; i += INPUTS, p += CHANNELS * INPUTS) {
        __m256i a0 = _mm256_loadu_si256((const __m256i *)(x0 + i));
        __m256i a1 = _mm256_loadu_si256((const __m256i *)(x1 + i));
        __m256i a2 = _mm256_loadu_si256((const __m256i *)(x2 + i));
        __m256i w = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)p));
        s00 = _mm256_add_epi32(s00, _mm256_madd_epi16(w, a0));
        s10 = _mm256_add_epi32(s10, _mm256_madd_epi16(w, a1));
        s20 = _mm256_add_epi32(s20, _mm256_madd_epi16(w, a2));
        w = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(p + INPUTS)));
        s01 = _mm256_add_epi32(s01, _mm256_madd_epi16(w, a0));
        s11 = _mm256_add_epi32(s11, _mm256_madd_epi16(w, a1));
        s21 = _mm256_add_epi32(s21, _mm256_madd_epi16(w, a2));
        w = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(p + 2 * INPUTS)));
        s02 = _mm256_add_epi32(s02, _mm256_madd_epi16(w, a0));
        s12 = _mm256_add_epi32(s12, _mm256_madd_epi16(w, a1));
        s22 = _mm256_add_epi32(s22, _mm256_madd_epi16(w, a2));
        w = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(p + 3 * INPUTS)));
        s03 = _mm256_add_epi32(s03, _mm256_madd_epi16(w, a0));
        s13 = _mm256_add_epi32(s13, _mm256_madd_epi16(w, a1));
        s23 = _mm256_add_epi32(s23, _mm256_madd_epi16(w, a2));
    }
    /* Each row's four channel sums in one vector: pairwise adds are exact (integers, wrapping). */
    __m256i rows[GEMM_ROWS] = {
        _mm256_hadd_epi32(_mm256_hadd_epi32(s00, s01), _mm256_hadd_epi32(s02, s03)),
        _mm256_hadd_epi32(_mm256_hadd_epi32(s10, s11), _mm256_hadd_epi32(s12, s13)),
        _mm256_hadd_epi32(_mm256_hadd_epi32(s20, s21), _mm256_hadd_epi32(s22, s23)),
    };
    for (int r = 0; r < GEMM_ROWS; r++) {
        __m128i sums = _mm_add_epi32(_mm256_castsi256_si128(rows[r]), _mm256_extracti128_si256(rows[r], 1));
        float *t = total + r * stride;
        _mm_storeu_ps(t, _mm_add_ps(_mm_loadu_ps(t), _mm_cvtepi32_ps(sums)));
    }
#else
    const int16_t *x[GEMM_ROWS] = {x0, x1, x2};
    int32_t sum[GEMM_ROWS][CHANNELS] = {{0}};
    for (int64_t i = start; i < end; i += INPUTS, p += CHANNELS * INPUTS) {
        for (int r = 0; r < GEMM_ROWS; r++) {
            for (int c = 0; c < CHANNELS; c++) {
                int32_t s = 0;
                for (int t = 0; t < INPUTS; t++) s += (int32_t)p[INPUTS * c + t] * x[r][i + t];
                sum[r][c] += s;
            }
        }
    }
    for (int r = 0; r < GEMM_ROWS; r++)
        for (int c = 0; c < CHANNELS; c++) total[r * stride + c] += (float)sum[r][c];
#endif
}

/* As segue_int8_rows, for many rows: the same arguments and the same bits (widening_gemm.c's fp32
 * GEMM is the prefill's other native path, for CPUs where `vpmaddwd` is slow). */
int segue_int8_gemm(const float *x, int64_t rows, int64_t in_features, int64_t x_stride, const int8_t *packed,
                    const float *scales, int64_t out_features, int64_t padded_out, int64_t padded_in, float *out,
                    int64_t out_stride, int threads) {
    if (threads < 1) threads = 1;
    int64_t tiled_rows = (rows + GEMM_ROWS - 1) / GEMM_ROWS * GEMM_ROWS; /* zero rows pad the last tile */
    float *row_scales = malloc((size_t)tiled_rows * sizeof(float));
    float *totals = calloc((size_t)tiled_rows * (size_t)padded_out, sizeof(float));
    int16_t *quantised = row_scales == NULL || totals == NULL ? NULL
                       : quantise_rows(x, rows, tiled_rows, in_features, x_stride, padded_in, row_scales, threads);
    if (quantised == NULL) {
        free(row_scales);
        free(totals);
        return -1;
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int64_t first = 0; first < padded_out; first += GEMM_BLOCK) {
        int64_t last = first + GEMM_BLOCK < padded_out ? first + GEMM_BLOCK : padded_out;
        for (int64_t start = 0; start < padded_in; start += FLUSH) {
            int64_t end = start + FLUSH < padded_in ? start + FLUSH : padded_in;
            for (int64_t r = 0; r < tiled_rows; r += GEMM_ROWS) {
                const int16_t *x0 = quantised + r * padded_in;
                for (int64_t j = first; j < last; j += CHANNELS)
                    tile_sums(packed + j * padded_in, x0, x0 + padded_in, x0 + 2 * padded_in, start, end,
                              totals + r * padded_out + j, padded_out);
            }
        }
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = first; j < last && j < out_features; j++)
                out[r * out_stride + j] = totals[r * padded_out + j] * row_scales[r] * scales[j];
    }
    free(quantised);
    free(row_scales);
    free(totals);
    return 0;
}
