/* example.c: run a model compiled by nncompiler from C, without Python.
 *
 * Build (the bundle written by `python -m compiler build model.onnx --target cpu -o out/`):
 *
 *     cc -O2 example.c -I out/ -L out/ -lmodel -lpthread -lm -o example
 *     ./example -w out/model_weights.bin -t 4 -o output.bin input.bin
 *     ./example -b 4 -o output.bin inputs_of_4_samples.npy      (a model with a symbolic batch)
 *
 * A bundle with another name: add -DMODEL=name (and -lname).  Weights compiled
 * in as a C array (--option c_array=true): add -DNNC_USE_C_ARRAY and drop -w.
 *
 * Options:  -w FILE   the weights blob (default: <name>_weights.bin)
 *           -t N      threads in the pool (0: one per CPU, 1: no pool; default 1)
 *           -r N      run N times and report the mean time (default 1)
 *           -o FILE   write the next output there (repeat for several outputs)
 *           -p        also print each kernel's time (profiled run)
 *           -b N      samples per run, for a model compiled with a run-time batch (default 1):
 *                     each batched input file then holds N samples, each output N samples
 * Positional: one file per input, raw little-endian bytes of the input's size,
 * or a .npy file (C order) holding them.
 *
 * The program allocates once (weights, arena, inputs and outputs in one block
 * aligned as the header's <NAME>_ALIGNMENT says); the model itself never allocates.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef MODEL
#define MODEL model
#endif
#define NNC_STR_(x) #x
#define NNC_STR(x) NNC_STR_(x)
#define NNC_CAT_(a, b) a##b
#define NNC_CAT(a, b) NNC_CAT_(a, b)
#define M(suffix) NNC_CAT(MODEL, suffix) /* M(_info) -> model_info */
#ifndef MODEL_HEADER
#define MODEL_HEADER NNC_STR(MODEL.h)
#endif
#include MODEL_HEADER

#define MAX_TENSORS 64

static size_t round_up(size_t n, size_t align) { return (n + align - 1) / align * align; }

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* Read exactly `bytes` bytes of tensor data from `path` (raw, or a .npy's payload). */
static int read_tensor(const char *path, void *dst, size_t bytes) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    unsigned char magic[10];
    size_t got = fread(magic, 1, sizeof magic, f);
    long start = 0;
    if (got == sizeof magic && memcmp(magic, "\x93NUMPY", 6) == 0) {
        /* .npy: magic, version, header length (2 bytes in v1, 4 in v2/v3), header text. */
        long hlen = magic[8] | magic[9] << 8, pre = 10;
        if (magic[6] >= 2) {
            unsigned char more[2];
            if (fread(more, 1, 2, f) != 2) goto short_file;
            hlen |= (long)more[0] << 16 | (long)more[1] << 24;
            pre = 12;
        }
        char header[4096] = {0};
        if (hlen >= (long)sizeof header || fread(header, 1, (size_t)hlen, f) != (size_t)hlen) goto short_file;
        if (strstr(header, "'fortran_order': True")) {
            fprintf(stderr, "%s: Fortran-ordered .npy is not supported\n", path);
            fclose(f);
            return -1;
        }
        start = pre + hlen;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f) - start;
    if (size != (long)bytes) {
        fprintf(stderr, "%s: %ld bytes of data, the model expects %zu\n", path, size, bytes);
        fclose(f);
        return -1;
    }
    fseek(f, start, SEEK_SET);
    if (fread(dst, 1, bytes, f) != bytes) goto short_file;
    fclose(f);
    return 0;
short_file:
    fprintf(stderr, "%s: file too short\n", path);
    fclose(f);
    return -1;
}

static int write_file(const char *path, const void *src, size_t bytes) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(src, 1, bytes, f) != bytes) {
        perror(path);
        if (f) fclose(f);
        return -1;
    }
    return fclose(f);
}

/* Bytes of one input or output for a run of `batch` samples. */
static size_t tensor_bytes(const nnc_tensor_info *t, int64_t batch) {
    return t->batched ? t->bytes * (size_t)batch : t->bytes;
}

static void print_shape(const nnc_tensor_info *t, int64_t batch) {
    printf("%s %s[", t->name, t->dtype);
    for (int d = 0; d < t->rank; d++)
        printf(d ? ",%lld" : "%lld", (long long)(d == 0 && t->batched ? batch : t->shape[d]));
    printf("]");
}

/* One line per output: shape, and for f32 a few values, min, max, argmax. */
static void summarize(const nnc_tensor_info *t, const void *data, int64_t batch) {
    size_t bytes = tensor_bytes(t, batch);
    printf("output ");
    print_shape(t, batch);
    if (strcmp(t->dtype, "f32") != 0 || bytes == 0) {
        printf(" (%zu bytes)\n", bytes);
        return;
    }
    const float *x = (const float *)data;
    size_t n = bytes / sizeof(float), arg = 0;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += x[i];
        if (x[i] > x[arg]) arg = i;
    }
    float lo = x[0];
    for (size_t i = 1; i < n; i++) lo = x[i] < lo ? x[i] : lo;
    printf(": min %g max %g argmax %zu sum %g; first", lo, x[arg], arg, sum);
    for (size_t i = 0; i < n && i < 6; i++) printf(" %g", x[i]);
    printf("\n");
}

