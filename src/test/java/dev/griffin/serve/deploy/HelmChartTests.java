package dev.griffin.serve.deploy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Stream;

import com.marcnuri.helm.Helm;
import com.marcnuri.helm.LintResult;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.PodSpec;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.api.model.Service;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import io.fabric8.kubernetes.api.model.autoscaling.v2.HorizontalPodAutoscaler;
import io.fabric8.kubernetes.api.model.networking.v1.Ingress;
import io.fabric8.kubernetes.api.model.policy.v1.PodDisruptionBudget;
import org.junit.jupiter.api.Test;

import dev.griffin.serve.generation.Generator;
import dev.griffin.serve.generation.MemoryBudget;
import dev.griffin.serve.griffin.SelectionMethod;
import dev.griffin.serve.model.Architecture;
import dev.griffin.serve.model.HiddenActivation;
import dev.griffin.serve.model.Kernels;
import dev.griffin.serve.model.ModelConfig;
import dev.griffin.serve.model.ModelOptions;

import static dev.griffin.serve.deploy.KubernetesManifests.only;
import static dev.griffin.serve.deploy.KubernetesManifests.parse;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * The Helm chart (helm lint and helm template through helm-java, offline) and the plain
 * manifests in k8s/, parsed strictly as Kubernetes API objects.
 */
class HelmChartTests {

	private static final Path CHART = Path.of("helm/griffin-serve");

	private static String render(Map<String, Object> values, Path valuesFile) {
		var template = new Helm(CHART).template().withName("griffin").withNamespace("default");
		if (valuesFile != null) {
			template = template.withValuesFile(valuesFile);
		}
		for (Map.Entry<String, Object> value : values.entrySet()) {
			template = template.set(value.getKey(), value.getValue());
		}
		return template.call();
	}

	@Test
	void helmLintPasses() {
		LintResult result = new Helm(CHART).lint().strict().call();
		assertThat(result.isFailed()).as("helm lint: %s", result.getMessages()).isFalse();
	}

	@Test
	void defaultRenderingIsStrictKubernetesWithTrustworthyDefaults() throws Exception {
		List<HasMetadata> objects = parse(render(Map.of(), null));
		assertThat(objects).extracting(HasMetadata::getKind)
			.containsExactlyInAnyOrder("ServiceAccount", "ConfigMap", "Service", "Deployment", "PodDisruptionBudget");
		Deployment deployment = only(objects, Deployment.class);
		PodSpec pod = deployment.getSpec().getTemplate().getSpec();
		Container container = pod.getContainers().get(0);
		assertThat(pod.getSecurityContext().getRunAsNonRoot()).isTrue();
		assertThat(container.getSecurityContext().getReadOnlyRootFilesystem()).isTrue();
		assertThat(container.getSecurityContext().getAllowPrivilegeEscalation()).isFalse();
		assertThat(container.getSecurityContext().getCapabilities().getDrop()).containsExactly("ALL");
		assertThat(container.getVolumeMounts()).anyMatch((m) -> m.getMountPath().equals("/tmp"));
		assertThat(pod.getVolumes()).filteredOn((v) -> v.getName().equals("tmp"))
			.allMatch((v) -> v.getEmptyDir() != null);
		assertThat(container.getPorts().get(0).getContainerPort()).isEqualTo(8080);
		assertThat(container.getReadinessProbe().getHttpGet().getPath()).isEqualTo("/actuator/health/readiness");
		assertThat(container.getLivenessProbe().getHttpGet().getPath()).isEqualTo("/actuator/health/liveness");
		// a slow model load gets 10 minutes before the startup probe gives up
		assertThat(container.getStartupProbe().getPeriodSeconds() * container.getStartupProbe().getFailureThreshold())
			.isGreaterThanOrEqualTo(600);
		assertThat(container.getResources().getLimits()).doesNotContainKey("nvidia.com/gpu");
		Service service = only(objects, Service.class);
		assertThat(service.getSpec().getPorts().get(0).getTargetPort().getStrVal()).isEqualTo("http");
		// a budget that lets a drain evict the only replica
		PodDisruptionBudget budget = only(objects, PodDisruptionBudget.class);
		assertThat(budget.getSpec().getMinAvailable()).isNull();
		assertThat(budget.getSpec().getMaxUnavailable().getIntVal()).isEqualTo(1);
		assertThat(KubernetesManifests.danglingReferences(objects, java.util.Set.of())).isEmpty();
	}

