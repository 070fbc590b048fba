package dev.griffin.serve;

import java.util.List;

import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Fails a test class after which Netty reports a buffer that nobody released: the
 * server's (a request body or a response chunk dropped on some path) or a test client's
 * (a response whose body was never read). A no-op where {@link RecordingLeakDetector} is
 * not installed (the unit tests). Registered for every test by
 * {@code META-INF/services/org.junit.jupiter.api.extension.Extension}.
 */
public final class NettyLeakCheck implements AfterAllCallback {

	@Override
	public void afterAll(ExtensionContext context) throws InterruptedException {
		if (!RecordingLeakDetector.installed()) {
			return;
		}
		List<String> leaks = RecordingLeakDetector.drain();
		assertThat(leaks).as("Netty buffers never released, found after %s", context.getDisplayName()).isEmpty();
	}

}
