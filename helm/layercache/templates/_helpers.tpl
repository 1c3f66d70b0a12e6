{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "layercache.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-qualified name; room is left for the "-headless" suffix and
the StatefulSet's pod ordinal within 63 characters. */}}
{{- define "layercache.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "layercache.headless" -}}
{{- printf "%s-headless" (include "layercache.fullname" .) -}}
{{- end -}}

{{- define "layercache.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "layercache.selectorLabels" -}}
app.kubernetes.io/name: {{ include "layercache.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "layercache.labels" -}}
helm.sh/chart: {{ include "layercache.chart" . }}
{{ include "layercache.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: layercache
{{- end -}}

{{- define "layercache.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The Secret holding the tokens file. */}}
{{- define "layercache.tokensSecret" -}}
{{- if .Values.auth.existingSecret -}}
{{- .Values.auth.existingSecret -}}
{{- else -}}
{{- printf "%s-tokens" (include "layercache.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "layercache.tokensKey" -}}
{{- if .Values.auth.existingSecret -}}
{{- .Values.auth.existingSecretKey -}}
{{- else -}}
tokens
{{- end -}}
{{- end -}}

{{/* The peer port (cluster mode): gRPC port + cluster.peerPortOffset. */}}
{{- define "layercache.peerPort" -}}
{{- add (int .Values.server.grpcPort) (int .Values.cluster.peerPortOffset) -}}
{{- end -}}

{{/* The Secret holding the cluster token ("" = none: the public default). */}}
{{- define "layercache.clusterSecret" -}}
{{- if .Values.cluster.existingSecret -}}
{{- .Values.cluster.existingSecret -}}
{{- else if .Values.auth.enabled -}}
{{- printf "%s-cluster" (include "layercache.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "layercache.clusterSecretKey" -}}
{{- if .Values.cluster.existingSecret -}}
{{- .Values.cluster.existingSecretKey -}}
{{- else -}}
cluster-token
{{- end -}}
{{- end -}}

{{/* Cluster DNS names: the headless Service resolves to every replica
(peer discovery, --peers); each pod has <pod>.<headless>.<namespace>.svc. */}}
{{- define "layercache.peersDNS" -}}
{{- printf "%s.%s.svc:%d" (include "layercache.headless" .) .Release.Namespace (int .Values.server.grpcPort) -}}
{{- end -}}

{{/* Refuse value combinations the server would refuse or that would
silently make a bad cache. */}}
{{- define "layercache.validate" -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.cluster.enabled) -}}
{{- fail "replicas > 1 needs cluster.enabled=true: unsharded replicas behind one Service would each hold a separate cache" -}}
{{- end -}}
{{- if and .Values.cluster.enabled (gt (int .Values.cluster.replication) (int .Values.replicas)) -}}
{{- fail (printf "cluster.replication (%d) cannot exceed replicas (%d)" (int .Values.cluster.replication) (int .Values.replicas)) -}}
{{- end -}}
{{- if and .Values.auth.enabled (not .Values.auth.existingSecret) (not .Values.auth.tokens) -}}
{{- fail "auth.enabled needs auth.existingSecret or at least one entry in auth.tokens" -}}
{{- end -}}
{{- if and .Values.cluster.enabled (eq (int (include "layercache.peerPort" .)) (int .Values.server.httpPort)) -}}
{{- fail (printf "the peer port (server.grpcPort + cluster.peerPortOffset = %s) is server.httpPort: change cluster.peerPortOffset" (include "layercache.peerPort" .)) -}}
{{- end -}}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) -}}
{{- fail "tls.enabled needs tls.secretName (a kubernetes.io/tls Secret)" -}}
{{- end -}}
{{- if and .Values.tls.clientCA.enabled (not .Values.tls.enabled) -}}
{{- fail "tls.clientCA.enabled needs tls.enabled" -}}
{{- end -}}
{{- if and .Values.tls.clientCA.enabled (not .Values.tls.clientCA.secretName) -}}
{{- fail "tls.clientCA.enabled needs tls.clientCA.secretName" -}}
{{- end -}}
{{- end -}}