	/** The container's memory limit in MiB and its JVM flags, from a rendering. */
	private static long memoryMi(List<HasMetadata> objects) {
		Container container = only(objects, Deployment.class).getSpec().getTemplate().getSpec().getContainers().get(0);
		Quantity limit = container.getResources().getLimits().get("memory");
		assertThat(container.getResources().getRequests().get("memory")).as("requests = limits").isEqualTo(limit);
		assertThat(limit.getFormat()).isEqualTo("Mi");
		return Long.parseLong(limit.getAmount());
	}

	private static String javaToolOptions(List<HasMetadata> objects) {
		return only(objects, Deployment.class).getSpec()
			.getTemplate()
			.getSpec()
			.getContainers()
			.get(0)
			.getEnv()
			.stream()
			.filter((e) -> e.getName().equals("JAVA_TOOL_OPTIONS"))
			.findFirst()
			.orElseThrow()
			.getValue();
	}

	@Test
	void thePodsMemoryIsTheSumOfTheBudgetAndCoversTheServicesOwnReckoning() throws Exception {
		List<HasMetadata> objects = parse(render(Map.of(), null));
		// heap 1024 + direct 256 + overhead 768 + weights 640 + cache 2048 + 4
		// workers x (1024 per sequence + 96 of the KV arena)
		assertThat(memoryMi(objects)).isEqualTo(1024 + 256 + 768 + 640 + 2048 + 4 * (1024 + 96));
		// the weights live in libtorch's memory in every precision: the direct cap
		// is Netty's and the load's staging
		assertThat(javaToolOptions(objects)).contains("-Xmx1024m", "-XX:MaxDirectMemorySize=256m",
				"-XX:+ExitOnOutOfMemoryError");
		assertThat(javaToolOptions(parse(render(Map.of("model.dtype", "float16"), null))))
			.contains("-XX:MaxDirectMemorySize=256m");
		String config = only(objects, io.fabric8.kubernetes.api.model.ConfigMap.class).getData()
			.get("application.yaml");
		assertThat(config).contains("max-size: \"2048MB\"").contains("overhead: \"768MB\"");
		// a worker more is a sequence more, and with several the KV arena's share each
		assertThat(memoryMi(parse(render(Map.of("griffin.workers", "5"), null))))
			.isEqualTo(1024 + 256 + 768 + 640 + 2048 + 5 * (1024 + 96));
		// one worker keeps no arena
		assertThat(memoryMi(parse(render(Map.of("griffin.workers", "1"), null))))
			.isEqualTo(1024 + 256 + 768 + 640 + 2048 + 1024);
		// on GPUs the model's memory is the GPU's
		assertThat(memoryMi(parse(render(Map.of(), CHART.resolve("values-gpu.yaml"))))).isEqualTo(1024 + 256 + 4096);
		// the service's own reckoning for the default model (SmolLM2-135M, float32) fits
		// the chart's parts
		ModelConfig smolLm2 = new ModelConfig(Architecture.LLAMA, 576, 1536, 30, 9, 3, 64, 49152, 8192, 1e-5, 100000,
				null, true, false, 0, 1, new int[] { 2 }, HiddenActivation.SILU, null, 0, 0, 0, 0, false, 0);
		long weightsMi = MemoryBudget.weights(smolLm2, ModelOptions.CPU_FLOAT32) >> 20;
		long perSequenceMi = MemoryBudget.perSequence(smolLm2, ModelOptions.CPU_FLOAT32, Generator.PREFILL_CHUNK) >> 20;
		// where the native forms run, a load makes no packed copies unless a form that
		// reads them is named
		assertThat(weightsMi).isBetween(500L, 576L);
		assertThat(MemoryBudget.weights(smolLm2,
				new ModelOptions(ModelOptions.Precision.FLOAT32, "cpu", Kernels.Decode.ONEDNN, null)) >> 20)
			.isBetween(1000L, 1152L);
		assertThat(MemoryBudget.weights(smolLm2,
				new ModelOptions(ModelOptions.Precision.FLOAT32, "cpu", Kernels.Decode.ONEDNN, null)
					.withPackWeights(false)) >> 20)
			.isBetween(500L, 576L);
		// float16: copies for the layer decode form only
		assertThat(MemoryBudget.weights(smolLm2, new ModelOptions(ModelOptions.Precision.FLOAT16, "cpu")) >> 20)
			.isBetween(250L, 288L);
		assertThat(MemoryBudget.weights(smolLm2,
				new ModelOptions(ModelOptions.Precision.FLOAT16, "cpu", Kernels.Decode.LAYER, null)) >> 20)
			.isBetween(500L, 576L);
		assertThat(perSequenceMi).isBetween(800L, 1024L);
		assertThat(MemoryBudget.arena(smolLm2, ModelOptions.CPU_FLOAT32, 3, 2048) >> 20).isEqualTo(3 * 90L);
		assertThat(MemoryBudget.arena(smolLm2, ModelOptions.CPU_FLOAT32, 1, 2048)).as("one worker has no arena")
			.isZero();
		// the bfloat16 prefill form's conversion block and parts: 16 + 6 MiB more
		long bfloat16Mi = MemoryBudget.perSequence(smolLm2,
				new ModelOptions(ModelOptions.Precision.FLOAT32, "cpu", null, Kernels.Prefill.BFLOAT16),
				Generator.PREFILL_CHUNK) >> 20;
		assertThat(bfloat16Mi - perSequenceMi).isEqualTo(22L);
		assertThat(bfloat16Mi).isLessThanOrEqualTo(1024L);
		// memory budget values may not set the limit by hand
		assertThatThrownBy(() -> render(Map.of("resources.limits.memory", "2Gi"), null))
			.hasMessageContaining("/resources/limits");
	}

