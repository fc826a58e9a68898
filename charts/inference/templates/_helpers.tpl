{{/* The inference chart's own helpers. What the three charts share (names, labels, image
references, checkov waivers, the storage keys' volume, monitoring) is the library chart's:
charts/fedeploy-common, included as "fedeploy-common.<name>". */}}

{{/* The image block the model servers run: the CUDA image with gpu.enabled, else the CPU image. */}}
{{- define "inference.serverImage" -}}
{{- if .Values.gpu.enabled }}{{ toJson .Values.gpu.image }}{{ else }}{{ toJson .Values.image }}{{ end }}
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

