{{/* Names, labels and the pieces every inference workload shares. */}}

{{- define "inference.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped name; the release name alone when it already contains the chart name. */}}
{{- define "inference.fullname" -}}
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

{{- define "inference.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "inference.labels" -}}
helm.sh/chart: {{ include "inference.chart" . }}
{{ include "inference.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fedeploy
fedeploy.io/site: {{ .Values.site.name | quote }}
fedeploy.io/site-kind: {{ .Values.site.kind | quote }}
{{- end }}

{{/* Selector labels never change across upgrades: a Deployment's selector is immutable. */}}
{{- define "inference.selectorLabels" -}}
app.kubernetes.io/name: {{ include "inference.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "inference.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "inference.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* "repository:tag" from an image block; an empty tag falls back to the given default, and the
block's suffix (the CUDA image's "-cuda") follows the tag. */}}
{{- define "inference.imageRef" -}}
{{- $ref := printf "%s:%s%s" .image.repository (default .default .image.tag) (default "" .image.suffix) }}
{{- with .image.digest }}{{ $ref = printf "%s@%s" $ref . }}{{ end }}
{{- $ref }}
{{- end }}

{{/* The image block the model servers run: the CUDA image with gpu.enabled, else the CPU image. */}}
{{- define "inference.serverImage" -}}
{{- if .Values.gpu.enabled }}{{ toJson .Values.gpu.image }}{{ else }}{{ toJson .Values.image }}{{ end }}
{{- end }}

{{/* checkov's skip annotations of a workload, each "CHECK_ID=reason": the image waivers while one of
`images` has no digest, then `skips`. Every waiver is listed in docs/charts.md. */}}
{{- define "inference.checkovSkips" -}}
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
{{- define "inference.urlPort" -}}
{{- $url := urlParse . }}
{{- $hostPort := splitList ":" $url.host }}
{{- if gt (len $hostPort) 1 }}{{ last $hostPort }}{{ else if eq $url.scheme "http" }}80{{ else }}443{{ end }}
{{- end }}


{{- define "inference.device" -}}
{{- if .Values.gpu.enabled }}cuda{{ else }}cpu{{ end }}
{{- end }}

{{/* With static storage keys (storage.existingSecret): the variable naming their file, for
boto3's default credential chain; the keys are never in the environment. */}}
{{- define "inference.storageEnv" -}}
{{- if .Values.storage.existingSecret }}
- name: AWS_SHARED_CREDENTIALS_FILE
  value: /etc/fedeploy/storage/credentials
{{- end }}
{{- end }}

{{/* The mount of the static storage keys' file (with storage.existingSecret). */}}
{{- define "inference.storageMount" -}}
{{- if .Values.storage.existingSecret }}
- name: storage-credentials
  mountPath: /etc/fedeploy/storage
  readOnly: true
{{- end }}
{{- end }}

{{/* A mounted Secret's files belong to root and the pod's fsGroup (mode 0440 or 0400 widened
to 0440 by the kubelet): without fsGroup the container's non-root user cannot read them, and
boto3 skips an unreadable credentials file as if it were absent. */}}
{{- define "inference.secretFileReader" -}}
{{- if not .Values.podSecurityContext.fsGroup }}
{{- fail "podSecurityContext.fsGroup is required with a mounted Secret (storage.existingSecret, bridge.existingSecret): its files are mode 0440, owned by root and that group, and the container runs as a non-root user" }}
{{- end }}
{{- end }}

{{/* The Secret volume of the static storage keys: its `credentials` key, boto3's shared
credentials file. The whole volume, never subPath, so the kubelet swaps in rotated keys. */}}
{{- define "inference.storageVolume" -}}
{{- with .Values.storage.existingSecret }}
{{- include "inference.secretFileReader" $ }}
- name: storage-credentials
  secret:
    secretName: {{ . }}
    defaultMode: 0440
    items:
      - key: credentials
        path: credentials
{{- end }}
{{- end }}

{{/* "true" when the monitoring objects render: monitoring.enabled true, or auto where the
cluster serves the prometheus-operator's API (monitoring.coreos.com/v1); empty otherwise. */}}
{{- define "inference.monitored" -}}
{{- $on := toString .Values.monitoring.enabled }}
{{- if or (eq $on "true") (and (eq $on "auto") (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1")) }}true{{ end }}
{{- end }}

{{/* An ingress rule admitting the monitoring namespace's Prometheus pods to one port, the
metrics port, and nothing else (rendered only while monitoring is on). */}}
{{- define "inference.metricsIngress" -}}
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
{{- define "inference.dashboard" -}}
{{- $root := .root }}
{{- $board := $root.Files.Get .file | fromJson }}
{{- $fullname := include "inference.fullname" $root }}
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
