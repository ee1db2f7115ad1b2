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
The flannel image, with the registry prefix.
*/}}
{{- define "flannel.image" -}}
{{ template "system_default_registry" . }}{{ .Values.flannel.image.repository }}:{{ .Values.flannel.image.tag }}
{{- end -}}

{{/*
The IPv4 pod network: global.clusterCIDRv4, else the first IPv4 CIDR of the
comma-separated global.clusterCIDR, else nothing.
*/}}
{{- define "flannel.ipv4Network" -}}
{{- if .Values.global.clusterCIDRv4 -}}
{{- .Values.global.clusterCIDRv4 | trim -}}
{{- else -}}
{{- $found := "" -}}
{{- range splitList "," (default "" .Values.global.clusterCIDR) -}}
{{- $cidr := trim . -}}
{{- if and $cidr (not $found) (not (contains ":" $cidr)) -}}
{{- $found = $cidr -}}
{{- end -}}
{{- end -}}
{{- $found -}}
{{- end -}}
{{- end -}}

{{/*
The IPv6 pod network: global.clusterCIDRv6, else the first IPv6 CIDR of the
comma-separated global.clusterCIDR, else nothing.
*/}}
{{- define "flannel.ipv6Network" -}}
{{- if .Values.global.clusterCIDRv6 -}}
{{- .Values.global.clusterCIDRv6 | trim -}}
{{- else -}}
{{- $found := "" -}}
{{- range splitList "," (default "" .Values.global.clusterCIDR) -}}
{{- $cidr := trim . -}}
{{- if and $cidr (not $found) (contains ":" $cidr) -}}
{{- $found = $cidr -}}
{{- end -}}
{{- end -}}
{{- $found -}}
{{- end -}}
{{- end -}}

{{/*
flanneld's net-conf.json, as a dict (rendered with toPrettyJson, so that it
is valid JSON whatever is set).
*/}}
{{- define "flannel.netConf" -}}
{{- $v4 := include "flannel.ipv4Network" . -}}
{{- $v6 := include "flannel.ipv6Network" . -}}
{{- if not (or $v4 $v6) -}}
{{- fail "rke2-flannel: global.clusterCIDR (or clusterCIDRv4/clusterCIDRv6) must name the pod network" -}}
{{- end -}}
{{- $backend := dict "Type" (required "rke2-flannel: flannel.backend must be set" .Values.flannel.backend) -}}
{{- if .Values.flannel.backendPort -}}
{{- $_ := set $backend "Port" (int .Values.flannel.backendPort) -}}
{{- end -}}
{{- if and .Values.flannel.vni (eq .Values.flannel.backend "vxlan") -}}
{{- $_ := set $backend "VNI" (int .Values.flannel.vni) -}}
{{- end -}}
{{- if .Values.flannel.mtu -}}
{{- $_ := set $backend "MTU" (int .Values.flannel.mtu) -}}
{{- end -}}
{{- $conf := dict "Backend" $backend -}}
{{- if $v4 -}}
{{- $_ := set $conf "Network" $v4 -}}
{{- $_ := set $conf "EnableIPv4" true -}}
{{- else -}}
{{- $_ := set $conf "EnableIPv4" false -}}
{{- end -}}
{{- if $v6 -}}
{{- $_ := set $conf "IPv6Network" $v6 -}}
{{- $_ := set $conf "EnableIPv6" true -}}
{{- end -}}
{{- if .Values.flannel.enableNFTables -}}
{{- $_ := set $conf "EnableNFTables" true -}}
{{- end -}}
{{- toPrettyJson $conf -}}
{{- end -}}
