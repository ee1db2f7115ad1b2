{{/*
The prefix of every image: "<registry>/" when global.systemDefaultRegistry
is set, else nothing. Same name and meaning as in RKE2's charts.
*/}}
{{- define "system_default_registry" -}}
{{- if .Values.global.systemDefaultRegistry -}}
{{- printf "%s/" (trimSuffix "/" .Values.global.systemDefaultRegistry) -}}
{{- end -}}
{{- end -}}

{{/*
The chart's name, nameOverride if set.
*/}}
{{- define "coredns.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The objects' name: <release>-<name> as upstream CoreDNS's chart makes it
(rke2-coredns-rke2-coredns for RKE2's release), fullnameOverride if set.
*/}}
{{- define "coredns.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "coredns.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
The labels that select the pods.
*/}}
{{- define "coredns.selectorLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/name: {{ include "coredns.name" . | quote }}
k8s-app: kube-dns
{{- end -}}

{{/*
The labels of every object.
*/}}
{{- define "coredns.labels" -}}
{{ include "coredns.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
kubernetes.io/cluster-service: "true"
kubernetes.io/name: CoreDNS
{{- end -}}

{{/*
The Corefile, from .Values.servers.
*/}}
{{- define "coredns.corefile" -}}
{{- $root := . -}}
{{- range $i, $server := .Values.servers -}}
{{- if $i }}{{ "\n" }}{{ end -}}
{{- $zones := list -}}
{{- range $server.zones -}}
{{- $zones = append $zones (printf "%s%s" (default "" .scheme) (default "." .zone)) -}}
{{- end -}}
{{ join " " $zones }}:{{ default 53 $server.port }} {
{{- range $server.plugins }}
    {{ .name }}{{ with .parameters }} {{ tpl (toString .) $root }}{{ end }}{{ with .configBlock }} {
{{ . | indent 8 }}
    }{{ end }}
{{- end }}
}
{{- end -}}
{{- end -}}