int main(int argc, char **argv) {
    const nnc_model_info *info = &M(_info);
    const char *weights_path = NNC_STR(MODEL) "_weights.bin";
    const char *out_paths[MAX_TENSORS] = {0};
    int threads = 1, repeat = 1, profile = 0, n_out_paths = 0, opt;
    int64_t batch = 1;
    while ((opt = getopt(argc, argv, "w:t:r:o:pb:")) != -1) {
        switch (opt) {
        case 'w': weights_path = optarg; break;
        case 't': threads = atoi(optarg); break;
        case 'r': repeat = atoi(optarg) > 0 ? atoi(optarg) : 1; break;
        case 'o': if (n_out_paths < MAX_TENSORS) out_paths[n_out_paths++] = optarg; break;
        case 'p': profile = 1; break;
        case 'b': batch = atoll(optarg); break;
        default:
            fprintf(stderr, "usage: %s [-w weights.bin] [-t threads] [-r repeat] [-o output.bin]... [-p] "
                    "[-b batch] input...\n", argv[0]);
            return 2;
        }
    }
    if (argc - optind != info->num_inputs || info->num_inputs > MAX_TENSORS || info->num_outputs > MAX_TENSORS) {
        fprintf(stderr, "%s: the model takes %d input file(s), got %d:", argv[0], info->num_inputs, argc - optind);
        for (int i = 0; i < info->num_inputs; i++) {
            fprintf(stderr, i ? ", " : " ");
            fprintf(stderr, "%s (%s, %zu bytes)", info->inputs[i].name, info->inputs[i].dtype, info->inputs[i].bytes);
        }
        fprintf(stderr, "\n");
        return 2;
    }
    if (batch < 1 || batch > info->max_batch) {
        fprintf(stderr, "%s: -b %lld: this model runs 1 to %lld samples at once%s\n", argv[0], (long long)batch,
                (long long)info->max_batch, info->batched ? "" : " (it was compiled without a run-time batch)");
        return 2;
    }
    if (!info->cpu_supported()) {
        fprintf(stderr, "this CPU lacks the %s instructions the model was compiled for\n", info->isa);
        return 1;
    }

    /* One block aligned as the header says (M(_info).alignment): [weights] arena inputs outputs. */
    size_t a = info->alignment;
    size_t arena_bytes = info->batched ? info->arena_bytes_per_sample * (size_t)batch : info->arena_bytes;
    size_t total = round_up(arena_bytes, a);
#ifndef NNC_USE_C_ARRAY
    total += round_up(info->weights_bytes, a);
#endif
    for (int i = 0; i < info->num_inputs; i++) total += round_up(tensor_bytes(&info->inputs[i], batch), a);
    for (int i = 0; i < info->num_outputs; i++) total += round_up(tensor_bytes(&info->outputs[i], batch), a);
    void *raw = NULL;
    if (posix_memalign(&raw, a, total ? total : a) != 0) raw = NULL;
    unsigned char *block = raw, *p = block;
    if (!block) {
        fprintf(stderr, "out of memory (%zu bytes)\n", total);
        return 1;
    }
#ifdef NNC_USE_C_ARRAY
    const void *weights = M(_weights);
    (void)weights_path;
#else
    void *weights = p;
    p += round_up(info->weights_bytes, a);
    if (info->weights_bytes && read_tensor(weights_path, weights, info->weights_bytes) != 0) return 1;
#endif
    void *arena = p;
    p += round_up(arena_bytes, a);
    const void *inputs[MAX_TENSORS];
    void *outputs[MAX_TENSORS];
    for (int i = 0; i < info->num_inputs; i++) {
        if (read_tensor(argv[optind + i], p, tensor_bytes(&info->inputs[i], batch)) != 0) return 1;
        inputs[i] = p;
        p += round_up(tensor_bytes(&info->inputs[i], batch), a);
    }
    for (int i = 0; i < info->num_outputs; i++) {
        outputs[i] = p;
        p += round_up(tensor_bytes(&info->outputs[i], batch), a);
    }

    /* The pool lives in static storage; NULL runs everything on this thread. */
    static nnc_pool pool_storage;
    nnc_pool *pool = NULL;
    if (threads != 1) {
        if (nnc_pool_init(&pool_storage, threads) != 0) {
            fprintf(stderr, "could not start %d threads\n", threads);
            return 1;
        }
        pool = &pool_storage;
    }

    double total_ms = 0, best_ms = 0;
    for (int r = 0; r < repeat; r++) {
        double t0 = now_ms();
        int rc = info->run_batch(weights, inputs, outputs, arena, pool, batch);
        double ms = now_ms() - t0;
        if (rc != 0) {
            fprintf(stderr, "%s_run failed with code %d\n", info->name, rc);
            return 1;
        }
        total_ms += ms;
        best_ms = r == 0 || ms < best_ms ? ms : best_ms;
    }

    printf("model %s (%s): %d input(s), %d output(s), weights %zu bytes, arena %zu bytes\n", info->name,
           info->isa, info->num_inputs, info->num_outputs, info->weights_bytes, info->arena_bytes);
    printf("%d thread(s), batch %lld: %.4f ms per run (mean of %d, best %.4f ms)\n", nnc_pool_threads(pool),
           (long long)batch, total_ms / repeat, repeat, best_ms);
    for (int i = 0; i < info->num_outputs; i++) {
        summarize(&info->outputs[i], outputs[i], batch);
        if (i < n_out_paths && write_file(out_paths[i], outputs[i], tensor_bytes(&info->outputs[i], batch)) != 0)
            return 1;
    }
    if (profile && info->num_kernels > 0) {
        int64_t *ns = calloc((size_t)info->num_kernels, sizeof *ns);
        if (ns && M(_run_batch_profiled)(weights, inputs, outputs, arena, pool, batch, ns) == 0)
            for (int k = 0; k < info->num_kernels; k++)
                printf("  %10.3f us  %s\n", ns[k] * 1e-3, info->kernel_labels[k]);
        free(ns);
    }
    if (pool) nnc_pool_destroy(pool);
    free(block);
    return 0;
}
