{{- define "orchestrator.redis" -}}
{{- if .Values.redis.enabled -}}{{ .Release.Name }}-redis:6379{{- else -}}{{ required "redis.address is required when redis.enabled is false" .Values.redis.address }}{{- end -}}
{{- end -}}
