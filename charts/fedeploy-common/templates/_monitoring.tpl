{{/* Monitoring: whether it renders, Prometheus' ingress, dashboards, the Pushgateway. */}}

{{/* "true" when the monitoring objects render: monitoring.enabled true, or auto where the
cluster serves the prometheus-operator's API (monitoring.coreos.com/v1); empty otherwise. */}}
{{- define "fedeploy-common.monitored" -}}
{{- $on := toString .Values.monitoring.enabled }}
{{- if or (eq $on "true") (and (eq $on "auto") (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1")) }}true{{ end }}
{{- end }}

{{/* An ingress rule admitting the monitoring namespace's Prometheus pods to one port, the
metrics port, and nothing else (rendered only while monitoring is on). */}}
{{- define "fedeploy-common.metricsIngress" -}}
{{- $m := .root.Values.monitoring }}
- ports:
    - protocol: TCP
      port: {{ .port }}
  from:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ $m.namespace }}
      {{- with $m.prometheusPodLabels }}
      podSelector:
        matchLabels:
          {{- toYaml . | nindent 10 }}
      {{- end }}
{{- end }}

{{/* A Grafana dashboard from a JSON file of the chart, as a JSON string: its title, a uid
stable for the release, and its constant variables `namespace` and `release` (what the panels'
queries select by) set to this release's. */}}
{{- define "fedeploy-common.dashboard" -}}
{{- $root := .root }}
{{- $board := $root.Files.Get .file | fromJson }}
{{- $fullname := include "fedeploy-common.fullname" $root }}
{{- $_ := set $board "title" .title }}
{{- $_ := set $board "uid" (printf "%s/%s/%s" $root.Release.Namespace $fullname .file | sha256sum | trunc 24 | printf "fedeploy-%s") }}
{{- $constants := dict "namespace" $root.Release.Namespace "release" $fullname }}
{{- range $board.templating.list }}
{{- if hasKey $constants .name }}
{{- $value := get $constants .name }}
{{- $_ := set . "query" $value }}
{{- $_ := set . "current" (dict "text" $value "value" $value) }}
{{- end }}
{{- end }}
{{- toJson $board }}
{{- end }}

{{/* Egress to the site's Pushgateway pods on its URL's port, for a batch run that pushes its
outcome (with monitoring.pushgateway.url). */}}
{{- define "fedeploy-common.pushgatewayEgress" -}}
{{- $p := .Values.monitoring.pushgateway }}
{{- if $p.url }}
{{- $url := urlParse $p.url }}
{{- $hostPort := splitList ":" $url.host }}
# The Pushgateway, where the run pushes its outcome when it ends.
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ default .Release.Namespace $p.namespace }}
      podSelector:
        matchLabels:
          {{- toYaml $p.podLabels | nindent 10 }}
  ports:
    - protocol: TCP
      port: {{ ternary (last $hostPort) (ternary "443" "80" (eq $url.scheme "https")) (gt (len $hostPort) 1) | int }}
{{- end }}
{{- end }}

{{/* The Pushgateway's URL for a batch run's container (with monitoring.pushgateway.url). */}}
{{- define "fedeploy-common.pushgatewayEnv" -}}
{{- with .Values.monitoring.pushgateway.url }}
- name: INGEST_PUSHGATEWAY_URL
  value: {{ . | quote }}
{{- end }}
{{- end }}
