{{/* Helpers of the userchart job chart. */}}

{{/* The namespace of every object: NameSpace, or the release namespace when it is empty; they must agree. */}}
{{- define "userchart.namespace" -}}
{{- $ns := .Values.NameSpace | default .Release.Namespace -}}
{{- if ne $ns .Release.Namespace -}}
{{- fail (printf "NameSpace is %q but the release namespace is %q: install with -n %s (or leave NameSpace empty)" $ns .Release.Namespace $ns) -}}
{{- end -}}
{{- $ns -}}
{{- end -}}

{{/* <BaseName>-<release>, cut to 63 characters: the default of Label and ContainerName. */}}
{{- define "userchart.shortname" -}}
{{- printf "%s-%s" .Values.BaseName .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The Deployment's name: DeployName, or <NameSpace>-<BaseName>-<release>, cut to 63 characters. */}}
{{- define "userchart.fullname" -}}
{{- if .Values.DeployName -}}
{{- .Values.DeployName -}}
{{- else -}}
{{- printf "%s-%s-%s" (include "userchart.namespace" .) .Values.BaseName .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "userchart.label" -}}
{{- .Values.Label | default (include "userchart.shortname" .) -}}
{{- end -}}

{{- define "userchart.containerName" -}}
{{- .Values.ContainerName | default (include "userchart.shortname" .) -}}
{{- end -}}

{{/* The number of GPUs per pod, as an integer. */}}
{{- define "userchart.gpus" -}}
{{- int .Values.Limits.GPU -}}
{{- end -}}

{{- define "userchart.selectorLabels" -}}
app: {{ include "userchart.label" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "userchart.labels" -}}
{{ include "userchart.selectorLabels" . }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/* Fails when two volumes would be mounted at the same path (the API server would refuse the pods). */}}
{{- define "userchart.checkMountPaths" -}}
{{- $seen := dict -}}
{{- $paths := list -}}
{{- range $key := list "home" "gfshome" "share" "ssdshare" -}}
{{- $pvc := get $.Values.PVCs $key -}}
{{- if $pvc.Enabled -}}
{{- $paths = append $paths $pvc.MountPath -}}
{{- end -}}
{{- end -}}
{{- range $.Values.Scratch.MountPaths -}}
{{- $paths = append $paths . -}}
{{- end -}}
{{- if $.Values.UseShm -}}
{{- $paths = append $paths "/dev/shm" -}}
{{- end -}}
{{- range $paths -}}
{{- $p := trimSuffix "/" . -}}
{{- if hasKey $seen $p -}}
{{- fail (printf "two volumes are mounted at %s: give each of PVCs.*.MountPath, Scratch.MountPaths (and /dev/shm with UseShm) its own path" $p) -}}
{{- end -}}
{{- $_ := set $seen $p true -}}
{{- end -}}
{{- end -}}
