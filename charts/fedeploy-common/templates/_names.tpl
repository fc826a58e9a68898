{{/* Names and labels of a release's objects. Included with the chart's root context, so
.Chart is the including chart's (its name and version), never this library's. */}}

{{- define "fedeploy-common.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped name; the release name alone when it already contains the chart name. */}}
{{- define "fedeploy-common.fullname" -}}
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

{{- define "fedeploy-common.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "fedeploy-common.labels" -}}
helm.sh/chart: {{ include "fedeploy-common.chart" . }}
{{ include "fedeploy-common.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fedeploy
fedeploy.io/site: {{ .Values.site.name | quote }}
fedeploy.io/site-kind: {{ .Values.site.kind | quote }}
{{- end }}

{{/* Selector labels never change across upgrades: a Deployment's selector is immutable. */}}
{{- define "fedeploy-common.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fedeploy-common.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "fedeploy-common.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "fedeploy-common.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}
