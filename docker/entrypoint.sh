#!/bin/sh
# Container entrypoint: the JVM sizes itself from the container's memory (JAVA_TOOL_OPTIONS), writes
# only under /tmp (DJL's native cache, the JVM's temp files), and serves the model from /models
# unless GRIFFIN_MODEL_PATH or GRIFFIN_MODEL_SOURCE (hf://org/name) says otherwise.
set -eu
mkdir -p "${DJL_CACHE_DIR:-/tmp/djl}"
exec java -Dai.djl.offline="${DJL_OFFLINE:-true}" -DDJL_CACHE_DIR="${DJL_CACHE_DIR:-/tmp/djl}" \
    -jar "${GRIFFIN_JAR:-/app/griffin-serve.jar}" serve "$@"
