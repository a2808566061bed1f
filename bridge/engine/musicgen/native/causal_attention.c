/* A prefill's causal self-attention in one call: every position of a prompt attends to itself and
 * the positions before it, every head.
 *
 * Part of Segue's `native-int8` kernel library (native_int8.py builds it with int8_rows.c). An 8 s
 * audio prompt is ~400 positions a row; PyTorch's CPU SDPA (its flash-attention kernel) took 6-10 ms
 * a layer and row for musicgen-small's 16 heads of 64 there, ~33-56 GFLOP/s on the 2-core EPYC whose
 * GEMMs run at ~130 (this call: 2.9-4.8 ms, 2-2.7x in each run): ~0.45 s of an unprepared prompt's
 * prefill. This computes the same, with the
 * scores of a tile of queries in a buffer rather than an online softmax (a row of scores fits):
 *
 * - for each (row, head), in parallel: the head's keys transposed (head_dim x positions) and its
 *   values packed (positions x head_dim), both ~100 kB at 400 positions, kept in the L2 cache;
 * - for each tile of six queries: scores against the keys up to the tile's last position, six rows
 *   by sixteen keys in twelve AVX2 registers (the GEMM tile of widening_gemm.c); the softmax of each
 *   row over its own positions (max subtracted, exp in registers, later positions zero); then the
 *   weighted sum of values, six rows by sixteen columns of the head at a time, divided by the sum.
 *
 * Input: the fused q/k/v projection's output, (rows, positions, 3, heads, head_dim) in memory with a
 * row stride and a position stride; output (rows, positions, heads x head_dim), the layout the
 * output projection takes. fp32 throughout; sums in another order than PyTorch's, so results differ
 * from SDPA's by float rounding (~1e-6). head_dim a multiple of 16 on AVX2 (status -2 otherwise).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define SEGUE_AVX2 1
#endif

#include "vector_math.h" /* exp_nonpositive */

#define QUERY_TILE 6 /* queries whose scores and sums are held in registers together */
#define KEY_TILE 16  /* keys (scores) or head columns (sums) per register tile: two vectors */

static inline int64_t round_up(int64_t n, int64_t to) { return (n + to - 1) / to * to; }

#ifdef SEGUE_AVX2
/* sum[r] = sum over k < depth of a[r][k] * b[k][0..16), for r < QUERY_TILE: the tile both products share
 * (a row-major with row stride a_stride, b with row stride b_stride). */
static inline __attribute__((always_inline)) void tile_products(const float *a, int64_t a_stride, const float *b,
                                                                 int64_t b_stride, int64_t depth,
                                                                 __m256 sum[QUERY_TILE][2]) {
    for (int r = 0; r < QUERY_TILE; r++) sum[r][0] = sum[r][1] = _mm256_setzero_ps();
    for (int64_t k = 0; k < depth; k++) {
        __m256 b0 = _mm256_loadu_ps(b + k * b_stride), b1 = _mm256_loadu_ps(b + k * b_stride + 8);
        for (int r = 0; r < QUERY_TILE; r++) {
            __m256 x = _mm256_broadcast_ss(a + r * a_stride + k);
            sum[r][0] = _mm256_fmadd_ps(x, b0, sum[r][0]);
            sum[r][1] = _mm256_fmadd_ps(x, b1, sum[r][1]);
        }
    }
}

/* scores[r][j] = q[r] . k_j for r < QUERY_TILE, j < keys (a multiple of KEY_TILE); keys_t is
 * (head_dim, stride) with key j in column j. */
static void tile_scores(const float *query_tile, const float *keys_t, int64_t stride, int64_t keys, int64_t head_dim,
                        float *scores) {
    for (int64_t first = 0; first < keys; first += KEY_TILE) {
        __m256 sum[QUERY_TILE][2];
        tile_products(query_tile, head_dim, keys_t + first, stride, head_dim, sum);
        for (int r = 0; r < QUERY_TILE; r++) {
            _mm256_storeu_ps(scores + r * stride + first, sum[r][0]);
            _mm256_storeu_ps(scores + r * stride + first + 8, sum[r][1]);
        }
    }
}

