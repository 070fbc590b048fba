/*
 * griffin-serve's native products on the CPU: one activation row (a decode step) and
 * several (a prompt chunk, a batch of sequences' tokens); a whole decoder layer for
 * generated tokens or a prompt chunk (griffin_layer), so that a pass makes one call per
 * layer instead of dozens of small libtorch operations, each with its own JNI crossing;
 * and the copy of GRIFFIN's experts (griffin_gather).
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
#define _GNU_SOURCE
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
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

/*
 * two rows . x: out[0], out[1]. With AHEAD > 0 (bytes), each row's weights that far on are
 * asked for (prefetched) as the loop goes: a thread's two streams of rows then keep more
 * reads in flight than the CPU's own prefetchers start
 */
#define DEFINE_DOT2(NAME, TARGET, VEC, WIDTH, ZERO, LOADW, LOADX, FMA, ADD, HSUM, SCALARW, WTYPE, AHEAD)          \
	__attribute__((target(TARGET))) static void NAME(const void *r0, const void *r1, const float *x, int n,  \
			float *out) {                                                                                      \
		const WTYPE *w0 = (const WTYPE *) r0, *w1 = (const WTYPE *) r1;                                     \
		VEC a0 = ZERO, a1 = ZERO, b0 = ZERO, b1 = ZERO;                                                    \
		int c = 0;                                                                                         \
		for (; c + 2 * WIDTH <= n; c += 2 * WIDTH) {                                                       \
			if ((AHEAD) > 0) {                                                                             \
				_mm_prefetch((const char *) (w0 + c) + (AHEAD), _MM_HINT_T0);                               \
				_mm_prefetch((const char *) (w1 + c) + (AHEAD), _MM_HINT_T0);                               \
			}                                                                                              \
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
/*
 * How far ahead float16 weight rows prefetch, in bytes (0: not at all): the row pairs of
 * one-row products here, and the three-row tiles below (the six-row tiles take tile_ahead,
 * measured later; the figures here are from before that). A decode step's products with
 * and without it, step by step in one process (tools/reference/bench_native_step.c) on the
 * AMD EPYC with AVX-512: one row, SmolLM2's shapes 3-8% less time in all runs but one (21%;
 * half its neurons, as GRIFFIN 0.5 reads them, 5-8%), Qwen2.5-Coder 0.5B's and 1.5B's 1-5%;
 * four rows, SmolLM2's 4-11%, the 0.5B's 1-4%; eight rows 5-7%. In trials of the distance on
 * SmolLM2's shapes 1 KB ahead gained less than 4 KB, and 8 KB no more; the AVX2 form (run on
 * that CPU) gained 7-8%. float32 rows, read near that machine's limit already, took 4-11% more
 * time with it in the AVX-512 form (one-row pairs) and 0-2% more (tiles of four and eight
 * rows), and do not prefetch.
 */
static int f16_ahead = 4096;
EXPAND(DEFINE_DOT2, dot2_f16_avx2, AVX2_OPS(LOAD_F16_256, _cvtsh_ss, uint16_t), f16_ahead)
EXPAND(DEFINE_DOT2, dot2_f32_avx2, AVX2_OPS(_mm256_loadu_ps, SAME, float), 0)
EXPAND(DEFINE_DOT2, dot2_f16_avx512, AVX512_OPS(LOAD_F16_512, _cvtsh_ss, uint16_t), f16_ahead)
EXPAND(DEFINE_DOT2, dot2_f32_avx512, AVX512_OPS(_mm512_loadu_ps, SAME, float), 0)

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

#define DEFINE_TILE(NAME, TARGET, VEC, WIDTH, ZERO, LOADW, LOADX, FMA, ADD, HSUM, SCALARW, WTYPE, AHEAD)           \
	__attribute__((target(TARGET))) static void NAME(const void *r0, const void *r1, const void *r2,           \
			const float *const *xs, int n, float *out) {                                                       \
		const WTYPE *w0 = (const WTYPE *) r0, *w1 = (const WTYPE *) r1, *w2 = (const WTYPE *) r2;              \
		VEC a00 = ZERO, a01 = ZERO, a02 = ZERO, a10 = ZERO, a11 = ZERO, a12 = ZERO;                             \
		VEC a20 = ZERO, a21 = ZERO, a22 = ZERO, a30 = ZERO, a31 = ZERO, a32 = ZERO;                             \
		int c = 0;                                                                                         \
		for (; c + WIDTH <= n; c += WIDTH) {                                                               \
			if ((AHEAD) > 0 && (c * sizeof(WTYPE)) % 64 == 0) {                                            \
				_mm_prefetch((const char *) (w0 + c) + (AHEAD), _MM_HINT_T0);                               \
				_mm_prefetch((const char *) (w1 + c) + (AHEAD), _MM_HINT_T0);                               \
				_mm_prefetch((const char *) (w2 + c) + (AHEAD), _MM_HINT_T0);                               \
			}                                                                                              \
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

EXPAND(DEFINE_TILE, tile_f16_avx2, AVX2_OPS(LOAD_F16_256, _cvtsh_ss, uint16_t), f16_ahead)
EXPAND(DEFINE_TILE, tile_f32_avx2, AVX2_OPS(_mm256_loadu_ps, SAME, float), 0)
EXPAND(DEFINE_TILE, tile_f16_avx512, AVX512_OPS(LOAD_F16_512, _cvtsh_ss, uint16_t), f16_ahead)
EXPAND(DEFINE_TILE, tile_f32_avx512, AVX512_OPS(_mm512_loadu_ps, SAME, float), 0)

static tile_fn tiles[2];

/*
 * AVX-512's 32 registers hold six weight rows by four activation rows: twenty-four
 * accumulators, six weight vectors and one activation vector. The six rows are apart
 * bytes from one another (six streams of weights); out[6 i + j] = row j . xs[i], each
 * sum taken as the three-row tile takes it. On an Intel Xeon with AVX-512
 * (tools/reference/bench_native_rows.py, 200000 rows of 576, 2 threads, two runs), 8 and 16
 * activation rows read float32 weights at 0.67-0.70x and 0.47-0.54x one row's rate against
 * 0.57-0.63x and 0.42-0.45x in three-row tiles, float16 at 0.72-0.80x and 0.31-0.32x against
 * 0.57x and 0.23-0.25x; 4 rows about the same (float32 0.88-0.90x against 0.84-0.88x,
 * float16 1.03-1.09x against 1.00x).
 */
typedef void (*tile6_fn)(const void *row0, size_t apart, const float *const *xs, int n, float *out);

#define TILE6_ROW(LOADX, FMA, X, A0, A1, A2, A3, A4, A5)                                                         \
	x = LOADX(X + c);                                                                                          \
	A0 = FMA(v0, x, A0);                                                                                       \
	A1 = FMA(v1, x, A1);                                                                                       \
	A2 = FMA(v2, x, A2);                                                                                       \
	A3 = FMA(v3, x, A3);                                                                                       \
	A4 = FMA(v4, x, A4);                                                                                       \
	A5 = FMA(v5, x, A5);

/*
 * The lane sums of sixteen vectors, in order, as one vector: pairs of vectors folded
 * into each other's halves, quarters and lanes (three operations a fold), 46 operations
 * where sixteen reductions of their own take about eight each
 */
__attribute__((target("avx512f"))) static inline __m512 sums16(__m512 v0, __m512 v1, __m512 v2, __m512 v3, __m512 v4,
		__m512 v5, __m512 v6, __m512 v7, __m512 v8, __m512 v9, __m512 v10, __m512 v11, __m512 v12, __m512 v13,
		__m512 v14, __m512 v15) {
#define HALVES(A, B) _mm512_add_ps(_mm512_shuffle_f32x4(A, B, 0x44), _mm512_shuffle_f32x4(A, B, 0xEE))
#define QUARTERS(A, B) _mm512_add_ps(_mm512_shuffle_f32x4(A, B, 0x88), _mm512_shuffle_f32x4(A, B, 0xDD))
#define PAIRS(A, B) _mm512_add_ps(_mm512_unpacklo_ps(A, B), _mm512_unpackhi_ps(A, B))
#define LANES(A, B) _mm512_add_ps(_mm512_shuffle_ps(A, B, 0x44), _mm512_shuffle_ps(A, B, 0xEE))
	/* t_k: v_k's eight partial sums, then v_{k+8}'s */
	__m512 t0 = HALVES(v0, v8), t1 = HALVES(v1, v9), t2 = HALVES(v2, v10), t3 = HALVES(v3, v11);
	__m512 t4 = HALVES(v4, v12), t5 = HALVES(v5, v13), t6 = HALVES(v6, v14), t7 = HALVES(v7, v15);
	/* u_k: four partial sums each of v_k, v_{k+8}, v_{k+4}, v_{k+12} */
	__m512 u0 = QUARTERS(t0, t4), u1 = QUARTERS(t1, t5), u2 = QUARTERS(t2, t6), u3 = QUARTERS(t3, t7);
	/* each quarter: two partial sums of u_k's vector and of u_{k+2}'s, interleaved */
	__m512 w0 = PAIRS(u0, u2), w1 = PAIRS(u1, u3);
	/* the sums of v0, v2, v1, v3, v8, v10, v9, v11, v4, v6, v5, v7, v12, v14, v13, v15 */
	__m512 z = LANES(w0, w1);
#undef HALVES
#undef QUARTERS
#undef PAIRS
#undef LANES
	return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 2, 1, 3, 8, 10, 9, 11, 4, 6, 5, 7, 12, 14, 13, 15), z);
}

/*
 * A six-row tile's 24 sums, out[6i + j] for activation row i and weight row j, folded
 * sixteen and eight at a time (the second sixteen padded with zeros). Against a reduction
 * of each sum on its own, a decode step's products on the AMD EPYC with AVX-512
 * (tools/reference/bench_native_step.c, SmolLM2's shapes, the two alternating in one
 * process, 2 threads) took 1.8-2.1% less time at 4 float32 rows, -0.6 to 1.3% at 4
 * float16 rows, 1.3-2.1% at 8 and 3.7% at 16 float32 rows: a row of 576 columns is 36
 * vectors, so 24 reductions of some eight operations each are a part of a tile's work.
 */
__attribute__((target("avx512f"))) static inline void tile6_sums(__m512 a00, __m512 a01, __m512 a02, __m512 a03,
		__m512 a04, __m512 a05, __m512 a10, __m512 a11, __m512 a12, __m512 a13, __m512 a14, __m512 a15, __m512 a20,
		__m512 a21, __m512 a22, __m512 a23, __m512 a24, __m512 a25, __m512 a30, __m512 a31, __m512 a32, __m512 a33,
		__m512 a34, __m512 a35, float *out) {
	__m512 z = _mm512_setzero_ps();
	_mm512_storeu_ps(out, sums16(a00, a01, a02, a03, a04, a05, a10, a11, a12, a13, a14, a15, a20, a21, a22, a23));
	_mm256_storeu_ps(out + 16,
			_mm512_castps512_ps256(sums16(a24, a25, a30, a31, a32, a33, a34, a35, z, z, z, z, z, z, z, z)));
}

#define DEFINE_TILE6(NAME, TARGET, VEC, WIDTH, ZERO, LOADW, LOADX, FMA, ADD, HSUM, SCALARW, WTYPE, AHEAD)          \
	__attribute__((target(TARGET))) static void NAME(const void *r0, size_t apart, const float *const *xs, int n, \
			float *out) {                                                                                      \
		const WTYPE *w[6];                                                                                 \
		for (int j = 0; j < 6; j++) {                                                                      \
			w[j] = (const WTYPE *) ((const char *) r0 + apart * j);                                        \
		}                                                                                                  \
		VEC a00 = ZERO, a01 = ZERO, a02 = ZERO, a03 = ZERO, a04 = ZERO, a05 = ZERO;                           \
		VEC a10 = ZERO, a11 = ZERO, a12 = ZERO, a13 = ZERO, a14 = ZERO, a15 = ZERO;                           \
		VEC a20 = ZERO, a21 = ZERO, a22 = ZERO, a23 = ZERO, a24 = ZERO, a25 = ZERO;                           \
		VEC a30 = ZERO, a31 = ZERO, a32 = ZERO, a33 = ZERO, a34 = ZERO, a35 = ZERO;                           \
		int c = 0;                                                                                         \
		for (; c + WIDTH <= n; c += WIDTH) {                                                               \
			if ((AHEAD) > 0 && (c * sizeof(WTYPE)) % 64 == 0) {                                            \
				for (int j = 0; j < 6; j++) {                                                              \
					_mm_prefetch((const char *) (w[j] + c) + (AHEAD), _MM_HINT_T0);                         \
				}                                                                                          \
			}                                                                                              \
			VEC v0 = LOADW(w[0] + c), v1 = LOADW(w[1] + c), v2 = LOADW(w[2] + c);                          \
			VEC v3 = LOADW(w[3] + c), v4 = LOADW(w[4] + c), v5 = LOADW(w[5] + c), x;                       \
			TILE6_ROW(LOADX, FMA, xs[0], a00, a01, a02, a03, a04, a05)                                     \
			TILE6_ROW(LOADX, FMA, xs[1], a10, a11, a12, a13, a14, a15)                                     \
			TILE6_ROW(LOADX, FMA, xs[2], a20, a21, a22, a23, a24, a25)                                     \
			TILE6_ROW(LOADX, FMA, xs[3], a30, a31, a32, a33, a34, a35)                                     \
		}                                                                                                  \
		tile6_sums(a00, a01, a02, a03, a04, a05, a10, a11, a12, a13, a14, a15, a20, a21, a22, a23, a24, a25,  \
				a30, a31, a32, a33, a34, a35, out);                                                            \
		for (; c < n; c++) {                                                                               \
			for (int j = 0; j < 6; j++) {                                                                  \
				float u = SCALARW(w[j][c]);                                                                \
				for (int i = 0; i < 4; i++) {                                                              \
					out[6 * i + j] += u * xs[i][c];                                                        \
				}                                                                                          \
			}                                                                                              \
		}                                                                                                  \
	}

/*
 * How far ahead the six-row tiles prefetch each of their six streams, in bytes, float32 and
 * float16 alike (0: not at all). A decode step's products on the AMD EPYC with AVX-512,
 * 1024 bytes against none, the two alternating in one process (tools/reference/
 * bench_native_step.c with tile=0; 2 threads; mean step time):
 * - float16: SmolLM2's shapes 6-10% less time at 4 rows, 15% at 8, 7-10% at 16;
 *   Qwen2.5-Coder-1.5B's 10% at 16 rows (against 4096 bytes, the row pairs' distance, 3-4%
 *   at 4 rows);
 * - float32: SmolLM2's shapes at 4 rows from 1.5% more to 18% less (the gain shows when the
 *   machine's memory is fast), 4-6% less at 16 rows; the 1.5B's from 2% more to 13% less.
 * 512 and 2048 bytes gained less than 1024, 8192 lost. One-row products keep the row pairs
 * and their own distances: a lone row read through the tiles ran slower, prefetching or not.
 */
static int tile_ahead = 1024;
EXPAND(DEFINE_TILE6, tile6_f16_avx512, AVX512_OPS(LOAD_F16_512, _cvtsh_ss, uint16_t), tile_ahead)
EXPAND(DEFINE_TILE6, tile6_f32_avx512, AVX512_OPS(_mm512_loadu_ps, SAME, float), tile_ahead)

/* the six-row tiles, where this machine has them (null: the three-row ones) */
static tile6_fn tile6s[2];

/* weight rows of a tile: 3, or 6 with tile6s */
static int tile_ways = 3;

static dot_fn dots[2];
static int level; /* 0: unsupported, 2: AVX2 + FMA + F16C, 3: AVX-512F */

/* ---------------------------------------------------------------------------------- */
/* a team of the calling thread and helpers                                            */

/* rows attending over their caches (task kind 3, its rows the units of attend: a row's
 * key-value head over a range of its keys, row after row): one token of each of several
 * sequences, or a prompt chunk's tokens of one */
typedef struct {
	const float *q;          /* [rows, heads, dh], rotated */
	float *context;          /* [rows, heads, dh] */
	const int64_t *keys;     /* per row, the address of its cache's token 0 of head 0: token t */
	const int64_t *values;   /* of head g at element g * head_strides[row] + t * dh (kv_type) */
	const int64_t *head_strides;
	int kv_type;             /* the caches' elements: TYPE_FLOAT32 or TYPE_FLOAT16 */
	const int *starts, *positions; /* each row attends over its tokens [start, position] */
	int heads, group, dh;    /* group: query heads per key-value head */
	float scale;
	float *scratch;          /* [team, ATTEND_SCRATCH(group, dh)]: each thread's */
	int chunks;              /* key ranges per row and key-value head (attention_chunks) */
	float *partial;          /* chunks > 1: [rows, kv heads, chunks, group, dh + 2], merged after;
	                            the blocked form: its scratch, [team, BLOCKED_SCRATCH(group, dh)] */
	int io_type;             /* each context row is rounded to it */
	const int *blocks;       /* the blocked form (attend_blocks): the first rows of its blocks,
	                            then rows; null: a unit per row (attend) */
} attention;

/* keys per block of a unit's online softmax: a block's keys and values stay in the L2 cache
 * while the group's query heads read them */
#define KEY_BLOCK 256

/* the fewest keys of a chunk (attention_chunks) */
#define MIN_CHUNK_KEYS 128

/* floats of one thread's attention scratch: the group's scores, sums, maxima, running values,
 * a block's weighted values and rescales */
#define ATTEND_SCRATCH(group, dh) ((size_t) (group) * (KEY_BLOCK + 2 * (size_t) (dh) + 3))

/*
 * The blocked form of a prompt's attention (attend_blocks): rows of one sequence at
 * consecutive positions, BLOCK_ROWS of them at a time, their group's query heads together
 * over BLOCK_KEYS keys at a time
 */
#define BLOCK_ROWS 16
#define BLOCK_KEYS 64

/* a block's queries (rows times the group's heads), in whole tiles of four */
#define BLOCK_QUERIES(group) ((BLOCK_ROWS * (group) + 3) / 4 * 4)

/* floats of one thread's scratch in the blocked form: the keys transposed [dh, BLOCK_KEYS],
 * the scores [queries, BLOCK_KEYS], the running values [queries, dh], and the maxima, sums
 * and rescales [queries] */
#define BLOCKED_SCRATCH(group, dh) \
	((size_t) (dh) * BLOCK_KEYS + (size_t) BLOCK_QUERIES(group) * (BLOCK_KEYS + (size_t) (dh) + 3))

/*
 * A gated block's activations for several rows (gate_rows, over the activation rows)
 * and, optionally, GRIFFIN's prompt statistic (gather_statistic, over the neurons).
 */
typedef struct {
	const float *both;  /* [rows, 2f]: gate . x, then up . x */
	float *active;      /* [rows, f]: act(gate) * up, times keep */
	const float *keep;  /* [rows, f] of 1 or 0, or null */
	float *squares;     /* [rows]: each row's sum of active^2 (gate_rows writes it when non-null) */
	double *statistic;  /* [f], or [sequences, f] with owners: += active^2 / squares over the rows (gather_statistic) */
	const int *owners;  /* [rows]: the statistic row each row adds to (none when negative), or null: every row to the one row */
	int rows, f, activation;
} gating;

/* work on rows [r0, r1) of something (task kind 4) */
typedef void (*rows_fn)(const void *context, int r0, int r1);

typedef struct {
	int kind; /* 0: matrix-vector, 1: gated block's first half, 2: several activation rows, 3: attention,
	             4: a function of rows */
	int type, rows, cols, activation;
	int tokens; /* kind 2: activation rows x [tokens, cols], outputs y [tokens, rows] */
	const char *w;
	const float *x;
	const float *panel;  /* kind 2: x in panels (packed), or null: tiles */
	float *y;
	attention *a;
	rows_fn each;        /* kind 4, with its context */
	const void *context;
	int taken;           /* rows handed out so far (threads take shares as they go) */
} task;

static int team = 1;
static pthread_t helpers[MAX_THREADS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static task *posted_task;
static volatile unsigned long generation;
/*
 * Who works on the posted task: its generation (above the low byte), the helpers that
 * joined it (the low seven bits) and whether the caller closed it (CLOSED). A helper
 * joins only an open task of the generation it woke for; the caller closes the task once
 * no share is left and waits for the helpers that joined, never for one the machine kept
 * off its core while the task ran.
 */
static unsigned long joining;
#define CLOSED 0x80UL

/* joining for generation g's task, open and joined by no helper yet */
static unsigned long opened(unsigned long g) {
	return g << 8;
}
/* helpers that joined the posted task and are done with it */
static volatile int done;
/* nonzero: helpers join no task (griffin_hold_helpers) */
static volatile int held;
static volatile int sleepers;
/* how long a helper spins for the next task before it sleeps */
static const double SPIN_SECONDS = 2e-3;
/*
 * Memory the caller reads next (the next layer's q/k/v weights), posted at the end of a
 * layer call so that helpers waiting for a task prefetch it while the caller is alone (in
 * the engine's Java between two layers): each helper asks for its slice a cache line at a
 * time until the next task comes. Only prefetch instructions touch the region, and they
 * never fault, so it may be freed or reused meanwhile: a stale region costs reads, not
 * correctness. A seqlock: ahead_version is odd while the caller writes the region.
 */
static const char *ahead_from;
static size_t ahead_bytes;
static unsigned long ahead_version;
/* nonzero: post regions (griffin_layer); zero: none (comparisons, tools/reference) */
static int ahead_enabled = 1;
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

/* rows [r0, r1) of the task on the team's thread me */
static void work_rows(const task *t, int r0, int r1, int me);

/* weight rows per call of the panel form's kernel (work_packed_rows): 6 with AVX2, 12 with
 * AVX-512 (griffin_init) */
static int panel_rows = 6;

static void work_packed_rows(const task *t, int r0, int r1, int me);

/* *buffer with room for n floats at least (grown by realloc), or null when memory ran out */
static float *grown(float **buffer, size_t *capacity, size_t n);

static void run(task *t);

static void attend(const attention *a, int h0, int h1, int me);

static void attend_blocks(const attention *a, int u0, int u1, int me);

static void rounded(float *v, size_t n, int io_type);

/* the units a thread takes at a time in an attention task with many of them */
#define ATTEND_SHARE 4

static void activated(const float *gate, const float *up, float *out, int n, int activation);

/* rows [r0, r1) of a one-row product: kind 0 (y = w x) or 1 (gated pairs) */
static void one_row(const task *t, int r0, int r1) {
	dot_fn dot = dots[t->type];
	dot2_fn dot2 = dot2s[t->type];
	size_t stride = (size_t) t->cols * (t->type == TYPE_FLOAT16 ? 2 : 4);
	float s[2];
	if (t->kind == 1) {
		/*
		 * z[i] = act(gate_i . x) * (up_i . x), gate rows [0, F), up rows [F, 2F): eight
		 * pairs' products, then their activations together (SiLU in eight lanes)
		 */
		for (int r = r0; r < r1; r += 8) {
			int n = (r1 - r < 8) ? r1 - r : 8;
			float gate[8], up[8];
			for (int i = 0; i < n; i++) {
				dot2(t->w + stride * (r + i), t->w + stride * ((size_t) t->rows + r + i), t->x, t->cols, s);
				gate[i] = s[0];
				up[i] = s[1];
			}
			activated(gate, up, t->y + r, n, t->activation);
		}
		return;
	}
	/*
	 * rows r and r + half together: two streams of weights a share apart. Adjacent rows
	 * read as one stream ran at half the rate (8 against 17 GB/s for float16 rows of
	 * 576 on the AVX2 EPYC, 2 threads).
	 */
	int half = (r1 - r0) / 2, r = r0;
	for (; r < r0 + half; r++) {
		dot2(t->w + stride * r, t->w + stride * (r + half), t->x, t->cols, s);
		t->y[r] = s[0];
		t->y[r + half] = s[1];
	}
	for (r = r0 + 2 * half; r < r1; r++) {
		t->y[r] = dot(t->w + stride * r, t->x, t->cols);
	}
}

/*
 * The task's work on the team's thread me (0: the caller): its rows in shares taken from
 * a counter until none is left, so that a thread the machine slows takes fewer, and one
 * it keeps off its core takes none. An attention's shares are a few units, the last rows
 * first: a prompt's later rows attend over more keys.
 */
static void work(task *t, int me) {
	/* an attention's units one at a time when there are few (a decode step's) */
	int share = (t->rows < 4 * ATTEND_SHARE * team || (t->kind == 3 && t->a->blocks != NULL)) ? 1 : ATTEND_SHARE;
	if (t->kind == 4) {
		/* a function of rows: about a quarter of a thread's part */
		share = (t->rows + 4 * team - 1) / (4 * team);
	}
	else if (t->kind != 3) {
		/* about an eighth of a thread's part, in whole tiles (3 or 6 rows), panel kernels (6 or 12) or row pairs */
		int unit = (t->kind != 2) ? 2 : (t->panel != NULL) ? panel_rows : tile_ways;
		share = (t->rows + 8 * team - 1) / (8 * team);
		share = (share + unit - 1) / unit * unit;
	}
	for (;;) {
		int first = __atomic_fetch_add(&t->taken, share, __ATOMIC_RELAXED);
		if (first >= t->rows) {
			return;
		}
		int last = (first + share < t->rows) ? first + share : t->rows;
		if (t->kind == 4) {
			t->each(t->context, first, last);
		}
		else if (t->kind == 3 && t->a->blocks != NULL) {
			attend_blocks(t->a, t->rows - last, t->rows - first, me);
		}
		else if (t->kind == 3) {
			attend(t->a, t->rows - last, t->rows - first, me);
		}
		else if (t->kind == 2 && t->panel != NULL) {
			work_packed_rows(t, first, last, me);
		}
		else if (t->kind == 2) {
			work_rows(t, first, last, me);
		}
		else {
			one_row(t, first, last);
		}
	}
}

/*
 * Columns per pass of work_rows where the CPU has the three-row tiles: four activation
 * rows' share (16 KiB) stays in the L1 cache (measured on the AVX2 EPYC, Zen 3).
 * griffin_init sets column_block and widen_from for the CPU it finds.
 */
#define COLUMN_BLOCK 1024

/*
 * columns per pass of work_rows: COLUMN_BLOCK, or INT_MAX (whole rows) with the six-row
 * tiles. On the AMD EPYC with AVX-512 a row split into passes of 1024 columns is read as
 * two runs with a gap, and each of a tile's six streams restarts at every row: with whole
 * rows, 4 activation rows of 1536, 4864 and 8960 columns (2 threads, 256 MB of weights)
 * read float32 weights at 37.1, 45.1 and 43.1 GB/s against 34.2, 39.6 and 40.6, float16 at
 * 37.0, 38.2 and 36.5 against 33.6, 33.1 and 33.3, and 16 rows float32 at 27.4-29.0
 * against 23.8-24.8; rows of 576 columns, which one pass holds, within 2%.
 */
static int column_block = COLUMN_BLOCK;

/* bytes of weight rows work_rows keeps in the L2 cache across the activation rows */
#define WEIGHT_BLOCK (256 * 1024)

/*
 * float16 products of at least this many activation rows widen each block of weight rows
 * to float32 once, in the thread's panel, and multiply from there: the widening is paid
 * once per block instead of once per four rows
 */
#define WIDEN_ROWS 16

/*
 * the fewest rows whose float16 products widen their weights first: WIDEN_ROWS, or INT_MAX
 * (never: the tiles widen in registers) with the six-row tiles. On the AMD EPYC with
 * AVX-512, 16 activation rows of 576, 1536 and 8960 columns read float16 weights at 16.4,
 * 15.0 and 16.2 GB/s widened in registers against 10.4, 10.0 and 10.2 widened first, and
 * 24 rows of 1536 at 12.7 against 9.4.
 */
static int widen_from = WIDEN_ROWS;

/* each team thread's float32 panel (work_rows), grown by that thread only */
static float *panels[MAX_THREADS];
static size_t panel_sizes[MAX_THREADS];

/* weight rows of row_bytes each that fit WEIGHT_BLOCK, in whole tiles (at least one) */
static int rows_per_block(size_t row_bytes) {
	int block = (int) (WEIGHT_BLOCK / (row_bytes > 0 ? row_bytes : 1));
	return block < tile_ways ? tile_ways : block - block % tile_ways;
}

__attribute__((target("avx2,fma,f16c"))) static void widen_rows(const uint16_t *w, size_t n, float *out) {
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		_mm256_storeu_ps(out + i, LOAD_F16_256(w + i));
	}
	for (; i < n; i++) {
		out[i] = _cvtsh_ss(w[i]);
	}
}

/*
 * weight rows [r0, r1) times every activation row. Weight rows go in blocks that stay in
 * the L2 cache across the groups of four activation rows, and each group's columns in
 * passes of column_block (with the three-row tiles, blocks that stay in the L1 cache across
 * the block's weight rows); partial sums add up in y. A float16 block of many rows'
 * product is widened to float32 first (widen_from).
 */
static void work_rows(const task *t, int r0, int r1, int me) {
	int type = t->type;
	size_t element = (type == TYPE_FLOAT16) ? 2 : 4;
	size_t stride = (size_t) t->cols * element;
	int widens = type == TYPE_FLOAT16 && t->tokens >= widen_from;
	float out[24];
	int block = rows_per_block(widens ? (size_t) t->cols * 4 : stride);
	if (widens && panel_sizes[me] < (size_t) block * t->cols) {
		float *bigger = realloc(panels[me], (size_t) block * t->cols * sizeof(float));
		if (bigger == NULL) {
			widens = 0; /* the product is still right, widened in registers */
			block = rows_per_block(stride);
		}
		else {
			panels[me] = bigger;
			panel_sizes[me] = (size_t) block * t->cols;
		}
	}
	tile_fn tile = tiles[widens ? TYPE_FLOAT32 : type];
	tile6_fn tile6 = tile6s[widens ? TYPE_FLOAT32 : type];
	int ways = (tile6 != NULL) ? 6 : 3;
	dot_fn dot = dots[widens ? TYPE_FLOAT32 : type];
	element = widens ? 4 : element;
	for (int b0 = r0; b0 < r1; b0 += block) {
		int b1 = (b0 + block < r1) ? b0 + block : r1;
		/* the block's rows, row r at weights + row_bytes * (r - b0) */
		const char *weights = t->w + stride * b0;
		size_t row_bytes = stride;
		if (widens) {
			widen_rows((const uint16_t *) weights, (size_t) (b1 - b0) * t->cols, panels[me]);
			weights = (const char *) panels[me];
			row_bytes = (size_t) t->cols * 4;
		}
		for (int i0 = 0; i0 < t->tokens; i0 += 4) {
			int count = (t->tokens - i0 < 4) ? t->tokens - i0 : 4;
			for (int c0 = 0; c0 < t->cols; c0 += column_block) {
				/* the first column block's sums are written (y may hold anything), the later
				 * ones' added */
				int first = c0 == 0;
				int n = (t->cols - c0 < column_block) ? t->cols - c0 : column_block;
				const float *xs[4];
				for (int i = 0; i < 4; i++) {
					xs[i] = t->x + (size_t) t->cols * (i0 + (i < count ? i : 0)) + c0;
				}
				const char *w = weights + element * c0;
				/*
				 * rows r, r + part, r + 2 part (and on to r + 5 part with six-row tiles) in
				 * a tile: three (six) streams of weights, for the first group's pass reads
				 * the block from memory (about twice the rate of three adjacent rows for
				 * four activation rows of 576 columns)
				 */
				int part = (b1 - b0) / ways;
				size_t apart = row_bytes * part;
				for (int r = b0; r < b0 + part; r++) {
					const char *at = w + row_bytes * (r - b0);
					if (tile6 != NULL) {
						tile6(at, apart, xs, n, out);
					}
					else {
						tile(at, at + apart, at + 2 * apart, xs, n, out);
					}
					for (int i = 0; i < count; i++) {
						float *row = t->y + (size_t) t->rows * (i0 + i) + r;
						for (int j = 0; j < ways; j++) {
							row[j * part] = first ? out[ways * i + j] : row[j * part] + out[ways * i + j];
						}
					}
				}
				for (int r = b0 + ways * part; r < b1; r++) {
					for (int i = 0; i < count; i++) {
						float *to = t->y + (size_t) t->rows * (i0 + i) + r;
						float sum = dot(w + row_bytes * (r - b0), xs[i], n);
						*to = first ? sum : *to + sum;
					}
				}
			}
		}
	}
}

/*
 * Products of many activation rows (PACKED_FROM or more: a prompt chunk's) take another
 * form: the rows go in panels of PANEL_TOKENS, stored column by column (the panel's
 * column c holds its sixteen rows' x[c] side by side), and a kernel multiplies weight rows
 * by a panel (on AVX2 six rows at a time), broadcasting each weight to the sixteen rows'
 * lanes. Per column it loads two panel vectors and six weights for twelve multiply-adds,
 * where a tile loads seven vectors; the panel's columns for a pass stay in the L1 cache
 * across the weight rows, and the six rows' sums come out as vectors of the panel's rows.
 * On the AVX2 EPYC (Zen 3), two threads, products of 256 rows by the 1.5B model's weights
 * ran at 51-106 GFLOP/s in tiles and 83-130 in panels (float16; docs/results.md); the
 * kernel alone in the L1 cache runs 71-73 GFLOP/s per thread against the tile's 52-60.
 * At 16 rows (a batched decode step of 16 sequences) the engine decoded SmolLM2 4-16%
 * faster with the tiles, each weight meeting too few rows to pay for the packing's pass.
 * AVX-512 machines take the panels too, with a kernel of twelve weight rows by one panel
 * vector (panel_twelve_avx512): on an Intel Xeon with AVX-512, SmolLM2's float32 prefill
 * of 512 tokens ran 464-537 tokens/s in tiles and 541-623 in panels (three alternating
 * pairs). Batched decode keeps the tiles below PACKED_FROM rows there as well: 4 and 8
 * rows in panels ran at half the tiles' rate, 16 rows about the same.
 */
#define PACKED_FROM 32
#define PANEL_TOKENS 16
/* a pass's columns: a panel's share (16 KiB) stays in the L1 cache (the AVX2 EPYC) */
#define PASS_COLUMNS 256
/* columns of a weight block at most: longer rows go in parts, their sums added in y */
#define PART_COLUMNS 2048

/*
 * a pass's columns and a part's at most (griffin_row_passes): PASS_COLUMNS and
 * PART_COLUMNS, or with the six-row tiles 1024 and 12288 (twelve float32 rows of a part,
 * 576 KiB, stay in a 1 MiB L2 cache). A row read in parts is read as runs with gaps, as
 * in work_rows: on the AMD EPYC with AVX-512, 256 activation rows times weights of 8960,
 * 4864 and 1536 columns (24 MB, 2 threads) ran at 314, 328 and 317 GFLOP/s in float16 with
 * whole rows and passes of 1024 against 271, 298 and 304, float32 314 and 362 against 299
 * and 351 (8960 and 1536 columns); 576 columns 348 against 340.
 */
static int pass_columns = PASS_COLUMNS, part_columns = PART_COLUMNS;

/* weight row j's column c times the panel's column c, into acc[j] and acc[j] + 8 */
#define PANEL_ROW(J, A, B)                                                                                         \
	b = _mm256_broadcast_ss(w##J + c);                                                                         \
	A = _mm256_fmadd_ps(b, x0, A);                                                                             \
	B = _mm256_fmadd_ps(b, x1, B);

/* row j's sums for the panel's sixteen rows: written at a pass's start, added after */
#define PANEL_OUT(J, A, B)                                                                                         \
	if (first) {                                                                                               \
		_mm256_storeu_ps(acc + PANEL_TOKENS * J, A);                                                           \
		_mm256_storeu_ps(acc + PANEL_TOKENS * J + 8, B);                                                       \
	}                                                                                                          \
	else {                                                                                                     \
		_mm256_storeu_ps(acc + PANEL_TOKENS * J, _mm256_add_ps(_mm256_loadu_ps(acc + PANEL_TOKENS * J), A));   \
		_mm256_storeu_ps(acc + PANEL_TOKENS * J + 8,                                                           \
				_mm256_add_ps(_mm256_loadu_ps(acc + PANEL_TOKENS * J + 8), B));                                \
	}

/* six float32 weight rows (ld apart) times n columns of a panel, into acc [6, 16] */
__attribute__((target("avx2,fma"))) static void panel_six(const float *w, size_t ld, const float *panel, int n,
		float *acc, int first) {
	__m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00;
	__m256 a30 = a00, a31 = a00, a40 = a00, a41 = a00, a50 = a00, a51 = a00;
	const float *w0 = w, *w1 = w + ld, *w2 = w + 2 * ld, *w3 = w + 3 * ld, *w4 = w + 4 * ld, *w5 = w + 5 * ld;
	for (int c = 0; c < n; c++) {
		__m256 x0 = _mm256_loadu_ps(panel + PANEL_TOKENS * c), x1 = _mm256_loadu_ps(panel + PANEL_TOKENS * c + 8), b;
		PANEL_ROW(0, a00, a01)
		PANEL_ROW(1, a10, a11)
		PANEL_ROW(2, a20, a21)
		PANEL_ROW(3, a30, a31)
		PANEL_ROW(4, a40, a41)
		PANEL_ROW(5, a50, a51)
	}
	PANEL_OUT(0, a00, a01)
	PANEL_OUT(1, a10, a11)
	PANEL_OUT(2, a20, a21)
	PANEL_OUT(3, a30, a31)
	PANEL_OUT(4, a40, a41)
	PANEL_OUT(5, a50, a51)
}

/* one weight row times n columns of a panel, into acc [16] (a block's last rows) */
__attribute__((target("avx2,fma"))) static void panel_one(const float *w, const float *panel, int n, float *acc,
		int first) {
	__m256 a00 = _mm256_setzero_ps(), a01 = a00;
	const float *w0 = w;
	for (int c = 0; c < n; c++) {
		__m256 x0 = _mm256_loadu_ps(panel + PANEL_TOKENS * c), x1 = _mm256_loadu_ps(panel + PANEL_TOKENS * c + 8), b;
		PANEL_ROW(0, a00, a01)
	}
	PANEL_OUT(0, a00, a01)
}

/*
 * The AVX-512 form: the panel's sixteen rows are one vector, and each column's weight is
 * broadcast from memory into its multiply-add, so that twelve weight rows take thirteen
 * loads for twelve multiply-adds. Each lane adds its row's products in the same order as
 * the AVX2 kernels' lanes do, so both forms give the same sums.
 */
#define PANEL512_ROW(J) a##J = _mm512_fmadd_ps(_mm512_set1_ps(w[(J) * ld + c]), x, a##J);

#define PANEL512_OUT(J)                                                                                            \
	_mm512_storeu_ps(acc + PANEL_TOKENS * (J),                                                                 \
			first ? a##J : _mm512_add_ps(_mm512_loadu_ps(acc + PANEL_TOKENS * (J)), a##J));

/* twelve float32 weight rows (ld apart) times n columns of a panel, into acc [12, 16] */
__attribute__((target("avx512f"))) static void panel_twelve_avx512(const float *w, size_t ld, const float *panel, int n,
		float *acc, int first) {
	__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
	__m512 a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
	for (int c = 0; c < n; c++) {
		__m512 x = _mm512_loadu_ps(panel + PANEL_TOKENS * c);
		PANEL512_ROW(0)
		PANEL512_ROW(1)
		PANEL512_ROW(2)
		PANEL512_ROW(3)
		PANEL512_ROW(4)
		PANEL512_ROW(5)
		PANEL512_ROW(6)
		PANEL512_ROW(7)
		PANEL512_ROW(8)
		PANEL512_ROW(9)
		PANEL512_ROW(10)
		PANEL512_ROW(11)
	}
	PANEL512_OUT(0)
	PANEL512_OUT(1)
	PANEL512_OUT(2)
	PANEL512_OUT(3)
	PANEL512_OUT(4)
	PANEL512_OUT(5)
	PANEL512_OUT(6)
	PANEL512_OUT(7)
	PANEL512_OUT(8)
	PANEL512_OUT(9)
	PANEL512_OUT(10)
	PANEL512_OUT(11)
}

/* one weight row times n columns of a panel, into acc [16] */
__attribute__((target("avx512f"))) static void panel_one_avx512(const float *w, const float *panel, int n, float *acc,
		int first) {
	__m512 a0 = _mm512_setzero_ps();
	const size_t ld = 0;
	for (int c = 0; c < n; c++) {
		__m512 x = _mm512_loadu_ps(panel + PANEL_TOKENS * c);
		PANEL512_ROW(0)
	}
	PANEL512_OUT(0)
}

typedef void (*panel_many_fn)(const float *w, size_t ld, const float *panel, int n, float *acc, int first);
typedef void (*panel_one_fn)(const float *w, const float *panel, int n, float *acc, int first);

/* this machine's panel kernels (griffin_init) */
static panel_many_fn panel_many = panel_six;
static panel_one_fn panel_single = panel_one;

/* what pack_columns reads and writes */
typedef struct {
	const float *x; /* [tokens, cols] */
	float *panels;  /* [ceil(tokens / 16), cols, 16], rows past tokens 0 */
	int tokens, cols;
} packing;

/* columns [8 u0, 8 u1) of x into the panels: eight rows by eight columns at a time */
__attribute__((target("avx2,fma"))) static void pack_columns(const void *context, int u0, int u1) {
	const packing *k = context;
	int count = (k->tokens + PANEL_TOKENS - 1) / PANEL_TOKENS;
	for (int u = u0; u < u1; u++) {
		int c = 8 * u, width = (k->cols - c < 8) ? k->cols - c : 8;
		for (int p = 0; p < count; p++) {
			float *to = k->panels + ((size_t) p * k->cols + c) * PANEL_TOKENS;
			for (int h = 0; h < PANEL_TOKENS; h += 8) {
				__m256 r[8];
				for (int i = 0; i < 8; i++) {
					int token = p * PANEL_TOKENS + h + i;
					const float *from = k->x + (size_t) token * k->cols + c;
					if (token < k->tokens && width == 8) {
						r[i] = _mm256_loadu_ps(from);
					}
					else {
						float part[8] = { 0 };
						for (int j = 0; token < k->tokens && j < width; j++) {
							part[j] = from[j];
						}
						r[i] = _mm256_loadu_ps(part);
					}
				}
				/* the 8 x 8 transpose: pairs, quads, then halves */
				__m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
				__m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
				__m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
				__m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
				__m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
				__m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
				__m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
				__m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
				__m256 o[8] = { _mm256_permute2f128_ps(s0, s4, 0x20), _mm256_permute2f128_ps(s1, s5, 0x20),
					_mm256_permute2f128_ps(s2, s6, 0x20), _mm256_permute2f128_ps(s3, s7, 0x20),
					_mm256_permute2f128_ps(s0, s4, 0x31), _mm256_permute2f128_ps(s1, s5, 0x31),
					_mm256_permute2f128_ps(s2, s6, 0x31), _mm256_permute2f128_ps(s3, s7, 0x31) };
				for (int j = 0; j < width; j++) {
					_mm256_storeu_ps(to + (size_t) j * PANEL_TOKENS + h, o[j]);
				}
			}
		}
	}
}

/* the panels of the product in flight, grown under the calls lock */
static float *x_panels;
static size_t x_panels_size;

/* each thread's sums of a block's rows for one panel [block, 16] */
static float *sums[MAX_THREADS];
static size_t sums_sizes[MAX_THREADS];

/*
 * x [tokens, cols] in panels (across the team), for a product in the panel form; null
 * where this machine keeps the tiles, the rows are few, or memory ran out (the tiles
 * compute the same product)
 */
static const float *packed(const float *x, int tokens, int cols) {
	if (level < 2 || tokens < PACKED_FROM) {
		return NULL;
	}
	size_t count = (size_t) (tokens + PANEL_TOKENS - 1) / PANEL_TOKENS;
	size_t need = count * PANEL_TOKENS * cols;
	if (x_panels_size < need) {
		float *bigger = realloc(x_panels, need * sizeof(float));
		if (bigger == NULL) {
			return NULL;
		}
		x_panels = bigger;
		x_panels_size = need;
	}
	packing k = { .x = x, .panels = x_panels, .tokens = tokens, .cols = cols };
	task t = { .kind = 4, .rows = (cols + 7) / 8, .each = pack_columns, .context = &k };
	run(&t);
	return x_panels;
}

/*
 * weight rows [r0, r1) times every activation row, from the task's panels (packed).
 * Rows go in blocks that stay in the L2 cache across the panels (float16 widened into the
 * thread's float32 block once, float32 read where they are); rows longer than
 * part_columns in parts, each part's sums added in y.
 */
static void work_packed_rows(const task *t, int r0, int r1, int me) {
	int type = t->type;
	size_t element = (type == TYPE_FLOAT16) ? 2 : 4;
	size_t stride = (size_t) t->cols * element;
	int parts = (int) (((long long) t->cols + part_columns - 1) / part_columns);
	int part = ((t->cols + parts - 1) / parts + 7) / 8 * 8;
	int block = (int) (WEIGHT_BLOCK / ((size_t) part * sizeof(float)));
	block = (block < panel_rows) ? panel_rows : block - block % panel_rows;
	/* the thread's buffers grown as needed; where memory runs out, the same product in tiles */
	if ((type == TYPE_FLOAT16 && grown(&panels[me], &panel_sizes[me], (size_t) block * part) == NULL)
			|| grown(&sums[me], &sums_sizes[me], (size_t) block * PANEL_TOKENS) == NULL) {
		work_rows(t, r0, r1, me);
		return;
	}
	float *acc = sums[me];
	int count = (t->tokens + PANEL_TOKENS - 1) / PANEL_TOKENS;
	for (int k0 = 0; k0 < t->cols; k0 += part) {
		int kn = (t->cols - k0 < part) ? t->cols - k0 : part;
		for (int b0 = r0; b0 < r1; b0 += block) {
			int b1 = (b0 + block < r1) ? b0 + block : r1;
			/* the block's row r at weights + ld * (r - b0) */
			const float *weights = (const float *) (t->w + stride * b0) + k0;
			size_t ld = (size_t) t->cols;
			if (type == TYPE_FLOAT16) {
				for (int r = b0; r < b1; r++) {
					widen_rows((const uint16_t *) (t->w + stride * r) + k0, (size_t) kn,
							panels[me] + (size_t) (r - b0) * kn);
				}
				weights = panels[me];
				ld = (size_t) kn;
			}
			for (int p = 0; p < count; p++) {
				const float *panel = t->panel + ((size_t) p * t->cols + k0) * PANEL_TOKENS;
				for (int c0 = 0; c0 < kn; c0 += pass_columns) {
					int n = (kn - c0 < pass_columns) ? kn - c0 : pass_columns;
					const float *columns = panel + (size_t) c0 * PANEL_TOKENS;
					int r = b0;
					for (; r + panel_rows <= b1; r += panel_rows) {
						panel_many(weights + ld * (r - b0) + c0, ld, columns, n, acc + (r - b0) * PANEL_TOKENS,
								c0 == 0);
					}
					for (; r < b1; r++) {
						panel_single(weights + ld * (r - b0) + c0, columns, n, acc + (r - b0) * PANEL_TOKENS,
								c0 == 0);
					}
				}
				/* the panel's rows of y: the first part's sums written (y may hold anything) */
				int rows = (t->tokens - p * PANEL_TOKENS < PANEL_TOKENS) ? t->tokens - p * PANEL_TOKENS : PANEL_TOKENS;
				for (int i = 0; i < rows; i++) {
					float *y = t->y + (size_t) t->rows * (p * PANEL_TOKENS + i);
					for (int r = b0; r < b1; r++) {
						float sum = acc[(r - b0) * PANEL_TOKENS + i];
						y[r] = (k0 == 0) ? sum : y[r] + sum;
					}
				}
			}
		}
	}
}

/*
 * e^x in eight lanes, within a few ulp of expf (Cephes' polynomial after reducing by
 * ln 2). x is clamped to [-87.34, 88]: below that the result is the smallest normal float
 * (about 1.2e-38), not a denormal or 0.
 */
__attribute__((target("avx2,fma,f16c"))) static inline __m256 exp256(__m256 x) {
	x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.33654f)), _mm256_set1_ps(88.0f));
	__m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
			_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
	r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
	__m256 p = _mm256_set1_ps(1.9875691500e-4f);
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
	p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
	__m256i scale = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
	return _mm256_mul_ps(p, _mm256_castsi256_ps(scale));
}

/*
 * out[i] = act(gate[i]) * up[i], i < n: SiLU eight lanes at a time (exp256), the rest of
 * it and the other activations one at a time
 */
__attribute__((target("avx2,fma,f16c"))) static void activated(const float *gate, const float *up, float *out, int n,
		int activation) {
	__m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
	int i = 0;
	for (; activation == ACT_SILU && i + 8 <= n; i += 8) {
		__m256 x = _mm256_loadu_ps(gate + i);
		__m256 silu = _mm256_div_ps(x, _mm256_add_ps(one, exp256(_mm256_sub_ps(zero, x))));
		_mm256_storeu_ps(out + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
	}
	for (; i < n; i++) {
		out[i] = activate(gate[i], activation) * up[i];
	}
}

/* s[0..4) = the sums of a0, a1, a2 and a3's lanes, times scale */
__attribute__((target("avx2,fma,f16c"))) static inline void four_scores(__m256 a0, __m256 a1, __m256 a2, __m256 a3,
		float scale, float *s) {
	__m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
	__m128 four = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
	_mm_storeu_ps(s, _mm_mul_ps(four, _mm_set1_ps(scale)));
}

/* a cache's n values at element i of p (kv_type), as float32 lanes */
__attribute__((target("avx2,f16c"), always_inline)) static inline __m256 cached8(const void *p, size_t i, int kv_type) {
	return (kv_type == TYPE_FLOAT16) ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) ((const uint16_t *) p + i)))
									 : _mm256_loadu_ps((const float *) p + i);
}

