/*
 * The attention of one decode step or of one prompt chunk through the project's own native
 * team (src/main/native/griffin_kernels.c, compiled into this program), alone: every layer's
 * rows attending over a float32 (or float16) cache of their own (SmolLM2-135M's heads: 9
 * query over 3 key-value heads of 64), with 64 MB read between steps so that no step starts
 * from warm caches. The steps alternate between two forms, compared in one process, which
 * the machine's drift between processes does not blur: for one row, the AVX2 forms of the
 * scores and the weighted values against those griffin_init picked for this CPU (AVX-512
 * where it has it); for several, a unit per row (attend) against the blocks of rows
 * (attend_blocks, on CPUs with AVX-512). With "grouped" after the steps, a unit per row
 * both times, each head of a group on its own against the group's heads together (AVX-512);
 * with "chunks", the group's heads together both times, a lone row's keys split for four
 * units per thread against two (attention_chunks); then "float16" makes the caches float16:
 *
 *   cc -O3 -std=gnu11 -pthread -o /tmp/attention tools/reference/bench_native_attention.c -lm
 *   /tmp/attention 30 576 1          # layers, cached tokens, rows: one decode row over 576 keys
 *   /tmp/attention 30 512 256 10     # the last 256 rows of a 512-token prompt, 10 steps
 *   /tmp/attention 30 2048 256 6     # the last 256 rows of a 2048-token prompt
 *   /tmp/attention 30 576 1 200 grouped float16   # one decode row, the heads of a group together
 *   /tmp/attention 30 576 4 200 grouped           # four rows of a batched step
 *   /tmp/attention 30 576 1 200 chunks float16    # a lone row's keys in fewer ranges
 *
 * The rows are one sequence's, at positions tokens - rows .. tokens - 1. Prints each form's
 * mean step (after 10 unmeasured ones; a fourth argument sets the steps, default 200) and
 * the largest difference between the two forms' contexts, relative to each value (at least
 * 1e-3). Rows: at most 256, a layer call's pass.
 */
#ifndef KERNELS
#define KERNELS "../../src/main/native/griffin_kernels.c"
#endif
#include KERNELS
#include <stdio.h>

/* element i of a cache of kv_type, set to x */
__attribute__((target("f16c"))) static void cache_set(char *cache, size_t i, int kv_type, float x) {
	if (kv_type == TYPE_FLOAT16) {
		((uint16_t *) cache)[i] = _cvtss_sh(x, 0);
	}
	else {
		((float *) cache)[i] = x;
	}
}

/* what the reads between steps summed, kept so that they are not left out */
volatile long kept;