/* Row r's softmax over its first `seen` scores (scaled), written as weights; the rest of the row up to
 * `keys` (a multiple of 8) set to zero. Returns the weights' sum. */
static float softmax_row(float *row, int64_t seen, int64_t keys, float scale) {
    __m256 top = _mm256_set1_ps(-INFINITY);
    int64_t j = 0;
    for (; j + 8 <= seen; j += 8) top = _mm256_max_ps(top, _mm256_loadu_ps(row + j));
    float most = -INFINITY;
    float lanes[8];
    _mm256_storeu_ps(lanes, top);
    for (int lane = 0; lane < 8; lane++) most = lanes[lane] > most ? lanes[lane] : most;
    for (; j < seen; j++) most = row[j] > most ? row[j] : most;
    const __m256 scaled_top = _mm256_set1_ps(most * scale), factor = _mm256_set1_ps(scale);
    __m256 total = _mm256_setzero_ps();
    for (j = 0; j < keys; j += 8) {
        __m256 weight = exp_nonpositive(_mm256_fmsub_ps(_mm256_loadu_ps(row + j), factor, scaled_top));
        _mm256_storeu_ps(row + j, weight);
        if (j + 8 <= seen) total = _mm256_add_ps(total, weight);
    }
    for (j = seen; j < keys; j++) row[j] = 0.0f;  /* later positions, and the block's padding */
    _mm256_storeu_ps(lanes, total);
    float sum = 0.0f;
    for (int lane = 0; lane < 8; lane++) sum += lanes[lane];
    for (j = seen / 8 * 8; j < seen; j++) sum += row[j];
    return sum;
}

/* out[r] = sum_j weights[r][j] v_j / totals[r] for r < count, over j < keys; values (positions, head_dim). */
static void tile_sums(const float *weights, int64_t stride, const float *values, int64_t keys, int64_t head_dim,
                      const float *inverse_totals, int count, float *const *out) {
    for (int64_t column = 0; column < head_dim; column += KEY_TILE) {
        __m256 sum[QUERY_TILE][2];
        tile_products(weights, stride, values + column, head_dim, keys, sum);
        for (int r = 0; r < count; r++) {
            __m256 inverse = _mm256_set1_ps(inverse_totals[r]);
            _mm256_storeu_ps(out[r] + column, _mm256_mul_ps(sum[r][0], inverse));
            _mm256_storeu_ps(out[r] + column + 8, _mm256_mul_ps(sum[r][1], inverse));
        }
    }
}

