{{/* Chart name, shortened to the 63 characters Kubernetes allows in names. */}}
{{- define "continualserve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name used as the prefix of every resource. */}}
{{- define "continualserve.fullname" -}}
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

{{- define "continualserve.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "continualserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component (server or learner); pass (dict "root" $ "component" "server"). */}}
{{- define "continualserve.selectorLabels" -}}
app.kubernetes.io/name: {{ include "continualserve.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "continualserve.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "continualserve.learnerImage" -}}
{{- $repository := default .Values.image.repository .Values.learner.image.repository }}
{{- $tag := default (default .Chart.AppVersion .Values.image.tag) .Values.learner.image.tag }}
{{- printf "%s:%s" $repository $tag }}
{{- end }}

{{- define "continualserve.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "continualserve.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "continualserve.secretName" -}}
{{- default (printf "%s-management" (include "continualserve.fullname" .)) .Values.managementToken.existingSecret }}
{{- end }}

{{/* Secret that contains the model store's bearer token. */}}
{{- define "continualserve.storeSecretName" -}}
{{- default (printf "%s-store" (include "continualserve.fullname" .)) .Values.storeToken.existingSecret }}
{{- end }}

{{/* In-cluster URL of the learner's read-only model store, announced with every version. */}}
{{- define "continualserve.learnerUrl" -}}
{{- printf "http://%s-learner.%s.svc:%d" (include "continualserve.fullname" .) .Release.Namespace (int .Values.learner.containerPort) }}
{{- end }}

{{/* Directory of the model store inside both containers. */}}
{{- define "continualserve.storeDirectory" -}}
/var/lib/continualserve/models
{{- end }}

{{/* Directory where the Secret with the librdkafka properties file is mounted in both containers. */}}
{{- define "continualserve.kafkaConfigDirectory" -}}
/etc/continualserve/kafka
{{- end }}

{{/* Volume mount of the librdkafka properties file, when kafka.clientConfigSecret names a Secret. */}}
{{- define "continualserve.kafkaConfigMount" -}}
{{- if .Values.kafka.clientConfigSecret }}
- name: kafka-client-config
  mountPath: {{ include "continualserve.kafkaConfigDirectory" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/* Volume of the librdkafka properties file: every key of the Secret, so that a certificate file can sit beside it. */}}
{{- define "continualserve.kafkaConfigVolume" -}}
{{- if .Values.kafka.clientConfigSecret }}
- name: kafka-client-config
  secret:
    secretName: {{ .Values.kafka.clientConfigSecret }}
{{- end }}
{{- end }}
