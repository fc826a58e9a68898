{{/* Names, labels and the pieces every catalog workload shares. */}}

{{- define "catalog.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped name; the release name alone when it already contains the chart name. */}}
{{- define "catalog.fullname" -}}
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

{{- define "catalog.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "catalog.labels" -}}
helm.sh/chart: {{ include "catalog.chart" . }}
{{ include "catalog.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fedeploy
fedeploy.io/site: {{ .Values.site.name | quote }}
fedeploy.io/site-kind: {{ .Values.site.kind | quote }}
{{- end }}

{{/* Selector labels never change across upgrades: a Deployment's selector is immutable. */}}
{{- define "catalog.selectorLabels" -}}
app.kubernetes.io/name: {{ include "catalog.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "catalog.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "catalog.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* "repository:tag" from an image block; an empty tag falls back to the given default. */}}
{{- define "catalog.imageRef" -}}
{{- $ref := printf "%s:%s" .image.repository (default .default .image.tag) }}
{{- with .image.digest }}{{ $ref = printf "%s@%s" $ref . }}{{ end }}
{{- $ref }}
{{- end }}

{{/* checkov's skip annotations of a workload, each "CHECK_ID=reason": the image waivers while one of
`images` has no digest, then `skips`. Every waiver is listed in docs/charts.md. */}}
{{- define "catalog.checkovSkips" -}}
{{- $skips := list }}
{{- $undigested := false }}
{{- range .images }}
{{- if not .digest }}{{ $undigested = true }}{{ end }}
{{- end }}
{{- if $undigested }}
{{- $skips = append $skips "CKV_K8S_43=no image.digest given to this release yet; fedeploy plan reports it as the advisory image-digest" }}
{{- $skips = append $skips "CKV_K8S_15=IfNotPresent on a tag until image.digest pins the image; digest-pinned images pass this check" }}
{{- end }}
{{- $skips = concat $skips (default list .skips) }}
{{- range $i, $skip := $skips }}
checkov.io/skip{{ add1 $i }}: {{ $skip | quote }}
{{- end }}
{{- end }}

{{- define "catalog.dbHost" -}}
{{- if eq .Values.database.mode "internal" }}
{{- printf "%s-db" (include "catalog.fullname" .) }}
{{- else }}
{{- .Values.database.host }}
{{- end }}
{{- end }}

{{- define "catalog.dbSecretName" -}}
{{- default (printf "%s-db" (include "catalog.fullname" .)) .Values.database.existingSecret }}
{{- end }}

{{/* The in-cluster database has no TLS; an external one must use it unless told otherwise. */}}
{{- define "catalog.dbSslMode" -}}
{{- if .Values.database.sslMode }}
{{- .Values.database.sslMode }}
{{- else if eq .Values.database.mode "internal" }}
{{- "disable" }}
{{- else }}
{{- "require" }}
{{- end }}
{{- end }}

{{- define "catalog.apiURL" -}}
{{- printf "http://%s.%s.svc.%s:%d" (include "catalog.fullname" .) .Release.Namespace .Values.clusterDomain (int .Values.service.port) }}
{{- end }}

{{/* libpq-style connection settings, read by stac-fastapi-pgstac, pypgstac and psql alike. */}}
{{- define "catalog.pgEnv" -}}
- name: PGHOST
  value: {{ include "catalog.dbHost" . | quote }}
- name: PGPORT
  value: {{ .Values.database.port | quote }}
- name: PGDATABASE
  value: {{ .Values.database.name | quote }}
- name: PGSSLMODE
  value: {{ include "catalog.dbSslMode" . | quote }}
{{- if and (eq .Values.database.mode "external") .Values.database.caCertificate }}
- name: PGSSLROOTCERT
  value: /etc/fedeploy/database/ca.crt
{{- end }}
- name: PGUSER
  valueFrom:
    secretKeyRef:
      name: {{ include "catalog.dbSecretName" . }}
      key: username
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "catalog.dbSecretName" . }}
      key: password
{{- end }}

{{/* Egress to the cluster DNS, which every pod that resolves a Service name needs. */}}
{{- define "catalog.dnsEgress" -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ .Values.networkPolicy.dns.namespace }}
      podSelector:
        matchLabels:
          {{- toYaml .Values.networkPolicy.dns.podLabels | nindent 10 }}
  ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
{{- end }}

{{/* Writable scratch space: every root filesystem is read-only. */}}
{{/* The CA that signed the external database's certificate (sslmode verify-full checks it). */}}
{{- define "catalog.dbCaMount" -}}
{{- if and (eq .Values.database.mode "external") .Values.database.caCertificate }}
- name: database-ca
  mountPath: /etc/fedeploy/database
  readOnly: true
{{- end }}
{{- end }}

{{- define "catalog.dbCaVolume" -}}
{{- if and (eq .Values.database.mode "external") .Values.database.caCertificate }}
- name: database-ca
  configMap:
    name: {{ include "catalog.fullname" . }}-database-ca
{{- end }}
{{- end }}

{{- define "catalog.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}

{{/* Egress to the database: the in-release pod, or the external server's CIDRs. */}}
{{- define "catalog.databaseEgress" -}}
{{- if eq .Values.database.mode "internal" -}}
- to:
    - podSelector:
        matchLabels:
          {{- include "catalog.selectorLabels" . | nindent 10 }}
          app.kubernetes.io/component: database
  ports:
    - protocol: TCP
      port: 5432
{{- else -}}
- to:
    {{- range .Values.networkPolicy.databaseCIDRs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    - protocol: TCP
      port: {{ .Values.database.port }}
{{- end }}
{{- end }}

{{/* "true" when the monitoring objects render: monitoring.enabled true, or auto where the
cluster serves the prometheus-operator's API (monitoring.coreos.com/v1); empty otherwise. */}}
{{- define "catalog.monitored" -}}
{{- $on := toString .Values.monitoring.enabled }}
{{- if or (eq $on "true") (and (eq $on "auto") (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1")) }}true{{ end }}
{{- end }}

{{/* An ingress rule admitting the monitoring namespace's Prometheus pods to one port, the
metrics port, and nothing else (rendered only while monitoring is on). */}}
{{- define "catalog.metricsIngress" -}}
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
{{- define "catalog.dashboard" -}}
{{- $root := .root }}
{{- $board := $root.Files.Get .file | fromJson }}
{{- $fullname := include "catalog.fullname" $root }}
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
{{- define "catalog.pushgatewayEgress" -}}
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
{{- define "catalog.pushgatewayEnv" -}}
{{- with .Values.monitoring.pushgateway.url }}
- name: INGEST_PUSHGATEWAY_URL
  value: {{ . | quote }}
{{- end }}
{{- end }}

{{/* PostgreSQL's archive_command with backups on: each finished WAL segment copied into the
spool by rename, so the sidecar never uploads half a file; a retry overwrites the same bytes. */}}
{{- define "catalog.archiveCommand" -}}
cp %p /var/lib/postgresql/wal-spool/%f.part && mv -f /var/lib/postgresql/wal-spool/%f.part /var/lib/postgresql/wal-spool/%f
{{- end }}
