package dev.griffin.serve.deploy;

import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.Collection;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.PersistentVolumeClaim;
import io.fabric8.kubernetes.api.model.Secret;
import io.fabric8.kubernetes.api.model.Service;
import io.fabric8.kubernetes.api.model.ServiceAccount;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import io.fabric8.kubernetes.api.model.autoscaling.v2.HorizontalPodAutoscaler;
import io.fabric8.kubernetes.api.model.networking.v1.Ingress;
import io.fabric8.kubernetes.api.model.policy.v1.PodDisruptionBudget;

/**
 * Parses Kubernetes YAML strictly into the fabric8 API model: an unknown kind, an unknown
 * field anywhere (which fabric8 would otherwise keep in additionalProperties) or a wrong
 * type fails.
 */
final class KubernetesManifests {

	private static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory())
		.enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES);

	private static final Map<String, Class<? extends HasMetadata>> KINDS = Map.ofEntries(
			Map.entry("networking.k8s.io/v1/NetworkPolicy",
					io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicy.class),
			Map.entry("v1/ConfigMap", ConfigMap.class), Map.entry("v1/Service", Service.class),
			Map.entry("v1/ServiceAccount", ServiceAccount.class), Map.entry("v1/Secret", Secret.class),
			Map.entry("v1/PersistentVolumeClaim", PersistentVolumeClaim.class),
			Map.entry("apps/v1/Deployment", Deployment.class),
			Map.entry("autoscaling/v2/HorizontalPodAutoscaler", HorizontalPodAutoscaler.class),
			Map.entry("policy/v1/PodDisruptionBudget", PodDisruptionBudget.class),
			Map.entry("networking.k8s.io/v1/Ingress", Ingress.class));

	/**
	 * Names the Deployment refers to that are missing from the rendered set: its service
	 * account, config maps and claims, and the Services an Ingress routes to. Secrets are
	 * the operator's inputs (API keys, Hub token) and are listed by {@code external}.
	 */
	static List<String> danglingReferences(List<HasMetadata> objects, java.util.Set<String> externalSecrets) {
		java.util.Set<String> defined = new java.util.HashSet<>();
		for (HasMetadata object : objects) {
			defined.add(object.getKind() + "/" + object.getMetadata().getName());
		}
		List<String> references = new java.util.ArrayList<>();
		for (HasMetadata object : objects) {
			if (object instanceof Deployment deployment) {
				var pod = deployment.getSpec().getTemplate().getSpec();
				String account = pod.getServiceAccountName();
				references.add("ServiceAccount/" + ((account != null) ? account : "default"));
				for (var volume : pod.getVolumes()) {
					if (volume.getConfigMap() != null) {
						references.add("ConfigMap/" + volume.getConfigMap().getName());
					}
					if (volume.getPersistentVolumeClaim() != null) {
						references.add("PersistentVolumeClaim/" + volume.getPersistentVolumeClaim().getClaimName());
					}
					if (volume.getSecret() != null) {
						references.add("Secret/" + volume.getSecret().getSecretName());
					}
				}
				var containers = new java.util.ArrayList<>(pod.getContainers());
				if (pod.getInitContainers() != null) {
					containers.addAll(pod.getInitContainers());
				}
				for (var container : containers) {
					for (var env : (container.getEnv() != null) ? container.getEnv()
							: List.<io.fabric8.kubernetes.api.model.EnvVar>of()) {
						if (env.getValueFrom() != null && env.getValueFrom().getSecretKeyRef() != null) {
							references.add("Secret/" + env.getValueFrom().getSecretKeyRef().getName());
						}
						if (env.getValueFrom() != null && env.getValueFrom().getConfigMapKeyRef() != null) {
							references.add("ConfigMap/" + env.getValueFrom().getConfigMapKeyRef().getName());
						}
					}
				}
			}
			if (object instanceof Ingress ingress) {
				for (var rule : ingress.getSpec().getRules()) {
					for (var path : rule.getHttp().getPaths()) {
						references.add("Service/" + path.getBackend().getService().getName());
					}
				}
			}
		}
		return references.stream()
			.filter((reference) -> !defined.contains(reference))
			.filter((reference) -> !(reference.startsWith("Secret/")
					&& externalSecrets.contains(reference.substring("Secret/".length()))))
			.distinct()
			.toList();
	}

	private KubernetesManifests() {
	}

	/**
	 * The custom resources this project renders, checked by shape rather than by a Java
	 * model.
	 */
	static boolean isServiceMonitor(JsonNode node) {
		return "monitoring.coreos.com/v1".equals(node.path("apiVersion").asText())
				&& "ServiceMonitor".equals(node.path("kind").asText());
	}

	static List<JsonNode> documents(String yaml) throws java.io.IOException {
		List<JsonNode> documents = new ArrayList<>();
		for (JsonNode node : YAML.readerFor(JsonNode.class).<JsonNode>readValues(yaml).readAll()) {
			if (node != null && !node.isNull() && !node.isEmpty()) {
				documents.add(node);
			}
		}
		return documents;
	}

	static List<HasMetadata> parse(String yaml) throws Exception {
		List<HasMetadata> objects = new ArrayList<>();
		for (JsonNode node : documents(yaml)) {
			if (isServiceMonitor(node)) {
				if (!node.path("spec").path("endpoints").isArray() || !node.path("spec").path("selector").isObject()) {
					throw new IllegalArgumentException(
							"ServiceMonitor without spec.selector and spec.endpoints: " + node);
				}
				continue;
			}
			String key = node.path("apiVersion").asText() + "/" + node.path("kind").asText();
			Class<? extends HasMetadata> type = KINDS.get(key);
			if (type == null) {
				throw new IllegalArgumentException("unexpected kind " + key);
			}
			HasMetadata object = YAML.treeToValue(node, type);
			List<String> unknown = new ArrayList<>();
			unknownFields(object, type.getSimpleName(), unknown, new IdentityHashMap<>());
			if (!unknown.isEmpty()) {
				throw new IllegalArgumentException(
						key + " " + object.getMetadata().getName() + " has unknown fields " + unknown);
			}
			objects.add(object);
		}
		return objects;
	}

	/** Every non-empty additionalProperties map in the object graph, by path. */
	private static void unknownFields(Object object, String path, List<String> unknown, Map<Object, Boolean> seen)
			throws Exception {
		if (object == null || seen.put(object, true) != null) {
			return;
		}
		if (object instanceof Collection<?> collection) {
			int i = 0;
			for (Object item : collection) {
				unknownFields(item, path + "[" + i++ + "]", unknown, seen);
			}
			return;
		}
		if (object instanceof Map<?, ?> map) {
			for (Map.Entry<?, ?> entry : map.entrySet()) {
				unknownFields(entry.getValue(), path + "." + entry.getKey(), unknown, seen);
			}
			return;
		}
		if (!object.getClass().getName().startsWith("io.fabric8.")) {
			return;
		}
		for (Method method : object.getClass().getMethods()) {
			if (method.getParameterCount() != 0 || !method.getName().startsWith("get")
					|| method.getDeclaringClass() == Object.class) {
				continue;
			}
			Object value = method.invoke(object);
			if (method.getName().equals("getAdditionalProperties")) {
				if (value instanceof Map<?, ?> map && !map.isEmpty()) {
					unknown.add(path + " " + map.keySet());
				}
				continue;
			}
			unknownFields(value, path + "." + method.getName().substring(3), unknown, seen);
		}
	}

	@SuppressWarnings("unchecked")
	static <T extends HasMetadata> T only(List<HasMetadata> objects, Class<T> type) {
		List<T> matches = objects.stream().filter(type::isInstance).map((o) -> (T) o).toList();
		if (matches.size() != 1) {
			throw new IllegalArgumentException("expected one " + type.getSimpleName() + ", found " + matches.size());
		}
		return matches.get(0);
	}

}
