{{/* Pieces of network policies. */}}

{{/* Port a URL names, or its scheme's default (443 for https, 80 for http). An IPv6 literal's
colons are not a port: urlParse's host keeps the brackets ([fd00::9]:9091), so the port is what
follows "]:" (none after a bare [fd00::9]). */}}
{{- define "fedeploy-common.urlPort" -}}
{{- $url := urlParse . }}
{{- $host := $url.host }}
{{- if hasPrefix "[" $host }}{{ $host = last (splitList "]" $host) }}{{ end }}
{{- $hostPort := splitList ":" $host }}
{{- if gt (len $hostPort) 1 }}{{ last $hostPort }}{{ else if eq $url.scheme "http" }}80{{ else }}443{{ end }}
{{- end }}

{{/* Egress to the cluster DNS (UDP and TCP 53), which every pod that resolves a Service name
needs; the DNS pods are networkPolicy.dns's (namespace, podLabels). One egress rule, a list item
at column 0: include it with nindent. */}}
{{- define "fedeploy-common.dnsEgress" -}}
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
