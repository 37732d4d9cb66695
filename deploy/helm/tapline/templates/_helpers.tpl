{{/* The chart name, possibly overridden. */}}
{{- define "tapline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object names: the release name, plus the chart name when the release name lacks it. */}}
{{- define "tapline.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "tapline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tapline.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tapline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tapline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tapline.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "tapline.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/*
The tapline configuration (config.yaml), built from the values as a dict and written with
toYaml, so that every value is quoted correctly. extraConfig is deep-merged over it last.
*/}}
{{- define "tapline.config" -}}
{{- $v := .Values -}}
{{- $receivers := dict -}}
{{- $processors := dict -}}
{{- $exporters := dict -}}
{{- $pipelines := dict -}}
{{- $metricsExporters := list -}}
{{- $tracesExporters := list -}}
{{- if $v.exporters.prometheus.enabled -}}
{{- $prom := merge (dict "endpoint" (printf "0.0.0.0:%d" (int $v.ports.metrics))) (deepCopy ($v.exporters.prometheus.config | default dict)) -}}
{{- $_ := set $exporters "prometheus" $prom -}}
{{- $metricsExporters = append $metricsExporters "prometheus" -}}
{{- end -}}
{{- if $v.exporters.otlp.enabled -}}
{{- $endpoint := required "exporters.otlp.endpoint is required when the otlp exporter is enabled" $v.exporters.otlp.endpoint -}}
{{- $otlp := merge (dict "protocol" $v.exporters.otlp.protocol "endpoint" (printf "${env:OTEL_EXPORTER_OTLP_ENDPOINT:-%s}" $endpoint)) (deepCopy ($v.exporters.otlp.config | default dict)) -}}
{{- $_ := set $exporters "otlp" $otlp -}}
{{- range $v.exporters.otlp.signals -}}
{{- if eq . "metrics" -}}
{{- $metricsExporters = append $metricsExporters "otlp" -}}
{{- else if eq . "traces" -}}
{{- $tracesExporters = append $tracesExporters "otlp" -}}
{{- else -}}
{{- fail (printf "exporters.otlp.signals: %q is neither metrics nor traces" .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if not $metricsExporters -}}
{{- fail "no exporter for metrics: enable exporters.prometheus or add metrics to exporters.otlp.signals" -}}
{{- end -}}
{{- $_ := set $processors "k8s" (deepCopy ($v.processors.k8s | default dict)) -}}
{{- $_ := set $processors "select" (deepCopy ($v.processors.select | default dict)) -}}
{{- if $v.receivers.flows.enabled -}}
{{- $_ := set $receivers "flows" (deepCopy ($v.receivers.flows.config | default dict)) -}}
{{- $_ := set $processors "zones" (deepCopy ($v.processors.zones | default dict)) -}}
{{- $_ := set $processors "cidr" (deepCopy ($v.processors.cidr | default dict)) -}}
{{- $_ := set $pipelines "metrics/network" (dict "receivers" (list "flows") "processors" (list "k8s" "zones" "cidr" "select") "exporters" $metricsExporters) -}}
{{- end -}}
{{- if $v.receivers.app.enabled -}}
{{- $_ := set $receivers "app" (deepCopy ($v.receivers.app.config | default dict)) -}}
{{- $_ := set $pipelines "metrics/app" (dict "receivers" (list "app") "processors" (list "k8s" "select") "exporters" $metricsExporters) -}}
{{- if $tracesExporters -}}
{{- $_ := set $pipelines "traces" (dict "receivers" (list "app") "processors" (list "k8s") "exporters" $tracesExporters) -}}
{{- end -}}
{{- end -}}
{{- if not $receivers -}}
{{- fail "no receiver: enable receivers.flows or receivers.app" -}}
{{- end -}}
{{- $telemetry := dict "metrics" (dict "endpoint" (printf "0.0.0.0:%d" (int $v.ports.telemetry))) "logs" (dict "level" $v.logs.level "format" $v.logs.format) -}}
{{- $service := dict "pipelines" $pipelines "telemetry" $telemetry "shutdown_timeout" "10s" -}}
{{- $config := dict "receivers" $receivers "processors" $processors "exporters" $exporters "service" $service -}}
{{- $config = mergeOverwrite $config (deepCopy ($v.extraConfig | default dict)) -}}
{{- toYaml $config -}}
{{- end -}}