__attribute__((target("avx512f,f16c"), always_inline)) static inline __m512 cached16(const void *p, size_t i,
		int kv_type) {
	return (kv_type == TYPE_FLOAT16)
			? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) ((const uint16_t *) p + i)))
			: _mm512_loadu_ps((const float *) p + i);
}

/* element i of a cache (kv_type) as float32 */
__attribute__((target("f16c"))) static inline float cached1(const void *p, size_t i, int kv_type) {
	return (kv_type == TYPE_FLOAT16) ? _cvtsh_ss(((const uint16_t *) p)[i]) : ((const float *) p)[i];
}

/* scored's keys [t, span) one at a time; returns the largest of the span's scores */
static float scored_rest(const void *k, int kv_type, const float *q, int t, int span, int dh, float scale, float *s) {
	dot_fn dot = dots[kv_type];
	size_t element = (kv_type == TYPE_FLOAT16) ? 2 : 4;
	for (; t < span; t++) {
		s[t] = dot((const char *) k + (size_t) t * dh * element, q, dh) * scale;
	}
	float max = -INFINITY;
	for (t = 0; t < span; t++) {
		max = (s[t] > max) ? s[t] : max;
	}
	return max;
}

/*
 * s[t] = (k_t . q) * scale for the span's keys k_t (dh apart, kv_type, widened in
 * registers); returns the largest. Inlined with a constant kv_type into scored and
 * scored16.
 */
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline float scored_of(const void *k, int kv_type,
		const float *q, int span, int dh, float scale, float *s) {
	int t = 0;
	if (dh % 8 == 0) {
		/* four keys at once, their four sums gathered by horizontal adds */
		for (; t + 4 <= span; t += 4) {
			size_t k0 = (size_t) t * dh;
			__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
			for (int i = 0; i < dh; i += 8) {
				__m256 x = _mm256_loadu_ps(q + i);
				a0 = _mm256_fmadd_ps(cached8(k, k0 + i, kv_type), x, a0);
				a1 = _mm256_fmadd_ps(cached8(k, k0 + dh + i, kv_type), x, a1);
				a2 = _mm256_fmadd_ps(cached8(k, k0 + 2 * dh + i, kv_type), x, a2);
				a3 = _mm256_fmadd_ps(cached8(k, k0 + 3 * dh + i, kv_type), x, a3);
			}
			four_scores(a0, a1, a2, a3, scale, s + t);
		}
	}
	return scored_rest(k, kv_type, q, t, span, dh, scale, s);
}