/* One (row, head): its keys and values packed into `workspace`, then every query tile. */
static void attend_head(const float *qkv, int64_t position_stride, int64_t positions, int64_t heads, int64_t head_dim,
                        int64_t head, float *out, float *workspace) {
    const int64_t stride = round_up(positions, KEY_TILE);
    const int64_t hidden = heads * head_dim;
    float *keys_t = workspace, *values = keys_t + head_dim * stride, *scores = values + positions * head_dim;
    float *query_tile = scores + QUERY_TILE * stride;
    const float scale = 1.0f / sqrtf((float)head_dim);
    for (int64_t j = 0; j < positions; j++) {
        const float *key = qkv + j * position_stride + hidden + head * head_dim;
        const float *value = key + hidden;
        for (int64_t d = 0; d < head_dim; d++) keys_t[d * stride + j] = key[d];
        memcpy(values + j * head_dim, value, head_dim * sizeof(float));
    }
    for (int64_t d = 0; d < head_dim; d++)
        for (int64_t j = positions; j < stride; j++) keys_t[d * stride + j] = 0.0f;
    for (int64_t first = 0; first < positions; first += QUERY_TILE) {
        int count = positions - first < QUERY_TILE ? (int)(positions - first) : QUERY_TILE;
        float *rows_out[QUERY_TILE];
        float inverse_totals[QUERY_TILE];
        for (int r = 0; r < QUERY_TILE; r++) {  /* past the last position: a copy of it, computed and dropped */
            int64_t position = first + (r < count ? r : count - 1);
            memcpy(query_tile + r * head_dim, qkv + position * position_stride + head * head_dim, head_dim * sizeof(float));
            rows_out[r] = out + position * hidden + head * head_dim;
        }
        const int64_t seen_by_tile = first + count, keys = round_up(seen_by_tile, KEY_TILE);
        tile_scores(query_tile, keys_t, stride, keys, head_dim, scores);
        for (int r = 0; r < QUERY_TILE; r++) {
            int64_t seen = first + (r < count ? r : count - 1) + 1;
            inverse_totals[r] = 1.0f / softmax_row(scores + r * stride, seen, keys, scale);
        }
        tile_sums(scores, stride, values, seen_by_tile, head_dim, inverse_totals, count, rows_out);
    }
}
#else
/* Portable C: one query at a time, the same maths (the compiler's vectoriser does what it can). */
static void attend_head(const float *qkv, int64_t position_stride, int64_t positions, int64_t heads, int64_t head_dim,
                        int64_t head, float *out, float *workspace) {
    const int64_t hidden = heads * head_dim;
    const float scale = 1.0f / sqrtf((float)head_dim);
    float *scores = workspace;
    for (int64_t i = 0; i < positions; i++) {
        const float *query = qkv + i * position_stride + head * head_dim;
        float most = -INFINITY, total = 0.0f;
        for (int64_t j = 0; j <= i; j++) {
            const float *key = qkv + j * position_stride + hidden + head * head_dim;
            float dot = 0.0f;
            for (int64_t d = 0; d < head_dim; d++) dot += query[d] * key[d];
            scores[j] = dot;
            most = dot > most ? dot : most;
        }
        for (int64_t j = 0; j <= i; j++) total += scores[j] = expf((scores[j] - most) * scale);
        float *row = out + i * hidden + head * head_dim;
        for (int64_t d = 0; d < head_dim; d++) row[d] = 0.0f;
        for (int64_t j = 0; j <= i; j++) {
            const float *value = qkv + j * position_stride + 2 * hidden + head * head_dim;
            for (int64_t d = 0; d < head_dim; d++) row[d] += scores[j] * value[d];
        }
        for (int64_t d = 0; d < head_dim; d++) row[d] /= total;
    }
}
#endif

/* Causal self-attention of `rows` rows of `positions` positions from their fused projections
 * (row r, position i: q at qkv + r * row_stride + i * position_stride, then k and v each heads x
 * head_dim further), into out (rows, positions, heads x head_dim), contiguous. Returns 0, -1 out of
 * memory, -2 a head size this build does not take. */
int segue_causal_attention(const float *qkv, int64_t row_stride, int64_t position_stride, int64_t rows,
                           int64_t positions, int64_t heads, int64_t head_dim, float *out, int threads) {
#ifdef SEGUE_AVX2
    if (head_dim % KEY_TILE != 0) return -2;
    const int64_t stride = round_up(positions, KEY_TILE);
    const int64_t workspace_floats = head_dim * stride + positions * head_dim + QUERY_TILE * stride + QUERY_TILE * head_dim;
#else
    const int64_t workspace_floats = positions;
#endif
    if (rows <= 0 || positions <= 0) return 0;
    int failed = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads > 0 ? threads : 1) reduction(| : failed)
#endif
    {
        float *workspace = malloc(workspace_floats * sizeof(float));
        if (workspace == NULL) {
            failed = 1;
        }
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t task = 0; task < rows * heads; task++) {
            if (workspace == NULL) continue;
            int64_t row = task / heads, head = task % heads;
            attend_head(qkv + row * row_stride, position_stride, positions, heads, head_dim, head,
                        out + row * positions * heads * head_dim, workspace);
        }
        free(workspace);
    }
    (void)threads;
    return failed ? -1 : 0;
}
