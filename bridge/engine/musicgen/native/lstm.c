/* One LSTM layer over a sequence in one call: EnCodec's recurrence, frame after frame.
 *
 * Part of Segue's native kernel library (native_int8.py builds it with int8_rows.c). EnCodec's
 * encoder and decoder each end (or start) with a 2-layer LSTM of 1024 units: every frame multiplies
 * the 4096 x 1024 fp32 recurrent matrix (16 MB) by the last output, and nothing of the next frame
 * can start before that product is done. PyTorch's nn.LSTM spends ~2 ms a frame on one thread
 * (musicgen-small's codec, 2-core AVX2 EPYC): an 8 s prompt's 400 frames, 0.86 s, are in the wait
 * for the first chunk of a continuation, and the streaming decode pays it for every new frame.
 *
 * Here the input products of every frame come in already done (one GEMM over the sequence, by the
 * caller), and the call runs the recurrence: the threads split the units; for a pair of units each
 * thread reads their eight rows of the recurrent matrix once, dots them with every stream's last
 * output (in L1), and applies the gates to its own units; one barrier a frame. A layer's matrix
 * (16 MB) stays in a 32 MB last-level cache from frame to frame.
 *
 * Gates in PyTorch's order (input, forget, cell, output): c' = f c + i g, h' = o tanh(c'), with
 * sigmoid and tanh from e^x (vector_math.h), exact to ~1e-7. fp32 throughout; the sums run in
 * another order than PyTorch's, so results differ from nn.LSTM's by float rounding
 * (tests/test_engine_native_lstm.py holds them within 1e-5 over hundreds of frames).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define SEGUE_AVX2 1
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#include "vector_math.h" /* exp_nonpositive, sum_each */

#define UNITS_PER_PASS 2 /* units whose 4 gate rows are read together: 8 rows, 8 accumulators */
/* Multiply-adds a frame each thread must have, or fewer threads run: the threads meet once a frame,
 * and a sleeping thread's wake (~20 us) or, on a busy machine, a descheduled one's (milliseconds)
 * outweighed a small LSTM's frame (the tiny test codec's: a remote replica's jobs took twice as
 * long on both threads). EnCodec's 1024 units: 4 M a frame and stream, both threads. */
#define MIN_WORK_PER_THREAD (512 * 1024)

static inline float sigmoid_scalar(float x) { return 1.0f / (1.0f + expf(-x)); }

#ifdef SEGUE_AVX2
/* 1 / (1 + e^-x), and e^-|x| computed once for both signs (no overflow for any x). */
static inline __m256 sigmoid8(__m256 x) {
    const __m256 one = _mm256_set1_ps(1.0f), sign_bit = _mm256_set1_ps(-0.0f);
    __m256 decay = exp_nonpositive(_mm256_or_ps(x, sign_bit)); /* e^-|x| */
    __m256 positive = _mm256_div_ps(one, _mm256_add_ps(one, decay));
    __m256 negative = _mm256_mul_ps(decay, positive);
    return _mm256_blendv_ps(positive, negative, x); /* the sign bit picks */
}

/* tanh x = sign(x) (1 - e^-2|x|) / (1 + e^-2|x|). */
static inline __m256 tanh8(__m256 x) {
    const __m256 one = _mm256_set1_ps(1.0f), sign_bit = _mm256_set1_ps(-0.0f);
    __m256 sign = _mm256_and_ps(x, sign_bit);
    __m256 decay = exp_nonpositive(_mm256_mul_ps(_mm256_or_ps(x, sign_bit), _mm256_set1_ps(2.0f)));
    __m256 magnitude = _mm256_div_ps(_mm256_sub_ps(one, decay), _mm256_add_ps(one, decay));
    return _mm256_or_ps(magnitude, sign);
}
#endif

/* The 8 rows of units (unit, unit + 1), gate by gate, dotted with h: sums[2 * gate + k] for unit + k. */
static void dot_unit_pair(const float *recurrent, int64_t hidden, int64_t unit, const float *h, float sums[8]) {
    const float *rows[8];
    for (int gate = 0; gate < 4; gate++)
        for (int k = 0; k < UNITS_PER_PASS; k++) rows[2 * gate + k] = recurrent + (gate * hidden + unit + k) * hidden;
#ifdef SEGUE_AVX2
    if (hidden % 8 == 0) {
        __m256 acc[8];
        for (int r = 0; r < 8; r++) acc[r] = _mm256_setzero_ps();
        for (int64_t i = 0; i < hidden; i += 8) {
            __m256 x = _mm256_loadu_ps(h + i);
            for (int r = 0; r < 8; r++) acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(rows[r] + i), x, acc[r]);
        }
        _mm256_storeu_ps(sums, sum_each(acc));
        return;
    }
