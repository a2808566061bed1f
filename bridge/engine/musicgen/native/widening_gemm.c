/* Many rows of fp32 activations times int8 weights, as an fp32 GEMM that widens the weights a panel
 * at a time: a prefill's path where fp32 FMA outruns integer multiply-adds.
 *
 * Part of Segue's `native-int8` kernel (native_int8.py builds it with int8_rows.c). On AMD's Zen 3,
 * `vpmaddwd` with its `vpaddd` did ~34 G int16 multiply-adds/s per core against the FMA's ~38 G fp32
 * (register-only loops, README's Performance), so int8_rows.c's integer GEMM cannot beat fp32 there,
 * and PyTorch's fp32 GEMM needs the weights widened to fp32 in full first. This one:
 *
 * - widens the next KC inputs of NC channels (int8, one block layout with int8_rows.c) to fp32 into
 *   a buffer of its thread's that stays in the L2 cache, and reads each weight from memory once;
 * - packs the activations once, six rows interleaved, so a step of the inner loop broadcasts six
 *   values read in sequence;
 * - multiplies six rows by sixteen channels in twelve AVX2 registers (BLIS's tile shape for AVX2:
 *   two weight vectors and one broadcast feed twelve FMAs);
 * - applies each channel's scale once at the end: the products are of the int8 weights themselves.
 *
 * Sums are fp32 in a fixed order (the same for any row count or thread count): a row's result does
 * not depend on the rows beside it. They are not int8_rows.c's integer sums, so its bits differ from
 * the steps' kernel by fp32 rounding (~1e-6 relative), well inside the KL bound's margin.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define SEGUE_AVX2 1
#endif

#define CHANNELS 4  /* int8_rows.c's packed block: 4 channels x 16 inputs */
#define INPUTS 16
#define TILE_ROWS 6
#define TILE_CHANNELS 16
#define KC 256      /* inputs per widened panel */
#define NC 128      /* channels per widened panel: KC x NC fp32 = 128 kB, in L2 */

#ifdef SEGUE_AVX2
/* Eight rows of eight floats transposed in registers. */
static void transpose8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20), r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20), r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31), r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31), r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}
#endif

/* Widen inputs [start, start + depth) of channels [first, first + NC) (zero past padded_out) into
 * panel[k][channel], TILE_CHANNELS channels per strip: strip s at panel + s * depth * TILE_CHANNELS.
 * start and depth are whole blocks of INPUTS. */
static void widen_panel(const int8_t *packed, int64_t padded_in, int64_t padded_out, int64_t first, int64_t start,
                        int64_t depth, float *panel) {
    for (int64_t strip = 0; strip < NC / TILE_CHANNELS; strip++) {
        float *to = panel + strip * depth * TILE_CHANNELS;
        int64_t low = first + strip * TILE_CHANNELS;
#ifdef SEGUE_AVX2
        if (low + TILE_CHANNELS <= padded_out) { /* 8 channels x 8 inputs at a time, transposed */
            for (int64_t k = 0; k < depth; k += INPUTS) {
                for (int half = 0; half < TILE_CHANNELS; half += 8) {
                    for (int part = 0; part < INPUTS; part += 8) {
                        __m256 r[8];
                        for (int c = 0; c < 8; c++) {
                            int64_t channel = low + half + c;
                            const int8_t *from = packed + (channel / CHANNELS) * CHANNELS * padded_in
                                               + (start + k) * CHANNELS + (channel % CHANNELS) * INPUTS + part;
                            r[c] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)from)));
                        }
                        transpose8(r);
                        for (int t = 0; t < 8; t++) _mm256_storeu_ps(to + (k + part + t) * TILE_CHANNELS + half, r[t]);
                    }
                }
            }
            continue;
        }
#endif
        for (int64_t c = 0; c < TILE_CHANNELS; c++) {
            int64_t channel = low + c;
            if (channel >= padded_out) {
                for (int64_t k = 0; k < depth; k++) to[k * TILE_CHANNELS + c] = 0.0f;
                continue;
            }
            const int8_t *block = packed + (channel / CHANNELS) * CHANNELS * padded_in + (channel % CHANNELS) * INPUTS;
            for (int64_t k = 0; k < depth; k++) {
                int64_t i = start + k;
                to[k * TILE_CHANNELS + c] = (float)block[(i / INPUTS) * CHANNELS * INPUTS + i % INPUTS];
            }
        }
    }
}

