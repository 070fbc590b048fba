/*
 * A whole batched decode step through the project's own native layer call
 * (src/main/native/griffin_kernels.c, compiled into this program): SmolLM2-135M's 30 layers
 * (griffin_layer: norms, q/k/v, rotation, attention over each row's own cache, output,
 * gated block, residuals), then its head's product, for one activation row and for
 * several, the two alternating step by step in one process, which the machine's drift
 * between processes does not blur. Every row is a sequence of its own with the given
 * number of cached tokens; 64 MB are read between steps so that no step starts from warm
 * caches. What a lone step and a batched one cost beside each other, without Java. With
 * a fourth argument, caches, the two forms are instead the given rows over float32 caches
 * and over float16 ones.
 *
 *   cc -O3 -std=gnu11 -pthread -o /tmp/layer tools/reference/bench_native_layer.c -lm
 *   /tmp/layer 96 4 float32      # cached tokens, rows, weights: one row against four
 *   /tmp/layer 576 16 float16
 *   /tmp/layer 576 1 float16 caches    # one row over float32 caches against float16 ones
 *
 * Prints each form's mean time of the layers and of the head (after 10 unmeasured steps,
 * 100 steps each).
 */
#ifndef KERNELS
#define KERNELS "../../src/main/native/griffin_kernels.c"
#endif
#include KERNELS
#include <stdio.h>

/* what the reads between steps summed, kept so that they are not left out */
volatile long kept;

#define LAYERS 30
#define MAX_ROWS 16

/* n weights of the type, small values that float16 holds */
static void *weights(size_t n, int type) {
	size_t size = (type == TYPE_FLOAT16) ? 2 : 4;
	void *p = aligned_alloc(64, (n * size + 63) / 64 * 64);
	for (size_t j = 0; j < n; j++) {
		if (type == TYPE_FLOAT16) {
			((uint16_t *) p)[j] = (uint16_t) (0x2000 + j % 512); /* about 0.008 and up */
		}
		else {
			((float *) p)[j] = 0.008f + 0.00001f * (float) (j % 512);
		}
	}
	return p;
}

static float *floats(size_t n, float value) {
	float *p = aligned_alloc(64, (n * 4 + 63) / 64 * 64);
	for (size_t i = 0; i < n; i++) {
		p[i] = value + 0.001f * (float) (i % 97);
	}
	return p;
}