#endif
    for (int r = 0; r < 8; r++) {
        float sum = 0.0f;
        for (int64_t i = 0; i < hidden; i++) sum += rows[r][i] * h[i];
        sums[r] = sum;
    }
}

/* c' = f c + i g, h' = o tanh(c') for units [begin, end) of one stream; `gates` (4, hidden). */
static void apply_gates(const float *gates, int64_t hidden, int64_t begin, int64_t end, float *c, float *h_next) {
    int64_t unit = begin;
#ifdef SEGUE_AVX2
    for (; unit + 8 <= end; unit += 8) {
        __m256 in = sigmoid8(_mm256_loadu_ps(gates + unit));
        __m256 forget = sigmoid8(_mm256_loadu_ps(gates + hidden + unit));
        __m256 cell = tanh8(_mm256_loadu_ps(gates + 2 * hidden + unit));
        __m256 out = sigmoid8(_mm256_loadu_ps(gates + 3 * hidden + unit));
        __m256 state = _mm256_fmadd_ps(forget, _mm256_loadu_ps(c + unit), _mm256_mul_ps(in, cell));
        _mm256_storeu_ps(c + unit, state);
        _mm256_storeu_ps(h_next + unit, _mm256_mul_ps(out, tanh8(state)));
    }
#endif
    for (; unit < end; unit++) {
        float state = sigmoid_scalar(gates[hidden + unit]) * c[unit] +
                      sigmoid_scalar(gates[unit]) * tanhf(gates[2 * hidden + unit]);
        c[unit] = state;
        h_next[unit] = sigmoid_scalar(gates[3 * hidden + unit]) * tanhf(state);
    }
}

/* projected: (frames, streams, 4 hidden), each frame's x W_ih^T + b_ih + b_hh;
 * recurrent: (4 hidden, hidden) W_hh, contiguous; h, c: (streams, hidden), the state in and out;
 * out: (frames, streams, hidden), every frame's h. hidden even. Returns 0, -1 if memory ran out, -2 for
 * sizes it does not take. */
int segue_lstm_layer(const float *projected, int64_t frames, int64_t streams, int64_t hidden,
                     const float *recurrent, float *h, float *c, float *out, int threads) {
    if (frames < 0 || streams < 1 || hidden < 2 || hidden % UNITS_PER_PASS != 0) return -2;
    /* gates (streams, 4, hidden): a frame's pre-activations; each thread writes its units' only */
    float *gates = malloc(sizeof(float) * (size_t)(streams * 4 * hidden));
    float *h_in = malloc(sizeof(float) * (size_t)(streams * hidden));
    if (gates == NULL || h_in == NULL) {
        free(gates);
        free(h_in);
        return -1;
    }
    memcpy(h_in, h, sizeof(float) * (size_t)(streams * hidden));
    int64_t groups = (hidden + 7) / 8; /* threads split whole 8-unit groups: a unit's gates are vector or
                                          scalar maths by where it is, not by the split, so every thread
                                          count gives the same bits */
    int64_t work = 4 * hidden * hidden * streams;
    if (threads > work / MIN_WORK_PER_THREAD) threads = (int)(work / MIN_WORK_PER_THREAD);
    if (threads < 1) threads = 1;
#pragma omp parallel num_threads(threads) if (threads > 1 && frames > 0)
    {
        int team = 1, member = 0;
#ifdef _OPENMP
        team = omp_get_num_threads();
        member = omp_get_thread_num();
#endif
        int64_t first = groups * member / team * 8, last = groups * (member + 1) / team * 8;
        if (last > hidden) last = hidden;
        for (int64_t frame = 0; frame < frames; frame++) {
            const float *frame_projected = projected + frame * streams * 4 * hidden;
            float *frame_out = out + frame * streams * hidden;
            const float *previous = frame == 0 ? h_in : out + (frame - 1) * streams * hidden;
            for (int64_t unit = first; unit < last; unit += UNITS_PER_PASS) {
                for (int64_t stream = 0; stream < streams; stream++) { /* the pair's rows: from L1 after the first */
                    float sums[8];
                    dot_unit_pair(recurrent, hidden, unit, previous + stream * hidden, sums);
                    for (int gate = 0; gate < 4; gate++)
                        for (int k = 0; k < UNITS_PER_PASS; k++) {
                            int64_t at = stream * 4 * hidden + gate * hidden + unit + k;
                            gates[at] = frame_projected[at] + sums[2 * gate + k];
                        }
                }
            }
            for (int64_t stream = 0; stream < streams; stream++)
                apply_gates(gates + stream * 4 * hidden, hidden, first, last, c + stream * hidden,
                            frame_out + stream * hidden);
#pragma omp barrier
        }
    }
    if (frames > 0) memcpy(h, out + (frames - 1) * streams * hidden, sizeof(float) * (size_t)(streams * hidden));
    free(gates);
    free(h_in);
    return 0;
}