	@Test
	void everyNameAManifestRefersToExists() throws Exception {
		List<HasMetadata> all = parse(render(Map.of("ingress.enabled", "true", "model.cache.persistence", "true",
				"apiKeysSecret", "griffin-keys", "model.source", "hf://org/model", "model.hubTokenSecret", "hub-token",
				"networkPolicy.enabled", "true"), null));
		assertThat(KubernetesManifests.danglingReferences(all, java.util.Set.of("griffin-keys", "hub-token")))
			.isEmpty();
		// and the check itself sees a missing one
		List<HasMetadata> withoutAccount = all.stream().filter((o) -> !o.getKind().equals("ServiceAccount")).toList();
		assertThat(KubernetesManifests.danglingReferences(withoutAccount, java.util.Set.of())).isNotEmpty();
	}

	@Test
	void theIngressRoutesTheApiAndNeverActuator() throws Exception {
		Ingress ingress = only(parse(render(Map.of("ingress.enabled", "true"), null)), Ingress.class);
		List<String> paths = ingress.getSpec()
			.getRules()
			.stream()
			.flatMap((rule) -> rule.getHttp().getPaths().stream())
			.map((path) -> path.getPath())
			.toList();
		assertThat(paths).contains("/v1/", "/tokenize", "/detokenize", "/swagger-ui");
		assertThat(paths).noneMatch((path) -> path.equals("/") || path.startsWith("/actuator"));
		assertThatThrownBy(() -> render(Map.of("ingress.enabled", "true", "ingress.paths[0]", "/actuator"), null))
			.hasMessageContaining("actuator");
	}

	@Test
	void theNetworkPolicyAdmitsOnlyTheListedPeersToTheHttpPort() throws Exception {
		var policy = only(parse(render(Map.of("networkPolicy.enabled", "true"), null)),
				io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicy.class);
		assertThat(policy.getSpec().getPolicyTypes()).containsExactly("Ingress");
		assertThat(policy.getSpec().getIngress().get(0).getPorts().get(0).getPort().getStrVal()).isEqualTo("http");
		assertThat(policy.getSpec().getIngress().get(0).getFrom()).isNotEmpty();
	}

