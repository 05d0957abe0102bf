{{/* aicluster LAB FIXTURE: helpers of the lab stand-in of Kubeocean's worker chart. */}}
{{- define "kubeocean-worker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kubeocean-worker.labels" -}}
helm.sh/chart: {{ include "kubeocean-worker.chart" . }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubeocean
aicluster.lab/fixture: "true"
{{- end }}
