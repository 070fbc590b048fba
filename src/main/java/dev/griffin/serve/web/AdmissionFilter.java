package dev.griffin.serve.web;

import java.util.function.Supplier;

import org.springframework.core.Ordered;
import org.springframework.http.HttpMethod;
import org.springframework.web.server.ServerWebExchange;
import org.springframework.web.server.WebFilter;
import org.springframework.web.server.WebFilterChain;
import reactor.core.publisher.Mono;

import dev.griffin.serve.generation.Admission;
import dev.griffin.serve.generation.InferenceScheduler;

/**
 * Ties a request's admission to its exchange: when the exchange ends in any way (the
 * response written, an error, the client gone before the body was subscribed), permits
 * that no worker claimed are returned. A POST also counts as arriving
 * ({@link InferenceScheduler#arrival()}) from here until its admission is asked for or
 * the exchange ends, so that an idle engine holds a prompt's pass for requests sent
 * together whose bodies are still being read.
 */
public class AdmissionFilter implements WebFilter, Ordered {

	private static final String ADMISSION_ATTRIBUTE = AdmissionFilter.class.getName() + ".admission";

	private static final String ARRIVAL_ATTRIBUTE = AdmissionFilter.class.getName() + ".arrival";

	private final Supplier<Runnable> arrivals;

	/**
	 * @param arrivals starts a request's arrival count and returns what ends it
	 * ({@link InferenceScheduler#arrival()})
	 */
	public AdmissionFilter(Supplier<Runnable> arrivals) {
		this.arrivals = arrivals;
	}

	/**
	 * Admits the exchange's request, charged to its API key; see
	 * {@link InferenceScheduler#admit}. Its arrival count ends here, admitted or not (an
	 * admission counts on from its creation).
	 */
	static Admission admit(InferenceScheduler scheduler, ServerWebExchange exchange) {
		try {
			Admission admission = scheduler.admit(exchange.getAttribute(ApiKeyFilter.API_KEY_ATTRIBUTE));
			Admission earlier = (Admission) exchange.getAttributes().put(ADMISSION_ATTRIBUTE, admission);
			if (earlier != null) {
				earlier.releaseUnclaimed();
			}
			return admission;
		}
		finally {
			Runnable arrival = exchange.getAttribute(ARRIVAL_ATTRIBUTE);
			if (arrival != null) {
				arrival.run();
			}
		}
	}

	@Override
	public int getOrder() {
		return ApiKeyFilter.ORDER + 1;
	}

	@Override
	public Mono<Void> filter(ServerWebExchange exchange, WebFilterChain chain) {
		Runnable arrival = HttpMethod.POST.equals(exchange.getRequest().getMethod()) ? this.arrivals.get() : null;
		if (arrival != null) {
			exchange.getAttributes().put(ARRIVAL_ATTRIBUTE, arrival);
		}
		return Mono.defer(() -> chain.filter(exchange)).doFinally((signal) -> {
			if (arrival != null) {
				arrival.run();
			}
			Admission admission = exchange.getAttribute(ADMISSION_ATTRIBUTE);
			if (admission != null) {
				admission.releaseUnclaimed();
			}
		});
	}

}
