{{/* Chart name, truncated to 63 characters (DNS label). */}}
{{- define "llm-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified release name. */}}
{{- define "llm-gateway.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "llm-gateway.gatewayName" -}}{{ include "llm-gateway.fullname" . | trunc 55 | trimSuffix "-" }}-gateway{{- end }}
{{- define "llm-gateway.workerName" -}}{{ include "llm-gateway.fullname" . | trunc 56 | trimSuffix "-" }}-worker{{- end }}
{{- define "llm-gateway.workerHeadless" -}}{{ include "llm-gateway.fullname" . | trunc 47 | trimSuffix "-" }}-worker-headless{{- end }}
{{- define "llm-gateway.kubernetesDiscovery" -}}{{ and (eq .Values.workers.mode "statefulset") (eq (.Values.workers.discovery | default "dns") "kubernetes") }}{{- end }}
{{- define "llm-gateway.redisName" -}}{{ include "llm-gateway.fullname" . | trunc 57 | trimSuffix "-" }}-redis{{- end }}

{{- define "llm-gateway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "llm-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component (gateway | worker | redis): pass (dict "ctx" . "component" "gateway"). */}}
{{- define "llm-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llm-gateway.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "llm-gateway.image" -}}
{{- $img := .image -}}
{{- $tag := $img.tag | default .ctx.Chart.AppVersion -}}
{{- if $img.registry }}{{ printf "%s/%s:%s" $img.registry $img.repository $tag }}{{ else }}{{ printf "%s:%s" $img.repository $tag }}{{ end }}
{{- end }}

{{/* Seconds -> .NET TimeSpan text (hh:mm:ss). */}}
{{- define "llm-gateway.timespan" -}}
{{- $s := int . -}}
{{- printf "%02d:%02d:%02d" (div $s 3600) (mod (div $s 60) 60) (mod $s 60) -}}
{{- end }}

{{/* The Redis connection spec given to the gateway (host:port[,password=..]); empty when Redis is off. */}}
{{- define "llm-gateway.redisAddress" -}}
{{- if eq .Values.redis.mode "bundled" }}{{ include "llm-gateway.redisName" . }}:{{ .Values.redis.bundled.port }}
{{- else if eq .Values.redis.mode "external" }}{{ .Values.redis.external.address }}
{{- end }}
{{- end }}

{{/* Guards that fail the render with an operator-readable message. */}}
{{- define "llm-gateway.validate" -}}
{{- $multi := or (gt (int .Values.gateway.replicas) 1) (and .Values.gateway.autoscaling.enabled (gt (int .Values.gateway.autoscaling.maxReplicas) 1)) -}}
{{- if and $multi (eq .Values.redis.mode "none") }}
{{- fail "gateway.replicas > 1 (or autoscaling) needs shared state: set redis.mode to bundled or external (tenant counters, session bindings and in-flight load live in Redis)" }}
{{- end }}
{{- $g := .Values.gateway -}}
{{- if le (int $g.terminationGracePeriodSeconds) (add (int $g.preStopSleepSeconds) (int $g.drainTimeoutSeconds)) }}
{{- fail (printf "gateway.terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds + drainTimeoutSeconds (%d): Kubernetes would kill streams mid-drain" (int $g.terminationGracePeriodSeconds) (add (int $g.preStopSleepSeconds) (int $g.drainTimeoutSeconds))) }}
{{- end }}
{{- $w := .Values.workers -}}
{{- if le (int $w.terminationGracePeriodSeconds) (add (int $w.preStopSleepSeconds) (int $w.drainTimeoutSeconds)) }}
{{- fail (printf "workers.terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds + drainTimeoutSeconds (%d): Kubernetes would kill streams mid-drain" (int $w.terminationGracePeriodSeconds) (add (int $w.preStopSleepSeconds) (int $w.drainTimeoutSeconds))) }}
{{- end }}
{{- if and (eq (.Values.workers.discovery | default "dns") "kubernetes") (ne .Values.workers.mode "statefulset") }}
{{- fail "workers.discovery=kubernetes watches the chart's worker Service: it needs workers.mode=statefulset" }}
{{- end }}
{{- if and (eq .Values.workers.mode "external") (eq (len .Values.workers.external.urls) 0) }}
{{- fail "workers.mode=external needs workers.external.urls" }}
{{- end }}
{{- if and (eq .Values.redis.mode "external") (not .Values.redis.external.address) (not .Values.redis.external.existingSecret) }}
{{- fail "redis.mode=external needs redis.external.address or redis.external.existingSecret" }}
{{- end }}
{{- if and (not .Values.auth.existingSecret) (not .Values.auth.serverSecret) (gt (len .Values.auth.keys) 0) }}
{{- fail "auth.keys are HMAC digests under auth.serverSecret: set auth.serverSecret (or auth.existingSecret)" }}
{{- end }}
{{- end }}

{{/*
The gateway configuration file (mounted as GATEWAY_CONFIG). Keys follow src/Gateway/Configuration/GatewayOptions.cs
(section Gateway). Key digests and the server secret are NOT here: they come from the Secret as environment variables.
*/}}
{{- define "llm-gateway.gatewayConfig" -}}
{{- $workers := dict "Mode" "Dns" -}}
{{- if eq (include "llm-gateway.kubernetesDiscovery" .) "true" }}
{{- $_ := set $workers "Mode" "Kubernetes" }}
{{- $_ := set $workers "Kubernetes" (dict "Service" (include "llm-gateway.workerHeadless" .) "Namespace" .Release.Namespace "PortName" "http" "Port" (int .Values.workers.port) "Scheme" "http") }}
{{- else if eq .Values.workers.mode "statefulset" }}
{{- $host := printf "%s.%s.svc.%s" (include "llm-gateway.workerHeadless" .) .Release.Namespace .Values.clusterDomain }}
{{- $_ := set $workers "Dns" (dict "Host" $host "Port" (int .Values.workers.port) "Scheme" "http" "RefreshInterval" (include "llm-gateway.timespan" .Values.workers.dnsRefreshSeconds)) }}
{{- else }}
{{- $_ := set $workers "Mode" "Static" }}
{{- $_ := set $workers "Urls" .Values.workers.external.urls }}
{{- end }}
{{- $keys := list }}
{{- range .Values.auth.keys }}
{{- $k := dict "Tenant" .tenant "Weight" (.weight | default 1) }}
{{- if .models }}{{ $_ := set $k "Models" .models }}{{ end }}
{{- if .maxTokens }}{{ $_ := set $k "MaxTokens" (int .maxTokens) }}{{ end }}
{{- if .maxN }}{{ $_ := set $k "MaxN" (int .maxN) }}{{ end }}
{{- $keys = append $keys $k }}
{{- end }}
{{- $gw := dict
  "Listen" (printf "http://0.0.0.0:%d" (int .Values.gateway.port))
  "Workers" $workers
  "Routing" (dict "Policy" .Values.config.routing.policy "Seed" (int .Values.config.routing.seed) "BlockSize" (int .Values.config.routing.blockSize))
  "Agents" (dict "Mode" (.Values.config.agents.mode | default "shadow") "Policy" (.Values.config.agents.policy | default "predictive"))
  "Resilience" (dict "MaxAttempts" (int .Values.config.resilience.maxAttempts) "RetryAfterSeconds" (int .Values.config.resilience.retryAfterSeconds))
  "Scheduling" (dict "Policy" .Values.config.scheduling.policy "MaxInFlightPerWorker" (int .Values.config.scheduling.maxInFlightPerWorker) "LocalityLagBound" .Values.config.scheduling.localityLagBound "ReservedSlots" (int .Values.config.scheduling.reservedSlots) "DefaultQueueTimeout" (include "llm-gateway.timespan" .Values.config.scheduling.queueTimeoutSeconds) "Tenants" (.Values.config.scheduling.tenants | default list))
  "Auth" (dict "Keys" $keys "DemoKey" (dict "Enabled" .Values.auth.demoKey.enabled))
  "Shutdown" (dict "DrainTimeout" (include "llm-gateway.timespan" .Values.gateway.drainTimeoutSeconds))
  "Telemetry" (dict "Tracing" (dict "Enabled" .Values.telemetry.tracing.enabled "OtlpEndpoint" .Values.telemetry.tracing.otlpEndpoint "OtlpProtocol" .Values.telemetry.tracing.otlpProtocol "SampleRatio" .Values.telemetry.tracing.sampleRatio "ServiceName" .Values.telemetry.tracing.serviceName) "Metrics" (dict "TenantLabelDepth" (int .Values.telemetry.metrics.tenantLabelDepth) "MaxTenantLabels" (int .Values.telemetry.metrics.maxTenantLabels)))
-}}
{{- $gw = mergeOverwrite $gw (deepCopy (.Values.config.extra | default dict)) -}}
{{- toYaml (dict "Gateway" $gw) }}
{{- end }}
