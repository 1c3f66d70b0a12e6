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

{{/* Bytes of server.maxSize (--max-size: K/M/G/T are powers of 1024); 0 =
unlimited. */}}
{{- define "layercache.maxSizeBytes" -}}
{{- $s := toString .Values.server.maxSize -}}
{{- $n := regexFind "^[0-9]+" $s -}}
{{- if or (eq $n "") (eq $s "0") -}}
0
{{- else -}}
{{- $unit := dict "" 1.0 "K" 1024.0 "M" 1048576.0 "G" 1073741824.0 "T" 1099511627776.0 -}}
{{- mulf (float64 $n) (get $unit (trimPrefix $n $s)) -}}
{{- end -}}
{{- end -}}

{{/* Bytes of a Kubernetes quantity (Ki/Mi/Gi/Ti/Pi binary, K/M/G/T/P
decimal). */}}
{{- define "layercache.quantityBytes" -}}
{{- $n := regexFind "^[0-9]+(\\.[0-9]+)?" . -}}
{{- $unit := dict "" 1.0 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 "K" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 -}}
{{- mulf (float64 $n) (get $unit (trimPrefix $n .)) -}}
{{- end -}}

{{/* GiB of volume server.maxSize needs: the server keeps its data
directory (RocksDB's own files included) within maxSize + maxSize/10 +
64 MiB, and a filesystem gives its files about 93 % of the volume (ext4
keeps 5 % for root, the pod is not root; metadata and journal take ~2 %).
0 when maxSize is unlimited. */}}
{{- define "layercache.volumeGiB" -}}
{{- $max := include "layercache.maxSizeBytes" . | float64 -}}
{{- if gt $max 0.0 -}}
{{- ceil (divf (addf (mulf $max 1.1) 67108864.0) (mulf 0.93 1073741824.0)) | int -}}
{{- else -}}
0
{{- end -}}
{{- end -}}

{{/* The volume size: persistence.size, or (empty) the size server.maxSize
needs; an explicit size too small for maxSize is refused. */}}
{{- define "layercache.volumeSize" -}}
{{- $need := include "layercache.volumeGiB" . | int -}}
{{- if .Values.persistence.size -}}
{{- $have := include "layercache.quantityBytes" .Values.persistence.size | float64 -}}
{{- if and (gt $need 0) (lt $have (mulf (float64 $need) 1073741824.0)) -}}
{{- fail (printf "persistence.size %s is too small for server.maxSize %s: the data directory may reach maxSize + 10%% + 64Mi, which needs a %dGi volume; leave persistence.size empty to get that" .Values.persistence.size (toString .Values.server.maxSize) $need) -}}
{{- end -}}
{{- .Values.persistence.size -}}
{{- else if gt $need 0 -}}
{{- printf "%dGi" $need -}}
{{- else -}}
{{- fail "persistence.size is required when server.maxSize is unlimited (\"\" or \"0\"): nothing bounds the data directory" -}}
{{- end -}}
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
