{{/* Names, labels and the pieces every ingestion workload shares. */}}

{{- define "ingestion.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped name; the release name alone when it already contains the chart name. */}}
{{- define "ingestion.fullname" -}}
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

{{- define "ingestion.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ingestion.labels" -}}
helm.sh/chart: {{ include "ingestion.chart" . }}
{{ include "ingestion.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fedeploy
fedeploy.io/site: {{ .Values.site.name | quote }}
fedeploy.io/site-kind: {{ .Values.site.kind | quote }}
{{- end }}

{{/* Selector labels never change across upgrades: a Deployment's selector is immutable. */}}
{{- define "ingestion.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ingestion.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ingestion.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ingestion.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* "repository:tag" from an image block; an empty tag falls back to the given default. */}}
{{- define "ingestion.imageRef" -}}
{{- $ref := printf "%s:%s" .image.repository (default .default .image.tag) }}
{{- with .image.digest }}{{ $ref = printf "%s@%s" $ref . }}{{ end }}
{{- $ref }}
{{- end }}

{{/* checkov's skip annotations of a workload, each "CHECK_ID=reason": the image waivers while one of
`images` has no digest, then `skips`. Every waiver is listed in docs/charts.md. */}}
{{- define "ingestion.checkovSkips" -}}
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


{{/* Port a URL names, or its scheme's default (443 for https, 80 for http). */}}
{{- define "ingestion.urlPort" -}}
{{- $url := urlParse . }}
{{- $hostPort := splitList ":" $url.host }}
{{- if gt (len $hostPort) 1 }}{{ last $hostPort }}{{ else if eq $url.scheme "http" }}80{{ else }}443{{ end }}
{{- end }}

{{/* ipBlock peers for `cidrs`; a whole-internet block (0.0.0.0/0, ::/0) leaves out the ranges of its family in `except`. */}}
{{- define "ingestion.ipBlocks" -}}
{{- $except := .except }}
{{- range .cidrs }}
{{- $cidr := . }}
{{- $v6 := contains ":" $cidr }}
{{- $out := list }}
{{- if or (eq $cidr "0.0.0.0/0") (eq $cidr "::/0") }}
{{- range $except }}
{{- if eq (contains ":" .) $v6 }}
{{- $out = append $out . }}
{{- end }}
{{- end }}
{{- end }}
- ipBlock:
    cidr: {{ $cidr }}
    {{- with (uniq $out) }}
    except:
      {{- toYaml . | nindent 6 }}
    {{- end }}
{{- end }}
{{- end }}

{{/* Where the service writes and registers; identical for the Sentinel workers and the stream consumers. */}}
{{- define "ingestion.commonEnv" -}}
- name: INGEST_SITE
  value: {{ .Values.site.name | quote }}
{{- with .Values.storage.endpoint }}
- name: INGEST_S3_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
- name: INGEST_S3_REGION
  value: {{ .Values.storage.region | quote }}
- name: INGEST_BUCKET
  value: {{ .Values.storage.bucket | quote }}
- name: INGEST_CATALOG_URL
  value: {{ .Values.catalog.url | quote }}
{{- if .Values.storage.existingSecret }}
# Static storage keys: boto3 reads them from the mounted shared credentials file, never from
# the environment.
- name: AWS_SHARED_CREDENTIALS_FILE
  value: /etc/fedeploy/storage/credentials
{{- end }}
{{- end }}

{{/* The mount of the static storage keys' file (with storage.existingSecret). */}}
{{- define "ingestion.storageMount" -}}
{{- if .Values.storage.existingSecret }}
- name: storage-credentials
  mountPath: /etc/fedeploy/storage
  readOnly: true
{{- end }}
{{- end }}

{{/* A mounted Secret's files belong to root and the pod's fsGroup (mode 0440 or 0400 widened
to 0440 by the kubelet): without fsGroup the container's non-root user cannot read them, and
boto3 skips an unreadable credentials file as if it were absent. */}}
{{- define "ingestion.secretFileReader" -}}
{{- if not .Values.podSecurityContext.fsGroup }}
{{- fail "podSecurityContext.fsGroup is required with a mounted Secret (storage.existingSecret and the like): its files are mode 0440, owned by root and that group, and the container runs as a non-root user" }}
{{- end }}
{{- end }}

{{/* The Secret volume of the static storage keys: its `credentials` key, boto3's shared
credentials file. The whole volume, never subPath, so the kubelet swaps in rotated keys. */}}
{{- define "ingestion.storageVolume" -}}
{{- with .Values.storage.existingSecret }}
{{- include "ingestion.secretFileReader" $ }}
- name: storage-credentials
  secret:
    secretName: {{ . }}
    defaultMode: 0440
    items:
      - key: credentials
        path: credentials
{{- end }}
{{- end }}

{{/* Egress every ingestion pod needs: cluster DNS, the site catalog's API, the object store. */}}
{{- define "ingestion.commonEgress" -}}
{{- $np := .Values.networkPolicy -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ $np.dns.namespace }}
      podSelector:
        matchLabels:
          {{- toYaml $np.dns.podLabels | nindent 10 }}
  ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ default .Release.Namespace $np.catalog.namespace }}
      podSelector:
        matchLabels:
          {{- toYaml $np.catalog.podLabels | nindent 10 }}
  ports:
    - protocol: TCP
      port: {{ $np.catalog.port }}
- to:
    {{- include "ingestion.ipBlocks" (dict "cidrs" $np.storageCIDRs "except" $np.exceptCIDRs) | nindent 4 }}
  ports:
    - protocol: TCP
      port: {{ include "ingestion.urlPort" (default "https://s3.amazonaws.com" .Values.storage.endpoint) }}
{{- with $np.extraEgress }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "ingestion.podSpecCommon" -}}
serviceAccountName: {{ include "ingestion.serviceAccountName" . }}
# The service reads no Kubernetes API; IRSA mounts its own projected token.
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* "true" when the monitoring objects render: monitoring.enabled true, or auto where the
cluster serves the prometheus-operator's API (monitoring.coreos.com/v1); empty otherwise. */}}
{{- define "ingestion.monitored" -}}
{{- $on := toString .Values.monitoring.enabled }}
{{- if or (eq $on "true") (and (eq $on "auto") (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1")) }}true{{ end }}
{{- end }}

{{/* An ingress rule admitting the monitoring namespace's Prometheus pods to one port, the
metrics port, and nothing else (rendered only while monitoring is on). */}}
{{- define "ingestion.metricsIngress" -}}
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
{{- define "ingestion.dashboard" -}}
{{- $root := .root }}
{{- $board := $root.Files.Get .file | fromJson }}
{{- $fullname := include "ingestion.fullname" $root }}
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
{{- define "ingestion.pushgatewayEgress" -}}
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
{{- define "ingestion.pushgatewayEnv" -}}
{{- with .Values.monitoring.pushgateway.url }}
- name: INGEST_PUSHGATEWAY_URL
  value: {{ . | quote }}
{{- end }}
{{- end }}
