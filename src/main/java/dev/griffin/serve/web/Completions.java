package dev.griffin.serve.web;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.stereotype.Component;
import org.springframework.web.server.ServerWebExchange;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

import dev.griffin.serve.generation.Admission;
import dev.griffin.serve.generation.GeneratedToken;
import dev.griffin.serve.generation.GenerationEvent;
import dev.griffin.serve.generation.Generator;
import dev.griffin.serve.generation.InferenceScheduler;
import dev.griffin.serve.generation.LoadedModel;

/**
 * What the completion endpoints share: admission, request preparation (tokenising,
 * templating, mapping) on the scheduler's preparation pool, submission with the token
 * charge, and collection of whole responses.
 */
@Component
final class Completions {

	/** One endpoint's preparation of an admitted request: its response. */
	@FunctionalInterface
	interface Preparation {

		Mono<ResponseEntity<Object>> prepare(LoadedModel model, Admission admission);

	}

	/** One finished choice with its tokens, for whole responses. */
	record Choice(int index, Generator.Result result, List<GeneratedToken> tokens) {

	}

	/** Tokens generated over every choice. */
	static int generatedTokens(List<Choice> choices) {
		return choices.stream().mapToInt((c) -> c.result().tokens().length).sum();
	}

	/** Whether any choice's prompt came from the prompt cache. */
	static boolean cacheHit(List<Choice> choices) {
		return choices.stream().anyMatch((c) -> c.result().cacheHit());
	}

	private final InferenceScheduler scheduler;

	private final RequestMapper mapper;

	Completions(InferenceScheduler scheduler, RequestMapper mapper) {
		this.scheduler = scheduler;
		this.mapper = mapper;
	}

	/** Admits the request and prepares it off the event loop. */
	Mono<ResponseEntity<Object>> handle(String model, ServerWebExchange exchange, Preparation preparation) {
		LoadedModel loaded = this.mapper.requiredModel(model);
		Admission admission = AdmissionFilter.admit(this.scheduler, exchange);
		return this.scheduler.prepare(admission, () -> preparation.prepare(loaded, admission))
			.flatMap((response) -> response);
	}

	/** Charges the job's tokens to its tenant and queues it. */
	Flux<GenerationEvent> submit(Admission admission, RequestMapper.Mapped mapped) {
		return submit(admission, List.of(mapped)).get(0);
	}

	/**
	 * Charges the jobs' tokens to their tenant together and queues each, all under the
	 * request's one admission; each job's events in the jobs' order.
	 */
	List<Flux<GenerationEvent>> submit(Admission admission, List<RequestMapper.Mapped> jobs) {
		long tokens = 0;
		for (RequestMapper.Mapped mapped : jobs) {
			tokens += mapped.job().prompt().length
					+ (long) mapped.job().params().maxNewTokens() * mapped.job().choices();
		}
		this.scheduler.chargeTokens(admission, tokens);
		if (jobs.size() > 1) {
			admission.jobs(jobs.size());
		}
		return jobs.stream().map((mapped) -> this.scheduler.submit(admission, mapped.job())).toList();
	}

	String modelId() {
		return this.mapper.modelId();
	}

	static String id(String prefix) {
		return prefix + UUID.randomUUID().toString().replace("-", "");
	}

	static ResponseEntity<Object> json(Object body) {
		return ResponseEntity.ok().contentType(MediaType.APPLICATION_JSON).body(body);
	}

	/** Every choice of a job, in order, once all have finished. */
	static Mono<List<Choice>> collect(Flux<GenerationEvent> events, int choices) {
		return events.collectList().map((list) -> {
			Map<Integer, List<GeneratedToken>> tokens = new HashMap<>();
			Map<Integer, Generator.Result> results = new LinkedHashMap<>();
			for (GenerationEvent event : list) {
				if (event instanceof GenerationEvent.Token token) {
					tokens.computeIfAbsent(token.choice(), (k) -> new ArrayList<>()).add(token.token());
				}
				else if (event instanceof GenerationEvent.Finished finished) {
					results.put(finished.choice(), finished.result());
				}
			}
			List<Choice> out = new ArrayList<>();
			for (int i = 0; i < choices; i++) {
				Generator.Result result = results.get(i);
				if (result == null) {
					throw new IllegalStateException("generation of choice " + i + " did not finish");
				}
				out.add(new Choice(i, result, tokens.getOrDefault(i, List.of())));
			}
			return out;
		});
	}

}
