{{/* Pieces of network policies. */}}

{{/* Port a URL names, or its scheme's default (443 for https, 80 for http). */}}
{{- define "fedeploy-common.urlPort" -}}
{{- $url := urlParse . }}
{{- $hostPort := splitList ":" $url.host }}
{{- if gt (len $hostPort) 1 }}{{ last $hostPort }}{{ else if eq $url.scheme "http" }}80{{ else }}443{{ end }}
{{- end }}
