package dev.griffin.serve.deploy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
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
		assertThat(only(objects, PodDisruptionBudget.class).getSpec().getMinAvailable().getIntVal()).isEqualTo(1);
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
		assertThatThrownBy(() -> render(Map.of("model.dtype", "int4"), null)).hasMessageContaining("dtype");
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
	}

}