__attribute__((target("avx2,fma,f16c"))) static float scored(const void *k, const float *q, int span, int dh,
		float scale, float *s) {
	return scored_of(k, TYPE_FLOAT32, q, span, dh, scale, s);
}

__attribute__((target("avx2,fma,f16c"))) static float scored16(const void *k, const float *q, int span, int dh,
		float scale, float *s) {
	return scored_of(k, TYPE_FLOAT16, q, span, dh, scale, s);
}

/* s[t] = e^(s[t] - max) over the span; returns their sum */
__attribute__((target("avx2,fma,f16c"))) static float exponentiated(float *s, int span, float max) {
	__m256 top = _mm256_set1_ps(max), total = _mm256_setzero_ps();
	int t = 0;
	for (; t + 8 <= span; t += 8) {
		__m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(s + t), top));
		_mm256_storeu_ps(s + t, e);
		total = _mm256_add_ps(total, e);
	}
	float sum = hsum256(total);
	for (; t < span; t++) {
		s[t] = expf(s[t] - max);
		sum += s[t];
	}
	return sum;
}

/* weighted's columns [i0, dh) one at a time */
__attribute__((target("f16c"))) static void weighted_rest(const void *v, int kv_type, const float *p, int span, int dh, float factor, int i0,
		float *c) {
	for (; i0 < dh; i0++) {
		float sum = 0.0f;
		for (int t = 0; t < span; t++) {
			sum += p[t] * cached1(v, (size_t) t * dh + i0, kv_type);
		}
		c[i0] = sum * factor;
	}
}

