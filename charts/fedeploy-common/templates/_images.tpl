{{/* Image references and the checkov waivers that depend on them. */}}

{{/* "repository:tag" from an image block; an empty tag falls back to the given default, and the
block's suffix (the CUDA image's "-cuda") follows the tag. */}}
{{- define "fedeploy-common.imageRef" -}}
{{- $ref := printf "%s:%s%s" .image.repository (default .default .image.tag) (default "" .image.suffix) }}
{{- with .image.digest }}{{ $ref = printf "%s@%s" $ref . }}{{ end }}
{{- $ref }}
{{- end }}

{{/* checkov's skip annotations of a workload, each "CHECK_ID=reason": the image waivers while one of
`images` has no digest, then `skips`. Every waiver is listed in docs/charts.md. */}}
{{- define "fedeploy-common.checkovSkips" -}}
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
