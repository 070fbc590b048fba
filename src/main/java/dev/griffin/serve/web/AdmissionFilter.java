package dev.griffin.serve.web;

import org.springframework.core.Ordered;
import org.springframework.web.server.ServerWebExchange;
import org.springframework.web.server.WebFilter;
import org.springframework.web.server.WebFilterChain;
import reactor.core.publisher.Mono;

import dev.griffin.serve.generation.Admission;
import dev.griffin.serve.generation.InferenceScheduler;

/**
 * Ties a request's admission to its exchange: when the exchange ends in any way (the
 * response written, an error, the client gone before the body was subscribed), permits
 * that no worker claimed are returned.
 */
public class AdmissionFilter implements WebFilter, Ordered {

	private static final String ADMISSION_ATTRIBUTE = AdmissionFilter.class.getName() + ".admission";

	/**
	 * Admits the exchange's request, charged to its API key; see
	 * {@link InferenceScheduler#admit}.
	 */
	static Admission admit(InferenceScheduler scheduler, ServerWebExchange exchange) {
		Admission admission = scheduler.admit(exchange.getAttribute(ApiKeyFilter.API_KEY_ATTRIBUTE));
		Admission earlier = (Admission) exchange.getAttributes().put(ADMISSION_ATTRIBUTE, admission);
		if (earlier != null) {
			earlier.releaseUnclaimed();
		}
		return admission;
	}

	@Override
	public int getOrder() {
		return ApiKeyFilter.ORDER + 1;
	}

	@Override
	public Mono<Void> filter(ServerWebExchange exchange, WebFilterChain chain) {
		return chain.filter(exchange).doFinally((signal) -> {
			Admission admission = exchange.getAttribute(ADMISSION_ATTRIBUTE);
			if (admission != null) {
				admission.releaseUnclaimed();
			}
		});
	}

}
