{{/*
Names and labels, in the style of the prometheus-community charts.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "iots6.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object name: fullnameOverride, else the release name when it already contains the chart name
(Argo CD's release `iots6`), else `<release>-<chart>`.
*/}}
{{- define "iots6.fullname" -}}
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

{{/* <fullname>-<component>, e.g. iots6-ingest. Call with (dict "root" $ "component" "ingest"). */}}
{{- define "iots6.componentName" -}}
{{- printf "%s-%s" (include "iots6.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "iots6.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "iots6.labels" -}}
helm.sh/chart: {{ include "iots6.chart" . }}
app.kubernetes.io/name: {{ include "iots6.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: iots6
iots6.io/environment: {{ .Values.environment }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component. Call with (dict "root" $ "component" "ingest"). */}}
{{- define "iots6.selectorLabels" -}}
app.kubernetes.io/name: {{ include "iots6.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* All labels of one component's objects. Call with (dict "root" $ "component" "ingest"). */}}
{{- define "iots6.componentLabels" -}}
{{ include "iots6.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
An image reference `<registry>/<repository>:<tag>[@<digest>]`. Call with (dict "root" $ "image" .Values.images.x
"name" "x"). The registry falls back to images.registry, the tag to the chart's appVersion. With
images.requireDigests (prod) an image without a digest stops the render.
*/}}
{{- define "iots6.image" -}}
{{- $registry := .image.registry | default .root.Values.images.registry -}}
{{- if not $registry -}}
{{- fail (printf "images.%s.registry (or images.registry) is empty; set it to the ACR login server (Terraform output `container_registry_login_server`) or docker.io." .name) -}}
{{- end -}}
{{- $tag := .image.tag | default .root.Chart.AppVersion -}}
{{- if and .root.Values.images.requireDigests (not .image.digest) -}}
{{- fail (printf "images.%s.digest is empty but images.requireDigests is true; promote a built image (docs/deploy-aks.md, Promotion) to set it." .name) -}}
{{- end -}}
{{- printf "%s/%s:%s" $registry .image.repository $tag -}}
{{- with .image.digest }}@{{ . }}{{ end -}}
{{- end }}

{{/* The pod-level security context every workload starts from (non-root, the runtime's seccomp profile). */}}
{{- define "iots6.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .gid }}
fsGroup: {{ .gid }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The container-level security context of every container: no privilege, no capability, read-only root. */}}
{{- define "iots6.containerSecurityContext" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Names of the Kubernetes Secrets the ExternalSecrets create (docs/deploy-aks.md, Secrets). */}}
{{- define "iots6.secret.db" -}}{{ include "iots6.componentName" (dict "root" . "component" "db") }}{{- end }}
{{- define "iots6.secret.mqtt" -}}{{ include "iots6.componentName" (dict "root" . "component" "mqtt") }}{{- end }}
{{- define "iots6.secret.configAdmin" -}}{{ include "iots6.componentName" (dict "root" . "component" "config-admin") }}{{- end }}
{{- define "iots6.secret.grafanaAdmin" -}}{{ include "iots6.componentName" (dict "root" . "component" "grafana-admin") }}{{- end }}
{{- define "iots6.secret.brokerTls" -}}{{ include "iots6.componentName" (dict "root" . "component" "broker-tls") }}{{- end }}
{{- define "iots6.secret.configTls" -}}{{ include "iots6.componentName" (dict "root" . "component" "config-tls") }}{{- end }}

{{/* In-cluster names of the broker (pod-local plaintext listener) and the database. */}}
{{- define "iots6.mqttHost" -}}{{ include "iots6.componentName" (dict "root" . "component" "mosquitto") }}{{- end }}
{{- define "iots6.dbHost" -}}
{{- if .Values.postgresql.enabled -}}
{{ include "iots6.componentName" (dict "root" . "component" "postgresql") }}
{{- else -}}
{{- required "database.host is empty; set it to the Flexible Server FQDN (Terraform output `postgres.host`) or enable postgresql" .Values.database.host -}}
{{- end -}}
{{- end }}

{{/* postgresql://<user>@<host>:<port>/<db>?sslmode=<mode>: no password, ever (it travels in a file). */}}
{{- define "iots6.databaseUrl" -}}
{{- printf "postgresql://%s@%s:%d/%s?sslmode=%s" .Values.database.user (include "iots6.dbHost" .) (int .Values.database.port) .Values.database.name .Values.database.sslmode -}}
{{- end }}

{{/*
The ONE place each service's environment variables are spelled (DECISIONS.md §2), as defined in
iots6_platform.core.settings (docs/settings.md; tests/unit/test_settings_agree.py checks these helpers against it).
Secrets are files under /run/secrets/iots6.
*/}}
{{- define "iots6.ingest.env" -}}
- name: INGEST_MQTT_HOST
  value: {{ include "iots6.mqttHost" . | quote }}
- name: INGEST_MQTT_PORT
  value: {{ .Values.mosquitto.internalPort | quote }}
- name: INGEST_MQTT_USERNAME
  value: svc.ingest
- name: INGEST_MQTT_PASSWORD_FILE
  value: /run/secrets/iots6/mqtt-ingest-password
- name: INGEST_MQTT_PROTOCOL
  value: "5"
- name: INGEST_CLIENT_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: INGEST_SHARE_GROUP
  value: {{ .Values.ingest.shareGroup | quote }}
- name: INGEST_TOPIC_BASE
  value: {{ .Values.topicBase | quote }}
- name: INGEST_DATABASE_URL
  value: {{ include "iots6.databaseUrl" . | quote }}
- name: INGEST_DATABASE_PASSWORD_FILE
  value: /run/secrets/iots6/db-app-password
- name: INGEST_BATCH_SIZE
  value: {{ .Values.ingest.batchSize | quote }}
- name: INGEST_FLUSH_MS
  value: {{ .Values.ingest.flushMs | quote }}
- name: INGEST_RECEIVE_MAXIMUM
  value: {{ .Values.ingest.receiveMaximum | quote }}
- name: INGEST_HTTP_BIND
  value: 0.0.0.0
- name: INGEST_HTTP_PORT
  value: {{ .Values.ingest.port | quote }}
- name: INGEST_LOG_LEVEL
  value: {{ .Values.ingest.logLevel | quote }}
{{- end }}

{{- define "iots6.configServer.env" -}}
- name: CONFIG_SERVER_BIND
  value: 0.0.0.0
- name: CONFIG_SERVER_PORT
  value: {{ .Values.configServer.port | quote }}
- name: CONFIG_SERVER_WORKERS
  value: {{ .Values.configServer.workers | quote }}
- name: CONFIG_SERVER_DATABASE_URL
  value: {{ include "iots6.databaseUrl" . | quote }}
- name: CONFIG_SERVER_DATABASE_PASSWORD_FILE
  value: /run/secrets/iots6/db-app-password
- name: CONFIG_SERVER_ADMIN_TOKEN_FILE
  value: /run/secrets/iots6/config-admin-token
- name: CONFIG_SERVER_MQTT_HOST
  value: {{ include "iots6.mqttHost" . | quote }}
- name: CONFIG_SERVER_MQTT_PORT
  value: {{ .Values.mosquitto.internalPort | quote }}
- name: CONFIG_SERVER_MQTT_USERNAME
  value: svc.config
- name: CONFIG_SERVER_MQTT_PASSWORD_FILE
  value: /run/secrets/iots6/mqtt-config-password
- name: CONFIG_SERVER_TOPIC_BASE
  value: {{ .Values.topicBase | quote }}
- name: CONFIG_SERVER_LOG_LEVEL
  value: {{ .Values.configServer.logLevel | quote }}
{{- end }}

{{- define "iots6.migrate.env" -}}
- name: MIGRATE_DATABASE_URL
  value: {{ include "iots6.databaseUrl" . | quote }}
- name: MIGRATE_DATABASE_PASSWORD_FILE
  value: /run/secrets/iots6/db-app-password
{{- end }}