int main(int argc, char **argv) {
	if (argc != 4 && !(argc == 5 && strcmp(argv[4], "caches") == 0)) {
		fprintf(stderr, "usage: %s cached-tokens rows float16|float32 [caches]\n", argv[0]);
		return 2;
	}
	int caches = (argc == 5);
	int d = 576, heads = 9, kv_heads = 3, dh = 64, f = 1536, vocab = 49152;
	int tokens = atoi(argv[1]), many = atoi(argv[2]), type = (strcmp(argv[3], "float16") == 0) ? TYPE_FLOAT16 : TYPE_FLOAT32;
	if (tokens < 1 || tokens > 4096 || many < 1 || many > MAX_ROWS || griffin_init(2) < 2) {
		fprintf(stderr, "need 1 <= cached-tokens <= 4096 and 1 <= rows <= %d, on a CPU with AVX2, FMA and F16C\n",
				MAX_ROWS);
		return 2;
	}
	int projected = (heads + 2 * kv_heads) * dh, capacity = tokens + 1;
	void *qkv[LAYERS], *output[LAYERS], *gate_up[LAYERS], *down[LAYERS];
	void *keys[2][LAYERS][MAX_ROWS], *values[2][LAYERS][MAX_ROWS]; /* float32 caches, float16 ones */
	for (int l = 0; l < LAYERS; l++) {
		qkv[l] = weights((size_t) projected * d, type);
		output[l] = weights((size_t) d * d, type);
		gate_up[l] = weights((size_t) 2 * f * d, type);
		down[l] = weights((size_t) d * f, type);
		for (int r = 0; r < many; r++) {
			keys[0][l][r] = floats((size_t) kv_heads * capacity * dh, 0.1f);
			values[0][l][r] = floats((size_t) kv_heads * capacity * dh, 0.1f);
			keys[1][l][r] = caches ? weights((size_t) kv_heads * capacity * dh, TYPE_FLOAT16) : NULL;
			values[1][l][r] = caches ? weights((size_t) kv_heads * capacity * dh, TYPE_FLOAT16) : NULL;
		}
	}
	void *head = weights((size_t) vocab * d, type);
	float *norms = floats((size_t) d, 1.0f), *logits = malloc(sizeof(float) * (size_t) MAX_ROWS * vocab);
	/* each row's rotation: the identity */
	float *rotation = calloc((size_t) MAX_ROWS * dh * dh, sizeof(float));
	for (int r = 0; r < MAX_ROWS; r++) {
		for (int j = 0; j < dh; j++) {
			rotation[((size_t) r * dh + j) * dh + j] = 1.0f;
		}
	}
	float *x = floats((size_t) MAX_ROWS * d, 0.5f), *y = floats((size_t) MAX_ROWS * d, 0.5f);
	int64_t key_at[MAX_ROWS], value_at[MAX_ROWS], strides[MAX_ROWS];
	int positions[MAX_ROWS], starts[MAX_ROWS];
	size_t flush_bytes = (size_t) 64 << 20;
	volatile char *flush = malloc(flush_bytes);
	memset((char *) flush, 1, flush_bytes);
	double layers_s[2] = { 0, 0 }, head_s[2] = { 0, 0 };
	int steps = 200, warm = 10;
	long touched = 0;
	for (int s = 0; s < warm + steps; s++) {
		for (size_t i = 0; i < flush_bytes; i += 64) {
			touched += flush[i];
		}
		int form = s % 2, rows = (form == 0 && !caches) ? 1 : many, kv = (caches && form == 1) ? 1 : 0;
		double start = seconds();
		for (int l = 0; l < LAYERS; l++) {
			for (int r = 0; r < rows; r++) {
				key_at[r] = (int64_t) (intptr_t) keys[kv][l][r];
				value_at[r] = (int64_t) (intptr_t) values[kv][l][r];
				strides[r] = (int64_t) capacity * dh;
				positions[r] = tokens;
				starts[r] = 0;
			}
			if (griffin_layer(y, x, TYPE_FLOAT32, rows, d, norms, norms, 1e-5f, qkv[l], NULL, output[l], type,
					rotation, key_at, value_at, strides, kv ? TYPE_FLOAT16 : TYPE_FLOAT32, positions, starts, heads,
					kv_heads, dh, 0.125f, gate_up[l], down[l], type, f, ACT_SILU, NULL, NULL, NULL) != 0) {
				fprintf(stderr, "griffin_layer failed\n");
				return 1;
			}
			/* the next layer's input: fresh values, so that nothing grows from layer to layer */
			for (int i = 0; i < rows * d; i++) {
				x[i] = 0.5f + 0.001f * (float) (i % 97);
			}
		}
		double middle = seconds();
		/* the head as the engine takes it: a lone row's product in row pairs, several rows' in tiles */
		if (rows == 1) {
			griffin_gemv(head, type, y, logits, TYPE_FLOAT32, vocab, d);
		}
		else {
			griffin_rows(head, type, y, logits, TYPE_FLOAT32, rows, vocab, d);
		}
		double end = seconds();
		kept = touched;
		if (s >= warm) {
			layers_s[form] += middle - start;
			head_s[form] += end - middle;
		}
	}
	printf("SmolLM2's %d layers and head, %s weights, %d cached tokens a row, 2 threads\n", LAYERS, argv[3], tokens);
	for (int form = 0; form < 2; form++) {
		printf("  %2d rows%s: layers %.3f ms, head %.3f ms a step\n", (form == 0 && !caches) ? 1 : many,
				!caches ? "" : (form == 0) ? ", float32 caches" : ", float16 caches", layers_s[form] / (steps / 2) * 1e3,
				head_s[form] / (steps / 2) * 1e3);
	}
	return 0;
}