int main(int argc, char **argv) {
	if (argc < 4) {
		fprintf(stderr, "usage: %s layers tokens rows [steps [grouped|chunks [float16]]]\n", argv[0]);
		return 2;
	}
	int layers = atoi(argv[1]), tokens = atoi(argv[2]), rows = atoi(argv[3]), heads = 9, kv_heads = 3, dh = 64;
	int steps = (argc > 4) ? atoi(argv[4]) : 200;
	int chunking = argc > 5 && strcmp(argv[5], "chunks") == 0;
	int grouping = chunking || (argc > 5 && strcmp(argv[5], "grouped") == 0);
	int kv_type = (argc > 6 && strcmp(argv[6], "float16") == 0) ? TYPE_FLOAT16 : TYPE_FLOAT32;
	size_t element = (kv_type == TYPE_FLOAT16) ? 2 : 4;
	if (layers < 1 || rows < 1 || tokens < rows || steps < 2) {
		fprintf(stderr, "need layers >= 1, tokens >= rows >= 1, steps >= 2\n");
		return 2;
	}
	if (griffin_init(2) < 2) {
		fprintf(stderr, "the kernels need AVX2 with FMA and F16C\n");
		return 1;
	}
	if (grouping && !grouped_attention) {
		fprintf(stderr, "this CPU has no grouped form (AVX-512)\n");
		return 1;
	}
	scored_fn chosen_score = scorers[kv_type];
	weighted_fn chosen_weigh = weighers[kv_type];
	scored_fn scores[2] = { (rows == 1 && !grouping) ? ((kv_type == TYPE_FLOAT16) ? scored16 : scored) : chosen_score,
		chosen_score };
	weighted_fn weighs[2] = {
		(rows == 1 && !grouping) ? ((kv_type == TYPE_FLOAT16) ? weighted16 : weighted) : chosen_weigh, chosen_weigh
	};
	static int blocks[LAYER_ROWS + 1];
	size_t per = (size_t) kv_heads * tokens * dh, width = (size_t) rows * heads * dh;
	char **keys = malloc(sizeof(char *) * layers), **values = malloc(sizeof(char *) * layers);
	for (int l = 0; l < layers; l++) {
		keys[l] = malloc(per * element);
		values[l] = malloc(per * element);
		for (size_t i = 0; i < per; i++) {
			cache_set(keys[l], i, kv_type, 0.01f * (float) (i % 13) - 0.05f);
			cache_set(values[l], i, kv_type, 0.02f * (float) (i % 7));
		}
	}
	float *q = malloc(sizeof(float) * width), *contexts[2] = { malloc(sizeof(float) * width), malloc(sizeof(float) * width) };
	for (size_t i = 0; i < width; i++) {
		q[i] = 0.1f * (float) (i % 5) - 0.2f;
	}
	if (rows > LAYER_ROWS) {
		fprintf(stderr, "at most %d rows (a layer call's pass)\n", LAYER_ROWS);
		return 2;
	}
	float *scratch = malloc(sizeof(float) * attention_floats(rows, heads, kv_heads, dh));
	size_t flush_bytes = (size_t) 64 << 20;
	volatile char *flush = malloc(flush_bytes);
	memset((char *) flush, 1, flush_bytes);
	int64_t *strides = malloc(sizeof(int64_t) * rows), *key_at = malloc(sizeof(int64_t) * rows),
			*value_at = malloc(sizeof(int64_t) * rows);
	int *starts = malloc(sizeof(int) * rows), *positions = malloc(sizeof(int) * rows);
	double total[2] = { 0, 0 };
	long touched = 0;
	for (int s = 0; s < steps + 10; s++) {
		for (size_t i = 0; i < flush_bytes; i += 64) {
			touched += flush[i];
		}
		int form = s % 2;
		scorers[kv_type] = scores[form];
		weighers[kv_type] = weighs[form];
		grouped_attention = grouping && (chunking || form == 1);
		units_per_thread = (chunking && form == 0) ? 4 : 2;
		double start = seconds();
		for (int l = 0; l < layers; l++) {
			for (int r = 0; r < rows; r++) {
				strides[r] = (int64_t) tokens * dh;
				starts[r] = 0;
				positions[r] = tokens - rows + r;
				key_at[r] = (int64_t) (intptr_t) keys[l];
				value_at[r] = (int64_t) (intptr_t) values[l];
			}
			int count = (form == 1 && !grouping) ? attention_blocks(key_at, value_at, strides, positions, rows, dh, blocks) : 0;
			int chunks = (count > 0) ? 1 : attention_chunks(rows, kv_heads, tokens);
			float *partial = scratch + (size_t) team * ATTEND_SCRATCH(heads / kv_heads, dh);
			attention a = { .q = q, .context = contexts[form], .keys = key_at, .values = value_at,
				.head_strides = strides, .kv_type = kv_type, .starts = starts, .positions = positions, .heads = heads,
				.group = heads / kv_heads, .dh = dh, .scale = 0.125f, .scratch = scratch, .chunks = chunks,
				.partial = partial, .io_type = TYPE_FLOAT32, .blocks = (count > 0) ? blocks : NULL };
			task t = { .kind = 3, .rows = ((count > 0) ? count : rows * chunks) * kv_heads, .a = &a };
			if (s == 1 && l == 0 && rows > 1 && !grouping) {
				printf("%s\n", (count > 0) ? "the rows in blocks of up to 16" : "no blocks on this CPU: the same form twice");
			}
			run(&t);
			if (chunks > 1) {
				merge_chunks(&a, rows);
			}
		}
		double ms = (seconds() - start) * 1e3;
		kept = touched;
		if (s >= 10) {
			total[form] += ms;
		}
	}
	double largest = 0;
	for (size_t i = 0; i < width; i++) {
		double size = fabs(contexts[0][i]);
		double d = fabs((double) contexts[0][i] - contexts[1][i]) / ((size > 1e-3) ? size : 1e-3);
		largest = (d > largest) ? d : largest;
	}
	if (chunking) {
		printf("four units per thread: mean %.3f ms a step\n", total[0] / (steps / 2));
		printf("two units per thread: mean %.3f ms a step\n", total[1] / (steps / 2));
	}
	else if (grouping) {
		printf("each head on its own: mean %.3f ms a step\n", total[0] / (steps / 2));
		printf("a group's heads together: mean %.3f ms a step\n", total[1] / (steps / 2));
	}
	else if (rows == 1) {
		printf("AVX2 forms: mean %.3f ms a step\n", total[0] / (steps / 2));
		printf("this CPU's forms (%s): mean %.3f ms a step\n", (level == 3) ? "AVX-512" : "AVX2", total[1] / (steps / 2));
	}
	else {
		printf("a unit per row: mean %.3f ms a step\n", total[0] / (steps / 2));
		printf("blocks of rows: mean %.3f ms a step\n", total[1] / (steps / 2));
	}
	printf("largest difference between the two forms' contexts, relative: %.2e\n", largest);
	return 0;
}