/* tile[r][c] += sum over k < depth of a[k][r] * b[k][c], for TILE_ROWS x TILE_CHANNELS. */
static void tile_fma(const float *a, const float *b, int64_t depth, float *tile, int64_t stride) {
#ifdef SEGUE_AVX2
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int64_t k = 0; k < depth; k++, a += TILE_ROWS, b += TILE_CHANNELS) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), x;
        x = _mm256_broadcast_ss(a);
        c00 = _mm256_fmadd_ps(x, b0, c00), c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(a + 1);
        c10 = _mm256_fmadd_ps(x, b0, c10), c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(a + 2);
        c20 = _mm256_fmadd_ps(x, b0, c20), c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(a + 3);
        c30 = _mm256_fmadd_ps(x, b0, c30), c31 = _mm256_fmadd_ps(x, b1, c31);
        x = _mm256_broadcast_ss(a + 4);
        c40 = _mm256_fmadd_ps(x, b0, c40), c41 = _mm256_fmadd_ps(x, b1, c41);
        x = _mm256_broadcast_ss(a + 5);
        c50 = _mm256_fmadd_ps(x, b0, c50), c51 = _mm256_fmadd_ps(x, b1, c51);
    }
    __m256 sums[TILE_ROWS][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    for (int r = 0; r < TILE_ROWS; r++) {
        float *t = tile + r * stride;
        _mm256_storeu_ps(t, _mm256_add_ps(_mm256_loadu_ps(t), sums[r][0]));
        _mm256_storeu_ps(t + 8, _mm256_add_ps(_mm256_loadu_ps(t + 8), sums[r][1]));
    }
#else
    float sums[TILE_ROWS][TILE_CHANNELS] = {{0}};
    for (int64_t k = 0; k < depth; k++, a += TILE_ROWS, b += TILE_CHANNELS)
        for (int r = 0; r < TILE_ROWS; r++)
            for (int c = 0; c < TILE_CHANNELS; c++) sums[r][c] += a[r] * b[c];
    for (int r = 0; r < TILE_ROWS; r++)
        for (int c = 0; c < TILE_CHANNELS; c++) tile[r * stride + c] += sums[r][c];
#endif
}

/* out[r, j] = scales[j] * sum_i x[r, i] * W[j, i], with int8_rows.c's arguments and packed weights.
 * Returns 0, or -1 if memory ran out. */
int segue_widening_gemm(const float *x, int64_t rows, int64_t in_features, int64_t x_stride, const int8_t *packed,
                        const float *scales, int64_t out_features, int64_t padded_out, int64_t padded_in, float *out,
                        int64_t out_stride, int threads) {
    if (threads < 1) threads = 1;
    int64_t tiles = (rows + TILE_ROWS - 1) / TILE_ROWS, width = (padded_out + NC - 1) / NC * NC;
    /* Activations as (tiles, padded_in, TILE_ROWS), zero-padded; sums as (tiles * TILE_ROWS, width). */
    float *packed_rows = calloc((size_t)(tiles * TILE_ROWS * padded_in), sizeof(float));
    float *sums = calloc((size_t)(tiles * TILE_ROWS * width), sizeof(float));
    if (packed_rows == NULL || sums == NULL) {
        free(packed_rows);
        free(sums);
        return -1;
    }
    int failed = 0;
#pragma omp parallel num_threads(threads)
    {
#pragma omp for schedule(static)
        for (int64_t tile = 0; tile < tiles; tile++)
            for (int r = 0; r < TILE_ROWS && tile * TILE_ROWS + r < rows; r++) {
                const float *from = x + (tile * TILE_ROWS + r) * x_stride;
                float *to = packed_rows + tile * TILE_ROWS * padded_in + r;
                for (int64_t i = 0; i < in_features; i++) to[i * TILE_ROWS] = from[i];
            }
        float *panel = malloc((size_t)KC * NC * sizeof(float));
        if (panel == NULL) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t first = 0; first < width; first += NC) {
            if (panel == NULL) continue;
            for (int64_t start = 0; start < padded_in; start += KC) {
                int64_t depth = start + KC < padded_in ? KC : padded_in - start;
                widen_panel(packed, padded_in, padded_out, first, start, depth, panel);
                for (int64_t tile = 0; tile < tiles; tile++) {
                    const float *a = packed_rows + (tile * TILE_ROWS * padded_in) + start * TILE_ROWS;
                    for (int64_t strip = 0; strip < NC / TILE_CHANNELS; strip++)
                        tile_fma(a, panel + strip * depth * TILE_CHANNELS, depth,
                                 sums + tile * TILE_ROWS * width + first + strip * TILE_CHANNELS, width);
                }
            }
        }
        free(panel);
#pragma omp barrier
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < out_features && !failed; j++) out[r * out_stride + j] = sums[r * width + j] * scales[j];
    }
    free(packed_rows);
    free(sums);
    return failed ? -1 : 0;
}
