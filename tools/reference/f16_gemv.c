/*
 * How fast a plain float16 matrix-vector product can read weights on this CPU: every
 * product of a decode step (one activation row), float16 weights widened to float32
 * with F16C and multiplied with FMA, rows split between two threads that wait for each
 * other by spinning. It measures a ceiling for the engine's float16 decode that does not
 * depend on libtorch's kernels; nothing in the service uses it.
 *
 *   gcc -O3 -mavx512f -mf16c -mfma -pthread -o /tmp/f16_gemv tools/reference/f16_gemv.c
 *   /tmp/f16_gemv 1536 8960 2048 28 2      # Qwen2.5-Coder-1.5B: hidden, intermediate, q+k+v rows, layers, threads
 *   /tmp/f16_gemv 576 1536 960 30 2        # SmolLM2-135M
 *
 * Prints the time of one step's products (the four of every layer: q/k/v, output,
 * gate and up, down; not the output head) and the GB/s of weights that implies.
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct { const uint16_t *w; int rows, cols; const float *x; float *y; } product;

/* rows [r0, r1) of w (row-major, cols a multiple of 16, rows of r0..r1 a multiple of 4) times x */
static void gemv(const product *p, int r0, int r1) {
	int k = p->cols;
	for (int r = r0; r < r1; r += 4) {
		__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
		const uint16_t *w0 = p->w + (size_t) r * k, *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k;
		for (int c = 0; c < k; c += 16) {
			__m512 x = _mm512_loadu_ps(p->x + c);
			a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (w0 + c))), x, a0);
			a1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (w1 + c))), x, a1);
			a2 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (w2 + c))), x, a2);
			a3 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (w3 + c))), x, a3);
		}
		p->y[r] = _mm512_reduce_add_ps(a0);
		p->y[r + 1] = _mm512_reduce_add_ps(a1);
		p->y[r + 2] = _mm512_reduce_add_ps(a2);
		p->y[r + 3] = _mm512_reduce_add_ps(a3);
	}
}

static int threads;
static const product *current;
static volatile int posted, finished;

static int split(int rows, int t) { return (rows / threads * t) & ~3; }

static void *helper(void *arg) {
	int t = (int) (intptr_t) arg, seen = 0;
	for (;;) {
		while (__atomic_load_n(&posted, __ATOMIC_ACQUIRE) == seen) _mm_pause();
		seen = posted;
		const product *p = current;
		gemv(p, split(p->rows, t), t == threads - 1 ? p->rows : split(p->rows, t + 1));
		__atomic_add_fetch(&finished, 1, __ATOMIC_ACQ_REL);
	}
	return NULL;
}

static void run(const product *p) {
	if (threads == 1) { gemv(p, 0, p->rows); return; }
	current = p;
	__atomic_store_n(&finished, 0, __ATOMIC_RELEASE);
	__atomic_add_fetch(&posted, 1, __ATOMIC_ACQ_REL);
	gemv(p, 0, split(p->rows, 1));
	while (__atomic_load_n(&finished, __ATOMIC_ACQUIRE) != threads - 1) _mm_pause();
}

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint16_t *weights(size_t n) {
	uint16_t *w = aligned_alloc(64, (n * 2 + 63) / 64 * 64);
	for (size_t i = 0; i < n; i++) w[i] = 0x2000 + (uint16_t) (i % 1021); /* small positive halves */
	return w;
}

int main(int argc, char **argv) {
	if (argc != 6) {
		fprintf(stderr, "usage: %s HIDDEN INTERMEDIATE QKV_ROWS LAYERS THREADS\n", argv[0]);
		return 2;
	}
	int d = atoi(argv[1]), f = atoi(argv[2]), qkv = atoi(argv[3]), layers = atoi(argv[4]);
	threads = atoi(argv[5]);
	if (d % 16 || f % 16 || qkv % 4 || threads < 1) {
		fprintf(stderr, "HIDDEN and INTERMEDIATE must be multiples of 16, QKV_ROWS of 4\n");
		return 2;
	}
	float *x = aligned_alloc(64, sizeof(float) * (f > d ? f : d));
	float *y = aligned_alloc(64, sizeof(float) * 2 * f);
	for (int i = 0; i < (f > d ? f : d); i++) x[i] = 1e-3f * (i % 97);
	product *p = malloc(sizeof(product) * 4 * layers);
	size_t bytes = 0;
	for (int l = 0; l < layers; l++) {
		int shapes[4][2] = { { qkv, d }, { d, d }, { 2 * f, d }, { d, f } };
		for (int j = 0; j < 4; j++) {
			product *q = &p[4 * l + j];
			q->rows = shapes[j][0];
			q->cols = shapes[j][1];
			q->w = weights((size_t) q->rows * q->cols);
			q->x = x;
			q->y = y;
			bytes += (size_t) q->rows * q->cols * 2;
		}
	}
	pthread_t helpers[64];
	for (int t = 1; t < threads && t < 64; t++) pthread_create(&helpers[t], NULL, helper, (void *) (intptr_t) t);
	for (int rep = 0; rep < 6; rep++) {
		double start = now();
		for (int i = 0; i < 4 * layers; i++) run(&p[i]);
		double s = now() - start;
		if (rep > 0) printf("step products %.1f ms, %.1f GB/s of float16 weights (%.0f MB), %d threads\n", s * 1e3, bytes / s / 1e9, bytes / 1e6, threads);
	}
	return 0;
}
