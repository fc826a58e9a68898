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
      port: {{ include "fedeploy-common.urlPort" $p.url | int }}
{{- end }}
{{- end }}

{{/* The Pushgateway's URL for a batch run's container (with monitoring.pushgateway.url). */}}
{{- define "fedeploy-common.pushgatewayEnv" -}}
{{- with .Values.monitoring.pushgateway.url }}
- name: INGEST_PUSHGATEWAY_URL
  value: {{ . | quote }}
{{- end }}
{{- end }}

{{/* The PodMonitor of the site's Pushgateway for this chart's pushes (with
monitoring.pushgateway.url): `jobs`, the job names this chart's batch runs push under, and
`names`, a regex of the metric names they push (a push of any other name, such as a
kube-state-metrics series the backstop rules read, is dropped). It keeps
the pushers' labels (honorLabels), then keeps only the series of those jobs and this site and
stamps them fedeploy_pushgateway=<fullname>, a label no push can set (the stamp overwrites it):
a push naming another job (a scraped workload's, to mask its series) is dropped here, and the
rules on pushed series read only stamped ones. It stands in for any other scrape of the
Pushgateway (docs/charts.md, Monitoring). */}}
{{- define "fedeploy-common.pushgatewayMonitor" -}}
{{- $root := .root }}
{{- $m := $root.Values.monitoring }}
{{- $p := $m.pushgateway }}
{{- $fullname := include "fedeploy-common.fullname" $root }}
{{- $url := urlParse $p.url }}
apiVersion: monitoring.coreos.com/v1
kind: PodMonitor
metadata:
  name: {{ $fullname }}-pushgateway
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "fedeploy-common.labels" $root | nindent 4 }}
    {{- with $m.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- toYaml $p.podLabels | nindent 6 }}
  namespaceSelector:
    matchNames: [{{ default $root.Release.Namespace $p.namespace }}]
  podMetricsEndpoints:
    - targetPort: {{ include "fedeploy-common.urlPort" $p.url | int }}
      path: {{ trimSuffix "/" $url.path }}/metrics
      scheme: {{ $url.scheme }}
      interval: {{ $m.scrapeInterval }}
      honorLabels: true
      metricRelabelings:
        # Only this chart's pushers' series, only the metrics they push, and only this site's.
        - sourceLabels: [__name__]
          regex: {{ .names | quote }}
          action: keep
        - sourceLabels: [job]
          regex: {{ join "|" .jobs | quote }}
          action: keep
        - sourceLabels: [site]
          regex: {{ $root.Values.site.name | quote }}
          action: keep
        - targetLabel: fedeploy_pushgateway
          replacement: {{ $fullname }}
          action: replace
{{- end }}

{{/* The label selector a rule on pushed series adds: only what this chart's Pushgateway
monitor scraped and stamped (fedeploy-common.pushgatewayMonitor). */}}
{{- define "fedeploy-common.pushed" -}}
fedeploy_pushgateway="{{ include "fedeploy-common.fullname" . }}"
{{- end }}