/*
 * c[dh] = (sum_t p[t] v_t) * factor for the span's values v_t (dh apart, kv_type, widened
 * in registers). Inlined with a constant kv_type into weighted and weighted16.
 */
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline void weighted_of(const void *v, int kv_type,
		const float *p, int span, int dh, float factor, float *c) {
	int i0 = 0;
	__m256 by = _mm256_set1_ps(factor);
	/* 64 columns at a time in eight accumulators, then 8 */
	for (; i0 + 64 <= dh; i0 += 64) {
		__m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
		for (int t = 0; t < span; t++) {
			size_t token = (size_t) t * dh + i0;
			__m256 w = _mm256_set1_ps(p[t]);
			c0 = _mm256_fmadd_ps(w, cached8(v, token, kv_type), c0);
			c1 = _mm256_fmadd_ps(w, cached8(v, token + 8, kv_type), c1);
			c2 = _mm256_fmadd_ps(w, cached8(v, token + 16, kv_type), c2);
			c3 = _mm256_fmadd_ps(w, cached8(v, token + 24, kv_type), c3);
			c4 = _mm256_fmadd_ps(w, cached8(v, token + 32, kv_type), c4);
			c5 = _mm256_fmadd_ps(w, cached8(v, token + 40, kv_type), c5);
			c6 = _mm256_fmadd_ps(w, cached8(v, token + 48, kv_type), c6);
			c7 = _mm256_fmadd_ps(w, cached8(v, token + 56, kv_type), c7);
		}
		_mm256_storeu_ps(c + i0, _mm256_mul_ps(c0, by));
		_mm256_storeu_ps(c + i0 + 8, _mm256_mul_ps(c1, by));
		_mm256_storeu_ps(c + i0 + 16, _mm256_mul_ps(c2, by));
		_mm256_storeu_ps(c + i0 + 24, _mm256_mul_ps(c3, by));
		_mm256_storeu_ps(c + i0 + 32, _mm256_mul_ps(c4, by));
		_mm256_storeu_ps(c + i0 + 40, _mm256_mul_ps(c5, by));
		_mm256_storeu_ps(c + i0 + 48, _mm256_mul_ps(c6, by));
		_mm256_storeu_ps(c + i0 + 56, _mm256_mul_ps(c7, by));
	}
	for (; i0 + 8 <= dh; i0 += 8) {
		__m256 c0 = _mm256_setzero_ps();
		for (int t = 0; t < span; t++) {
			c0 = _mm256_fmadd_ps(_mm256_set1_ps(p[t]), cached8(v, (size_t) t * dh + i0, kv_type), c0);
		}
		_mm256_storeu_ps(c + i0, _mm256_mul_ps(c0, by));
	}
	weighted_rest(v, kv_type, p, span, dh, factor, i0, c);
}

__attribute__((target("avx2,fma,f16c"))) static void weighted(const void *v, const float *p, int span, int dh,
		float factor, float *c) {
	weighted_of(v, TYPE_FLOAT32, p, span, dh, factor, c);
}

__attribute__((target("avx2,fma,f16c"))) static void weighted16(const void *v, const float *p, int span, int dh,
		float factor, float *c) {
	weighted_of(v, TYPE_FLOAT16, p, span, dh, factor, c);
}

/* the upper eight lanes of v (AVX-512F alone has no float form of this) */
__attribute__((target("avx512f"))) static inline __m256 upper256(__m512 v) {
	return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
}

/* scored (above) with AVX-512: four keys at once, each sum folded to eight lanes, then the
 * four gathered by horizontal adds as there */
__attribute__((target("avx512f,avx2,fma,f16c"), always_inline)) static inline float scored_avx512_of(const void *k,
		int kv_type, const float *q, int span, int dh, float scale, float *s) {
	int t = 0;
	if (dh % 16 == 0) {
		for (; t + 4 <= span; t += 4) {
			size_t k0 = (size_t) t * dh;
			__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
			for (int i = 0; i < dh; i += 16) {
				__m512 x = _mm512_loadu_ps(q + i);
				a0 = _mm512_fmadd_ps(cached16(k, k0 + i, kv_type), x, a0);
				a1 = _mm512_fmadd_ps(cached16(k, k0 + dh + i, kv_type), x, a1);
				a2 = _mm512_fmadd_ps(cached16(k, k0 + 2 * dh + i, kv_type), x, a2);
				a3 = _mm512_fmadd_ps(cached16(k, k0 + 3 * dh + i, kv_type), x, a3);
			}
			__m256 b0 = _mm256_add_ps(_mm512_castps512_ps256(a0), upper256(a0));
			__m256 b1 = _mm256_add_ps(_mm512_castps512_ps256(a1), upper256(a1));
			__m256 b2 = _mm256_add_ps(_mm512_castps512_ps256(a2), upper256(a2));
			__m256 b3 = _mm256_add_ps(_mm512_castps512_ps256(a3), upper256(a3));
			four_scores(b0, b1, b2, b3, scale, s + t);
		}
	}
	return scored_rest(k, kv_type, q, t, span, dh, scale, s);
}

__attribute__((target("avx512f,avx2,fma,f16c"))) static float scored_avx512(const void *k, const float *q, int span,
		int dh, float scale, float *s) {
	return scored_avx512_of(k, TYPE_FLOAT32, q, span, dh, scale, s);
}

__attribute__((target("avx512f,avx2,fma,f16c"))) static float scored16_avx512(const void *k, const float *q, int span,
		int dh, float scale, float *s) {
	return scored_avx512_of(k, TYPE_FLOAT16, q, span, dh, scale, s);
}

/* weighted (above) with AVX-512: 64 columns at a time, two tokens' products in separate
 * accumulators (eight chains), then 16 columns, then the rest */
__attribute__((target("avx512f,f16c"), always_inline)) static inline void weighted_avx512_of(const void *v,
		int kv_type, const float *p, int span, int dh, float factor, float *c) {
	__m512 by = _mm512_set1_ps(factor);
	int i0 = 0;
	for (; i0 + 64 <= dh; i0 += 64) {
		__m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, d0 = c0, d1 = c0, d2 = c0, d3 = c0;
		int t = 0;
		for (; t + 2 <= span; t += 2) {
			size_t token = (size_t) t * dh + i0, next = token + dh;
			__m512 w = _mm512_set1_ps(p[t]), u = _mm512_set1_ps(p[t + 1]);
			c0 = _mm512_fmadd_ps(w, cached16(v, token, kv_type), c0);
			c1 = _mm512_fmadd_ps(w, cached16(v, token + 16, kv_type), c1);
			c2 = _mm512_fmadd_ps(w, cached16(v, token + 32, kv_type), c2);
			c3 = _mm512_fmadd_ps(w, cached16(v, token + 48, kv_type), c3);
			d0 = _mm512_fmadd_ps(u, cached16(v, next, kv_type), d0);
			d1 = _mm512_fmadd_ps(u, cached16(v, next + 16, kv_type), d1);
			d2 = _mm512_fmadd_ps(u, cached16(v, next + 32, kv_type), d2);
			d3 = _mm512_fmadd_ps(u, cached16(v, next + 48, kv_type), d3);
		}
		for (; t < span; t++) {
			size_t token = (size_t) t * dh + i0;
			__m512 w = _mm512_set1_ps(p[t]);
			c0 = _mm512_fmadd_ps(w, cached16(v, token, kv_type), c0);
			c1 = _mm512_fmadd_ps(w, cached16(v, token + 16, kv_type), c1);
			c2 = _mm512_fmadd_ps(w, cached16(v, token + 32, kv_type), c2);
			c3 = _mm512_fmadd_ps(w, cached16(v, token + 48, kv_type), c3);
		}
		_mm512_storeu_ps(c + i0, _mm512_mul_ps(_mm512_add_ps(c0, d0), by));
		_mm512_storeu_ps(c + i0 + 16, _mm512_mul_ps(_mm512_add_ps(c1, d1), by));
		_mm512_storeu_ps(c + i0 + 32, _mm512_mul_ps(_mm512_add_ps(c2, d2), by));
		_mm512_storeu_ps(c + i0 + 48, _mm512_mul_ps(_mm512_add_ps(c3, d3), by));
	}
	for (; i0 + 16 <= dh; i0 += 16) {
		__m512 c0 = _mm512_setzero_ps();
		for (int t = 0; t < span; t++) {
			c0 = _mm512_fmadd_ps(_mm512_set1_ps(p[t]), cached16(v, (size_t) t * dh + i0, kv_type), c0);
		}
		_mm512_storeu_ps(c + i0, _mm512_mul_ps(c0, by));
	}
	weighted_rest(v, kv_type, p, span, dh, factor, i0, c);
}

__attribute__((target("avx512f,f16c"))) static void weighted_avx512(const void *v, const float *p, int span, int dh,
		float factor, float *c) {
	weighted_avx512_of(v, TYPE_FLOAT32, p, span, dh, factor, c);
}

__attribute__((target("avx512f,f16c"))) static void weighted16_avx512(const void *v, const float *p, int span, int dh,
		float factor, float *c) {
	weighted_avx512_of(v, TYPE_FLOAT16, p, span, dh, factor, c);
}

/* the attention's arithmetic in the widest form this CPU has (griffin_init), by the caches' type */
typedef float (*scored_fn)(const void *k, const float *q, int span, int dh, float scale, float *s);
typedef void (*weighted_fn)(const void *v, const float *p, int span, int dh, float factor, float *c);
static scored_fn scorers[2] = { scored, scored16 };
static weighted_fn weighers[2] = { weighted, weighted16 };

/*
 * The scores and weighted values of a whole group of query heads in one pass over a block's
 * keys and values (AVX-512, dh a multiple of 64): each key and value is widened to float32
 * once for up to GROUP_SET heads, where the per-head forms above widen it once per head.
 * A head's arithmetic is the per-head forms' own, step for step (the same sums in the same
 * order), so the results are equal bit for bit; only the loads and conversions are shared.
 */
#define GROUP_SET 3

/* keys ahead of the scores that the scores' loop asks the cache for */
#define KEYS_AHEAD 8

/* scored_avx512_of for heads h < hs (q rows dh apart, each head's scores KEY_BLOCK apart in
 * s), without the maximum */
__attribute__((target("avx512f,avx2,fma,f16c"), always_inline)) static inline void scored_set_of(const void *k,
		int kv_type, const float *q, int hs, int span, int dh, float scale, float *s, const char *values) {
	size_t element = (kv_type == TYPE_FLOAT16) ? 2 : 4;
	dot_fn dot = dots[kv_type];
	int t = 0;
	for (; t + 4 <= span; t += 4) {
		size_t k0 = (size_t) t * dh;
		/* the keys KEYS_AHEAD on, and the values that the weighted sums will read next */
		for (size_t b = 0; b < 4 * (size_t) dh * element; b += 64) {
			_mm_prefetch((const char *) k + (k0 + (size_t) KEYS_AHEAD * dh) * element + b, _MM_HINT_T0);
			if (values != NULL) {
				_mm_prefetch(values + k0 * element + b, _MM_HINT_T0);
			}
		}
		__m512 a[GROUP_SET][4];
		for (int h = 0; h < hs; h++) {
			for (int j = 0; j < 4; j++) {
				a[h][j] = _mm512_setzero_ps();
			}
		}
		for (int i = 0; i < dh; i += 16) {
			__m512 k0v = cached16(k, k0 + i, kv_type), k1v = cached16(k, k0 + dh + i, kv_type);
			__m512 k2v = cached16(k, k0 + 2 * dh + i, kv_type), k3v = cached16(k, k0 + 3 * dh + i, kv_type);
			for (int h = 0; h < hs; h++) {
				__m512 x = _mm512_loadu_ps(q + (size_t) h * dh + i);
				a[h][0] = _mm512_fmadd_ps(k0v, x, a[h][0]);
				a[h][1] = _mm512_fmadd_ps(k1v, x, a[h][1]);
				a[h][2] = _mm512_fmadd_ps(k2v, x, a[h][2]);
				a[h][3] = _mm512_fmadd_ps(k3v, x, a[h][3]);
			}
		}
		for (int h = 0; h < hs; h++) {
			__m256 b0 = _mm256_add_ps(_mm512_castps512_ps256(a[h][0]), upper256(a[h][0]));
			__m256 b1 = _mm256_add_ps(_mm512_castps512_ps256(a[h][1]), upper256(a[h][1]));
			__m256 b2 = _mm256_add_ps(_mm512_castps512_ps256(a[h][2]), upper256(a[h][2]));
			__m256 b3 = _mm256_add_ps(_mm512_castps512_ps256(a[h][3]), upper256(a[h][3]));
			four_scores(b0, b1, b2, b3, scale, s + (size_t) h * KEY_BLOCK + t);
		}
	}
	for (; t < span; t++) {
		const char *key = (const char *) k + (size_t) t * dh * element;
		for (int h = 0; h < hs; h++) {
			s[(size_t) h * KEY_BLOCK + t] = dot(key, q + (size_t) h * dh, dh) * scale;
		}
	}
}

/* sums[h][j] += p[h KEY_BLOCK + t] times the 64 values from element `token` of v (kv_type),
 * 16 columns in each j, for heads h < hs */
