package dev.griffin.serve.web;

import org.junit.jupiter.api.BeforeEach;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.web.reactive.server.WebTestClient;

/** A service test: the running server's port and a client, once the model is ready. */
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
