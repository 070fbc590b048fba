/*
 * The products of one decode step through the project's own native team
 * (src/main/native/griffin_kernels.c, compiled into this program): every layer's q/k/v and
 * output products of one activation row, and its gated block (the gate and up rows in
 * pairs with their activation, then down), or of several rows (a batched step: each
 * product in the tiles of several rows, the block's activation left out), each matrix
 * allocated on its own as the engine's weights are, with 64 MB read between steps so that no
 * step starts from warm caches. No attention, norms, head or Java: what is left of a step
 * when those are taken away, so that two versions of the kernels can be compared on it alone.
 *
 *   cc -O3 -std=gnu11 -pthread -o /tmp/step tools/reference/bench_native_step.c -lm
 *   /tmp/step 576 1536 960 30 2 float16         # SmolLM2-135M dense: hidden, neurons, q+k+v rows, layers, threads
 *   /tmp/step 576 768 960 30 2 float16          # the same at GRIFFIN's density 0.5 (half the neurons)
 *
 * Another version of the kernels: -DKERNELS='"/path/to/griffin_kernels.c"'. Prints the mean
 * and the fastest of 200 steps (after 10 unmeasured ones), as ms and GB/s of weights. With a
 * seventh argument, float16 rows' prefetch distance in bytes (0: none), the steps alternate
 * between the kernels' own distance and that one, and each is printed: a comparison in one
 * process, which the machine's drift between processes does not blur. An eighth argument
 * is the activation rows of a step (default 1).
 *
 *   /tmp/step 576 1536 960 30 2 float16 0       # with and without the prefetch
 *   /tmp/step 576 1536 960 30 2 float16 0 4     # the same for a step of four sequences
 *
 * With "tile=N" in place of the distance, the steps alternate between the six-row tiles'
 * own prefetch distance (tile_ahead, AVX-512) and N bytes, float32 and float16 alike:
 *
 *   /tmp/step 576 1536 960 30 2 float32 tile=0 4   # four rows' tiles with and without it
 *
 * With "next" in place of the distance, the steps alternate between helpers that prefetch
 * the next layer's q/k/v weights while the caller is alone and helpers that do not; a ninth
 * argument leaves the caller alone that many microseconds after each layer, as the engine's
 * Java between two layer calls does:
 *
 *   /tmp/step 576 768 960 30 2 float16 next 1 20
 */
#ifndef KERNELS
#define KERNELS "../../src/main/native/griffin_kernels.c"
#endif
#include KERNELS
#include <stdio.h>

/* what the reads between steps summed, kept so that they are not left out */
volatile long kept;