	@Test
	void everyOptionalObjectRendersStrictly() throws Exception {
		List<HasMetadata> objects = parse(render(
				Map.of("ingress.enabled", "true", "autoscaling.enabled", "true", "autoscaling.waitingRequests.enabled",
						"true", "serviceMonitor.enabled", "true", "model.cache.persistence", "true", "apiKeysSecret",
						"griffin-keys", "model.source", "hf://org/model", "model.hubTokenSecret", "hub-token"),
				null));
		assertThat(objects).extracting(HasMetadata::getKind)
			.contains("Ingress", "HorizontalPodAutoscaler", "PersistentVolumeClaim");
		Ingress ingress = only(objects, Ingress.class);
		Map<String, String> annotations = ingress.getMetadata().getAnnotations();
		assertThat(annotations).containsEntry("nginx.ingress.kubernetes.io/proxy-buffering", "off");
		assertThat(Integer.parseInt(annotations.get("nginx.ingress.kubernetes.io/proxy-read-timeout")))
			.isGreaterThanOrEqualTo(3600);
		HorizontalPodAutoscaler hpa = only(objects, HorizontalPodAutoscaler.class);
		assertThat(hpa.getSpec().getMetrics()).extracting((m) -> m.getType()).containsExactly("Resource", "Pods");
		Container container = only(objects, Deployment.class).getSpec().getTemplate().getSpec().getContainers().get(0);
		assertThat(container.getEnv()).anyMatch((e) -> e.getName().equals("HF_TOKEN")
				&& e.getValueFrom().getSecretKeyRef().getName().equals("hub-token"));
		assertThat(container.getEnv()).anyMatch((e) -> e.getName().equals("GRIFFIN_SECURITY_APIKEYS"));
		assertThat(only(objects, Deployment.class).getSpec().getReplicas()).as("the HPA owns replicas").isNull();
	}

	@Test
	void gpuValuesScheduleOntoGpuNodes() throws Exception {
		List<HasMetadata> objects = parse(render(Map.of(), CHART.resolve("values-gpu.yaml")));
		PodSpec pod = only(objects, Deployment.class).getSpec().getTemplate().getSpec();
		assertThat(pod.getContainers().get(0).getResources().getLimits()).containsEntry("nvidia.com/gpu",
				new Quantity("1"));
		assertThat(pod.getRuntimeClassName()).isEqualTo("nvidia");
		assertThat(pod.getNodeSelector()).containsKey("nvidia.com/gpu.present");
		assertThat(pod.getTolerations()).anyMatch((t) -> "nvidia.com/gpu".equals(t.getKey()));
		assertThat(only(objects, io.fabric8.kubernetes.api.model.ConfigMap.class).getData().get("application.yaml"))
			.contains("device: \"gpu\"");
	}

	@Test
	void valuesSchemaRejectsBadValues() {
		assertThatThrownBy(() -> render(Map.of("griffin.defaultDensity", "1.5"), null))
			.hasMessageContaining("defaultDensity");
		assertThatThrownBy(() -> render(Map.of("griffin.denseBelowPromptTokens", "-1"), null))
			.hasMessageContaining("denseBelowPromptTokens");
		assertThatThrownBy(() -> render(Map.of("model.dtype", "int4"), null)).hasMessageContaining("dtype");
		assertThatThrownBy(() -> render(Map.of("model.decodeKernel", "fastest"), null))
			.hasMessageContaining("decodeKernel");
		assertThatThrownBy(() -> render(Map.of("model.kvCacheDtype", "int8"), null))
			.hasMessageContaining("kvCacheDtype");
	}

	/**
	 * The chart's schema takes every kernel form the server knows; each reaches the
	 * application as set.
	 */
	@Test
	void kernelFormsReachTheApplication() throws Exception {
		String application = only(parse(render(Map.of("model.decodeKernel", "split"), null)),
				io.fabric8.kubernetes.api.model.ConfigMap.class)
			.getData()
			.get("application.yaml");
		assertThat(application).contains("decode-kernel: \"split\"").contains("prefill-kernel: \"auto\"");
		for (Kernels.Decode form : Kernels.Decode.values()) {
			String name = form.name().toLowerCase(Locale.ROOT);
			assertThat(applicationWith("model.decodeKernel", name)).contains("decode-kernel: \"" + name + "\"");
		}
		for (Kernels.Prefill form : Kernels.Prefill.values()) {
			String name = form.name().toLowerCase(Locale.ROOT);
			assertThat(applicationWith("model.prefillKernel", name)).contains("prefill-kernel: \"" + name + "\"");
		}
	}

	@Test
	void theKvCachePrecisionReachesTheApplication() throws Exception {
		assertThat(applicationWith("model.dtype", "float16")).contains("kv-cache-dtype: \"auto\"");
		for (String dtype : List.of("float32", "float16")) {
			assertThat(applicationWith("model.kvCacheDtype", dtype)).contains("kv-cache-dtype: \"" + dtype + "\"");
		}
	}

	private String applicationWith(String key, String value) throws Exception {
		return only(parse(render(Map.of(key, value), null)), io.fabric8.kubernetes.api.model.ConfigMap.class).getData()
			.get("application.yaml");
	}

