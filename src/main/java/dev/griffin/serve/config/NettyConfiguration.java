package dev.griffin.serve.config;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.netty.channel.ChannelOption;
import io.netty.handler.timeout.WriteTimeoutHandler;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.boot.reactor.netty.NettyServerCustomizer;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/**
 * Connection-level limits of the HTTP server: at most
 * {@code griffin.security.max-connections} open connections (more are closed at once),
 * and a write that a client does not take within the stall timeout closes its connection,
 * which cancels its generation. Each connection's kernel send buffer is fixed at
 * {@code griffin.security.socket-send-buffer} (autotuned it grows to megabytes: memory
 * the pod pays for, and tokens a stalled reader keeps the worker generating). Idle
 * keep-alive connections close after {@code server.netty.idle-timeout}.
 */
@Configuration(proxyBeanMethods = false)
public class NettyConfiguration {

	private static final Logger logger = LoggerFactory.getLogger(NettyConfiguration.class);

	@Bean
	NettyServerCustomizer connectionLimits(GriffinProperties properties, MeterRegistry registry) {
		int maxConnections = properties.security().maxConnections();
		long writeTimeoutMillis = properties.generation().stallTimeout().toMillis();
		AtomicInteger open = new AtomicInteger();
		Gauge.builder("griffin.connections.open", open, AtomicInteger::get)
			.description("Open HTTP connections (refused ones included until they close)")
			.register(registry);
		// per channel (a TCP connection), not per HTTP request on it
		int sendBuffer = (int) properties.security().socketSendBuffer().toBytes();
		return (server) -> server.childOption(ChannelOption.SO_SNDBUF, sendBuffer)
			.doOnChannelInit((observer, channel, address) -> {
				channel.closeFuture().addListener((future) -> open.decrementAndGet());
				int count = open.incrementAndGet();
				if (count > maxConnections) {
					logger.warn("connection refused: {} connections would be open, griffin.security.max-connections "
							+ "is {}", count, maxConnections);
					channel.close();
					return;
				}
				// next to the socket, so it times the client's reading, not our encoding
				channel.pipeline()
					.addFirst("griffin-write-timeout",
							new WriteTimeoutHandler(writeTimeoutMillis, TimeUnit.MILLISECONDS));
			});
	}

}
