{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "haul.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Fully qualified app name: the release name, plus the chart name unless the release name already
contains it. Names every namespaced object and the controller's cluster-scoped RBAC.
*/}}
{{- define "haul.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "haul.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "haul.selectorLabels" -}}
app.kubernetes.io/name: {{ include "haul.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "haul.labels" -}}
helm.sh/chart: {{ include "haul.chart" . }}
{{ include "haul.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: haul
{{- end -}}

{{/* Selector labels of a shard's controller pods (dict "root" $ "shard" name): a component of
their own, so the main Deployment and the Services do not select them. */}}
{{- define "haul.shardSelectorLabels" -}}
app.kubernetes.io/name: {{ include "haul.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ printf "controller-shard-%s" .shard | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "haul.shardLabels" -}}
helm.sh/chart: {{ include "haul.chart" .root }}
{{ include "haul.shardSelectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: haul
kargo.akuity.io/shard: {{ .shard | quote }}
{{- end -}}

{{/* The ServiceAccount the controller runs as. */}}
{{- define "haul.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "haul.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The username the controller authenticates as (its ServiceAccount's). */}}
{{- define "haul.controllerUsername" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "haul.serviceAccountName" .) -}}
{{- end -}}

{{- define "haul.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Namespace of Secrets shared by every project; defaults to the release namespace. */}}
{{- define "haul.sharedResourcesNamespace" -}}
{{- default .Release.Namespace .Values.controller.sharedResourcesNamespace -}}
{{- end -}}

{{/*
Public base URL of the webhook receivers: receivers.baseURL, else https://<ingress host>.
*/}}
{{- define "haul.receiversBaseURL" -}}
{{- if .Values.receivers.baseURL -}}
{{- .Values.receivers.baseURL -}}
{{- else if and .Values.receivers.ingress.enabled .Values.receivers.ingress.host -}}
{{- printf "https://%s" .Values.receivers.ingress.host -}}
{{- end -}}
{{- end -}}
