{{/* The static storage keys' file: its Secret volume and mount (with storage.existingSecret). */}}

{{/* A mounted Secret's files belong to root and the pod's fsGroup (mode 0440 or 0400 widened
to 0440 by the kubelet): without fsGroup the container's non-root user cannot read them, and
boto3 skips an unreadable credentials file as if it were absent. */}}
{{- define "fedeploy-common.secretFileReader" -}}
{{- if not .Values.podSecurityContext.fsGroup }}
{{- fail "podSecurityContext.fsGroup is required with a mounted Secret (storage.existingSecret, bridge.existingSecret and the like): its files are mode 0440, owned by root and that group, and the container runs as a non-root user" }}
{{- end }}
{{- end }}

{{/* The Secret volume of the static storage keys: its `credentials` key, boto3's shared
credentials file. The whole volume, never subPath, so the kubelet swaps in rotated keys. */}}
{{- define "fedeploy-common.storageVolume" -}}
{{- with .Values.storage.existingSecret }}
{{- include "fedeploy-common.secretFileReader" $ }}
- name: storage-credentials
  secret:
    secretName: {{ . }}
    defaultMode: 0440
    items:
      - key: credentials
        path: credentials
{{- end }}
{{- end }}

{{/* The mount of the static storage keys' file (with storage.existingSecret). */}}
{{- define "fedeploy-common.storageMount" -}}
{{- if .Values.storage.existingSecret }}
- name: storage-credentials
  mountPath: /etc/fedeploy/storage
  readOnly: true
{{- end }}
{{- end }}