__attribute__((target("avx512f,f16c"), always_inline)) static inline void weighted_token(const void *v, int kv_type,
		size_t token, const float *p, int t, int hs, __m512 sums[GROUP_SET][4]) {
	__m512 v0 = cached16(v, token, kv_type), v1 = cached16(v, token + 16, kv_type);
	__m512 v2 = cached16(v, token + 32, kv_type), v3 = cached16(v, token + 48, kv_type);
	for (int h = 0; h < hs; h++) {
		__m512 w = _mm512_set1_ps(p[(size_t) h * KEY_BLOCK + t]);
		sums[h][0] = _mm512_fmadd_ps(w, v0, sums[h][0]);
		sums[h][1] = _mm512_fmadd_ps(w, v1, sums[h][1]);
		sums[h][2] = _mm512_fmadd_ps(w, v2, sums[h][2]);
		sums[h][3] = _mm512_fmadd_ps(w, v3, sums[h][3]);
	}
}

/* weighted_avx512_of's 64-column form for heads h < hs (weights KEY_BLOCK apart in p,
 * sums dh apart in c), factor 1 */
__attribute__((target("avx512f,f16c"), always_inline)) static inline void weighted_set_of(const void *v, int kv_type,
		const float *p, int hs, int span, int dh, float *c) {
	__m512 by = _mm512_set1_ps(1.0f);
	for (int i0 = 0; i0 < dh; i0 += 64) {
		__m512 e[GROUP_SET][4], o[GROUP_SET][4];
		for (int h = 0; h < hs; h++) {
			for (int j = 0; j < 4; j++) {
				e[h][j] = _mm512_setzero_ps();
				o[h][j] = _mm512_setzero_ps();
			}
		}
		int t = 0;
		/* two tokens' products in separate sums, as weighted_avx512_of keeps them */
		for (; t + 2 <= span; t += 2) {
			size_t token = (size_t) t * dh + i0;
			weighted_token(v, kv_type, token, p, t, hs, e);
			weighted_token(v, kv_type, token + dh, p, t + 1, hs, o);
		}
		for (; t < span; t++) {
			weighted_token(v, kv_type, (size_t) t * dh + i0, p, t, hs, e);
		}
		for (int h = 0; h < hs; h++) {
			float *ch = c + (size_t) h * dh + i0;
			_mm512_storeu_ps(ch, _mm512_mul_ps(_mm512_add_ps(e[h][0], o[h][0]), by));
			_mm512_storeu_ps(ch + 16, _mm512_mul_ps(_mm512_add_ps(e[h][1], o[h][1]), by));
			_mm512_storeu_ps(ch + 32, _mm512_mul_ps(_mm512_add_ps(e[h][2], o[h][2]), by));
			_mm512_storeu_ps(ch + 48, _mm512_mul_ps(_mm512_add_ps(e[h][3], o[h][3]), by));
		}
	}
}

/* the largest of s[0, n) (the per-head forms' scalar maximum, 16 at a time) */
__attribute__((target("avx512f"))) static float largest_avx512(const float *s, int n) {
	__m512 top = _mm512_set1_ps(-INFINITY);
	int t = 0;
	for (; t + 16 <= n; t += 16) {
		top = _mm512_max_ps(_mm512_loadu_ps(s + t), top);
	}
	float max = _mm512_reduce_max_ps(top);
	for (; t < n; t++) {
		max = (s[t] > max) ? s[t] : max;
	}
	return max;
}

typedef void (*scored_set_fn)(const void *k, const float *q, int span, int dh, float scale, float *s,
		const char *values);
typedef void (*weighted_set_fn)(const void *v, const float *p, int span, int dh, float *c);

/* the set forms with a constant count of heads and cache type, so that their sums stay in registers */
#define SET_FORMS(hs) \
	__attribute__((target("avx512f,avx2,fma,f16c"))) static void scored_set##hs##_f32(const void *k, const float *q, \
			int span, int dh, float scale, float *s, const char *values) { \
		scored_set_of(k, TYPE_FLOAT32, q, hs, span, dh, scale, s, values); \
	} \
	__attribute__((target("avx512f,avx2,fma,f16c"))) static void scored_set##hs##_f16(const void *k, const float *q, \
			int span, int dh, float scale, float *s, const char *values) { \
		scored_set_of(k, TYPE_FLOAT16, q, hs, span, dh, scale, s, values); \
	} \
	__attribute__((target("avx512f,f16c"))) static void weighted_set##hs##_f32(const void *v, const float *p, int span, \
			int dh, float *c) { \
		weighted_set_of(v, TYPE_FLOAT32, p, hs, span, dh, c); \
	} \
	__attribute__((target("avx512f,f16c"))) static void weighted_set##hs##_f16(const void *v, const float *p, int span, \
			int dh, float *c) { \
		weighted_set_of(v, TYPE_FLOAT16, p, hs, span, dh, c); \
	}
SET_FORMS(1)
SET_FORMS(2)
SET_FORMS(3)

static const scored_set_fn scored_sets[2][GROUP_SET] = { { scored_set1_f32, scored_set2_f32, scored_set3_f32 },
	{ scored_set1_f16, scored_set2_f16, scored_set3_f16 } };
static const weighted_set_fn weighted_sets[2][GROUP_SET] = {
	{ weighted_set1_f32, weighted_set2_f32, weighted_set3_f32 }, { weighted_set1_f16, weighted_set2_f16, weighted_set3_f16 }
};

/* whether attend takes a group's heads together (griffin_init: CPUs with AVX-512) */
static int grouped_attention;

/*
 * Key ranges per row and key-value head: one for many rows; for few, enough that the
 * team has at least two units each (a lone sequence's decode step would otherwise leave
 * threads idle), each unit's range merged with the others' after the task. Two rather
 * than four: with two threads, a lone row's 6 units (SmolLM2's 3 key-value heads) took
 * 2-8% less time than 9, and 4 units than 8 for 2 or 1 key-value heads. A variable only
 * so that tools/reference/bench_native_attention.c can compare the two; nothing else
 * changes it.
 */
static int units_per_thread = 2;

static int attention_chunks(int rows, int kv_heads, int span) {
	int units = rows * kv_heads, wanted = units_per_thread * team;
	int chunks = (units >= wanted) ? 1 : (wanted + units - 1) / units;
	/* no fewer than MIN_CHUNK_KEYS keys a chunk: shorter ones cost more to merge than they save */
	int most = (int) (((long long) span + MIN_CHUNK_KEYS - 1) / MIN_CHUNK_KEYS);
	return (chunks < most) ? chunks : ((most > 1) ? most : 1);
}

/*
 * Attention units [u0, u1) on the team's thread me: unit u is a row's key-value head g
 * over its chunk of the row's cached keys [start, position], for the group of query heads
 * that share g. The keys and values are read once for the group, KEY_BLOCK of them at a
 * time, with an online softmax in float32 (each block's exponentials taken from the
 * running maximum, the earlier sums rescaled when it grows). On AVX-512 CPUs (heads of a
 * multiple of 64) a block's scores and weighted values are taken for up to GROUP_SET heads
 * in one pass (scored_set_of, weighted_set_of), which widens each key and value once for
 * them and asks for the values while the scores run; otherwise head by head. With one
 * chunk the context (the weighted sum of the values over the sum of the weights) is
 * written, rounded; otherwise each head's maximum, sum and unscaled values go to the
 * partials.
 */
static void attend(const attention *a, int u0, int u1, int me) {
	int dh = a->dh, group = a->group, chunks = a->chunks, kv_heads = a->heads / group;
	float *s = a->scratch + (size_t) me * ATTEND_SCRATCH(group, dh);
	float *sums = s + (size_t) group * KEY_BLOCK, *maxima = sums + group, *values = maxima + group;
	float *block = values + (size_t) group * dh, *rescales = block + (size_t) group * dh;
	int grouped = grouped_attention && dh % 64 == 0;
	scored_fn score = scorers[a->kv_type];
	weighted_fn weigh = weighers[a->kv_type];
	size_t element = (a->kv_type == TYPE_FLOAT16) ? 2 : 4;
	for (int u = u0; u < u1; u++) {
		int row = u / (kv_heads * chunks), g = u / chunks % kv_heads, c = u % chunks;
		int first = a->starts[row], span = a->positions[row] - first + 1;
		int t0 = first + (int) ((long long) span * c / chunks), t1 = first + (int) ((long long) span * (c + 1) / chunks);
		size_t head = (size_t) g * (size_t) a->head_strides[row] * element;
		const char *keys = (const char *) (intptr_t) a->keys[row] + head;
		const char *vals = (const char *) (intptr_t) a->values[row] + head;
		for (int h = 0; h < group; h++) {
			sums[h] = 0.0f;
			maxima[h] = -INFINITY;
			memset(values + (size_t) h * dh, 0, sizeof(float) * (size_t) dh);
		}
		const float *qg = a->q + ((size_t) row * a->heads + (size_t) g * group) * dh;
		for (int b0 = t0; b0 < t1; b0 += KEY_BLOCK) {
			int n = (t1 - b0 < KEY_BLOCK) ? t1 - b0 : KEY_BLOCK;
			const char *k = keys + (size_t) b0 * dh * element, *v = vals + (size_t) b0 * dh * element;
			if (grouped) {
				for (int h0 = 0; h0 < group; h0 += GROUP_SET) {
					int hs = (group - h0 < GROUP_SET) ? group - h0 : GROUP_SET;
					scored_sets[a->kv_type][hs - 1](k, qg + (size_t) h0 * dh, n, dh, a->scale, s + (size_t) h0 * KEY_BLOCK,
							(h0 == 0) ? v : NULL);
				}
				for (int h = 0; h < group; h++) {
					float *sh = s + (size_t) h * KEY_BLOCK;
					float top = largest_avx512(sh, n);
					float max = (top > maxima[h]) ? top : maxima[h];
					rescales[h] = (maxima[h] == -INFINITY) ? 0.0f : expf(maxima[h] - max);
					sums[h] = sums[h] * rescales[h] + exponentiated(sh, n, max);
					maxima[h] = max;
				}
				for (int h0 = 0; h0 < group; h0 += GROUP_SET) {
					int hs = (group - h0 < GROUP_SET) ? group - h0 : GROUP_SET;
					weighted_sets[a->kv_type][hs - 1](v, s + (size_t) h0 * KEY_BLOCK, n, dh, block + (size_t) h0 * dh);
				}
				for (int h = 0; h < group; h++) {
					float *vh = values + (size_t) h * dh;
					const float *bh = block + (size_t) h * dh;
					for (int i = 0; i < dh; i++) {
						vh[i] = vh[i] * rescales[h] + bh[i];
					}
				}
				continue;
			}
			for (int h = 0; h < group; h++) {
				const float *q = a->q + ((size_t) row * a->heads + (size_t) g * group + h) * dh;
				float *sh = s + (size_t) h * KEY_BLOCK, *vh = values + (size_t) h * dh;
				float top = score(k, q, n, dh, a->scale, sh);
				float max = (top > maxima[h]) ? top : maxima[h];
				float rescale = (maxima[h] == -INFINITY) ? 0.0f : expf(maxima[h] - max);
				sums[h] = sums[h] * rescale + exponentiated(sh, n, max);
				maxima[h] = max;
				weigh(v, sh, n, dh, 1.0f, block);
				for (int i = 0; i < dh; i++) {
					vh[i] = vh[i] * rescale + block[i];
				}
			}
		}
		for (int h = 0; h < group; h++) {
			const float *vh = values + (size_t) h * dh;
			if (chunks == 1) {
				float *context = a->context + ((size_t) row * a->heads + (size_t) g * group + h) * dh;
				for (int i = 0; i < dh; i++) {
					context[i] = vh[i] / sums[h];
				}
				rounded(context, (size_t) dh, a->io_type);
			}
			else {
				float *part = a->partial + ((size_t) u * group + h) * (dh + 2);
				part[0] = maxima[h];
				part[1] = sums[h];
				memcpy(part + 2, vh, sizeof(float) * (size_t) dh);
			}
		}
	}
}

/*
 * The blocks of rows [0, rows) for the blocked form, into first[] (at most LAYER_ROWS + 1
 * entries): runs of at most BLOCK_ROWS rows that read one cache at consecutive positions.
 * Returns their count when the form pays (an AVX-512 CPU, dh a multiple of 64, blocks of
 * four rows or more on average: a prompt's rows, not a batched step's), else 0.
 */
static int attention_blocks(const int64_t *keys, const int64_t *values, const int64_t *head_strides,
		const int *positions, int rows, int dh, int *first) {
	if (level != 3 || dh % 64 != 0 || rows < 2 * BLOCK_ROWS) {
		return 0;
	}
	int count = 0;
	for (int r = 0; r < rows;) {
		int e = r + 1;
		while (e < rows && e - r < BLOCK_ROWS && keys[e] == keys[r] && values[e] == values[r]
				&& head_strides[e] == head_strides[r] && positions[e] == positions[e - 1] + 1) {
			e++;
		}
		first[count++] = r;
		r = e;
	}
	first[count] = rows;
	return (4 * count <= rows) ? count : 0;
}

/* s[x][0..64) = (q_x . kt[.][0..64)) * scale for four queries q_x over keys transposed
 * [dh, BLOCK_KEYS] (kt) */
__attribute__((target("avx512f"))) static void block_scores(const float *const *q, const float *kt, int dh,
		float scale, float *s) {
	__m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
	__m512 c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00, c31 = c00, c32 = c00, c33 = c00;
	const float *q0 = q[0], *q1 = q[1], *q2 = q[2], *q3 = q[3];
	for (int d = 0; d < dh; d++) {
		const float *row = kt + (size_t) d * BLOCK_KEYS;
		__m512 k0 = _mm512_loadu_ps(row), k1 = _mm512_loadu_ps(row + 16), k2 = _mm512_loadu_ps(row + 32),
				k3 = _mm512_loadu_ps(row + 48);
		__m512 b = _mm512_set1_ps(q0[d]);
		c00 = _mm512_fmadd_ps(b, k0, c00);
		c01 = _mm512_fmadd_ps(b, k1, c01);
		c02 = _mm512_fmadd_ps(b, k2, c02);
		c03 = _mm512_fmadd_ps(b, k3, c03);
		b = _mm512_set1_ps(q1[d]);
		c10 = _mm512_fmadd_ps(b, k0, c10);
		c11 = _mm512_fmadd_ps(b, k1, c11);
		c12 = _mm512_fmadd_ps(b, k2, c12);
		c13 = _mm512_fmadd_ps(b, k3, c13);
		b = _mm512_set1_ps(q2[d]);
		c20 = _mm512_fmadd_ps(b, k0, c20);
		c21 = _mm512_fmadd_ps(b, k1, c21);
		c22 = _mm512_fmadd_ps(b, k2, c22);
		c23 = _mm512_fmadd_ps(b, k3, c23);
		b = _mm512_set1_ps(q3[d]);
		c30 = _mm512_fmadd_ps(b, k0, c30);
		c31 = _mm512_fmadd_ps(b, k1, c31);
		c32 = _mm512_fmadd_ps(b, k2, c32);
		c33 = _mm512_fmadd_ps(b, k3, c33);
	}
	__m512 by = _mm512_set1_ps(scale);
#define BLOCK_STORE(x, c0, c1, c2, c3) \
	_mm512_storeu_ps(s + (x) * BLOCK_KEYS, _mm512_mul_ps(c0, by)); \
	_mm512_storeu_ps(s + (x) * BLOCK_KEYS + 16, _mm512_mul_ps(c1, by)); \
	_mm512_storeu_ps(s + (x) * BLOCK_KEYS + 32, _mm512_mul_ps(c2, by)); \
	_mm512_storeu_ps(s + (x) * BLOCK_KEYS + 48, _mm512_mul_ps(c3, by));
	BLOCK_STORE(0, c00, c01, c02, c03)
	BLOCK_STORE(1, c10, c11, c12, c13)
	BLOCK_STORE(2, c20, c21, c22, c23)
	BLOCK_STORE(3, c30, c31, c32, c33)
#undef BLOCK_STORE
}

/* o_x[0..64) = o_x[0..64) * rescale[x] + sum_k p_x[k] v_k[0..64) for four queries x, keys k < n
 * (values dh apart, kv_type, widened in registers), o_x dh apart, p_x BLOCK_KEYS apart */
