{{/* The service's name: every object of the chart is named after it. Every value from
the pipeline is quoted: a service named "on" or "null" stays a string. */}}
{{- define "svc.name" -}}
{{- .Values.name -}}
{{- end -}}

{{- define "svc.labels" -}}
app.kubernetes.io/name: {{ .Values.name | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
pipecompile/environment: {{ .Values.environment | quote }}
{{- end -}}

{{- define "svc.selector" -}}
app.kubernetes.io/name: {{ .Values.name | quote }}
{{- end -}}

{{/* The image by digest once a deployer recorded one (image-<env>.yaml), else by tag. */}}
{{- define "svc.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ required "image.digest or image.tag (image-<env>.yaml, written by the deployer)" .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* Secrets by name, for the reload annotation (Stakater Reloader). */}}
{{- define "svc.secretNames" -}}
{{- $names := list -}}
{{- range .Values.externalSecrets.secrets -}}
{{- $names = append $names .name -}}
{{- end -}}
{{- join "," $names -}}
{{- end -}}

{{- define "svc.pod" -}}
metadata:
  labels:
    {{- include "svc.labels" . | nindent 4 }}
spec:
  serviceAccountName: {{ include "svc.name" . | quote }}
  automountServiceAccountToken: false
  # the preStop pause, then the application's own shutdown (SIGTERM) within this
  terminationGracePeriodSeconds: {{ .Values.shutdown.terminationGracePeriodSeconds }}
  securityContext:
    runAsNonRoot: true
    runAsUser: {{ .Values.securityContext.runAsUser }}
    runAsGroup: {{ .Values.securityContext.runAsUser }}
    seccompProfile:
      type: RuntimeDefault
  containers:
    - name: {{ include "svc.name" . | quote }}
      image: {{ include "svc.image" . | quote }}
      ports:
        - name: http
          containerPort: {{ .Values.service.port }}
          protocol: TCP
      securityContext:
        allowPrivilegeEscalation: false
        capabilities:
          drop: ["ALL"]
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      # a terminating pod leaves the Endpoints at once, but the ALB deregisters its target
      # only when the AWS Load Balancer Controller has seen that and called the API: the
      # pod keeps serving the requests the ALB still sends it meanwhile (the kubelet's
      # sleep action needs no shell in the image)
      lifecycle:
        preStop:
          sleep:
            seconds: {{ .Values.shutdown.preStopSeconds }}
      {{- with .Values.externalSecrets }}
      env:
        {{- range .secrets }}
        - name: {{ printf "%s_FILE" .envName | quote }}
          value: {{ printf "%s/%s/%s" $.Values.externalSecrets.mountPath .name .envName | quote }}
        {{- end }}
      envFrom:
        {{- range .secrets }}
        - secretRef:
            name: {{ .name | quote }}
        {{- end }}
      volumeMounts:
        {{- range .secrets }}
        # a mounted Secret (no subPath) is updated in place when the value rotates
        - name: {{ printf "secret-%s" .name | trunc 63 | trimSuffix "-" | quote }}
          mountPath: {{ printf "%s/%s" $.Values.externalSecrets.mountPath .name | quote }}
          readOnly: true
        {{- end }}
      {{- end }}
      # starting: up to probes.startupSeconds before liveness counts; ready: serving
      # (readiness gates traffic and the rollout); alive: the port accepts connections
      # (a failing dependency makes a pod unready, not restarted)
      startupProbe:
        httpGet:
          path: {{ .Values.probes.startupPath | quote }}
          port: http
        periodSeconds: 5
        failureThreshold: {{ div .Values.probes.startupSeconds 5 }}
      readinessProbe:
        httpGet:
          path: {{ .Values.probes.readinessPath | quote }}
          port: http
        periodSeconds: 5
        failureThreshold: 3
      livenessProbe:
        tcpSocket:
          port: http
        periodSeconds: 10
        failureThreshold: 3
  {{- with .Values.externalSecrets }}
  volumes:
    {{- range .secrets }}
    - name: {{ printf "secret-%s" .name | trunc 63 | trimSuffix "-" | quote }}
      secret:
        secretName: {{ .name | quote }}
    {{- end }}
  {{- end }}
{{- end -}}
