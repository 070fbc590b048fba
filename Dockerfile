# syntax=docker/dockerfile:1
# griffin-serve image: multi-stage, Maven build, JRE runtime, non-root, default model baked in.
#
#   docker build -t griffin-serve .                                   # CPU (libtorch from Maven Central)
#   docker build -t griffin-serve:cuda --build-arg FLAVOR=cuda .      # GPU nodes (CUDA libtorch)
#
# FLAVOR=cuda fetches DJL's CUDA 12.8 build of libtorch 2.7.1 at build time, since Maven Central does
# not carry it; the runtime then needs the NVIDIA container runtime and --griffin.model.device=gpu.

ARG FLAVOR=cpu

FROM maven:3.9-eclipse-temurin-17 AS build
# the build compiles the native products (src/main/native) with the C compiler
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pom.xml .
RUN mvn -B -q dependency:go-offline
COPY src src
RUN mvn -B -q package -DskipTests && cp target/griffin-serve-*.jar /griffin-serve.jar

FROM python:3.12-slim AS model
WORKDIR /src
COPY scripts/fetch-model scripts/fetch-model
RUN GRIFFIN_MODEL_DIR=/models scripts/fetch-model

FROM eclipse-temurin:17-jre AS runtime-cpu

FROM eclipse-temurin:17-jre AS runtime-cuda
ARG LIBTORCH_URL=https://publish.djl.ai/pytorch/2.7.1/cu128/linux-x86_64
ENV PYTORCH_LIBRARY_PATH=/opt/libtorch/lib PYTORCH_FLAVOR=cu128 PYTORCH_VERSION=2.7.1
# Every downloaded file must match docker/libtorch-cu128.sha256 (sha256sum format, one line per
# file in files.txt); a file without a line, or a mismatch, fails the build.
COPY docker/libtorch-cu128.sha256 /tmp/libtorch.sha256
RUN apt-get update && apt-get install -y --no-install-recommends curl unzip && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /tmp/libtorch && curl -fsSL "$LIBTORCH_URL/files.txt" -o /tmp/files.txt \
    && for f in $(cat /tmp/files.txt); do curl -fsSL "$LIBTORCH_URL/$f" -o "/tmp/libtorch/$(basename "$f")" \
       && grep -q "  $(basename "$f")\$" /tmp/libtorch.sha256 \
       || { echo "no checksum for $f in docker/libtorch-cu128.sha256" >&2; exit 1; }; done \
    && (cd /tmp/libtorch && grep -v '^#' /tmp/libtorch.sha256 | sha256sum --check --strict) \
    && mkdir -p /opt/libtorch/lib && for f in /tmp/libtorch/*.gz; do gunzip -c "$f" > "/opt/libtorch/lib/$(basename "$f" .gz)"; done \
    && rm -rf /tmp/libtorch /tmp/files.txt

FROM runtime-${FLAVOR}
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin griffin
WORKDIR /app
COPY --from=build /griffin-serve.jar /app/griffin-serve.jar
COPY --from=model /models /models
COPY docker/entrypoint.sh /app/entrypoint.sh
# JAVA_TOOL_OPTIONS: the heap and direct memory of the chart's memory budget (values: memory); the
# service checks the whole budget against the container's limit at start (docker run -m 6g fits the
# defaults). MALLOC_ARENA_MAX: libtorch and the JVM allocate native memory from many threads; few arenas keep
# freed memory reusable instead of fragmenting across per-thread arenas.
ENV GRIFFIN_MODEL_DIR=/models \
    MALLOC_ARENA_MAX=2 \
    DJL_CACHE_DIR=/tmp/djl \
    HF_HOME=/tmp/huggingface \
    JAVA_TOOL_OPTIONS="-Xmx1024m -XX:MaxDirectMemorySize=256m -XX:+ExitOnOutOfMemoryError -Djava.io.tmpdir=/tmp"
USER 10001
EXPOSE 8080
# Readiness over bash's /dev/tcp: the JRE image has no curl, and a JVM per check would be heavy.
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /actuator/health/readiness HTTP/1.0\\r\\n\\r\\n' >&3 && head -1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/app/entrypoint.sh"]