__attribute__((target("avx512f,f16c"))) static void block_values(const float *p, const void *v, int kv_type, int n,
		int dh, const float *rescale, float *o) {
	__m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
	__m512 c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00, c31 = c00, c32 = c00, c33 = c00;
	for (int k = 0; k < n; k++) {
		size_t token = (size_t) k * dh;
		__m512 v0 = cached16(v, token, kv_type), v1 = cached16(v, token + 16, kv_type),
				v2 = cached16(v, token + 32, kv_type), v3 = cached16(v, token + 48, kv_type);
		__m512 b = _mm512_set1_ps(p[k]);
		c00 = _mm512_fmadd_ps(b, v0, c00);
		c01 = _mm512_fmadd_ps(b, v1, c01);
		c02 = _mm512_fmadd_ps(b, v2, c02);
		c03 = _mm512_fmadd_ps(b, v3, c03);
		b = _mm512_set1_ps(p[BLOCK_KEYS + k]);
		c10 = _mm512_fmadd_ps(b, v0, c10);
		c11 = _mm512_fmadd_ps(b, v1, c11);
		c12 = _mm512_fmadd_ps(b, v2, c12);
		c13 = _mm512_fmadd_ps(b, v3, c13);
		b = _mm512_set1_ps(p[2 * BLOCK_KEYS + k]);
		c20 = _mm512_fmadd_ps(b, v0, c20);
		c21 = _mm512_fmadd_ps(b, v1, c21);
		c22 = _mm512_fmadd_ps(b, v2, c22);
		c23 = _mm512_fmadd_ps(b, v3, c23);
		b = _mm512_set1_ps(p[3 * BLOCK_KEYS + k]);
		c30 = _mm512_fmadd_ps(b, v0, c30);
		c31 = _mm512_fmadd_ps(b, v1, c31);
		c32 = _mm512_fmadd_ps(b, v2, c32);
		c33 = _mm512_fmadd_ps(b, v3, c33);
	}
#define BLOCK_ADD(x, c0, c1, c2, c3) \
	{ \
		float *to = o + (size_t) (x) * dh; \
		__m512 r = _mm512_set1_ps(rescale[x]); \
		_mm512_storeu_ps(to, _mm512_fmadd_ps(_mm512_loadu_ps(to), r, c0)); \
		_mm512_storeu_ps(to + 16, _mm512_fmadd_ps(_mm512_loadu_ps(to + 16), r, c1)); \
		_mm512_storeu_ps(to + 32, _mm512_fmadd_ps(_mm512_loadu_ps(to + 32), r, c2)); \
		_mm512_storeu_ps(to + 48, _mm512_fmadd_ps(_mm512_loadu_ps(to + 48), r, c3)); \
	}
	BLOCK_ADD(0, c00, c01, c02, c03)
	BLOCK_ADD(1, c10, c11, c12, c13)
	BLOCK_ADD(2, c20, c21, c22, c23)
	BLOCK_ADD(3, c30, c31, c32, c33)
#undef BLOCK_ADD
}

/*
 * Attention units [u0, u1) of the blocked form on the team's thread me: unit u is block
 * u / kv_heads of rows (one sequence's, at consecutive positions) and key-value head g =
 * u % kv_heads, for the group of query heads that share g: the block's rows times those
 * heads are its queries, each over its own keys [start, position]. The block's keys go
 * BLOCK_KEYS at a time: transposed once for all its queries, their scores as products
 * of four queries by the block's keys, an online softmax per query as attend's (masked
 * keys weigh exactly 0), and the weighted values as products of four queries' weights by
 * the block's values. Each context is written, rounded. The same arithmetic as attend,
 * its sums in another order.
 */
__attribute__((target("avx512f,avx2,fma,f16c"))) static void attend_blocks(const attention *a, int u0, int u1,
		int me) {
	int dh = a->dh, group = a->group, kv_heads = a->heads / group, padded = BLOCK_QUERIES(group);
	float *kt = a->partial + (size_t) me * BLOCKED_SCRATCH(group, dh);
	float *s = kt + (size_t) dh * BLOCK_KEYS, *o = s + (size_t) padded * BLOCK_KEYS, *maxima = o + (size_t) padded * dh;
	float *sums = maxima + padded, *rescale = sums + padded;
	const float *q[padded];
	int from[padded], to[padded];
	for (int u = u0; u < u1; u++) {
		int b = u / kv_heads, g = u % kv_heads, r0 = a->blocks[b], r1 = a->blocks[b + 1];
		int queries = (r1 - r0) * group, first = INT_MAX, last = -1;
		for (int i = 0; i < padded; i++) {
			if (i < queries) {
				int row = r0 + i / group;
				q[i] = a->q + ((size_t) row * a->heads + (size_t) g * group + i % group) * dh;
				from[i] = a->starts[row];
				to[i] = a->positions[row];
				first = (from[i] < first) ? from[i] : first;
				last = (to[i] > last) ? to[i] : last;
			}
			else {
				/* a tile's padding: the last query again, with no keys */
				q[i] = q[queries - 1];
				from[i] = 1;
				to[i] = 0;
			}
			maxima[i] = -INFINITY;
			sums[i] = 0.0f;
			memset(o + (size_t) i * dh, 0, sizeof(float) * (size_t) dh);
		}
		size_t element = (a->kv_type == TYPE_FLOAT16) ? 2 : 4;
		size_t head = (size_t) g * (size_t) a->head_strides[r0] * element;
		const char *keys = (const char *) (intptr_t) a->keys[r0] + head;
		const char *vals = (const char *) (intptr_t) a->values[r0] + head;
		for (int b0 = first; b0 <= last; b0 += BLOCK_KEYS) {
			int n = (last - b0 + 1 < BLOCK_KEYS) ? last - b0 + 1 : BLOCK_KEYS;
			for (int d = 0; d < dh; d++) {
				float *row = kt + (size_t) d * BLOCK_KEYS;
				for (int k = 0; k < n; k++) {
					row[k] = cached1(keys, (size_t) (b0 + k) * dh + d, a->kv_type);
				}
				for (int k = n; k < BLOCK_KEYS; k++) {
					row[k] = 0.0f;
				}
			}
			for (int i = 0; i < padded; i += 4) {
				block_scores(q + i, kt, dh, a->scale, s + (size_t) i * BLOCK_KEYS);
			}
			for (int i = 0; i < padded; i++) {
				float *si = s + (size_t) i * BLOCK_KEYS;
				int k0 = (from[i] > b0) ? from[i] - b0 : 0, k1 = (to[i] - b0 + 1 < n) ? to[i] - b0 + 1 : n;
				if (k0 >= k1) {
					/* none of this block's keys: nothing added, nothing rescaled */
					memset(si, 0, sizeof(float) * BLOCK_KEYS);
					rescale[i] = 1.0f;
					continue;
				}
				float top = -INFINITY;
				for (int k = k0; k < k1; k++) {
					top = (si[k] > top) ? si[k] : top;
				}
				float max = (top > maxima[i]) ? top : maxima[i];
				rescale[i] = (maxima[i] == -INFINITY) ? 0.0f : expf(maxima[i] - max);
				maxima[i] = max;
				float sum = exponentiated(si + k0, k1 - k0, max);
				sums[i] = sums[i] * rescale[i] + sum;
				memset(si, 0, sizeof(float) * (size_t) k0);
				memset(si + k1, 0, sizeof(float) * (size_t) (BLOCK_KEYS - k1));
			}
			for (int i = 0; i < padded; i += 4) {
				for (int c0 = 0; c0 < dh; c0 += 64) {
					block_values(s + (size_t) i * BLOCK_KEYS, vals + ((size_t) b0 * dh + c0) * element, a->kv_type, n,
							dh, rescale + i, o + (size_t) i * dh + c0);
				}
			}
		}
		for (int i = 0; i < queries; i++) {
			float *context = a->context + ((size_t) (r0 + i / group) * a->heads + (size_t) g * group + i % group) * dh;
			const float *oi = o + (size_t) i * dh;
			for (int c = 0; c < dh; c++) {
				context[c] = oi[c] / sums[i];
			}
			rounded(context, (size_t) dh, a->io_type);
		}
	}
}

/* floats of an attention's scratch for `rows` rows: the team's, then the partials or the
 * blocked form's scratch (a task uses one or the other) */
static size_t attention_floats(int rows, int heads, int kv_heads, int dh) {
	int group = heads / kv_heads, chunks = attention_chunks(rows, kv_heads, INT_MAX);
	size_t partials = (chunks == 1) ? 0 : (size_t) rows * heads * chunks * (size_t) (dh + 2);
	size_t blocked = (level == 3) ? (size_t) team * BLOCKED_SCRATCH(group, dh) : 0;
	return (size_t) team * ATTEND_SCRATCH(group, dh) + ((partials > blocked) ? partials : blocked);
}

/* the rows' contexts from their chunks' partials (chunks > 1), rounded */
static void merge_chunks(const attention *a, int rows) {
	int dh = a->dh, group = a->group, chunks = a->chunks, kv_heads = a->heads / group;
	for (int row = 0; row < rows; row++) {
		for (int qh = 0; qh < a->heads; qh++) {
			int g = qh / group, h = qh % group;
			const float *parts = a->partial + (((size_t) row * kv_heads + g) * chunks * group + h) * (dh + 2);
			size_t apart = (size_t) group * (dh + 2);
			float max = -INFINITY, sum = 0.0f;
			for (int c = 0; c < chunks; c++) {
				max = (parts[c * apart] > max) ? parts[c * apart] : max;
			}
			float *context = a->context + ((size_t) row * a->heads + qh) * dh;
			memset(context, 0, sizeof(float) * (size_t) dh);
			for (int c = 0; c < chunks; c++) {
				const float *part = parts + c * apart;
				if (part[0] == -INFINITY) {
					continue; /* an empty chunk */
				}
				float scale = expf(part[0] - max);
				sum += part[1] * scale;
				for (int i = 0; i < dh; i++) {
					context[i] += part[2 + i] * scale;
				}
			}
			for (int i = 0; i < dh; i++) {
				context[i] /= sum;
			}
			rounded(context, (size_t) dh, a->io_type);
		}
	}
}

/*
 * The sum of a row's squares, floored at the smallest normal float as the engine's
 * statistic floors it (a row of zeros then adds nothing)
 */
__attribute__((target("avx2,fma,f16c"))) static float floored_squares(const float *a, int f) {
	__m256 total = _mm256_setzero_ps();
	int i = 0;
	for (; i + 8 <= f; i += 8) {
		__m256 x = _mm256_loadu_ps(a + i);
		total = _mm256_fmadd_ps(x, x, total);
	}
	float sum = hsum256(total);
	for (; i < f; i++) {
		sum += a[i] * a[i];
	}
	return (sum > 1.17549435e-38f) ? sum : 1.17549435e-38f;
}

/* a gated block's activations of rows [r0, r1): see gating */
__attribute__((target("avx2,fma,f16c"))) static void gate_rows(const void *context, int r0, int r1) {
	const gating *g = context;
	int f = g->f;
	for (int r = r0; r < r1; r++) {
		const float *gate = g->both + (size_t) r * 2 * f, *up = gate + f;
		float *out = g->active + (size_t) r * f;
		activated(gate, up, out, f, g->activation);
		if (g->keep != NULL) {
			const float *keep = g->keep + (size_t) r * f;
			for (int i = 0; i < f; i++) {
				out[i] *= keep[i];
			}
		}
		if (g->squares != NULL) {
			g->squares[r] = floored_squares(out, f);
		}
	}
}

/*
 * GRIFFIN's prompt statistic for neurons [c0, c1): statistic[j] += active[r][j]^2 /
 * squares[r] over the rows, each quotient in float32, their sum in float64 (the engine's
 * ExpertSelector.sumOfSquares); with owners, row r adds to statistic row owners[r], or
 * nothing when that is negative (a batch's rows whose sequences record nothing).
 */
__attribute__((target("avx2,fma,f16c"))) static void gather_statistic(const void *context, int c0, int c1) {
	const gating *g = context;
	for (int r = 0; r < g->rows; r++) {
		if (g->owners != NULL && g->owners[r] < 0) {
			continue;
		}
		const float *a = g->active + (size_t) r * g->f;
		float norm = g->squares[r];
		double *statistic = g->statistic + ((g->owners != NULL) ? (size_t) g->owners[r] * g->f : 0);
		__m256 by = _mm256_set1_ps(norm);
		int j = c0;
		for (; j + 8 <= c1; j += 8) {
			__m256 x = _mm256_loadu_ps(a + j);
			__m256 share = _mm256_div_ps(_mm256_mul_ps(x, x), by);
			double *to = statistic + j;
			_mm256_storeu_pd(to, _mm256_add_pd(_mm256_loadu_pd(to), _mm256_cvtps_pd(_mm256_castps256_ps128(share))));
			_mm256_storeu_pd(to + 4,
					_mm256_add_pd(_mm256_loadu_pd(to + 4), _mm256_cvtps_pd(_mm256_extractf128_ps(share, 1))));
		}
		for (; j < c1; j++) {
			float square = a[j] * a[j];
			statistic[j] += (double) (square / norm);
		}
	}
}

static double seconds(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* the caller's next region: r for helpers to prefetch (a seqlock's writer, see ahead_from) */
static void post_ahead(const void *r, size_t bytes) {
	if (!ahead_enabled || team == 1 || r == NULL) {
		return;
	}
	__atomic_add_fetch(&ahead_version, 1, __ATOMIC_ACQ_REL);
	__atomic_store_n(&ahead_from, (const char *) r, __ATOMIC_RELAXED);
	__atomic_store_n(&ahead_bytes, bytes, __ATOMIC_RELAXED);
	__atomic_add_fetch(&ahead_version, 1, __ATOMIC_RELEASE);
}

/*
 * Helper me's slice [*from, *to) of a region posted since version *taken, if any: true,
 * with *taken moved on; false when none is new or the caller is writing one
 */
static int took_ahead(int me, unsigned long *taken, const char **from, const char **to) {
	unsigned long v = __atomic_load_n(&ahead_version, __ATOMIC_ACQUIRE);
	if (v == *taken || (v & 1) != 0) {
		return 0;
	}
	const char *r = __atomic_load_n(&ahead_from, __ATOMIC_RELAXED);
	size_t bytes = __atomic_load_n(&ahead_bytes, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	if (__atomic_load_n(&ahead_version, __ATOMIC_RELAXED) != v) {
		return 0;
	}
	*taken = v;
	size_t slice = bytes / (size_t) (team - 1);
	*from = r + slice * (size_t) (me - 1);
	*to = (me == team - 1) ? r + bytes : *from + slice;
	return 1;
}

static void *helper(void *arg) {
	int me = (int) (intptr_t) arg;
	unsigned long seen = 0, taken = 0;
	const char *from = NULL, *to = NULL;
	for (;;) {
		double start = seconds();
		int spins = 0;
		while (__atomic_load_n(&generation, __ATOMIC_ACQUIRE) == seen) {
			if (from < to || took_ahead(me, &taken, &from, &to)) {
				/* eight cache lines, then another look at generation */
				for (int i = 0; i < 8 && from < to; i++, from += 64) {
					_mm_prefetch(from, _MM_HINT_T1);
				}
				continue;
			}
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
		/* a task came: what is left of the region, the caller is reading now */
		from = to = NULL;
		/* join the task of that generation if it is still open; else wait for the next */
		unsigned long state = __atomic_load_n(&joining, __ATOMIC_ACQUIRE);
		int joined = 0;
		while (!joined && (state & ~0xFFUL) == opened(seen) && (state & CLOSED) == 0
				&& !__atomic_load_n(&held, __ATOMIC_ACQUIRE)) {
			joined = __atomic_compare_exchange_n(&joining, &state, state + 1, 0, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE);
		}
		if (!joined) {
			continue;
		}
		work(posted_task, me);
		__atomic_add_fetch(&done, 1, __ATOMIC_ACQ_REL);
	}
	return NULL;
}

static void run(task *t) {
	/* the team for a few attention units, each a head over many keys, not for a few rows */
	if (team == 1 || t->rows < ((t->kind == 3) ? 2 : 4 * team)) {
		work(t, 0);
		return;
	}
	posted_task = t;
	__atomic_store_n(&done, 0, __ATOMIC_RELEASE);
	/* under the lock: a helper that is about to sleep rechecks generation holding it */
	pthread_mutex_lock(&lock);
	unsigned long next = generation + 1;
	__atomic_store_n(&joining, opened(next), __ATOMIC_RELEASE);
	__atomic_store_n(&generation, next, __ATOMIC_RELEASE);
	if (__atomic_load_n(&sleepers, __ATOMIC_ACQUIRE) > 0) {
		pthread_cond_broadcast(&wake);
	}
	pthread_mutex_unlock(&lock);
	work(t, 0);
	/* no share is left: close the task to late helpers, and wait for those that joined */
	int joined = (int) (__atomic_fetch_or(&joining, CLOSED, __ATOMIC_ACQ_REL) & (CLOSED - 1));
	while (__atomic_load_n(&done, __ATOMIC_ACQUIRE) != joined) {
		_mm_pause();
	}
}

/* ---------------------------------------------------------------------------------- */
/* entry points                                                                        */

void griffin_row_passes(int columns, int widen, int pass, int part);

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
			panel_many = panel_twelve_avx512;
			panel_single = panel_one_avx512;
			panel_rows = 12;
			tile6s[TYPE_FLOAT32] = tile6_f32_avx512;
			tile6s[TYPE_FLOAT16] = tile6_f16_avx512;
			tile_ways = 6;
			scorers[TYPE_FLOAT32] = scored_avx512;
			scorers[TYPE_FLOAT16] = scored16_avx512;
			weighers[TYPE_FLOAT32] = weighted_avx512;
			weighers[TYPE_FLOAT16] = weighted16_avx512;
			grouped_attention = 1;
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
		griffin_row_passes(0, 0, 0, 0);
		if (level > 0) {
			team = threads < 1 ? 1 : (threads > MAX_THREADS ? MAX_THREADS : threads);
			for (int i = 1; i < team; i++) {
				if (pthread_create(&helpers[i], NULL, helper, (void *) (intptr_t) i) != 0) {
					team = i;
					level = -1;
					break;
				}
				/* named for top -H and perf (otherwise the creating thread's name, e.g. model-loader) */
				char name[16];
				snprintf(name, sizeof name, "griffin-help-%d", i);
				pthread_setname_np(helpers[i], name);
			}
		}
		started = 1;
	}
	pthread_mutex_unlock(&lock);
	return level;
}

