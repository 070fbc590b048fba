/*
 * Lockstep against whole runs, on the products alone: SmolLM2-135M's float16 decode step
 * without attention, norms or Java (every layer's q/k/v and output products and its gated
 * block, then the head), dense and at GRIFFIN's density 0.5 (half the neurons), through the
 * project's own native team (src/main/native/griffin_kernels.c, compiled into this
 * program). The two configurations share the q/k/v, output and head weights, as the engine's
 * dense model and its GRIFFIN variants do. Each round times them twice:
 *   - in lockstep: a step of one, then a step of the other (bench --lockstep);
 *   - alone: 100 steps of one, then 100 of the other, the order turning each round, as a
 *     whole generation of one configuration runs.
 * No cache is flushed between steps, so what one step leaves in the caches the next may read.
 *
 *   cc -O3 -std=gnu11 -pthread -o /tmp/lockstep tools/reference/bench_native_lockstep.c -lm
 *   /tmp/lockstep           # six rounds: each form's mean step, and the dense / GRIFFIN ratio
 */
#ifndef KERNELS
#define KERNELS "../../src/main/native/griffin_kernels.c"
#endif
#include KERNELS
#include <stdio.h>

#define LAYERS 30
#define D 576
#define F 1536
#define QKV 960
#define VOCAB 49152
#define STEPS 100

static void *qkv[LAYERS], *output[LAYERS], *gate_up[2][LAYERS], *down[2][LAYERS], *head;
static float x[D], y[VOCAB], projected[QKV];

/* n float16 weights, small values */
static void *weights(size_t n) {
	uint16_t *p = aligned_alloc(64, (n * 2 + 63) / 64 * 64);
	for (size_t j = 0; j < n; j++) {
		p[j] = (uint16_t) (0x2000 + j % 512);
	}
	return p;
}

/* one step's products: half = 0 dense, 1 half the neurons */
static void step(int half) {
	int f = F >> half;
	for (int l = 0; l < LAYERS; l++) {
		griffin_gemv(qkv[l], TYPE_FLOAT16, x, projected, TYPE_FLOAT32, QKV, D);
		griffin_gemv(output[l], TYPE_FLOAT16, x, y, TYPE_FLOAT32, D, D);
		griffin_gated(gate_up[half][l], down[half][l], TYPE_FLOAT16, x, y, TYPE_FLOAT32, D, f, ACT_SILU);
	}
	griffin_gemv(head, TYPE_FLOAT16, x, y, TYPE_FLOAT32, VOCAB, D);
}

int main(void) {
	if (griffin_init(2) < 2) {
		fprintf(stderr, "needs a CPU with AVX2, FMA and F16C\n");
		return 2;
	}
	for (int l = 0; l < LAYERS; l++) {
		qkv[l] = weights((size_t) QKV * D);
		output[l] = weights((size_t) D * D);
		for (int half = 0; half < 2; half++) {
			gate_up[half][l] = weights((size_t) 2 * (F >> half) * D);
			down[half][l] = weights((size_t) D * (F >> half));
		}
	}
	head = weights((size_t) VOCAB * D);
	for (int i = 0; i < D; i++) {
		x[i] = 0.01f * (float) (i % 7);
	}
	printf("SmolLM2's products, float16, 2 threads: mean ms a step, and dense / half the neurons\n");
	for (int round = 0; round < 6; round++) {
		double together[2] = { 0, 0 }, alone[2] = { 0, 0 };
		for (int s = 0; s < 2 * STEPS + 4; s++) {
			double start = seconds();
			step(s % 2);
			if (s >= 4) {
				together[s % 2] += seconds() - start;
			}
		}
		for (int i = 0; i < 2; i++) {
			int half = (round % 2 == 0) ? i : 1 - i;
			for (int s = 0; s < STEPS + 2; s++) {
				double start = seconds();
				step(half);
				if (s >= 2) {
					alone[half] += seconds() - start;
				}
			}
		}
		printf("  lockstep: dense %.3f, half %.3f, %.3fx | alone: dense %.3f, half %.3f, %.3fx\n",
				together[0] / STEPS * 1e3, together[1] / STEPS * 1e3, together[0] / together[1],
				alone[0] / STEPS * 1e3, alone[1] / STEPS * 1e3, alone[0] / alone[1]);
	}
	return 0;
}
