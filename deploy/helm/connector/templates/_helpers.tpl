{{/* ------------------------------------------------------------------ names and labels */}}
{{- define "connector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "connector.fullname" -}}
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

{{- define "connector.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "connector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "connector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "connector.labels" -}}
helm.sh/chart: {{ include "connector.chart" . }}
{{ include "connector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dataspace-connector
connector.io/environment: {{ .Values.environment | quote }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "connector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "connector.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Secret holding database/redis URLs, API keys and the identity key (chart-made or existing). */}}
{{- define "connector.secretName" -}}
{{- default (printf "%s-secrets" (include "connector.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{- define "connector.configMapName" -}}
{{- printf "%s-config" (include "connector.fullname" .) }}
{{- end }}

{{/* Image for a Dockerfile target: <repository>:<tag>-<target>, or @<digest> when pinned. */}}
{{- define "connector.image" -}}
{{- $root := .root }}
{{- $img := $root.Values.image }}
{{- $digest := get ($img.digests | default dict) .target }}
{{- if $digest }}
{{- printf "%s@%s" $img.repository $digest }}
{{- else }}
{{- printf "%s:%s-%s" $img.repository (default $root.Chart.AppVersion $img.tag) .target }}
{{- end }}
{{- end }}

{{/* Temporal has a usable KEDA: values switch plus (unless forced) the CRD API present. */}}
{{- define "connector.kedaEnabled" -}}
{{- if and .Values.keda.enabled (or .Values.keda.assumeInstalled (.Capabilities.APIVersions.Has "keda.sh/v1alpha1")) -}}
true
{{- end }}
{{- end }}

{{- define "connector.prometheusOperator" -}}
{{- if or .Values.metrics.assumePrometheusOperator (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1") -}}
true
{{- end }}
{{- end }}

{{/* ------------------------------------------------------------------ environment */}}
{{- /* Secret-backed settings. inline: the values themselves instead of secretKeyRefs -- only for the
     migrations hook with the chart-made (dev) Secret, which runs pre-install, before that Secret
     exists (the values are in the release record anyway). */}}
{{- define "connector.secretEnv" -}}
{{- $values := dict
    "databaseUrl" .root.Values.secrets.databaseUrl
    "redisUrl" .root.Values.secrets.redisUrl
    "managementApiKeys" .root.Values.secrets.managementApiKeys
    "temporalApiKey" .root.Values.secrets.temporalApiKey }}
{{- $field := "" }}
{{- range $k, $v := .root.Values.secrets.keys }}{{ if eq $v $.key }}{{ $field = $k }}{{ end }}{{ end }}
- name: {{ .name }}
{{- if and .inline (hasKey $values $field) }}
  value: {{ get $values $field | quote }}
{{- else }}
  valueFrom:
    secretKeyRef:
      name: {{ include "connector.secretName" .root }}
      key: {{ .key }}
{{- end }}
{{- end }}

{{- /* dict: root, inline (see connector.secretEnv) */}}
{{- define "connector.env" -}}
{{- $root := .root }}
{{- $inline := .inline }}
{{- include "connector.secretEnv" (dict "root" $root "inline" $inline "name" "CONNECTOR_DATABASE__URL" "key" $root.Values.secrets.keys.databaseUrl) }}
{{- include "connector.secretEnv" (dict "root" $root "inline" $inline "name" "CONNECTOR_REDIS__URL" "key" $root.Values.secrets.keys.redisUrl) }}
{{- include "connector.secretEnv" (dict "root" $root "inline" $inline "name" "CONNECTOR_MANAGEMENT__API_KEYS" "key" $root.Values.secrets.keys.managementApiKeys) }}
{{- if $root.Values.temporal.apiKey.enabled }}
{{- include "connector.secretEnv" (dict "root" $root "inline" $inline "name" "CONNECTOR_TEMPORAL__API_KEY" "key" $root.Values.secrets.keys.temporalApiKey) }}
{{- end }}
- name: CONNECTOR_DATABASE__POOL__MIN
  value: {{ $root.Values.config.database.pool.min | quote }}
- name: CONNECTOR_DATABASE__POOL__MAX
  value: {{ $root.Values.config.database.pool.max | quote }}
- name: CONNECTOR_TEMPORAL__ADDRESS
  value: {{ $root.Values.temporal.address | quote }}
- name: CONNECTOR_TEMPORAL__TLS
  value: {{ $root.Values.temporal.tls | quote }}
- name: CONNECTOR_TEMPORAL__NAMESPACE
  value: {{ $root.Values.temporal.namespace | quote }}
# Listen on all pod interfaces (the settings default to 127.0.0.1); workers bind health to server.host.
- name: CONNECTOR_SERVER__HOST
  value: "0.0.0.0"
- name: CONNECTOR_SERVER__PORT
  value: {{ $root.Values.controlPlane.port | quote }}
{{- with $root.Values.controlPlane.managementPort }}
- name: CONNECTOR_MANAGEMENT__PORT
  value: {{ . | quote }}
{{- end }}
- name: CONNECTOR_SERVER__PUBLIC_URL
  value: {{ $root.Values.config.publicUrl | quote }}
- name: CONNECTOR_DATAPLANE__HOST
  value: "0.0.0.0"
- name: CONNECTOR_DATAPLANE__PORT
  value: {{ $root.Values.dataPlane.port | quote }}
- name: CONNECTOR_DATAPLANE__PUBLIC_URL
  value: {{ $root.Values.config.dataPlanePublicUrl | quote }}
- name: CONNECTOR_METRICS__HOST
  value: "0.0.0.0"
- name: CONNECTOR_METRICS__PORT
  value: {{ $root.Values.metrics.port | quote }}
- name: CONNECTOR_WORKERS__HEALTH_PORT
  value: {{ $root.Values.workers.healthPort | quote }}
- name: CONNECTOR_LOGGING__LEVEL
  value: {{ $root.Values.config.logging.level | quote }}
- name: CONNECTOR_LOGGING__FORMAT
  value: {{ $root.Values.config.logging.format | quote }}
- name: CONNECTOR_IDENTITY__PARTICIPANT_ID
  value: {{ $root.Values.config.identity.participantId | quote }}
- name: CONNECTOR_IDENTITY__DID
  value: {{ $root.Values.config.identity.did | quote }}
- name: CONNECTOR_DATA_DIR
  value: "/var/lib/connector"
{{- with $root.Values.backup }}
- name: CONNECTOR_BACKUP__ENABLED
  value: {{ .enabled | quote }}
- name: CONNECTOR_BACKUP__TARGET
  value: {{ .target | quote }}
- name: CONNECTOR_BACKUP__SCHEDULE
  value: {{ .schedule | quote }}
- name: CONNECTOR_BACKUP__VERIFY
  value: {{ .verify | quote }}
{{- with .verifyDatabase }}
- name: CONNECTOR_BACKUP__VERIFY_DATABASE
  value: {{ . | quote }}
{{- end }}
{{- if .directDatabaseUrl }}
{{- include "connector.secretEnv" (dict "root" $root "inline" false "name" "CONNECTOR_BACKUP__DATABASE_URL" "key" $root.Values.secrets.keys.backupDatabaseUrl) }}
{{- end }}
{{- if eq .target "s3" }}
- name: CONNECTOR_BACKUP__S3__BUCKET
  value: {{ .s3.bucket | quote }}
- name: CONNECTOR_BACKUP__S3__PREFIX
  value: {{ .s3.prefix | quote }}
{{- with .s3.region }}
- name: CONNECTOR_BACKUP__S3__REGION
  value: {{ . | quote }}
{{- end }}
{{- with .s3.endpointUrl }}
- name: CONNECTOR_BACKUP__S3__ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with .s3.serverSideEncryption }}
- name: CONNECTOR_BACKUP__S3__SERVER_SIDE_ENCRYPTION
  value: {{ . | quote }}
{{- end }}
{{- if .s3.credentialsFromSecret }}
{{- include "connector.secretEnv" (dict "root" $root "inline" false "name" "CONNECTOR_BACKUP__S3__ACCESS_KEY_ID" "key" $root.Values.secrets.keys.backupS3AccessKeyId) }}
{{- include "connector.secretEnv" (dict "root" $root "inline" false "name" "CONNECTOR_BACKUP__S3__SECRET_ACCESS_KEY" "key" $root.Values.secrets.keys.backupS3SecretAccessKey) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* ------------------------------------------------------------------ pod template
     dict: root, component, target, args, ports (list of {name,port}), probePort (name or ""),
           spec (component values: resources, nodeSelector, affinity, tolerations, ...),
           restartPolicy (optional), terminationGracePeriodSeconds (optional),
           hook (optional): a Helm hook pod. It may run pre-install, before the release's
           ServiceAccount and ConfigMap exist, so it uses the namespace's default ServiceAccount
           (token not mounted) and takes its settings from env only (no --config, no ConfigMap). */}}
{{- define "connector.podTemplate" -}}
{{- $root := .root }}
{{- $spec := .spec }}
metadata:
  labels:
    {{- include "connector.selectorLabels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
  annotations:
    checksum/config: {{ include (print $root.Template.BasePath "/config/configmap.yaml") $root | sha256sum }}
    {{- if not $root.Values.secrets.existingSecret }}
    checksum/secret: {{ include (print $root.Template.BasePath "/config/secret.yaml") $root | sha256sum }}
    {{- end }}
    {{- with $root.Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  {{- if not .hook }}
  serviceAccountName: {{ include "connector.serviceAccountName" $root }}
  {{- end }}
  automountServiceAccountToken: {{ $root.Values.serviceAccount.automountServiceAccountToken }}
  # No Docker-link style service env vars: CONNECTOR_<SERVICE>_PORT would collide with the
  # CONNECTOR_ settings prefix (unknown keys are rejected).
  enableServiceLinks: false
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .restartPolicy }}
  restartPolicy: {{ . }}
  {{- end }}
  {{- with .terminationGracePeriodSeconds }}
  terminationGracePeriodSeconds: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  {{- $identityKey := and (not .hook) $root.Values.identity.keyFromSecret }}
  {{- /* The temporal-bootstrap hook writes the backup schedule, whose input is an encrypted payload:
         it needs the ring too (post-install, so the Secret exists). */}}
  {{- $dataKeys := and $root.Values.encryption.keyFromSecret (or (not .hook) (eq .component "temporal-bootstrap")) }}
  {{- $keyFiles := or $identityKey $dataKeys }}
  {{- if $keyFiles }}
  initContainers:
    # The identity key and the data key ring must be 0400 and owned by the connector user (the
    # connector refuses group/world readable keys); Secret volumes are root:fsGroup, so copy them
    # into an in-memory volume.
    - name: identity-key
      image: {{ include "connector.image" (dict "root" $root "target" .target) | quote }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      command:
        - python
        - -c
        - |
          import os, shutil
          for name in ("identity-key.pem", "data-keys.json"):
              src, dst = "/etc/connector/secret-keys/" + name, "/etc/connector/keys/" + name
              if os.path.exists(src):
                  shutil.copyfile(src, dst)
                  os.chmod(dst, 0o400)
      resources:
        requests: {cpu: 10m, memory: 32Mi}
        limits: {cpu: 100m, memory: 64Mi}
      securityContext:
        {{- toYaml $root.Values.containerSecurityContext | nindent 8 }}
      volumeMounts:
        - name: identity-key-secret
          mountPath: /etc/connector/secret-keys
          readOnly: true
        - name: identity-key
          mountPath: /etc/connector/keys
  {{- end }}
  containers:
    - name: {{ .component }}
      image: {{ include "connector.image" (dict "root" $root "target" .target) | quote }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args:
        {{- if not .hook }}
        - --config
        - /etc/connector/config.yaml
        {{- end }}
        {{- toYaml .args | nindent 8 }}
      {{- with .ports }}
      ports:
        {{- range . }}
        - name: {{ .name }}
          containerPort: {{ .port }}
          protocol: TCP
        {{- end }}
      {{- end }}
      env:
        {{- include "connector.env" (dict "root" $root "inline" (and .hook (not $root.Values.secrets.existingSecret))) | nindent 8 }}
        {{- if $identityKey }}
        - name: CONNECTOR_IDENTITY__KEY_PATH
          value: /etc/connector/keys/identity-key.pem
        {{- end }}
        {{- if $dataKeys }}
        - name: CONNECTOR_ENCRYPTION__KEY_FILE
          value: /etc/connector/keys/data-keys.json
        {{- end }}
        {{- with $spec.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- if .probePort }}
      # Liveness (and start-up) ask only whether the process answers: a Postgres, Redis or
      # Temporal outage must not restart every pod. Readiness carries the dependencies.
      startupProbe:
        httpGet:
          path: /live
          port: {{ .probePort }}
        periodSeconds: 5
        failureThreshold: 30
      livenessProbe:
        httpGet:
          path: /live
          port: {{ .probePort }}
        initialDelaySeconds: 30
        periodSeconds: 10
        timeoutSeconds: 5
        failureThreshold: 3
      readinessProbe:
        httpGet:
          path: /ready
          port: {{ .probePort }}
        initialDelaySeconds: 5
        periodSeconds: 5
        timeoutSeconds: 3
        failureThreshold: 3
      {{- end }}
      resources:
        {{- toYaml $spec.resources | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.containerSecurityContext | nindent 8 }}
      volumeMounts:
        {{- if not .hook }}
        - name: config
          mountPath: /etc/connector/config.yaml
          subPath: config.yaml
          readOnly: true
        {{- end }}
        {{- if $keyFiles }}
        - name: identity-key
          mountPath: /etc/connector/keys
          readOnly: true
        {{- end }}
        - name: tmp
          mountPath: /tmp
        - name: data
          mountPath: /var/lib/connector
  volumes:
    {{- if not .hook }}
    - name: config
      configMap:
        name: {{ include "connector.configMapName" $root }}
    {{- end }}
    {{- if $keyFiles }}
    - name: identity-key-secret
      secret:
        secretName: {{ include "connector.secretName" $root }}
        defaultMode: 0440
        items:
          {{- if $identityKey }}
          - key: {{ $root.Values.secrets.keys.identityKey }}
            path: identity-key.pem
          {{- end }}
          {{- if $dataKeys }}
          - key: {{ $root.Values.secrets.keys.dataKeys }}
            path: data-keys.json
          {{- end }}
    - name: identity-key
      emptyDir:
        medium: Memory
        sizeLimit: 1Mi
    {{- end }}
    - name: tmp
      emptyDir:
        medium: Memory
        sizeLimit: {{ $root.Values.tmpSizeLimit }}
    - name: data
      emptyDir:
        sizeLimit: {{ $spec.dataSizeLimit | default "1Gi" }}
  {{- with $spec.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $spec.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $spec.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if $spec.topologySpread }}
  topologySpreadConstraints:
    - maxSkew: 1
      topologyKey: topology.kubernetes.io/zone
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "connector.selectorLabels" $root | nindent 10 }}
          app.kubernetes.io/component: {{ .component }}
    - maxSkew: 1
      topologyKey: kubernetes.io/hostname
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "connector.selectorLabels" $root | nindent 10 }}
          app.kubernetes.io/component: {{ .component }}
  {{- end }}
{{- end }}

{{/* HPA behaviour (seed policy): slow scale-down (10 %/min after 5 min), fast scale-up (50 %/min). */}}
{{- define "connector.hpaBehavior" -}}
scaleDown:
  stabilizationWindowSeconds: {{ .scaleDownStabilizationSeconds | default 300 }}
  policies:
    - type: Percent
      value: 10
      periodSeconds: 60
scaleUp:
  stabilizationWindowSeconds: 60
  policies:
    - type: Percent
      value: 50
      periodSeconds: 60
{{- end }}
