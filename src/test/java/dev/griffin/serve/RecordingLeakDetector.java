package dev.griffin.serve;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.util.ResourceLeakDetector;

/**
 * Netty's leak detector, which also keeps what it reports, so that a test can fail on a
 * buffer that was never released instead of leaving an ERROR line in its log. The
 * integration tests' JVM installs it ({@code -Dio.netty.customResourceLeakDetector} in
 * failsafe's argLine, with the paranoid level: every buffer is tracked), and
 * {@link NettyLeakCheck} asks it after each test class.
 *
 * @param <T> the tracked resource
 */
public class RecordingLeakDetector<T> extends ResourceLeakDetector<T> {

	private static final List<String> LEAKS = new CopyOnWriteArrayList<>();

	private static volatile boolean installed;

	public RecordingLeakDetector(Class<?> resourceType, int samplingInterval, long maxActive) {
		this(resourceType, samplingInterval);
	}

	public RecordingLeakDetector(Class<?> resourceType, int samplingInterval) {
		super(resourceType, samplingInterval);
		installed = true;
	}

	/** Whether Netty made one of these in this JVM. */
	static boolean installed() {
		return installed;
	}

	/**
	 * Collects garbage, lets the detector see what was collected (it looks when a buffer
	 * is tracked), and returns and forgets the leaks reported so far.
	 */
	static List<String> drain() throws InterruptedException {
		for (int round = 0; round < 3; round++) {
			System.gc();
			Thread.sleep(100);
			ByteBuf probe = ByteBufAllocator.DEFAULT.directBuffer(16);
			probe.release();
		}
		List<String> leaks = List.copyOf(LEAKS);
		LEAKS.removeAll(leaks);
		return leaks;
	}

	@Override
	protected void reportTracedLeak(String resourceType, String records) {
		LEAKS.add(resourceType + " released nowhere; its last accesses:" + records);
		super.reportTracedLeak(resourceType, records);
	}

	@Override
	protected void reportUntracedLeak(String resourceType) {
		LEAKS.add(resourceType + " released nowhere (no access records)");
		super.reportUntracedLeak(resourceType);
	}

}
