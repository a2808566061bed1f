/* Runs one of Segue's native kernel functions on arguments read from files: the tests build it with
 * the native sources for another CPU (tests/test_engine_native_other_cpus.py: aarch64 under QEMU) and
 * compare its outputs with this machine's build on the same inputs.
 *
 *     run_kernel FUNCTION ARG...
 *
 * Each ARG, in the function's order: i:N (an integer), d:X (a double), n (NULL), f:PATH (a buffer
 * read from PATH), o:PATH:BYTES (a zeroed buffer written to PATH after the call), u:PATH (read from
 * PATH, written back to PATH.out after the call). Prints the function's status; exit 0 if it ran. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int segue_int8_rows(const float *, int64_t, int64_t, int64_t, const int8_t *, const float *, int64_t, int64_t, int64_t,
                    float *, int64_t, int);
int segue_int8_gemm(const float *, int64_t, int64_t, int64_t, const int8_t *, const float *, int64_t, int64_t, int64_t,
                    float *, int64_t, int);
int segue_widening_gemm(const float *, int64_t, int64_t, int64_t, const int8_t *, const float *, int64_t, int64_t,
                        int64_t, float *, int64_t, int);
int segue_int8_rows_fused(const float *, int64_t, int64_t, int64_t, const int8_t *, const float *, int64_t, int64_t,
                          int64_t, float *, int64_t, int, const float *, const float *, double, int, const float *,
                          int64_t);
int segue_lstm_layer(const float *, int64_t, int64_t, int64_t, const float *, float *, float *, float *, int);
int segue_causal_attention(const float *, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, float *, int);

#define MAX_ARGS 24

static void *read_file(const char *path, size_t *size) {
    FILE *file = fopen(path, "rb");
    if (file == NULL) return NULL;
    fseek(file, 0, SEEK_END);
    long length = ftell(file);
    fseek(file, 0, SEEK_SET);
    void *data = malloc(length > 0 ? (size_t)length : 1);
    if (data != NULL && fread(data, 1, (size_t)length, file) != (size_t)length) {
        free(data);
        data = NULL;
    }
    fclose(file);
    *size = (size_t)length;
    return data;
}

static int write_file(const char *path, const void *data, size_t size) {
    FILE *file = fopen(path, "wb");
    if (file == NULL) return -1;
    size_t written = fwrite(data, 1, size, file);
    fclose(file);
    return written == size ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc - 2 > MAX_ARGS) {
        fprintf(stderr, "usage: run_kernel FUNCTION ARG...\n");
        return 2;
    }
    void *pointers[MAX_ARGS] = {0};
    int64_t integers[MAX_ARGS] = {0};
    double doubles[MAX_ARGS] = {0};
    char paths[MAX_ARGS][512] = {{0}};
    size_t sizes[MAX_ARGS] = {0};
    int count = argc - 2;
    for (int i = 0; i < count; i++) {
        const char *arg = argv[i + 2];
        if (arg[0] == 'i' && arg[1] == ':') integers[i] = strtoll(arg + 2, NULL, 10);
        else if (arg[0] == 'd' && arg[1] == ':') doubles[i] = strtod(arg + 2, NULL);
        else if (arg[0] == 'n' && arg[1] == '\0') pointers[i] = NULL;
        else if ((arg[0] == 'f' || arg[0] == 'u') && arg[1] == ':') {
            if (arg[0] == 'u') snprintf(paths[i], sizeof paths[i], "%s.out", arg + 2); /* written back */
            pointers[i] = read_file(arg + 2, &sizes[i]);
            if (pointers[i] == NULL) {
                fprintf(stderr, "cannot read %s\n", arg + 2);
                return 2;
            }
        } else if (arg[0] == 'o' && arg[1] == ':') {
            const char *colon = strrchr(arg + 2, ':');
            if (colon == NULL) return 2;
            snprintf(paths[i], sizeof paths[i], "%.*s", (int)(colon - (arg + 2)), arg + 2);
            sizes[i] = (size_t)strtoull(colon + 1, NULL, 10);
            pointers[i] = calloc(sizes[i] > 0 ? sizes[i] : 1, 1);
        } else {
            fprintf(stderr, "bad argument %s\n", arg);
            return 2;
        }
    }
#define P(k) pointers[k]
#define N(k) integers[k]
    const char *function = argv[1];
    int status;
    if (strcmp(function, "rows") == 0 && count == 12)
        status = segue_int8_rows(P(0), N(1), N(2), N(3), P(4), P(5), N(6), N(7), N(8), P(9), N(10), (int)N(11));
    else if (strcmp(function, "gemm") == 0 && count == 12)
        status = segue_int8_gemm(P(0), N(1), N(2), N(3), P(4), P(5), N(6), N(7), N(8), P(9), N(10), (int)N(11));
    else if (strcmp(function, "widening") == 0 && count == 12)
        status = segue_widening_gemm(P(0), N(1), N(2), N(3), P(4), P(5), N(6), N(7), N(8), P(9), N(10), (int)N(11));
    else if (strcmp(function, "fused") == 0 && count == 18)
        status = segue_int8_rows_fused(P(0), N(1), N(2), N(3), P(4), P(5), N(6), N(7), N(8), P(9), N(10), (int)N(11),
                                       P(12), P(13), doubles[14], (int)N(15), P(16), N(17));
    else if (strcmp(function, "lstm") == 0 && count == 9)
        status = segue_lstm_layer(P(0), N(1), N(2), N(3), P(4), P(5), P(6), P(7), (int)N(8));
    else if (strcmp(function, "causal") == 0 && count == 9)
        status = segue_causal_attention(P(0), N(1), N(2), N(3), N(4), N(5), N(6), P(7), (int)N(8));
    else {
        fprintf(stderr, "unknown function or argument count: %s, %d\n", function, count);
        return 2;
    }
    for (int i = 0; i < count; i++)
        if (paths[i][0] != '\0' && write_file(paths[i], pointers[i], sizes[i]) != 0) {
            fprintf(stderr, "cannot write %s\n", paths[i]);
            return 2;
        }
    printf("%d\n", status);
    return 0;
}
