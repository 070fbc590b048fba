package dev.griffin.serve.weights;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The process's resident memory as Linux reports it in {@code /proc/self/status}: what a
 * pod's memory limit is checked against, so loading reports it.
 */
public final class ResidentMemory {

	/**
	 * @param residentKb VmRSS
	 * @param peakKb VmHWM, the largest VmRSS so far
	 */
	public record Sample(long residentKb, long peakKb) {

	}

	private static final Path STATUS = Path.of("/proc/self/status");

	private ResidentMemory() {
	}

	/** Now, or null where the system does not say. */
	public static Sample sample() {
		try {
			long resident = -1;
			long peak = -1;
			for (String line : Files.readAllLines(STATUS)) {
				if (line.startsWith("VmRSS:")) {
					resident = kilobytes(line);
				}
				else if (line.startsWith("VmHWM:")) {
					peak = kilobytes(line);
				}
			}
			return (resident >= 0 && peak >= 0) ? new Sample(resident, peak) : null;
		}
		catch (IOException | RuntimeException ex) {
			return null;
		}
	}

	private static long kilobytes(String line) {
		return Long.parseLong(line.replaceAll("[^0-9]", ""));
	}

	/**
	 * Resident memory before, at its peak and now, in MiB: the peak is the process's, so
	 * it may predate {@code before}.
	 */
	public static String since(Sample before) {
		Sample now = sample();
		if (before == null || now == null) {
			return "resident memory not reported by this system";
		}
		return "resident memory %d MiB before, peak %d MiB, now %d MiB".formatted(before.residentKb() >> 10,
				now.peakKb() >> 10, now.residentKb() >> 10);
	}

}