/*
 * Nonzero: the helpers join no task from now on, as when the machine keeps them off their
 * cores; the caller then does every share itself. Zero: they join again. For tests.
 */
void griffin_hold_helpers(int hold) {
	__atomic_store_n(&held, hold, __ATOMIC_RELEASE);
}

/*
 * Nonzero: a unit of attention takes its group's query heads together where this CPU has
 * the form (AVX-512; the default there); zero: each head on its own. Both give the same
 * contexts bit for bit. Returns whether the heads are now taken together. For tests.
 */
int griffin_group_heads(int together) {
	grouped_attention = together && level == 3;
	return grouped_attention;
}

/*
 * How products of several activation rows pass over their weights: work_rows' columns per
 * pass and the fewest float16 rows whose weights it widens first (column_block,
 * widen_from), the panel form's columns per pass and per part at most (pass_columns,
 * part_columns); 0 for any: what suits this CPU's tiles. Every setting computes the same
 * product. For tests, and griffin_init.
 */
void griffin_row_passes(int columns, int widen, int pass, int part) {
	int six = tile_ways == 6;
	column_block = (columns > 0) ? columns : (six ? INT_MAX : COLUMN_BLOCK);
	widen_from = (widen > 0) ? widen : (six ? INT_MAX : WIDEN_ROWS);
	pass_columns = (pass > 0) ? pass : (six ? 1024 : PASS_COLUMNS);
	part_columns = (part > 0) ? part : (six ? 12288 : PART_COLUMNS);
}

/* The threads of the team (the caller included). */
int griffin_threads(void) {
	return team;
}

/* y[rows, out] = x[rows, cols] w[out, cols]^T: one row's two-row kernel, several rows' tiles */
static void product(const void *w, int type, const float *x, float *y, int rows, int out, int cols) {
	task t = { .kind = (rows == 1) ? 0 : 2, .type = type, .rows = out, .cols = cols, .tokens = rows,
		.w = (const char *) w, .x = x, .panel = (rows == 1) ? NULL : packed(x, rows, cols), .y = y };
	run(&t);
}

/*
 * A gated feed-forward block of `rows` rows: out[rows, d] = (act(in gate^T) * (in up^T))
 * down^T, with gate_up [2f, d] (gate rows first) and down [d, f] of one type; in, the
 * activations and out in float32. active [rows, f] holds the activations; z [rows, 2f]
 * the gate and up products of several rows (unused for one). keep [rows, f] (null: none)
 * masks each row's activations. With statistic non-null, GRIFFIN's prompt statistic of
 * the rows is added to it ([f], or row owners[r] of it for row r; squares [rows] is
 * scratch for it).
 */
static void block(const void *gate_up, const void *down, int type, const float *in, float *z, float *active,
		float *out, int rows, int d, int f, int activation, const float *keep, float *squares, double *statistic,
		const int *owners) {
	gating g = { .both = z, .active = active, .keep = keep, .squares = (statistic != NULL) ? squares : NULL,
		.statistic = statistic, .owners = owners, .rows = rows, .f = f, .activation = activation };
	if (rows == 1) {
		/* the gate and up rows read together, act(gate) * up as each pair is done */
		task first = { .kind = 1, .type = type, .rows = f, .cols = d, .activation = activation,
			.w = (const char *) gate_up, .x = in, .y = active };
		run(&first);
		if (keep != NULL) {
			for (int i = 0; i < f; i++) {
				active[i] *= keep[i];
			}
		}
		if (statistic != NULL) {
			squares[0] = floored_squares(active, f);
		}
	}
	else {
		product(gate_up, type, in, z, rows, 2 * f, d);
		task gated = { .kind = 4, .rows = rows, .each = gate_rows, .context = &g };
		run(&gated);
	}
	if (statistic != NULL) {
		task gather = { .kind = 4, .rows = f, .each = gather_statistic, .context = &g };
		run(&gather);
	}
	product(down, type, active, out, rows, d, f);
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
			.x = in, .panel = (kind == 2) ? packed(in, tokens, cols) : NULL, .y = out };
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
		block(gate_up, down, type, in, NULL, z, out, 1, d, f, activation, NULL, NULL, NULL, NULL);
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
__attribute__((target("avx2,f16c"))) static void rounded(float *v, size_t n, int io_type) {
	if (io_type == TYPE_FLOAT16) {
		size_t i = 0;
		for (; i + 8 <= n; i += 8) {
			__m128i half = _mm256_cvtps_ph(_mm256_loadu_ps(v + i), _MM_FROUND_TO_NEAREST_INT);
			_mm256_storeu_ps(v + i, _mm256_cvtph_ps(half));
		}
		for (; i < n; i++) {
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

/* n float32 values written to p in io_type (float16: rounded to nearest) */
static void stored(const float *in, int io_type, void *p, size_t n) {
	if (io_type == TYPE_FLOAT16) {
		narrow(in, (uint16_t *) p, n);
	}
	else {
		memcpy(p, in, n * sizeof(float));
	}
}

/*
 * One row's RMS norm in a decoder layer: x / sqrt(mean(x^2) + epsilon) in float32,
 * rounded to io_type, times the weight w (float32), rounded again.
 */
static void norm_row(const float *x, const float *w, float epsilon, int io_type, float *to, int d) {
	double squares = 0.0;
	for (int i = 0; i < d; i++) {
		squares += (double) x[i] * x[i];
	}
	float norm = sqrtf((float) (squares / d) + epsilon);
	for (int i = 0; i < d; i++) {
		to[i] = x[i] / norm;
	}
	rounded(to, (size_t) d, io_type);
	for (int i = 0; i < d; i++) {
		to[i] *= w[i];
	}
	rounded(to, (size_t) d, io_type);
}

/* rows a layer call computes at a time: its scratch stays bounded whatever the prompt */
#define LAYER_ROWS 256

/* what griffin_layer's row functions share: its arguments and scratch, [rows, ...] each */
typedef struct {
	const char *x;
	char *y;
	int io_type, d, heads, kv_heads, dh;
	float epsilon;
	const float *attention_norm, *ffn_norm; /* the norms' weights, widened */
	const float *bias;                      /* [(heads + 2 kv_heads) dh] widened, or null */
	const float *rotation;
	const int64_t *keys, *values, *head_strides;
	int kv_type; /* the caches' elements */
	const int *positions;
	float *h;   /* [rows, d]: the residual stream */
	float *in;  /* [rows, d]: a sublayer's normed input */
	float *qkv; /* [rows, (heads + 2 kv_heads) dh] */
	float *q;   /* [rows, heads, dh]: the rotated queries */
	float *out; /* [rows, d]: a sublayer's output */
} layer;

/* rows [r0, r1): the input widened into the residual stream, and its attention norm */
static void enter_rows(const void *context, int r0, int r1) {
	const layer *l = context;
	size_t element = (l->io_type == TYPE_FLOAT16) ? 2 : 4;
	for (int r = r0; r < r1; r++) {
		float *h = l->h + (size_t) r * l->d;
		loaded(l->x + (size_t) r * l->d * element, l->io_type, h, (size_t) l->d);
		norm_row(h, l->attention_norm, l->epsilon, l->io_type, l->in + (size_t) r * l->d, l->d);
	}
}

/*
 * rows [r0, r1): q, k and v rounded (with the bias added, and rounded again), the queries
 * and keys rotated (each head's row times the row's rotation M in the rotate-half form:
 * out[j] = x[j] M[j][j] + x[o] M[o][j], o = j + dh/2 mod dh), the queries into q, the key
 * and the value into the row's cache at its position (float16 caches: rounded to nearest)
 */
static void turn_rows(const void *context, int r0, int r1) {
	const layer *l = context;
	int dh = l->dh, half = dh / 2, projected = (l->heads + 2 * l->kv_heads) * dh;
	size_t element = (l->kv_type == TYPE_FLOAT16) ? 2 : 4;
	float turned[dh];
	for (int r = r0; r < r1; r++) {
		float *qkv = l->qkv + (size_t) r * projected;
		rounded(qkv, (size_t) projected, l->io_type);
		if (l->bias != NULL) {
			for (int j = 0; j < projected; j++) {
				qkv[j] += l->bias[j];
			}
			rounded(qkv, (size_t) projected, l->io_type);
		}
		const float *turn = l->rotation + (size_t) r * dh * dh;
		char *keys = (char *) (intptr_t) l->keys[r], *values = (char *) (intptr_t) l->values[r];
		size_t token = (size_t) l->positions[r] * dh;
		for (int k = 0; k < l->heads + l->kv_heads; k++) {
			const float *from = qkv + (size_t) k * dh;
			float *to = (k < l->heads) ? l->q + ((size_t) r * l->heads + k) * dh : turned;
			for (int j = 0; j < half; j++) {
				const float *column = turn + j, *other = turn + j + half;
				to[j] = from[j] * column[(size_t) j * dh] + from[j + half] * column[(size_t) (j + half) * dh];
				to[j + half] = from[j + half] * other[(size_t) (j + half) * dh] + from[j] * other[(size_t) j * dh];
			}
			if (k >= l->heads) {
				size_t at = (size_t) (k - l->heads) * (size_t) l->head_strides[r] + token;
				stored(turned, l->kv_type, keys + at * element, (size_t) dh);
			}
		}
		for (int g = 0; g < l->kv_heads; g++) {
			size_t at = (size_t) g * (size_t) l->head_strides[r] + token;
			stored(qkv + (size_t) (l->heads + l->kv_heads + g) * dh, l->kv_type, values + at * element, (size_t) dh);
		}
	}
}

/* row r's sublayer output, rounded, added to its residual stream; returns the stream's row */
static float *added(const layer *l, int r) {
	float *h = l->h + (size_t) r * l->d, *out = l->out + (size_t) r * l->d;
	rounded(out, (size_t) l->d, l->io_type);
	for (int i = 0; i < l->d; i++) {
		h[i] += out[i];
	}
	return h;
}

/* rows [r0, r1): the attention's output added to the residual stream, and its norm */
static void middle_rows(const void *context, int r0, int r1) {
	const layer *l = context;
	for (int r = r0; r < r1; r++) {
		float *h = added(l, r);
		rounded(h, (size_t) l->d, l->io_type);
		norm_row(h, l->ffn_norm, l->epsilon, l->io_type, l->in + (size_t) r * l->d, l->d);
	}
}

/* rows [r0, r1): the block's output added to the residual stream, written to y */
static void leave_rows(const void *context, int r0, int r1) {
	const layer *l = context;
	for (int r = r0; r < r1; r++) {
		float *h = added(l, r);
		size_t element = (l->io_type == TYPE_FLOAT16) ? 2 : 4;
		stored(h, l->io_type, l->y + (size_t) r * l->d * element, (size_t) l->d);
	}
}

/* a function over all the rows, split across the team */
static void each_row(rows_fn each, const layer *l, int rows) {
	task t = { .kind = 4, .rows = rows, .each = each, .context = l };
	run(&t);
}

/* the rows [0, rows) of griffin_layer (at most LAYER_ROWS), its scratch at base */
static void layer_rows(float *base, void *y, const void *x, int io_type, int rows, int d, const float *norms,
		const void *qkv_weight, const float *bias, const void *output_weight, int attention_type, float epsilon,
		const float *rotation, const int64_t *keys, const int64_t *values, const int64_t *head_strides, int kv_type,
		const int *positions, const int *starts, int heads, int kv_heads, int dh, float scale, const void *gate_up,
		const void *down, int ff_type, int f, int activation, const float *keep, double *statistic,
		const int *owners) {
	int projected = (heads + 2 * kv_heads) * dh, width = heads * dh;
	size_t n = (size_t) rows;
	float *h = base, *in = h + n * d, *qkv = in + n * d, *q = qkv + n * projected, *context = q + n * width,
			*out = context + n * width, *z = out + n * d, *active = z + n * 2 * f, *squares = active + n * f,
			*scores = squares + n;
	layer l = { .x = x, .y = y, .io_type = io_type, .d = d, .heads = heads, .kv_heads = kv_heads, .dh = dh,
		.epsilon = epsilon, .attention_norm = norms, .ffn_norm = norms + d, .bias = bias, .rotation = rotation,
		.keys = keys, .values = values, .head_strides = head_strides, .kv_type = kv_type, .positions = positions,
		.h = h, .in = in,
		.qkv = qkv, .q = q, .out = out };

	each_row(enter_rows, &l, rows);
	product(qkv_weight, attention_type, in, qkv, rows, projected, d);
	each_row(turn_rows, &l, rows);
	/* every row's key and value are in the cache now: rows of one sequence see each other */
	int span = 1;
	for (int r = 0; r < rows; r++) {
		span = (positions[r] - starts[r] + 1 > span) ? positions[r] - starts[r] + 1 : span;
	}
	static int blocks[LAYER_ROWS + 1]; /* under the calls lock */
	int block_count = attention_blocks(keys, values, head_strides, positions, rows, dh, blocks);
	int chunks = (block_count > 0) ? 1 : attention_chunks(rows, kv_heads, span);
	float *partial = scores + (size_t) team * ATTEND_SCRATCH(heads / kv_heads, dh);
	attention a = { .q = q, .context = context, .keys = keys, .values = values, .head_strides = head_strides,
		.kv_type = kv_type, .starts = starts, .positions = positions, .heads = heads, .group = heads / kv_heads,
		.dh = dh, .scale = scale, .scratch = scores, .chunks = chunks, .partial = partial, .io_type = io_type,
		.blocks = (block_count > 0) ? blocks : NULL };
	task attend_task = { .kind = 3, .rows = ((block_count > 0) ? block_count : rows * chunks) * kv_heads, .a = &a };
	run(&attend_task);
	if (chunks > 1) {
		merge_chunks(&a, rows);
	}
	product(output_weight, attention_type, context, out, rows, d, width);
	each_row(middle_rows, &l, rows);
	block(gate_up, down, ff_type, in, z, active, out, rows, d, f, activation, keep, squares, statistic, owners);
	each_row(leave_rows, &l, rows);
}

/*
 * Which layer call follows which: the q/k/v weights of the call after one with weights
 * w, learned from the calls as they come (a pass runs its layers in order, pass after
 * pass), so that a layer call can post the next one's weights for the helpers to
 * prefetch (post_ahead) without being told. Keyed by w's address; a collision or a stale
 * entry only names the wrong memory to prefetch. Under the calls lock.
 */
#define SUCCESSORS 256
static struct {
	const void *w, *next;
	size_t bytes;
} successors[SUCCESSORS];
static const void *last_qkv;

static size_t successor_slot(const void *w) {
	uintptr_t h = (uintptr_t) w;
	return (size_t) ((h >> 6) ^ (h >> 14) ^ (h >> 22)) % SUCCESSORS;
}

/* a layer call with q/k/v weights w of `bytes` begins: it is the last call's successor */
static void layer_called(const void *w, size_t bytes) {
	if (last_qkv != NULL) {
		size_t slot = successor_slot(last_qkv);
		successors[slot].w = last_qkv;
		successors[slot].next = w;
		successors[slot].bytes = bytes;
	}
	last_qkv = w;
}

/* the layer call with q/k/v weights w returns: its successor's weights, if known, go to the
 * helpers to prefetch */
static void layer_leaves(const void *w) {
	size_t slot = successor_slot(w);
	if (successors[slot].w == w) {
		post_ahead(successors[slot].next, successors[slot].bytes);
	}
}

/*
 * `rows` tokens through a whole pre-norm decoder layer with a gated feed-forward block,
 * the arithmetic of the engine's step (BatchLayer.step_one): y = h + ff(norm(h)) with
 * h = x + attention(norm(x)), row by row. The rows are one generated token of each of
 * several sequences, or a prompt chunk's tokens of one sequence (the same cache, positions
 * in order): each row's key and value are written before any row attends, so a row sees
 * the rows before it. x and y [rows, d], the norm weights and the q/k/v bias (null: none)
 * in io_type; each product's result, the context and every residual sum rounded to
 * io_type. The attention's weights (q/k/v stacked [(H + 2 KVH) dh, d], output
 * [d, H dh]) are of attention_type, the block's (gate_up [2f, d], down [d, f]) of
 * ff_type; every row reads the same weights, each once for all the rows (for every
 * LAYER_ROWS of them). rotation [rows, dh, dh] rotates each row's queries and keys (row
 * times matrix), in the rotate-half form (RotaryEmbedding): only its diagonal and the
 * entries [j + dh/2 mod dh][j] are read. Row r's cache, of kv_type (TYPE_FLOAT32, or
 * TYPE_FLOAT16: written rounded to nearest, widened as it is read, the arithmetic in
 * float32 either way), is at the addresses keys[r] and values[r] (head g's token t at
 * element g * head_strides[r] + t * dh); its rotated key and
 * its value are written at token positions[r], and its heads attend over tokens
 * [starts[r], positions[r]], their scores times scale. keep [rows, f] (null: every row
 * dense) masks each row's activations to the neurons it reads (1 or 0): GRIFFIN's experts
 * read out of the dense block. statistic [f] (null: none) accumulates GRIFFIN's prompt
 * statistic of the rows' activations (see gather_statistic); with owners [rows] non-null,
 * statistic is [sequences, f] and row r's activations go to its row owners[r] (the
 * prompt rows of several sequences in one call), or nowhere when owners[r] is negative
 * (the rows of a batched decode step that record nothing). Returns 0, or -1 when
 * scratch memory could not be allocated (nothing computed or written).
 */
int griffin_layer(void *y, const void *x, int io_type, int rows, int d, const void *attention_norm,
		const void *ffn_norm, float epsilon, const void *qkv_weight, const void *qkv_bias, const void *output_weight,
		int attention_type, const float *rotation, const int64_t *keys, const int64_t *values,
		const int64_t *head_strides, int kv_type, const int *positions, const int *starts, int heads, int kv_heads, int dh,
		float scale, const void *gate_up, const void *down, int ff_type, int f, int activation, const float *keep,
		double *statistic, const int *owners) {
	static float *scratch;
	static size_t capacity;
	int projected = (heads + 2 * kv_heads) * dh, width = heads * dh;
	size_t n = (size_t) ((rows < LAYER_ROWS) ? rows : LAYER_ROWS), wide = (size_t) (f > 0 ? f : 1);
	/* the attention's scratch for the larger of the passes (the last may be shorter) */
	size_t attending = attention_floats((int) n, heads, kv_heads, dh);
	if (rows % LAYER_ROWS != 0 && rows > LAYER_ROWS) {
		size_t last = attention_floats(rows % LAYER_ROWS, heads, kv_heads, dh);
		attending = (last > attending) ? last : attending;
	}
	/* the rows' scratch (see layer_rows), then the norms' weights and the bias widened */
	size_t per_rows = n * d * 3 + n * projected + n * width * 2 + n * 3 * wide + n + attending;
	size_t total = per_rows + 2 * (size_t) d + (size_t) projected;
	size_t element = (io_type == TYPE_FLOAT16) ? 2 : 4;
	pthread_mutex_lock(&calls);
	float *base = grown(&scratch, &capacity, total);
	if (base == NULL) {
		pthread_mutex_unlock(&calls);
		return -1;
	}
	layer_called(qkv_weight, (size_t) projected * (size_t) d * ((attention_type == TYPE_FLOAT16) ? 2 : 4));
	float *norms = base + per_rows, *bias = norms + 2 * d;
	loaded(attention_norm, io_type, norms, (size_t) d);
	loaded(ffn_norm, io_type, norms + d, (size_t) d);
	if (qkv_bias != NULL) {
		loaded(qkv_bias, io_type, bias, (size_t) projected);
	}
	for (int r0 = 0; r0 < rows; r0 += LAYER_ROWS) {
		int count = (rows - r0 < LAYER_ROWS) ? rows - r0 : LAYER_ROWS;
		size_t at = (size_t) r0;
		layer_rows(base, (char *) y + at * d * element, (const char *) x + at * d * element, io_type, count, d,
				norms, qkv_weight, (qkv_bias == NULL) ? NULL : bias, output_weight, attention_type, epsilon,
				rotation + at * dh * dh, keys + at, values + at, head_strides + at, kv_type, positions + at, starts + at,
				heads, kv_heads, dh, scale, gate_up, down, ff_type, f, activation,
				(keep == NULL) ? NULL : keep + at * f, statistic, (owners == NULL) ? NULL : owners + at);
	}
	layer_leaves(qkv_weight);
	pthread_mutex_unlock(&calls);
	return 0;
}

/*
 * The RMS norm of each row of x [rows, d] (io_type) into y [rows, d] (io_type; y may be
 * x), with the weight [d] in io_type: a layer's norm arithmetic (norm_row), for the norm
 * before a model's head. Returns 0, or -1 when scratch memory could not be allocated.
 */
int griffin_norm(void *y, const void *x, int io_type, int rows, int d, const void *weight, float epsilon) {
	static float *scratch;
	static size_t capacity;
	size_t element = (io_type == TYPE_FLOAT16) ? 2 : 4;
	pthread_mutex_lock(&calls);
	float *w = grown(&scratch, &capacity, 3 * (size_t) d);
	if (w == NULL) {
		pthread_mutex_unlock(&calls);
		return -1;
	}
	float *row = w + d, *to = row + d;
	loaded(weight, io_type, w, (size_t) d);
	for (int r = 0; r < rows; r++) {
		size_t at = (size_t) r * d;
		loaded((const char *) x + at * element, io_type, row, (size_t) d);
		norm_row(row, w, epsilon, io_type, to, d);
		stored(to, io_type, (char *) y + at * element, (size_t) d);
	}
	pthread_mutex_unlock(&calls);
	return 0;
}

/* what griffin_gather's row functions read and write */
typedef struct {
	const char *gate_up, *down;
	char *gate_up_out, *down_out;
	const int *neurons;
	int k, f, d;
	size_t element;
} gathering;

/* rows [r0, r1) of the gathered gate and up rows: gate rows [0, k), then up rows [k, 2k) */
static void gather_gate_up(const void *context, int r0, int r1) {
	const gathering *g = context;
	size_t row = (size_t) g->d * g->element;
	for (int r = r0; r < r1; r++) {
		size_t from = (size_t) g->neurons[r % g->k] + ((r >= g->k) ? (size_t) g->f : 0);
		memcpy(g->gate_up_out + (size_t) r * row, g->gate_up + from * row, row);
	}
}

/* rows [r0, r1) of the gathered down columns */
static void gather_down(const void *context, int r0, int r1) {
	const gathering *g = context;
	for (int r = r0; r < r1; r++) {
		if (g->element == 2) {
			const uint16_t *in = (const uint16_t *) g->down + (size_t) r * g->f;
			uint16_t *out = (uint16_t *) g->down_out + (size_t) r * g->k;
			for (int j = 0; j < g->k; j++) {
				out[j] = in[g->neurons[j]];
			}
		}
		else {
			const float *in = (const float *) g->down + (size_t) r * g->f;
			float *out = (float *) g->down_out + (size_t) r * g->k;
			for (int j = 0; j < g->k; j++) {
				out[j] = in[g->neurons[j]];
			}
		}
	}
}

/*
 * GRIFFIN's experts of a gated block, copied by the team: gate_up_out [2k, d] = the gate
 * rows neurons[j] then the up rows f + neurons[j] of gate_up [2f, d], and down_out [d, k]
 * = the columns neurons[j] of down [d, f]; every array of one type (float32 or float16),
 * each neuron in [0, f). Returns 0.
 */
int griffin_gather(const void *gate_up, const void *down, int type, const int *neurons, int k, int f, int d,
		void *gate_up_out, void *down_out) {
	gathering g = { .gate_up = gate_up, .down = down, .gate_up_out = gate_up_out, .down_out = down_out,
		.neurons = neurons, .k = k, .f = f, .d = d, .element = (type == TYPE_FLOAT16) ? 2 : 4 };
	pthread_mutex_lock(&calls);
	task rows = { .kind = 4, .rows = 2 * k, .each = gather_gate_up, .context = &g };
	run(&rows);
	task columns = { .kind = 4, .rows = d, .each = gather_down, .context = &g };
	run(&columns);
	pthread_mutex_unlock(&calls);
	return 0;
}

/* ---------------------------------------------------------------------------------- */
/* sampling's exponentials                                                             */

/*
 * exp(x) for x <= 0 in float, 16 values at a time, by the same operations on every
 * instruction set, so that the same logits give the same draw on either: x = n ln 2 + r
 * with n = round(x log2 e) and ln 2 in two parts, exp(r) by a degree-7 polynomial (the
 * coefficients of Cephes' expf, within about one ulp), and 2^n written into the exponent
 * bits. x below the caller's lowest value (so -infinity too) gives 0, and that is at least
 * EXP_FLOOR, where exp is about 1.6e-38, near float's smallest normal value. Each block's
 * values are added in double into 16 lane sums, the same lanes on every instruction set.
 * No multiplication here feeds an addition that the compiler could fuse differently.
 */
#define EXP_FLOOR (-87.0f)
#define EXP_LOG2E 1.44269504088896341f
#define EXP_LN2_HI 0.693359375f
#define EXP_LN2_LO (-2.12194440e-4f)
#define EXP_C5 1.9875691500e-4f
#define EXP_C4 1.3981999507e-3f
#define EXP_C3 8.3334519073e-3f
#define EXP_C2 4.1665795894e-2f
#define EXP_C1 1.6666665459e-1f
#define EXP_C0 5.0000001201e-1f

/* exp(x) for x in [EXP_FLOOR, 0] on W-bit vectors (256 or 512), by the steps named above */
#define DEFINE_EXP(NAME, TARGET, VEC, W, ROUND)                                                               \
	__attribute__((target(TARGET))) static inline VEC NAME(VEC x) {                                           \
		VEC n = ROUND(_mm##W##_mul_ps(x, _mm##W##_set1_ps(EXP_LOG2E)));                                       \
		VEC r = _mm##W##_fnmadd_ps(n, _mm##W##_set1_ps(EXP_LN2_HI), x);                                       \
		r = _mm##W##_fnmadd_ps(n, _mm##W##_set1_ps(EXP_LN2_LO), r);                                           \
		VEC p = _mm##W##_fmadd_ps(_mm##W##_set1_ps(EXP_C5), r, _mm##W##_set1_ps(EXP_C4));                     \
		p = _mm##W##_fmadd_ps(p, r, _mm##W##_set1_ps(EXP_C3));                                                \
		p = _mm##W##_fmadd_ps(p, r, _mm##W##_set1_ps(EXP_C2));                                                \
		p = _mm##W##_fmadd_ps(p, r, _mm##W##_set1_ps(EXP_C1));                                                \
		p = _mm##W##_fmadd_ps(p, r, _mm##W##_set1_ps(EXP_C0));                                                \
		VEC y = _mm##W##_add_ps(_mm##W##_fmadd_ps(p, _mm##W##_mul_ps(r, r), r), _mm##W##_set1_ps(1.0f));      \
		VEC two = _mm##W##_castsi##W##_ps(                                                                    \
				_mm##W##_slli_epi32(_mm##W##_add_epi32(_mm##W##_cvtps_epi32(n), _mm##W##_set1_epi32(127)), 23)); \
		return _mm##W##_mul_ps(y, two);                                                                       \
	}

#define ROUND_512(v) _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define ROUND_256(v) _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
DEFINE_EXP(exp_avx512, "avx512f", __m512, 512, ROUND_512)
DEFINE_EXP(exp_avx2, "avx2,fma", __m256, 256, ROUND_256)

__attribute__((target("avx512f"))) static void exp16_avx512(const float *logits, float *out, float max, float scale,
		float lowest, __m512d *low, __m512d *high) {
	__m512 x = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(logits), _mm512_set1_ps(max)), _mm512_set1_ps(scale));
	__mmask16 kept = _mm512_cmp_ps_mask(x, _mm512_set1_ps(lowest), _CMP_GE_OQ);
	__m512 y = _mm512_maskz_mov_ps(kept, exp_avx512(_mm512_max_ps(x, _mm512_set1_ps(lowest))));
	_mm512_storeu_ps(out, y);
	*low = _mm512_add_pd(*low, _mm512_cvtps_pd(_mm512_castps512_ps256(y)));
	*high = _mm512_add_pd(*high, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(y), 1))));
}

