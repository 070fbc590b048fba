/*
 * griffin-serve's native products on the CPU: one activation row (a decode step) and
 * several (a prompt chunk, a batch of sequences' tokens); and a whole decoder layer for
 * one generated token (griffin_layer), so that a decode step makes one call per layer
 * instead of dozens of small libtorch operations, each with its own JNI crossing.
 *
 * libtorch's one-row float16 products multiply about as many weights per second as its
 * float32 ones on the CPUs this project is measured on, so a float16 step reads half the
 * bytes and takes nearly as long, and its OpenMP team spends much of a step waiting at
 * barriers. These kernels widen float16 weights to float32 in registers (F16C) and
 * multiply with FMA, accumulating in float32, on the calling thread plus helper threads
 * that wait by spinning (then sleeping when a step is over). They read weights where
 * libtorch keeps them: the engine passes tensors' data addresses.
 *
 * The engine calls them through JNA (dev.griffin.serve.model.NativeKernels); the Maven
 * build compiles this file with the C compiler into the jar. Every entry point checks
 * nothing: the Java side validates shapes, types and addresses before calling.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <immintrin.h>

#define MAX_THREADS 64
#define TYPE_FLOAT32 0
#define TYPE_FLOAT16 1
#define ACT_SILU 0
#define ACT_RELU 1
#define ACT_GELU_TANH 2

/* ---------------------------------------------------------------------------------- */
/* dot products of one weight row with x, by instruction set                           */

typedef float (*dot_fn)(const void *row, const float *x, int n);

/* two rows at once, sharing the loads of x: two streams of weights in flight */
typedef void (*dot2_fn)(const void *row0, const void *row1, const float *x, int n, float *out);

