package dev.griffin.serve;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadInfo;

import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.TestExecutionExceptionHandler;

/**
 * Prints every thread of the JVM (the test's and, in a {@code @SpringBootTest}, the
 * server's) with its stack and the lock it waits on when a test fails, then fails the
 * test as it would have: a request that never answered leaves its server-side cause in
 * the log of the run that saw it. Registered for every test by
 * {@code META-INF/services/org.junit.jupiter.api.extension.Extension}.
 */
public final class ThreadDumpOnFailure implements TestExecutionExceptionHandler {

	/** Frames printed per thread. */
	private static final int DEPTH = 48;

	@Override
	public void handleTestExecutionException(ExtensionContext context, Throwable failure) throws Throwable {
		StringBuilder dump = new StringBuilder("threads when ").append(context.getDisplayName())
			.append(" of ")
			.append(context.getRequiredTestClass().getSimpleName())
			.append(" failed:\n");
		for (ThreadInfo thread : ManagementFactory.getThreadMXBean().dumpAllThreads(true, true)) {
			dump.append('"').append(thread.getThreadName()).append("\" ").append(thread.getThreadState());
			if (thread.getLockName() != null) {
				dump.append(" on ").append(thread.getLockName());
			}
			if (thread.getLockOwnerName() != null) {
				dump.append(" held by \"").append(thread.getLockOwnerName()).append('"');
			}
			dump.append('\n');
			StackTraceElement[] stack = thread.getStackTrace();
			for (int i = 0; i < Math.min(DEPTH, stack.length); i++) {
				dump.append("\tat ").append(stack[i]).append('\n');
			}
		}
		System.err.println(dump);
		throw failure;
	}

}