int main(int argc, char **argv) {
	if (argc < 7 || argc > 10) {
		fprintf(stderr, "usage: %s hidden neurons qkv-rows layers threads float16|float32 [ahead|tile=N|next [rows [gap]]]\n",
				argv[0]);
		return 2;
	}
	int d = atoi(argv[1]), f = atoi(argv[2]), qkv = atoi(argv[3]), layers = atoi(argv[4]);
	int threads = atoi(argv[5]), type = (strcmp(argv[6], "float16") == 0) ? TYPE_FLOAT16 : TYPE_FLOAT32;
	size_t size = (type == TYPE_FLOAT16) ? 2 : 4;
	int tokens = (argc >= 9) ? atoi(argv[8]) : 1;
	if (d <= 0 || f <= 0 || qkv <= 0 || layers <= 0 || tokens <= 0 || griffin_init(threads) < 2) {
		fprintf(stderr, "bad shape, or this CPU lacks AVX2 with FMA and F16C\n");
		return 2;
	}
	/* per layer: q/k/v [qkv, d], output [d, d], gate and up [2f, d], down [d, f] */
	size_t rows[4] = { (size_t) qkv, (size_t) d, 2 * (size_t) f, (size_t) d };
	size_t cols[4] = { (size_t) d, (size_t) d, (size_t) d, (size_t) f };
	char **weights = malloc(sizeof(char *) * 4 * (size_t) layers);
	size_t total = 0;
	for (int i = 0; i < 4 * layers; i++) {
		size_t bytes = rows[i % 4] * cols[i % 4] * size;
		weights[i] = aligned_alloc(64, (bytes + 63) / 64 * 64);
		for (size_t j = 0; j < bytes / size; j++) {
			if (type == TYPE_FLOAT16) {
				((uint16_t *) weights[i])[j] = (uint16_t) (0x2c00 + j % 512); /* 0.0625 and up */
			}
			else {
				((float *) weights[i])[j] = 0.0625f + 0.0001f * (float) (j % 512);
			}
		}
		total += bytes;
	}
	size_t flush_bytes = (size_t) 64 << 20;
	volatile char *flush = malloc(flush_bytes);
	memset((char *) flush, 1, flush_bytes);
	size_t width = (size_t) tokens * (size_t) (d + 2 * f + qkv);
	float *x = malloc(sizeof(float) * width), *y = malloc(sizeof(float) * width);
	for (size_t i = 0; i < width; i++) {
		x[i] = 0.001f * (float) (i % 97);
	}
	/* "next": the forms differ in whether helpers prefetch the next layer's q/k/v weights */
	int next = argc >= 8 && strcmp(argv[7], "next") == 0;
	/* "tile=N": the forms differ in the six-row tiles' prefetch distance */
	int tiles = argc >= 8 && strncmp(argv[7], "tile=", 5) == 0;
	int gap_us = (argc == 10) ? atoi(argv[9]) : 0;
	int forms = (argc >= 8) ? 2 : 1, aheads[2] = { f16_ahead, (argc >= 8 && !next) ? atoi(argv[7]) : f16_ahead };
	int tile_aheads[2] = { tile_ahead, tiles ? atoi(argv[7] + 5) : tile_ahead };
	if (tiles) {
		aheads[1] = f16_ahead;
	}
	size_t qkv_bytes = (size_t) qkv * (size_t) d * size;
	double sum[2] = { 0, 0 }, best[2] = { INFINITY, INFINITY };
	int steps = 200 * forms, warm = 10;
	long touched = 0;
	for (int s = 0; s < warm + steps; s++) {
		for (size_t i = 0; i < flush_bytes; i += 64) {
			touched += flush[i];
		}
		int form = s % forms;
		f16_ahead = aheads[form];
		tile_ahead = tile_aheads[form];
		ahead_enabled = next ? form == 0 : 1;
		double start = seconds();
		for (int l = 0; l < layers; l++) {
			char **w = weights + 4 * l;
			product(w[0], type, x, y, tokens, qkv, d);
			product(w[1], type, x, y, tokens, d, d);
			if (tokens == 1) {
				task first = { .kind = 1, .type = type, .rows = f, .cols = d, .activation = ACT_SILU, .w = w[2],
					.x = x, .y = y };
				run(&first);
			}
			else {
				product(w[2], type, x, y, tokens, 2 * f, d);
			}
			product(w[3], type, y, x, tokens, d, f);
			if (gap_us > 0) {
				/* the caller alone, as in the engine's Java between two layer calls */
				if (l + 1 < layers) {
					post_ahead(weights[4 * (l + 1)], qkv_bytes);
				}
				double until = seconds() + gap_us * 1e-6;
				while (seconds() < until) {
				}
			}
		}
		double ms = (seconds() - start) * 1e3;
		kept = touched;
		if (s >= warm) {
			sum[form] += ms;
			best[form] = (ms < best[form]) ? ms : best[form];
		}
	}
	printf("%d layers, hidden %d, %d neurons, %s, %d threads, %d rows: %.1f MB of weights a step\n", layers, d, f,
			argv[6], threads, tokens, total / 1e6);
	for (int form = 0; form < forms; form++) {
		double mean = sum[form] / (steps / forms);
		if (next) {
			printf("  %s:", (form == 0) ? "helpers prefetching the next layer" : "no prefetch of the next layer");
		}
		else if (tiles) {
			printf("  six-row tiles prefetching %d bytes ahead:", tile_aheads[form]);
		}
		else if (type == TYPE_FLOAT16 || forms == 2) {
			printf("  float16 rows prefetching %d bytes ahead:", aheads[form]);
		}
		else {
			printf(" ");
		}
		printf(" mean %.3f ms (%.1f GB/s), fastest %.3f ms (%.1f GB/s)\n", mean, total / mean / 1e6, best[form],
				total / best[form] / 1e6);
	}
	return 0;
}
