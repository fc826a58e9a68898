{{/* The catalog chart's own helpers. What the three charts share (names, labels, image
references, checkov waivers, the storage keys' volume, monitoring) is the library chart's:
charts/fedeploy-common, included as "fedeploy-common.<name>". */}}

{{- define "catalog.dbHost" -}}
{{- if eq .Values.database.mode "internal" }}
{{- printf "%s-db" (include "fedeploy-common.fullname" .) }}
{{- else }}
{{- .Values.database.host }}
{{- end }}
{{- end }}

{{- define "catalog.dbSecretName" -}}
{{- default (printf "%s-db" (include "fedeploy-common.fullname" .)) .Values.database.existingSecret }}
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
{{- printf "http://%s.%s.svc.%s:%d" (include "fedeploy-common.fullname" .) .Release.Namespace .Values.clusterDomain (int .Values.service.port) }}
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
    name: {{ include "fedeploy-common.fullname" . }}-database-ca
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
          {{- include "fedeploy-common.selectorLabels" . | nindent 10 }}
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

{{/* PostgreSQL's archive_command with backups on: each finished WAL segment copied into the
spool by rename, so the sidecar never uploads half a file; a retry overwrites the same bytes. */}}
{{- define "catalog.archiveCommand" -}}
cp %p /var/lib/postgresql/wal-spool/%f.part && mv -f /var/lib/postgresql/wal-spool/%f.part /var/lib/postgresql/wal-spool/%f
{{- end }}

{{/* A Gateway API HTTPRoute of exposure mode gateway, attached to the values' Gateway (and
listener): dict "root" . "name" <route name> "component" <label> "host" <hostname> "rules"
(list of dict "prefix" <PathPrefix> "service" <Service> "port" <its port>). Path prefixes only: no
filter, no rewrite, no controller-specific annotation beyond exposure.annotations. */}}
{{- define "catalog.httpRoute" -}}
{{- $e := .root.Values.exposure -}}
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: {{ .name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "fedeploy-common.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
  {{- with $e.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  parentRefs:
    - group: gateway.networking.k8s.io
      kind: Gateway
      name: {{ $e.gateway.name }}
      namespace: {{ $e.gateway.namespace }}
      {{- with $e.gateway.sectionName }}
      sectionName: {{ . }}
      {{- end }}
  hostnames: [{{ .host | quote }}]
  rules:
    {{- range .rules }}
    - matches:
        - path:
            type: PathPrefix
            value: {{ .prefix | quote }}
      backendRefs:
        - name: {{ .service }}
          port: {{ .port }}
    {{- end }}
{{- end }}

{{/*
STAC Browser's security headers (the context: the Content-Security-Policy's directives), for
every nginx location: a location with an add_header of its own inherits none of the server's.
*/}}
{{- define "catalog.browserSecurityHeaders" -}}
add_header Content-Security-Policy "{{ join "; " . }}" always;
add_header X-Content-Type-Options nosniff always;
add_header X-Frame-Options DENY always;
add_header Referrer-Policy no-referrer always;
add_header Permissions-Policy "camera=(), microphone=(), geolocation=()" always;
add_header Strict-Transport-Security "max-age=31536000" always;
{{- end }}

{{/* PostgreSQL major of the internal database's image: database.internal.postgresMajor when set,
else what stac-utils/pgstac's docker/pgstac/Dockerfile builds at that tag (ARG PG_MAJOR: 15 up to
v0.9.1, 17 from v0.9.2, commit de45386, through v0.10.0); empty when neither says. */}}
{{- define "catalog.databaseMajor" -}}
{{- $db := .Values.database.internal }}
{{- if $db.postgresMajor }}
{{- $db.postgresMajor | toString }}
{{- else if eq $db.image.repository "ghcr.io/stac-utils/pgstac" }}
{{- $tag := $db.image.tag }}
{{- if regexMatch "^v0\\.(10\\.[0-9]+|9\\.([2-9]|1[0-9]))$" $tag }}17{{ else if regexMatch "^v0\\.(8\\.[0-9]+|9\\.[01])$" $tag }}15{{ end }}
{{- end }}
{{- end }}

{{/* PostgreSQL major the backup image carries: its tag's -pg<major> suffix (the project's
restore-drill image) or <major>- prefix (CloudNativePG's images); empty when the tag says none. */}}
{{- define "catalog.backupMajor" -}}
{{- $tag := .Values.backup.image.tag | toString }}
{{- if regexMatch "-pg[0-9]+$" $tag }}
{{- regexFind "[0-9]+$" $tag }}
{{- else if regexMatch "^[0-9]+-" $tag }}
{{- regexFind "^[0-9]+" $tag }}
{{- end }}
{{- end }}
