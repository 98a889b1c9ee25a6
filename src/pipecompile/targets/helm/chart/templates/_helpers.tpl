{{/* The service's name: every object of the chart is named after it. */}}
{{- define "svc.name" -}}
{{- .Values.name -}}
{{- end -}}

{{- define "svc.labels" -}}
app.kubernetes.io/name: {{ .Values.name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
pipecompile/environment: {{ .Values.environment }}
{{- end -}}

{{- define "svc.selector" -}}
app.kubernetes.io/name: {{ .Values.name }}
{{- end -}}

{{/* The image by digest once a deployer recorded one (image-<env>.yaml), else by tag. */}}
{{- define "svc.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ required "image.digest or image.tag (image-<env>.yaml, written by the deployer)" .Values.image.tag }}
{{- end -}}
{{- end -}}

{{- define "svc.pod" -}}
metadata:
  labels:
    {{- include "svc.labels" . | nindent 4 }}
spec:
  serviceAccountName: {{ include "svc.name" . }}
  containers:
    - name: {{ include "svc.name" . }}
      image: {{ include "svc.image" . | quote }}
      ports:
        - name: http
          containerPort: {{ .Values.service.port }}
          protocol: TCP
      readinessProbe:
        httpGet:
          path: {{ .Values.probes.readinessPath }}
          port: http
        periodSeconds: 5
        failureThreshold: 3
      livenessProbe:
        httpGet:
          path: {{ .Values.probes.livenessPath }}
          port: http
        initialDelaySeconds: 10
        periodSeconds: 10
        failureThreshold: 3
      {{- with .Values.externalSecrets }}
      envFrom:
        {{- range .secrets }}
        - secretRef:
            name: {{ .name }}
        {{- end }}
      {{- end }}
{{- end -}}
