{{- define "griffin-serve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "griffin-serve.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "griffin-serve.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "griffin-serve.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "griffin-serve.selectorLabels" -}}
app.kubernetes.io/name: {{ include "griffin-serve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "griffin-serve.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "griffin-serve.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "griffin-serve.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "griffin-serve.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The pod's memory in MiB: the JVM heap and direct buffers, the rest of the process, and on
CPU nodes the model's weights, the expert cache and every running sequence at the longest
context (on GPU nodes those live in GPU memory). The service reckons the same parts with
the model's real sizes at start and refuses a limit they exceed.
*/}}
{{- define "griffin-serve.memoryMi" -}}
{{- $m := .Values.memory -}}
{{- $host := add $m.heapMi $m.directMi $m.overheadMi -}}
{{- if .Values.gpu.enabled -}}
{{- $host -}}
{{- else -}}
{{- $arena := 0 -}}
{{- if gt (int .Values.griffin.workers) 1 -}}
{{- $arena = mul .Values.griffin.workers $m.kvArenaMi -}}
{{- end -}}
{{- add $host $m.weightsMi .Values.griffin.cacheMaxSizeMi (mul .Values.griffin.workers $m.perSequenceMi) $arena -}}
{{- end -}}
{{- end }}
