{{/* aicluster LAB FIXTURE: helpers of the lab stand-in of Kubeocean's manager chart (names as the real chart's). */}}
{{- define "kubeocean.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kubeocean.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kubeocean.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kubeocean.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubeocean.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kubeocean.labels" -}}
helm.sh/chart: {{ include "kubeocean.chart" . }}
{{ include "kubeocean.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
aicluster.lab/fixture: "true"
{{- end }}

{{- define "kubeocean.manager.selectorLabels" -}}
{{ include "kubeocean.selectorLabels" . }}
app.kubernetes.io/component: manager
control-plane: kubeocean-manager
k8s-app: kubeocean-manager
{{- end }}

{{- define "kubeocean.manager.labels" -}}
{{ include "kubeocean.labels" . }}
app.kubernetes.io/component: manager
control-plane: kubeocean-manager
k8s-app: kubeocean-manager
{{- end }}

{{- define "kubeocean.manager.serviceAccountName" -}}
{{- if .Values.manager.serviceAccount.create }}
{{- default (printf "%s-manager" (include "kubeocean.fullname" .)) .Values.manager.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.manager.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kubeocean.manager.clusterRoleName" -}}
{{- default (printf "%s-manager-role" (include "kubeocean.fullname" .)) .Values.manager.rbac.clusterRoleName }}
{{- end }}

{{- define "kubeocean.manager.clusterRoleBindingName" -}}
{{- default (printf "%s-manager" (include "kubeocean.fullname" .)) .Values.manager.rbac.clusterRoleBindingName }}
{{- end }}

{{- define "kubeocean.manager.image" -}}
{{- $registry := .Values.global.imageRegistry | default .Values.manager.image.registry -}}
{{- $tag := .Values.manager.image.tag | default .Chart.AppVersion -}}
{{- printf "%s/%s:%s" $registry .Values.manager.image.repository $tag -}}
{{- end -}}

{{- define "kubeocean.syncerTemplate.configMapName" -}}
{{- printf "%s-syncer-template" (include "kubeocean.fullname" .) -}}
{{- end -}}

{{- define "kubeocean.proxierTemplate.configMapName" -}}
{{- printf "%s-proxier-template" (include "kubeocean.fullname" .) -}}
{{- end -}}

{{- define "kubeocean.syncer.serviceAccountName" -}}
{{- if .Values.syncer.serviceAccount.create }}
{{- default (printf "%s-syncer" (include "kubeocean.fullname" .)) .Values.syncer.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.syncer.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kubeocean.syncer.clusterRoleName" -}}
{{- default (printf "%s-syncer" (include "kubeocean.fullname" .)) .Values.syncer.rbac.clusterRoleName }}
{{- end }}

{{- define "kubeocean.syncer.clusterRoleBindingName" -}}
{{- default (printf "%s-syncer" (include "kubeocean.fullname" .)) .Values.syncer.rbac.clusterRoleBindingName }}
{{- end }}

{{- define "kubeocean.syncer.image" -}}
{{- $registry := .Values.global.imageRegistry | default .Values.syncer.image.registry -}}
{{- $tag := .Values.syncer.image.tag | default .Chart.AppVersion -}}
{{- printf "%s/%s:%s" $registry .Values.syncer.image.repository $tag -}}
{{- end -}}

{{- define "kubeocean.proxier.serviceAccountName" -}}
{{- if .Values.proxier.serviceAccount.create }}
{{- default (printf "%s-proxier" (include "kubeocean.fullname" .)) .Values.proxier.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.proxier.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kubeocean.proxier.clusterRoleName" -}}
{{- default (printf "%s-proxier" (include "kubeocean.fullname" .)) .Values.proxier.rbac.clusterRoleName }}
{{- end }}

{{- define "kubeocean.proxier.clusterRoleBindingName" -}}
{{- default (printf "%s-proxier" (include "kubeocean.fullname" .)) .Values.proxier.rbac.clusterRoleBindingName }}
{{- end }}

{{- define "kubeocean.proxier.image" -}}
{{- $registry := .Values.global.imageRegistry | default .Values.proxier.image.registry -}}
{{- $tag := .Values.proxier.image.tag | default .Chart.AppVersion -}}
{{- printf "%s/%s:%s" $registry .Values.proxier.image.repository $tag -}}
{{- end -}}