__attribute__((target("avx2,fma,f16c"))) static float hsum256(__m256 v) {
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

#define LOAD_F16_256(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (p)))
#define LOAD_F16_512(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (p)))
#define SAME(v) (v)

/* one row . x: two accumulators of WIDTH lanes */
#define DEFINE_DOT(NAME, TARGET, VEC, WIDTH, ZERO, LOADW, LOADX, FMA, ADD, HSUM, SCALARW, WTYPE)                  \
	__attribute__((target(TARGET))) static float NAME(const void *row, const float *x, int n) {              \
		const WTYPE *w = (const WTYPE *) row;                                                              \
		VEC a0 = ZERO, a1 = ZERO;                                                                          \
		int c = 0;                                                                                         \
		for (; c + 2 * WIDTH <= n; c += 2 * WIDTH) {                                                       \
			a0 = FMA(LOADW(w + c), LOADX(x + c), a0);                                                      \
			a1 = FMA(LOADW(w + c + WIDTH), LOADX(x + c + WIDTH), a1);                                      \
		}                                                                                                  \
		for (; c + WIDTH <= n; c += WIDTH) {                                                               \
			a0 = FMA(LOADW(w + c), LOADX(x + c), a0);                                                      \
		}                                                                                                  \
		float s = HSUM(ADD(a0, a1));                                                                       \
		for (; c < n; c++) {                                                                               \
			s += SCALARW(w[c]) * x[c];                                                                     \
		}                                                                                                  \
		return s;                                                                                          \
	}

/* two rows . x: out[0], out[1] */
#define DEFINE_DOT2(NAME, TARGET, VEC, WIDTH, ZERO, LOADW, LOADX, FMA, ADD, HSUM, SCALARW, WTYPE)                 \
	__attribute__((target(TARGET))) static void NAME(const void *r0, const void *r1, const float *x, int n,  \
			float *out) {                                                                                      \
		const WTYPE *w0 = (const WTYPE *) r0, *w1 = (const WTYPE *) r1;                                     \
		VEC a0 = ZERO, a1 = ZERO, b0 = ZERO, b1 = ZERO;                                                    \
		int c = 0;                                                                                         \
		for (; c + 2 * WIDTH <= n; c += 2 * WIDTH) {                                                       \
			VEC x0 = LOADX(x + c), x1 = LOADX(x + c + WIDTH);                                              \
			a0 = FMA(LOADW(w0 + c), x0, a0);                                                               \
			b0 = FMA(LOADW(w1 + c), x0, b0);                                                               \
			a1 = FMA(LOADW(w0 + c + WIDTH), x1, a1);                                                       \
			b1 = FMA(LOADW(w1 + c + WIDTH), x1, b1);                                                       \
		}                                                                                                  \
		float s0 = HSUM(ADD(a0, a1)), s1 = HSUM(ADD(b0, b1));                                              \
		for (; c < n; c++) {                                                                               \
			s0 += SCALARW(w0[c]) * x[c];                                                                   \
			s1 += SCALARW(w1[c]) * x[c];                                                                   \
		}                                                                                                  \
		out[0] = s0;                                                                                       \
		out[1] = s1;                                                                                       \
	}

#define AVX2_OPS(LOADW, SCALARW, WTYPE)                                                                       \
	"avx2,fma,f16c", __m256, 8, _mm256_setzero_ps(), LOADW, _mm256_loadu_ps, _mm256_fmadd_ps, _mm256_add_ps,   \
			hsum256, SCALARW, WTYPE
#define AVX512_OPS(LOADW, SCALARW, WTYPE)                                                                     \
	"avx512f,f16c", __m512, 16, _mm512_setzero_ps(), LOADW, _mm512_loadu_ps, _mm512_fmadd_ps, _mm512_add_ps,   \
			_mm512_reduce_add_ps, SCALARW, WTYPE

#define EXPAND(MACRO, NAME, ...) MACRO(NAME, __VA_ARGS__)

EXPAND(DEFINE_DOT, dot_f16_avx2, AVX2_OPS(LOAD_F16_256, _cvtsh_ss, uint16_t))
EXPAND(DEFINE_DOT, dot_f32_avx2, AVX2_OPS(_mm256_loadu_ps, SAME, float))
EXPAND(DEFINE_DOT, dot_f16_avx512, AVX512_OPS(LOAD_F16_512, _cvtsh_ss, uint16_t))
EXPAND(DEFINE_DOT, dot_f32_avx512, AVX512_OPS(_mm512_loadu_ps, SAME, float))
EXPAND(DEFINE_DOT2, dot2_f16_avx2, AVX2_OPS(LOAD_F16_256, _cvtsh_ss, uint16_t))
EXPAND(DEFINE_DOT2, dot2_f32_avx2, AVX2_OPS(_mm256_loadu_ps, SAME, float))
EXPAND(DEFINE_DOT2, dot2_f16_avx512, AVX512_OPS(LOAD_F16_512, _cvtsh_ss, uint16_t))
EXPAND(DEFINE_DOT2, dot2_f32_avx512, AVX512_OPS(_mm512_loadu_ps, SAME, float))

static dot2_fn dot2s[2];
/*
 * Several activation rows at once (a prompt chunk, or a batch of sequences' tokens): three
 * weight rows times four activation rows per pass, so that each weight is read once for
 * four rows (twelve accumulators, the three weight vectors and one activation vector: the
 * sixteen AVX2 registers; 1.3x the multiplications per second of two weight rows times
 * four on one core of an AVX2 EPYC). out[3 i + j] = row j of the weights . xs[i].
 */
typedef void (*tile_fn)(const void *row0, const void *row1, const void *row2, const float *const *xs, int n,
		float *out);

#define TILE_ROW(LOADX, FMA, X, A, B, C)                                                                                \
	x = LOADX(X + c);                                                                                          \
	A = FMA(v0, x, A);                                                                                         \
	B = FMA(v1, x, B);                                                                                         \
	C = FMA(v2, x, C);

#define DEFINE_TILE(NAME, TARGET, VEC, WIDTH, ZERO, LOADW, LOADX, FMA, ADD, HSUM, SCALARW, WTYPE)                  \
	__attribute__((target(TARGET))) static void NAME(const void *r0, const void *r1, const void *r2,           \
			const float *const *xs, int n, float *out) {                                                       \
		const WTYPE *w0 = (const WTYPE *) r0, *w1 = (const WTYPE *) r1, *w2 = (const WTYPE *) r2;              \
		VEC a00 = ZERO, a01 = ZERO, a02 = ZERO, a10 = ZERO, a11 = ZERO, a12 = ZERO;                             \
		VEC a20 = ZERO, a21 = ZERO, a22 = ZERO, a30 = ZERO, a31 = ZERO, a32 = ZERO;                             \
		int c = 0;                                                                                         \
		for (; c + WIDTH <= n; c += WIDTH) {                                                               \
			VEC v0 = LOADW(w0 + c), v1 = LOADW(w1 + c), v2 = LOADW(w2 + c), x;                             \
			TILE_ROW(LOADX, FMA, xs[0], a00, a01, a02)                                                                 \
			TILE_ROW(LOADX, FMA, xs[1], a10, a11, a12)                                                                 \
			TILE_ROW(LOADX, FMA, xs[2], a20, a21, a22)                                                                 \
			TILE_ROW(LOADX, FMA, xs[3], a30, a31, a32)                                                                 \
		}                                                                                                  \
		out[0] = HSUM(a00);                                                                                \
		out[1] = HSUM(a01);                                                                                \
		out[2] = HSUM(a02);                                                                                \
		out[3] = HSUM(a10);                                                                                \
		out[4] = HSUM(a11);                                                                                \
		out[5] = HSUM(a12);                                                                                \
		out[6] = HSUM(a20);                                                                                \
		out[7] = HSUM(a21);                                                                                \
		out[8] = HSUM(a22);                                                                                \
		out[9] = HSUM(a30);                                                                                \
		out[10] = HSUM(a31);                                                                               \
		out[11] = HSUM(a32);                                                                               \
		for (; c < n; c++) {                                                                               \
			float u0 = SCALARW(w0[c]), u1 = SCALARW(w1[c]), u2 = SCALARW(w2[c]);                           \
			for (int i = 0; i < 4; i++) {                                                                  \
				out[3 * i] += u0 * xs[i][c];                                                               \
				out[3 * i + 1] += u1 * xs[i][c];                                                           \
				out[3 * i + 2] += u2 * xs[i][c];                                                           \
			}                                                                                              \
		}                                                                                                  \
	}

EXPAND(DEFINE_TILE, tile_f16_avx2, AVX2_OPS(LOAD_F16_256, _cvtsh_ss, uint16_t))
EXPAND(DEFINE_TILE, tile_f32_avx2, AVX2_OPS(_mm256_loadu_ps, SAME, float))
EXPAND(DEFINE_TILE, tile_f16_avx512, AVX512_OPS(LOAD_F16_512, _cvtsh_ss, uint16_t))
EXPAND(DEFINE_TILE, tile_f32_avx512, AVX512_OPS(_mm512_loadu_ps, SAME, float))

static tile_fn tiles[2];

static dot_fn dots[2];
static int level; /* 0: unsupported, 2: AVX2 + FMA + F16C, 3: AVX-512F */

/* ---------------------------------------------------------------------------------- */
/* a team of the calling thread and helpers                                            */

/* one token of each of several sequences attending over its cache (task kind 3, its rows
 * the rows' query heads, row after row) */
typedef struct {
	const float *q;          /* [rows, heads, dh], rotated */
	float *context;          /* [rows, heads, dh] */
	const int64_t *keys;     /* per row, the address of its cache's token 0 of head 0: token t */
	const int64_t *values;   /* of head g at g * head_strides[row] + t * dh (float32) */
	const int64_t *head_strides;
	const int *starts, *positions; /* each row attends over its tokens [start, position] */
	int heads, group, dh;    /* group: query heads per key-value head */
	float scale;
	float *scores;           /* [rows, heads, span], span the longest row's */
	int span;
} attention;

typedef struct {
	int kind; /* 0: matrix-vector, 1: gated block's first half, 2: several activation rows, 3: attention */
	int type, rows, cols, activation;
	int tokens; /* kind 2: activation rows x [tokens, cols], outputs y [tokens, rows] */
	const char *w;
	const float *x;
	float *y;
	const attention *a;
} task;

static int team = 1;
static pthread_t helpers[MAX_THREADS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static const task *posted_task;
static volatile unsigned long generation;
static volatile int done;
static volatile int sleepers;
/* how long a helper spins for the next task before it sleeps */
static const double SPIN_SECONDS = 2e-3;
/* one product at a time: the team is the process's, and engine threads may share it */
static pthread_mutex_t calls = PTHREAD_MUTEX_INITIALIZER;

static float activate(float g, int activation) {
	switch (activation) {
	case ACT_SILU:
		return g / (1.0f + expf(-g));
	case ACT_RELU:
		return g > 0.0f ? g : 0.0f;
	default: {
		const float k = 0.7978845608028654f; /* sqrt(2 / pi) */
		return 0.5f * g * (1.0f + tanhf(k * (g + 0.044715f * g * g * g)));
	}
	}
}

/* rows [r0, r1) of the task */
static void work_rows(const task *t, int r0, int r1);

static void attend(const attention *a, int h0, int h1);

static void work(const task *t, int r0, int r1) {
	dot_fn dot = dots[t->type];
	dot2_fn dot2 = dot2s[t->type];
	size_t stride = (size_t) t->cols * (t->type == TYPE_FLOAT16 ? 2 : 4);
	float s[2];
	if (t->kind == 2) {
		work_rows(t, r0, r1);
		return;
	}
	if (t->kind == 3) {
		attend(t->a, r0, r1);
		return;
	}
	if (t->kind == 1) {
		/* z[i] = act(gate_i . x) * (up_i . x), gate rows [0, F), up rows [F, 2F) */
		for (int r = r0; r < r1; r++) {
			dot2(t->w + stride * r, t->w + stride * ((size_t) t->rows + r), t->x, t->cols, s);
			t->y[r] = activate(s[0], t->activation) * s[1];
		}
		return;
	}
	int r = r0;
	for (; r + 2 <= r1; r += 2) {
		dot2(t->w + stride * r, t->w + stride * (r + 1), t->x, t->cols, s);
		t->y[r] = s[0];
		t->y[r + 1] = s[1];
	}
	for (; r < r1; r++) {
		t->y[r] = dot(t->w + stride * r, t->x, t->cols);
	}
}

/* columns per pass of work_rows: four activation rows' share (16 KiB) stays in the L1 cache */
#define COLUMN_BLOCK 1024

/*
 * weight rows [r0, r1) times every activation row. Weight rows go in blocks that stay in
 * the L2 cache across the groups of four activation rows, and each group's columns in
 * blocks that stay in the L1 cache across the block's weight rows; partial sums add up in
 * y.
 */
static void work_rows(const task *t, int r0, int r1) {
	tile_fn tile = tiles[t->type];
	dot_fn dot = dots[t->type];
	size_t element = (t->type == TYPE_FLOAT16) ? 2 : 4;
	size_t stride = (size_t) t->cols * element;
	float out[12];
	int block = (int) (256 * 1024 / (stride > 0 ? stride : 1));
	block = block < 3 ? 3 : block - block % 3;
	for (int b0 = r0; b0 < r1; b0 += block) {
		int b1 = (b0 + block < r1) ? b0 + block : r1;
		for (int i0 = 0; i0 < t->tokens; i0 += 4) {
			int count = (t->tokens - i0 < 4) ? t->tokens - i0 : 4;
			for (int i = 0; i < count; i++) {
				memset(t->y + (size_t) t->rows * (i0 + i) + b0, 0, sizeof(float) * (size_t) (b1 - b0));
			}
			for (int c0 = 0; c0 < t->cols; c0 += COLUMN_BLOCK) {
				int n = (t->cols - c0 < COLUMN_BLOCK) ? t->cols - c0 : COLUMN_BLOCK;
				const float *xs[4];
				for (int i = 0; i < 4; i++) {
					xs[i] = t->x + (size_t) t->cols * (i0 + (i < count ? i : 0)) + c0;
				}
				const char *w = t->w + element * c0;
				int r = b0;
				for (; r + 3 <= b1; r += 3) {
					tile(w + stride * r, w + stride * (r + 1), w + stride * (r + 2), xs, n, out);
					for (int i = 0; i < count; i++) {
						float *row = t->y + (size_t) t->rows * (i0 + i) + r;
						row[0] += out[3 * i];
						row[1] += out[3 * i + 1];
						row[2] += out[3 * i + 2];
					}
				}
				for (; r < b1; r++) {
					for (int i = 0; i < count; i++) {
						t->y[(size_t) t->rows * (i0 + i) + r] += dot(w + stride * r, xs[i], n);
					}
				}
			}
		}
	}
}

/*
 * Query heads [h0, h1) of the rows, row after row: scores against the row's cached keys
 * [start, position], a softmax in float32, and the context, the weighted sum of the
 * cached values.
 */
__attribute__((target("avx2,fma"))) static void attend(const attention *a, int h0, int h1) {
	int dh = a->dh;
	dot_fn dot = dots[TYPE_FLOAT32];
	for (int rh = h0; rh < h1; rh++) {
		int row = rh / a->heads, h = rh % a->heads;
		int span = a->positions[row] - a->starts[row] + 1;
		const float *q = a->q + (size_t) rh * dh;
		size_t head = (size_t) (h / a->group) * (size_t) a->head_strides[row] + (size_t) a->starts[row] * dh;
		const float *k = (const float *) (intptr_t) a->keys[row] + head;
		const float *v = (const float *) (intptr_t) a->values[row] + head;
		float *s = a->scores + (size_t) rh * a->span;
		float max = -INFINITY;
		for (int t = 0; t < span; t++) {
			s[t] = dot(k + (size_t) t * dh, q, dh) * a->scale;
			max = (s[t] > max) ? s[t] : max;
		}
		float sum = 0.0f;
		for (int t = 0; t < span; t++) {
			s[t] = expf(s[t] - max);
			sum += s[t];
		}
		float *c = a->context + (size_t) rh * dh;
		memset(c, 0, sizeof(float) * (size_t) dh);
		for (int t = 0; t < span; t++) {
			float p = s[t] / sum;
			const float *token = v + (size_t) t * dh;
			for (int i = 0; i < dh; i++) {
				c[i] += p * token[i];
			}
		}
	}
}

static int bound(int rows, int part, int parts) {
	return (int) ((long long) rows * part / parts);
}

static double seconds(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *helper(void *arg) {
	int me = (int) (intptr_t) arg;
	unsigned long seen = 0;
	for (;;) {
		double start = seconds();
		int spins = 0;
		while (__atomic_load_n(&generation, __ATOMIC_ACQUIRE) == seen) {
			_mm_pause();
			if (++spins % 1024 == 0 && seconds() - start > SPIN_SECONDS) {
				pthread_mutex_lock(&lock);
				__atomic_add_fetch(&sleepers, 1, __ATOMIC_ACQ_REL);
				while (__atomic_load_n(&generation, __ATOMIC_ACQUIRE) == seen) {
					pthread_cond_wait(&wake, &lock);
				}
				__atomic_sub_fetch(&sleepers, 1, __ATOMIC_ACQ_REL);
				pthread_mutex_unlock(&lock);
				break;
			}
		}
		seen = __atomic_load_n(&generation, __ATOMIC_ACQUIRE);
		const task *t = posted_task;
		work(t, bound(t->rows, me, team), bound(t->rows, me + 1, team));
		__atomic_add_fetch(&done, 1, __ATOMIC_ACQ_REL);
	}
	return NULL;
}

static void run(const task *t) {
	if (team == 1 || t->rows < 4 * team) {
		work(t, 0, t->rows);
		return;
	}
	posted_task = t;
	__atomic_store_n(&done, 0, __ATOMIC_RELEASE);
	/* under the lock: a helper that is about to sleep rechecks generation holding it */
	pthread_mutex_lock(&lock);
	__atomic_add_fetch(&generation, 1, __ATOMIC_ACQ_REL);
	if (__atomic_load_n(&sleepers, __ATOMIC_ACQUIRE) > 0) {
		pthread_cond_broadcast(&wake);
	}
	pthread_mutex_unlock(&lock);
	work(t, 0, bound(t->rows, 1, team));
	while (__atomic_load_n(&done, __ATOMIC_ACQUIRE) != team - 1) {
		_mm_pause();
	}
}

/* ---------------------------------------------------------------------------------- */
/* entry points                                                                        */

/*
 * Starts the team once: threads - 1 helpers beside the caller. Returns the instruction
 * set level (2: AVX2 with FMA and F16C, 3: AVX-512F), 0 when this CPU has neither (then
 * nothing else may be called), or -1 when a helper could not start.
 */
int griffin_init(int threads) {
	static int started = 0;
	pthread_mutex_lock(&lock);
	if (!started) {
		__builtin_cpu_init();
		if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("f16c")) {
			dots[TYPE_FLOAT32] = dot_f32_avx512;
			dots[TYPE_FLOAT16] = dot_f16_avx512;
			dot2s[TYPE_FLOAT32] = dot2_f32_avx512;
			dot2s[TYPE_FLOAT16] = dot2_f16_avx512;
			tiles[TYPE_FLOAT32] = tile_f32_avx512;
			tiles[TYPE_FLOAT16] = tile_f16_avx512;
			level = 3;
		}
		else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
			dots[TYPE_FLOAT32] = dot_f32_avx2;
			dots[TYPE_FLOAT16] = dot_f16_avx2;
			dot2s[TYPE_FLOAT32] = dot2_f32_avx2;
			dot2s[TYPE_FLOAT16] = dot2_f16_avx2;
			tiles[TYPE_FLOAT32] = tile_f32_avx2;
			tiles[TYPE_FLOAT16] = tile_f16_avx2;
			level = 2;
		}
		else {
			level = 0;
		}
		if (level > 0) {
			team = threads < 1 ? 1 : (threads > MAX_THREADS ? MAX_THREADS : threads);
			for (int i = 1; i < team; i++) {
				if (pthread_create(&helpers[i], NULL, helper, (void *) (intptr_t) i) != 0) {
					team = i;
					level = -1;
					break;
				}
			}
		}
		started = 1;
	}
	pthread_mutex_unlock(&lock);
	return level;
}

/* The threads of the team (the caller included). */
int griffin_threads(void) {
	return team;
}

/* y[rows, out] = x[rows, cols] w[out, cols]^T: one row's two-row kernel, several rows' tiles */
static void product(const void *w, int type, const float *x, float *y, int rows, int out, int cols) {
	task t = { .kind = (rows == 1) ? 0 : 2, .type = type, .rows = out, .cols = cols, .tokens = rows,
		.w = (const char *) w, .x = x, .y = y };
	run(&t);
}

/*
 * A gated feed-forward block of `rows` rows: out[rows, d] = (act(in gate^T) * (in up^T))
 * down^T, with gate_up [2f, d] (gate rows first) and down [d, f] of one type; in, the
 * activations and out in float32. z holds the activations: f values for one row (the
 * gate and up rows read together), 2f per row for several. keep [rows, f] (null: none)
 * masks each row's activations.
 */
static void block(const void *gate_up, const void *down, int type, const float *in, float *z, float *out, int rows,
		int d, int f, int activation, const float *keep) {
	if (rows == 1) {
		task first = { .kind = 1, .type = type, .rows = f, .cols = d, .activation = activation,
			.w = (const char *) gate_up, .x = in, .y = z };
		run(&first);
	}
	else {
		/* gate and up rows [rows, 2f], then act(gate) * up packed into [rows, f] */
		product(gate_up, type, in, z, rows, 2 * f, d);
		for (int r = 0; r < rows; r++) {
			const float *both = z + (size_t) r * 2 * f;
			float *active = z + (size_t) r * f;
			for (int i = 0; i < f; i++) {
				active[i] = activate(both[i], activation) * both[f + i];
			}
		}
	}
	if (keep != NULL) {
		for (size_t i = 0; i < (size_t) rows * f; i++) {
			z[i] *= keep[i];
		}
	}
	product(down, type, z, out, rows, d, f);
}

/* scratch of the entry points, grown under the calls lock */
static float *scratch_x, *scratch_y, *scratch_z;
static size_t capacity_x, capacity_y, capacity_z;

static float *grown(float **buffer, size_t *capacity, size_t n) {
	if (n > *capacity) {
		float *bigger = realloc(*buffer, n * sizeof(float));
		if (bigger == NULL) {
			return NULL;
		}
		*buffer = bigger;
		*capacity = n;
	}
	return *buffer;
}

__attribute__((target("f16c"))) static void widen(const uint16_t *in, float *out, size_t n) {
	for (size_t i = 0; i < n; i++) {
		out[i] = _cvtsh_ss(in[i]);
	}
}

__attribute__((target("f16c"))) static void narrow(const float *in, uint16_t *out, size_t n) {
	for (size_t i = 0; i < n; i++) {
		out[i] = _cvtss_sh(in[i], _MM_FROUND_TO_NEAREST_INT);
	}
}

/* x in float32, widened into scratch when it is float16 (io_type) */
static const float *input(const void *x, int io_type, size_t n) {
	if (io_type == TYPE_FLOAT32) {
		return (const float *) x;
	}
	float *wide = grown(&scratch_x, &capacity_x, n);
	if (wide != NULL) {
		widen((const uint16_t *) x, wide, n);
	}
	return wide;
}

/* griffin_gemv's and griffin_rows' work: y = x w^T through a task of the given kind (0 or 2) */
static int products(int kind, const void *w, int type, const void *x, void *y, int io_type, int tokens, int rows,
		int cols) {
	int status = 0;
	size_t in_size = (size_t) tokens * cols, out_size = (size_t) tokens * rows;
	pthread_mutex_lock(&calls);
	const float *in = input(x, io_type, in_size);
	float *out = (io_type == TYPE_FLOAT32) ? (float *) y : grown(&scratch_y, &capacity_y, out_size);
	if (in == NULL || out == NULL) {
		status = -1;
	}
	else {
		task t = { .kind = kind, .type = type, .rows = rows, .cols = cols, .tokens = tokens, .w = (const char *) w,
			.x = in, .y = out };
		run(&t);
		if (io_type == TYPE_FLOAT16) {
			narrow(out, (uint16_t *) y, out_size);
		}
	}
	pthread_mutex_unlock(&calls);
	return status;
}

/*
 * y[rows] = w[rows, cols] x[cols]: w float32 or float16 (type), row-major; x and y in
 * io_type (float32 or float16: y rounded to nearest). Returns 0, or -1 when scratch memory
 * could not be allocated (nothing computed).
 */
int griffin_gemv(const void *w, int type, const void *x, void *y, int io_type, int rows, int cols) {
	return products(0, w, type, x, y, io_type, 1, rows, cols);
}

/*
 * A gated feed-forward block of one token: y[d] = down[d, f] (act(gate x) * (up x)), with
 * gate_up [2f, d] (gate rows first) and down of one type (type); x and y in io_type, the
 * activations in float32. Returns 0, or -1 when scratch memory could not be allocated.
 */
int griffin_gated(const void *gate_up, const void *down, int type, const void *x, void *y, int io_type, int d, int f,
		int activation) {
	int status = 0;
	pthread_mutex_lock(&calls);
	const float *in = input(x, io_type, d);
	float *z = grown(&scratch_z, &capacity_z, (size_t) (f > 0 ? f : 1));
	float *out = (io_type == TYPE_FLOAT32) ? (float *) y : grown(&scratch_y, &capacity_y, (size_t) d);
	if (in == NULL || z == NULL || out == NULL) {
		status = -1;
	}
	else {
		block(gate_up, down, type, in, z, out, 1, d, f, activation, NULL);
		if (io_type == TYPE_FLOAT16) {
			narrow(out, (uint16_t *) y, d);
		}
	}
	pthread_mutex_unlock(&calls);
	return status;
}

/*
 * y[tokens, rows] = x[tokens, cols] w[rows, cols]^T: several activation rows, each weight
 * read once for every four of them; w float32 or float16 (type), x and y in io_type.
 * Returns 0, or -1 when scratch memory could not be allocated.
 */
int griffin_rows(const void *w, int type, const void *x, void *y, int io_type, int tokens, int rows, int cols) {
	return products(2, w, type, x, y, io_type, tokens, rows, cols);
}

/* v rounded to io_type's precision in place (float16: to nearest; float32: as is) */
__attribute__((target("f16c"))) static void rounded(float *v, size_t n, int io_type) {
	if (io_type == TYPE_FLOAT16) {
		for (size_t i = 0; i < n; i++) {
			v[i] = _cvtsh_ss(_cvtss_sh(v[i], _MM_FROUND_TO_NEAREST_INT));
		}
	}
}

/* n values of io_type at p, as float32 */
static void loaded(const void *p, int io_type, float *out, size_t n) {
	if (io_type == TYPE_FLOAT16) {
		widen((const uint16_t *) p, out, n);
	}
	else {
		memcpy(out, p, n * sizeof(float));
	}
}

/*
 * The RMS norm of a decoder layer, row by row ([rows, d]): x / sqrt(mean(x^2) + epsilon)
 * in float32, rounded to io_type, times the weight (io_type), rounded again.
 */
static void normed(const float *x, const void *weight, float epsilon, int io_type, float *out, int rows, int d) {
	for (int r = 0; r < rows; r++) {
		const float *in = x + (size_t) r * d;
		float *to = out + (size_t) r * d;
		double squares = 0.0;
		for (int i = 0; i < d; i++) {
			squares += (double) in[i] * in[i];
		}
		float norm = sqrtf((float) (squares / d) + epsilon);
		loaded(weight, io_type, to, (size_t) d);
		for (int i = 0; i < d; i++) {
			float v = in[i] / norm;
			rounded(&v, 1, io_type);
			to[i] *= v;
		}
	}
	rounded(out, (size_t) rows * d, io_type);
}

/*
 * One generated token of each of `rows` sequences through a whole pre-norm decoder layer
 * with a gated feed-forward block, the arithmetic of the engine's step
 * (BatchLayer.step_one): y = h + ff(norm(h)) with h = x + attention(norm(x)), row by row.
 * x and y [rows, d], the norm weights and the q/k/v bias (null: none) in io_type; each
 * product's result, the context and every residual sum rounded to io_type. The
 * attention's weights (q/k/v stacked [(H + 2 KVH) dh, d], output [d, H dh]) are of
 * attention_type, the block's (gate_up [2f, d], down [d, f]) of ff_type; every row reads
 * the same weights, each once for all the rows. rotation [rows, dh, dh] rotates each
 * row's queries and keys (row times matrix). Row r's float32 cache is at the addresses
 * keys[r] and values[r] (head g's token t at g * head_strides[r] + t * dh); its rotated
 * key and its value are written at token positions[r], and its heads attend over tokens
 * [starts[r], positions[r]], their scores times scale. keep [rows, f] (null: every row
 * dense) masks each row's activations to the neurons it reads (1 or 0): GRIFFIN's experts
 * read out of the dense block. Returns 0, or -1 when scratch memory could not be allocated
 * (nothing computed or written).
 */
int griffin_layer(void *y, const void *x, int io_type, int rows, int d, const void *attention_norm,
		const void *ffn_norm, float epsilon, const void *qkv_weight, const void *qkv_bias, const void *output_weight,
		int attention_type, const float *rotation, const int64_t *keys, const int64_t *values,
		const int64_t *head_strides, const int *positions, const int *starts, int heads, int kv_heads, int dh,
		float scale, const void *gate_up, const void *down, int ff_type, int f, int activation, const float *keep) {
	static float *scratch;
	static size_t capacity;
	int projected = (heads + 2 * kv_heads) * dh, width = heads * dh, span = 1;
	for (int r = 0; r < rows; r++) {
		int own = positions[r] - starts[r] + 1;
		span = (own > span) ? own : span;
	}
	size_t n = (size_t) rows;
	size_t sizes[] = { n * d, n * d, n * projected, n * (heads + kv_heads) * dh, n * width, n * d,
		n * 2 * (f > 0 ? f : 1), n * heads * span, (size_t) projected };
	size_t total = 0;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		total += sizes[i];
	}
	pthread_mutex_lock(&calls);
	float *base = grown(&scratch, &capacity, total);
	if (base == NULL) {
		pthread_mutex_unlock(&calls);
		return -1;
	}
	float *h = base, *in = h + sizes[0], *qkv = in + sizes[1], *turned = qkv + sizes[2], *context = turned + sizes[3],
			*out = context + sizes[4], *z = out + sizes[5], *scores = z + sizes[6], *bias = scores + sizes[7];

	loaded(x, io_type, h, n * d);
	normed(h, attention_norm, epsilon, io_type, in, rows, d);
	product(qkv_weight, attention_type, in, qkv, rows, projected, d);
	rounded(qkv, n * projected, io_type);
	if (qkv_bias != NULL) {
		loaded(qkv_bias, io_type, bias, (size_t) projected);
		for (size_t i = 0; i < n * projected; i++) {
			qkv[i] += bias[i % projected];
		}
		rounded(qkv, n * projected, io_type);
	}
	for (int r = 0; r < rows; r++) {
		/* queries and keys rotated: each head's row times the row's rotation */
		const float *turn = rotation + (size_t) r * dh * dh;
		for (int k = 0; k < heads + kv_heads; k++) {
			const float *from = qkv + (size_t) r * projected + (size_t) k * dh;
			float *to = turned + ((size_t) r * (heads + kv_heads) + k) * dh;
			memset(to, 0, sizeof(float) * (size_t) dh);
			for (int i = 0; i < dh; i++) {
				const float *column = turn + (size_t) i * dh;
				for (int j = 0; j < dh; j++) {
					to[j] += from[i] * column[j];
				}
			}
		}
		for (int g = 0; g < kv_heads; g++) {
			size_t slot = (size_t) g * (size_t) head_strides[r] + (size_t) positions[r] * dh;
			memcpy((float *) (intptr_t) keys[r] + slot, turned + ((size_t) r * (heads + kv_heads) + heads + g) * dh,
					sizeof(float) * (size_t) dh);
			memcpy((float *) (intptr_t) values[r] + slot,
					qkv + (size_t) r * projected + (size_t) (heads + kv_heads + g) * dh, sizeof(float) * (size_t) dh);
		}
		/* the queries packed row after row for the attention: [rows, heads, dh] */
		memmove(turned + (size_t) r * width, turned + (size_t) r * (heads + kv_heads) * dh,
				sizeof(float) * (size_t) width);
	}
	attention a = { .q = turned, .context = context, .keys = keys, .values = values, .head_strides = head_strides,
		.starts = starts, .positions = positions, .heads = heads, .group = heads / kv_heads, .dh = dh,
		.scale = scale, .scores = scores, .span = span };
	task attend_task = { .kind = 3, .rows = rows * heads, .a = &a };
	run(&attend_task);
	rounded(context, n * width, io_type);
	product(output_weight, attention_type, context, out, rows, d, width);
	rounded(out, n * d, io_type);
	for (size_t i = 0; i < n * d; i++) {
		h[i] += out[i];
	}
	rounded(h, n * d, io_type);

	normed(h, ffn_norm, epsilon, io_type, in, rows, d);
	block(gate_up, down, ff_type, in, z, out, rows, d, f, activation, keep);
	rounded(out, n * d, io_type);
	for (size_t i = 0; i < n * d; i++) {
		h[i] += out[i];
	}
	if (io_type == TYPE_FLOAT16) {
		narrow(h, (uint16_t *) y, n * d);
	}
	else {
		memcpy(y, h, sizeof(float) * n * d);
	}
	pthread_mutex_unlock(&calls);
	return 0;
}