	@Test
	void theDefaultDensityRuleReachesTheApplication() throws Exception {
		String defaults = only(parse(render(Map.of(), null)), io.fabric8.kubernetes.api.model.ConfigMap.class).getData()
			.get("application.yaml");
		assertThat(defaults).contains("default-density: 0.75").contains("dense-below-prompt-tokens: 256");
		String set = only(parse(render(Map.of("griffin.denseBelowPromptTokens", "0"), null)),
				io.fabric8.kubernetes.api.model.ConfigMap.class)
			.getData()
			.get("application.yaml");
		assertThat(set).contains("dense-below-prompt-tokens: 0");
	}

	/**
	 * The chart's schema takes every method the server knows, and its default is the
	 * server's; an unknown one is refused at install.
	 */
	@Test
	void everySelectionMethodReachesTheApplication() throws Exception {
		String defaults = only(parse(render(Map.of(), null)), io.fabric8.kubernetes.api.model.ConfigMap.class).getData()
			.get("application.yaml");
		assertThat(defaults).contains("default-method: \"" + SelectionMethod.SERVER_DEFAULT + "\"");
		for (String method : SelectionMethod.wireNames()) {
			String set = only(parse(render(Map.of("griffin.defaultMethod", method), null)),
					io.fabric8.kubernetes.api.model.ConfigMap.class)
				.getData()
				.get("application.yaml");
			assertThat(set).as(method).contains("default-method: \"" + method + "\"");
		}
		assertThatThrownBy(() -> render(Map.of("griffin.defaultMethod", "best"), null))
			.hasMessageContaining("defaultMethod");
	}

	@Test
	void strictParsingRejectsUnknownFieldsAndWrongTypes() {
		assertThatThrownBy(() -> parse("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {portz: []}\n"))
			.hasMessageContaining("unknown fields");
		assertThatThrownBy(() -> parse("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: 5}\n"))
			.isInstanceOf(Exception.class);
	}

	@Test
	void plainManifestsMatchTheChartDefaults() throws Exception {
		List<HasMetadata> chart = parse(render(Map.of(), null));
		StringBuilder all = new StringBuilder();
		try (Stream<Path> files = Files.list(Path.of("k8s"))) {
			for (Path file : files.filter((f) -> f.toString().endsWith(".yaml")).sorted().toList()) {
				all.append(Files.readString(file)).append("\n---\n");
			}
		}
		List<HasMetadata> plain = parse(all.toString());
		Deployment a = only(chart, Deployment.class);
		Deployment b = only(plain, Deployment.class);
		Container ca = a.getSpec().getTemplate().getSpec().getContainers().get(0);
		Container cb = b.getSpec().getTemplate().getSpec().getContainers().get(0);
		assertThat(cb.getImage()).isEqualTo(ca.getImage());
		assertThat(cb.getPorts()).isEqualTo(ca.getPorts());
		assertThat(cb.getStartupProbe()).isEqualTo(ca.getStartupProbe());
		assertThat(cb.getReadinessProbe()).isEqualTo(ca.getReadinessProbe());
		assertThat(cb.getLivenessProbe()).isEqualTo(ca.getLivenessProbe());
		assertThat(cb.getResources()).isEqualTo(ca.getResources());
		assertThat(cb.getSecurityContext()).isEqualTo(ca.getSecurityContext());
		assertThat(cb.getVolumeMounts()).isEqualTo(ca.getVolumeMounts());
		assertThat(b.getSpec().getTemplate().getSpec().getSecurityContext())
			.isEqualTo(a.getSpec().getTemplate().getSpec().getSecurityContext());
		assertThat(only(plain, Service.class).getSpec().getPorts())
			.isEqualTo(only(chart, Service.class).getSpec().getPorts());
		assertThat(plain).extracting(HasMetadata::getKind)
			.containsAll(chart.stream().map(HasMetadata::getKind).toList());
		assertThat(KubernetesManifests.danglingReferences(plain, java.util.Set.of())).isEmpty();
		assertThat(only(plain, PodDisruptionBudget.class).getSpec().getMaxUnavailable())
			.isEqualTo(only(chart, PodDisruptionBudget.class).getSpec().getMaxUnavailable());
		assertThat(only(plain, PodDisruptionBudget.class).getSpec().getMinAvailable()).isNull();
	}

}
