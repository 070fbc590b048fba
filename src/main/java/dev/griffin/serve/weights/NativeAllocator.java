package dev.griffin.serve.weights;

import com.sun.jna.Library;
import com.sun.jna.Native;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Fixes glibc malloc's thresholds for libtorch's large, short-lived tensors.
 * <p>
 * By default glibc moves its mmap threshold as memory is freed and gives freed memory
 * back to the kernel, so the tens of MB of activations a prefill chunk allocates per
 * layer are page-faulted and zeroed afresh again and again, and how often depends on the
 * process's history: measured with {@code bench}, a 2048-token prompt's time to first
 * token went from 5.2 s to 7.9 s and a 512-token GRIFFIN prompt's from 0.95 s to 1.56 s
 * in the same sequence of runs. Fixed thresholds keep that memory in the process for
 * reuse. The same settings given as {@code MALLOC_*_} environment variables take
 * precedence; elsewhere than glibc this does nothing.
 */
public final class NativeAllocator {

	private static final Logger logger = LoggerFactory.getLogger(NativeAllocator.class);

	// mallopt parameters, from glibc's malloc.h
	private static final int M_TRIM_THRESHOLD = -1;

	private static final int M_TOP_PAD = -2;

	private static final int M_MMAP_THRESHOLD = -3;

	/** Allocations above this (glibc's largest allowed value) are mapped directly. */
	private static final int MMAP_THRESHOLD = 32 << 20;

	/** Free memory kept at the top of a heap before it is given back. */
	private static final int TRIM_THRESHOLD = 1 << 30;

	/** Extra memory requested whenever a heap grows. */
	private static final int TOP_PAD = 256 << 20;

	private static boolean tuned;

	private NativeAllocator() {
	}

	interface C extends Library {

		int mallopt(int parameter, int value);

		int malloc_trim(long pad);

	}

	/**
	 * Gives the memory malloc holds free back to the kernel (glibc's
	 * {@code malloc_trim}), once a load has freed what its plan does not read: with the
	 * fixed trim threshold above, freed memory otherwise stays resident. Returns the
	 * resident memory before and after, for the log, or what kept it from trying.
	 */
	public static synchronized String giveBack() {
		if (!System.getProperty("os.name", "").toLowerCase().contains("linux")) {
			return "not on Linux: nothing given back";
		}
		ResidentMemory.Sample before = ResidentMemory.sample();
		try {
			Native.load("c", C.class).malloc_trim(0);
		}
		catch (UnsatisfiedLinkError | RuntimeException ex) {
			return "no malloc_trim in this C library (" + ex + ")";
		}
		ResidentMemory.Sample after = ResidentMemory.sample();
		return (before == null || after == null) ? "resident memory unknown"
				: "resident memory %d MiB before, %d MiB after".formatted(before.residentKb() >> 10,
						after.residentKb() >> 10);
	}

	/** Applies the settings once per process; safe to call from any loader. */
	public static synchronized void tune() {
		if (tuned) {
			return;
		}
		tuned = true;
		if (!System.getProperty("os.name", "").toLowerCase().contains("linux")) {
			return;
		}
		if (System.getenv("MALLOC_MMAP_THRESHOLD_") != null || System.getenv("MALLOC_TRIM_THRESHOLD_") != null) {
			logger.info("malloc thresholds come from the environment");
			return;
		}
		try {
			C c = Native.load("c", C.class);
			boolean ok = c.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
					& c.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 & c.mallopt(M_TOP_PAD, TOP_PAD) == 1;
			if (ok) {
				logger.info("malloc: mmap threshold {} MB, trim threshold {} MB, top pad {} MB (fixed)",
						MMAP_THRESHOLD >> 20, TRIM_THRESHOLD >> 20, TOP_PAD >> 20);
			}
			else {
				logger.warn("malloc: mallopt refused a setting; native allocation keeps its defaults");
			}
		}
		catch (UnsatisfiedLinkError | RuntimeException ex) {
			logger.warn("malloc: no mallopt in this C library ({}); native allocation keeps its defaults",
					ex.toString());
		}
	}

}
