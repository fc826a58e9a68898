{{/* The ingestion chart's own helpers. What the three charts share (names, labels, image
references, checkov waivers, the storage keys' volume, monitoring) is the library chart's:
charts/fedeploy-common, included as "fedeploy-common.<name>". */}}

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

{{/* Egress every ingestion pod needs: cluster DNS, the site catalog's API, the object store. */}}
{{- define "ingestion.commonEgress" -}}
{{- $np := .Values.networkPolicy -}}
{{ include "fedeploy-common.dnsEgress" . }}
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
      port: {{ include "fedeploy-common.urlPort" (default "https://s3.amazonaws.com" .Values.storage.endpoint) }}
{{- with $np.extraEgress }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "ingestion.podSpecCommon" -}}
serviceAccountName: {{ include "fedeploy-common.serviceAccountName" . }}
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

