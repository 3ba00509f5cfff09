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

{{/* URL scheme of every pod port, and the appProtocol of the Service ports: https when tls.enabled. */}}
{{- define "continualserve.scheme" -}}
{{- ternary "https" "http" .Values.tls.enabled }}
{{- end }}

{{/*
Name of the pod port of both roles and of their Service ports. It stays the same with and without tls.enabled, so
that probes, ServiceMonitors and NetworkPolicies can name it, and appProtocol carries the scheme instead.
*/}}
{{- define "continualserve.portName" -}}
api
{{- end }}

{{/* Port of the inference Service: server.service.port when set, otherwise 443 when tls.enabled and 80 when not. */}}
{{- define "continualserve.servicePort" -}}
{{- .Values.server.service.port | default (ternary 443 80 .Values.tls.enabled) }}
{{- end }}

{{/* In-cluster host name of the learner's Service, which the TLS certificate must name. */}}
{{- define "continualserve.learnerHost" -}}
{{- printf "%s-learner.%s.svc" (include "continualserve.fullname" .) .Release.Namespace }}
{{- end }}

{{/* In-cluster URL of the learner's read-only model store, announced with every version. */}}
{{- define "continualserve.learnerUrl" -}}
{{- printf "%s://%s:%d" (include "continualserve.scheme" .) (include "continualserve.learnerHost" .) (int .Values.learner.containerPort) }}
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

{{/* Directory where the Secret named by tls.secretName is mounted in both containers. */}}
{{- define "continualserve.tlsDirectory" -}}
/etc/continualserve/tls
{{- end }}

{{/* Directory where the authority named by tls.caSecretName is mounted in the server containers. */}}
{{- define "continualserve.storeCaDirectory" -}}
/etc/continualserve/tls-ca
{{- end }}

{{/* Kestrel's default certificate, which every https:// listen address of the pod serves. */}}
{{- define "continualserve.tlsEnv" -}}
{{- if .Values.tls.enabled }}
- name: Kestrel__Certificates__Default__Path
  value: {{ printf "%s/tls.crt" (include "continualserve.tlsDirectory" .) | quote }}
- name: Kestrel__Certificates__Default__KeyPath
  value: {{ printf "%s/tls.key" (include "continualserve.tlsDirectory" .) | quote }}
{{- end }}
{{- end }}

{{/* Volume mount of the TLS certificate and key, when tls.enabled. */}}
{{- define "continualserve.tlsMount" -}}
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: {{ include "continualserve.tlsDirectory" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/* Volume of the TLS certificate and key: only tls.crt and tls.key, so that a Secret without one of them stops the pod at start. */}}
{{- define "continualserve.tlsVolume" -}}
{{- if .Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ required "tls.secretName must name a kubernetes.io/tls Secret when tls.enabled is true." .Values.tls.secretName }}
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
{{- end }}
{{- end }}

{{/* The authority a server replica trusts for the learner's https:// store, when tls.enabled and tls.caSecretName are set. */}}
{{- define "continualserve.storeCaEnv" -}}
{{- if and .Values.tls.enabled .Values.tls.caSecretName }}
- name: Distribution__StoreCaFile
  value: {{ printf "%s/%s" (include "continualserve.storeCaDirectory" .) .Values.tls.caSecretKey | quote }}
{{- end }}
{{- end }}

{{- define "continualserve.storeCaMount" -}}
{{- if and .Values.tls.enabled .Values.tls.caSecretName }}
- name: store-ca
  mountPath: {{ include "continualserve.storeCaDirectory" . }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "continualserve.storeCaVolume" -}}
{{- if and .Values.tls.enabled .Values.tls.caSecretName }}
- name: store-ca
  secret:
    secretName: {{ .Values.tls.caSecretName }}
    items:
      - key: {{ .Values.tls.caSecretKey }}
        path: {{ .Values.tls.caSecretKey }}
{{- end }}
{{- end }}

{{/*
tlsConfig of the ServiceMonitor's endpoint: tls.serviceMonitorTlsConfig when set. Otherwise Prometheus checks the
certificate for the learner's host name, because it scrapes pod IP addresses, which the certificate does not name.
It checks the chain against tls.caSecretName when set, and against its own trusted authorities otherwise.
*/}}
{{- define "continualserve.serviceMonitorTlsConfig" -}}
{{- if .Values.tls.serviceMonitorTlsConfig }}
{{- toYaml .Values.tls.serviceMonitorTlsConfig }}
{{- else -}}
serverName: {{ include "continualserve.learnerHost" . }}
{{- if .Values.tls.caSecretName }}
ca:
  secret:
    name: {{ .Values.tls.caSecretName }}
    key: {{ .Values.tls.caSecretKey }}
{{- end }}
{{- end }}
{{- end }}
