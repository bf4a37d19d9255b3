{{/* Names and labels shared by every object. */}}

{{- define "sagebridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sagebridge.fullname" -}}
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

{{- define "sagebridge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sagebridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sagebridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sagebridge.labels" -}}
helm.sh/chart: {{ include "sagebridge.chart" . }}
{{ include "sagebridge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sagebridge
{{- end -}}

{{- define "sagebridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sagebridge.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret the pods read tokens and passwords from: the chart's own, or existingSecret. */}}
{{- define "sagebridge.secretName" -}}
{{- if .Values.existingSecret -}}
{{- .Values.existingSecret -}}
{{- else -}}
{{- include "sagebridge.fullname" . -}}
{{- end -}}
{{- end -}}

{{/* repository@digest when a digest is given (the exact image, whatever a tag points at
later), else repository:tag (the chart's appVersion by default). */}}
{{- define "sagebridge.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "sagebridge.httpPort" -}}
{{- .Values.settings.HTTP_PORT | default 8000 | int -}}
{{- end -}}

{{/* "true" when settings.REDIS_URL carries credentials (user part or a password parameter):
the URL is then a secret, rendered into the Secret instead of the ConfigMap. */}}
{{- define "sagebridge.redisUrlIsSecret" -}}
{{- if regexMatch "^[A-Za-z0-9+.-]+://[^/?#]*@|[?&]password=" (.Values.settings.REDIS_URL | default "" | toString) -}}true{{- end -}}
{{- end -}}

{{/* Where tenants' token files come from: existingSecret, or the chart's own Secret. */}}
{{- define "sagebridge.tenantTokensSecretName" -}}
{{- if .Values.existingSecret -}}
{{- .Values.existingSecret -}}
{{- else -}}
{{- include "sagebridge.fullname" . -}}-tenant-tokens
{{- end -}}
{{- end -}}

{{/* "true" when a proxy URL carries credentials: it is then kept in the Secret, as a Redis
URL with a password is. */}}
{{- define "sagebridge.urlHasCredentials" -}}
{{- if regexMatch "^([A-Za-z0-9+.-]+://)?[^/?#]*@" (toString .) -}}true{{- end -}}
{{- end -}}

{{/* The proxy variables the service's pods get, as a list of {name, url}: HTTPS_PROXY for an
https:// Connector URL, HTTP_PROXY for http://. */}}
{{- define "sagebridge.proxies" -}}
{{- $proxies := list -}}
{{- with .Values.connector.proxy.https }}{{ $proxies = append $proxies (dict "name" "HTTPS_PROXY" "url" .) }}{{ end -}}
{{- with .Values.connector.proxy.http }}{{ $proxies = append $proxies (dict "name" "HTTP_PROXY" "url" .) }}{{ end -}}
{{- toJson $proxies -}}
{{- end -}}

{{/* The volume the Connector's CA bundle is mounted from: a ConfigMap or a Secret. */}}
{{- define "sagebridge.connectorCaVolume" -}}
- name: connector-ca
  {{- if .Values.connector.ca.configMapName }}
  configMap:
    name: {{ .Values.connector.ca.configMapName }}
  {{- else }}
  secret:
    secretName: {{ .Values.connector.ca.secretName }}
    defaultMode: 0440
  {{- end }}
{{- end -}}

{{/* The Connector's TLS files, mounted read-only in every pod that loads the settings (the
service's and the console's): start-up refuses a path that is not a readable file. Whole
directories, never subPath, like every other mount here. */}}
{{- define "sagebridge.connectorTlsMounts" -}}
{{- if or .Values.connector.ca.configMapName .Values.connector.ca.secretName }}
- name: connector-ca
  mountPath: {{ .Values.connector.ca.mountPath }}
  readOnly: true
{{- end }}
{{- if .Values.connector.clientCert.secretName }}
- name: connector-client-cert
  mountPath: {{ .Values.connector.clientCert.mountPath }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "sagebridge.connectorTlsVolumes" -}}
{{- if or .Values.connector.ca.configMapName .Values.connector.ca.secretName }}
{{ include "sagebridge.connectorCaVolume" . }}
{{- end }}
{{- if .Values.connector.clientCert.secretName }}
- name: connector-client-cert
  secret:
    secretName: {{ .Values.connector.clientCert.secretName }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{- define "sagebridge.tenantsMountPath" -}}/etc/sagebridge/tenants{{- end -}}

{{/* Fail early on combinations that cannot work. */}}
{{- define "sagebridge.validate" -}}
{{- if and .Values.autoscaling.enabled .Values.keda.enabled -}}
{{- fail "autoscaling.enabled and keda.enabled are exclusive: both would own the replica count" -}}
{{- end -}}
{{- $protocol := .Values.settings.KAFKA_SECURITY_PROTOCOL | default "PLAINTEXT" -}}
{{- if and (hasPrefix "SASL" $protocol) (not (and .Values.kafka.sasl.mechanism .Values.kafka.sasl.username)) -}}
{{- fail "settings.KAFKA_SECURITY_PROTOCOL is SASL: set kafka.sasl.mechanism and kafka.sasl.username (and the password)" -}}
{{- end -}}
{{- $stop := addf (.Values.settings.HTTP_TIMEOUT_S | default 30 | float64) (.Values.settings.DRAIN_TIMEOUT_S | default 8 | float64) -}}
{{- if ge $stop (.Values.terminationGracePeriodSeconds | float64) -}}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed settings.HTTP_TIMEOUT_S + settings.DRAIN_TIMEOUT_S (%v s): a stopping replica may be inside a transactional call, then drains, and the kubelet must not kill it first" .Values.terminationGracePeriodSeconds $stop) -}}
{{- end -}}
{{- if and .Values.existingSecret (include "sagebridge.redisUrlIsSecret" .) -}}
{{- fail "settings.REDIS_URL carries a password, and with existingSecret the chart renders no Secret to hold it: put SAGEBRIDGE_REDIS_URL in that Secret and leave the password out of settings.REDIS_URL" -}}
{{- end -}}
{{- if and .Values.connector.ca.configMapName .Values.connector.ca.secretName -}}
{{- fail "connector.ca: set configMapName or secretName, not both" -}}
{{- end -}}
{{- if .Values.existingSecret -}}
{{- range (include "sagebridge.proxies" . | fromJsonArray) -}}
{{- if include "sagebridge.urlHasCredentials" .url -}}
{{- fail (printf "connector.proxy: the %s URL carries a password, and with existingSecret the chart renders no Secret to hold it: put %s in that Secret and leave connector.proxy empty" .name .name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $dt := .Values.defaultTenant -}}
{{- if and (or $dt.customer $dt.company) (not (and $dt.customer $dt.company)) -}}
{{- fail "defaultTenant needs both customer and company (or neither)" -}}
{{- end -}}
{{- end -}}

{{/* The console's pods: labels of their own, so the service's Deployment, Service and
NetworkPolicy never select them. */}}
{{- define "sagebridge.consoleSelectorLabels" -}}
app.kubernetes.io/name: {{ include "sagebridge.name" . }}-console
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: console
{{- end -}}

{{- define "sagebridge.consoleLabels" -}}
helm.sh/chart: {{ include "sagebridge.chart" . }}
{{ include "sagebridge.consoleSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sagebridge
{{- end -}}

{{/* Exactly one way to sign in to the console, or the chart refuses to render. */}}
{{- define "sagebridge.consoleSignIn" -}}
{{- $password := or .Values.console.password .Values.console.existingSecret -}}
{{- if and $password .Values.console.trustedProxyHeader -}}
{{- fail "console: set a password (password or existingSecret) or trustedProxyHeader, not both" -}}
{{- else if not (or $password .Values.console.trustedProxyHeader) -}}
{{- fail "console: set password, existingSecret or trustedProxyHeader: the console refuses to start without a way to sign in" -}}
{{- end -}}
{{- end -}}