/* eight of a block's values (lanes 0-7 or 8-15), as exp16_avx512 computes them */
__attribute__((target("avx2,fma"))) static __m256 exp8_avx2(const float *logits, float max, float scale, float lowest) {
	__m256 x = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(logits), _mm256_set1_ps(max)), _mm256_set1_ps(scale));
	__m256 kept = _mm256_cmp_ps(x, _mm256_set1_ps(lowest), _CMP_GE_OQ);
	return _mm256_and_ps(kept, exp_avx2(_mm256_max_ps(x, _mm256_set1_ps(lowest))));
}

__attribute__((target("avx2,fma"))) static void exp16_avx2(const float *logits, float *out, float max, float scale,
		float lowest, __m256d sums[4]) {
	for (int half = 0; half < 2; half++) {
		__m256 y = exp8_avx2(logits + 8 * half, max, scale, lowest);
		_mm256_storeu_ps(out + 8 * half, y);
		sums[2 * half] = _mm256_add_pd(sums[2 * half], _mm256_cvtps_pd(_mm256_castps256_ps128(y)));
		sums[2 * half + 1] = _mm256_add_pd(sums[2 * half + 1], _mm256_cvtps_pd(_mm256_extractf128_ps(y, 1)));
	}
}

/* the last n % 16 values, through a block padded with -infinity (whose values are 0) */
#define EXP_TAIL(BLOCK, ...)                                                                        \
	do {                                                                                            \
		int rest = n % 16;                                                                          \
		if (rest > 0) {                                                                             \
			float in[16], y[16];                                                                    \
			for (int i = 0; i < 16; i++) {                                                          \
				in[i] = (i < rest) ? logits[n - rest + i] : -INFINITY;                              \
			}                                                                                       \
			BLOCK(in, y, max, scale, lowest, __VA_ARGS__);                                          \
			memcpy(out + n - rest, y, (size_t) rest * sizeof(float));                               \
		}                                                                                           \
	} while (0)

__attribute__((target("avx512f"))) static double exponentials_avx512(const float *logits, float *out, int n, float max,
		float scale, float lowest) {
	__m512d low = _mm512_setzero_pd(), high = _mm512_setzero_pd();
	for (int i = 0; i + 16 <= n; i += 16) {
		exp16_avx512(logits + i, out + i, max, scale, lowest, &low, &high);
	}
	EXP_TAIL(exp16_avx512, &low, &high);
	double lanes[16];
	_mm512_storeu_pd(lanes, low);
	_mm512_storeu_pd(lanes + 8, high);
	double sum = 0;
	for (int i = 0; i < 16; i++) {
		sum += lanes[i];
	}
	return sum;
}

__attribute__((target("avx2,fma"))) static double exponentials_avx2(const float *logits, float *out, int n, float max,
		float scale, float lowest) {
	__m256d sums[4] = { _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd() };
	for (int i = 0; i + 16 <= n; i += 16) {
		exp16_avx2(logits + i, out + i, max, scale, lowest, sums);
	}
	EXP_TAIL(exp16_avx2, sums);
	double lanes[16];
	for (int q = 0; q < 4; q++) {
		_mm256_storeu_pd(lanes + 4 * q, sums[q]);
	}
	double sum = 0;
	for (int i = 0; i < 16; i++) {
		sum += lanes[i];
	}
	return sum;
}

/*
 * A draw's weights: out[i] = exp((logits[i] - max) * scale) for n logits, none above max
 * and none NaN, scale > 0 (one over the temperature), and 0 where (logits[i] - max) * scale
 * is below lowest (or EXP_FLOOR); returns their sum. isa 0 takes the
 * CPU's instruction set, 2 AVX2 and 3 AVX-512 (for tests); -1 when the CPU lacks it. Both
 * give the same values and the same sum. Needs no griffin_init: the calling thread alone.
 */
double griffin_exponentials(const float *logits, float *out, int n, float max, float scale, float lowest, int isa) {
	int use = (isa != 0) ? isa : __builtin_cpu_supports("avx512f") ? 3 : 2;
	lowest = (lowest > EXP_FLOOR) ? lowest : EXP_FLOOR;
	if (use == 3 && __builtin_cpu_supports("avx512f")) {
		return exponentials_avx512(logits, out, n, max, scale, lowest);
	}
	if (use == 2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
		return exponentials_avx2(logits, out, n, max, scale, lowest);
	}
	return -1;
}
