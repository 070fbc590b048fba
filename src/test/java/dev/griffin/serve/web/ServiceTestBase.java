package dev.griffin.serve.web;

import org.junit.jupiter.api.BeforeEach;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.TestPropertySource;
import org.springframework.test.web.reactive.server.WebTestClient;

/**
 * A service test: the running server's port and a client, once the model is ready. The
 * kernels are fixed, so that each context skips the calibration at load (about 8 s on a
 * 2-core machine); {@link ServiceIT} keeps the default, calibrated plan.
 */
// no neuron prior, whatever the model cache holds: the glass method is refused
@TestPropertySource(properties = { "griffin.model.decode-kernel=single", "griffin.model.prefill-kernel=weights",
		"griffin.model.prior=none" })
abstract class ServiceTestBase {

	@LocalServerPort
	int port;

	WebTestClient client;

	@BeforeEach
	void ready() {
		this.client = ServiceSupport.client(this.port);
		ServiceSupport.awaitReady(this.client);
	}

}
