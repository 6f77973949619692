{{/* Name of the chart, overridable with nameOverride. */}}
{{- define "extschema.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's resources: fullnameOverride, else RELEASE-NAME (RELEASE alone when it already
contains the name). 52 characters leave room for the suffixes of Roles ("-secrets").
*/}}
{{- define "extschema.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* chart label value: NAME-VERSION. */}}
{{- define "extschema.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Kubernetes' recommended labels, on every object. */}}
{{- define "extschema.labels" -}}
helm.sh/chart: {{ include "extschema.chart" . }}
{{ include "extschema.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: extschema
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The image: pulled by digest when image.digest is set (the tag then only labels objects). */}}
{{- define "extschema.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
{{- end }}

{{/* The labels that select the operator pod (never change them: Deployment selectors are immutable). */}}
{{- define "extschema.selectorLabels" -}}
app.kubernetes.io/name: {{ include "extschema.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The operator's ServiceAccount. */}}
{{- define "extschema.serviceAccountName" -}}
{{- default (include "extschema.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/* Whether the operator watches every namespace (no watch.namespaces given). */}}
{{- define "extschema.clusterWide" -}}
{{- if not .Values.watch.namespaces }}true{{ end }}
{{- end }}

{{/*
The rules for the watched resources, shared by the ClusterRole (cluster-wide) and the Roles (per namespace).
Exactly the calls the operator makes: kopf lists and watches both kinds (its indexes and handlers), patches
them (finalizer, progress annotations; the re-check annotation of waiting ExtensionSchemas) and their status
subresource (conditions), the drift loop gets one ExtensionSchema by name before it writes InSync, and it posts
core/v1 Events. No create, update or delete: the operator never creates, replaces or deletes these objects.
*/}}
{{- define "extschema.resourceRules" -}}
# Watch ExtensionSchemas and DatabaseTargets (kopf's list+watch streams); patch them for the finalizer
# extschema.io/cleanup, kopf's progress annotations and the re-check annotation.
- apiGroups: [extschema.io]
  resources: [extensionschemas, databasetargets]
  verbs: [list, watch, patch]
# The drift loop (controller/drift.py) reads one ExtensionSchema by name to write its InSync condition against
# the current resourceVersion.
- apiGroups: [extschema.io]
  resources: [extensionschemas]
  verbs: [get]
# Write conditions, observedGeneration, tables and lastMigration through the status subresource only.
- apiGroups: [extschema.io]
  resources: [extensionschemas/status, databasetargets/status]
  verbs: [patch]
# Post events (MigrationStarted/Succeeded/Failed, Deleted, warnings) next to the resources.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{/* Read one Secret by name (a DatabaseTarget's spec.urlSecretRef): get only, never list or watch. */}}
{{- define "extschema.secretRule" -}}
# Read the Secret a DatabaseTarget names in spec.urlSecretRef: one targeted GET per connection. No list or
# watch, so the operator never sees Secrets it was not pointed at.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
{{- end }}

{{/*
The Secret rules wherever Secrets may be read: the named GET of a DatabaseTarget's spec.urlSecretRef, and with
rbac.pluginRoleSecrets the writes of the plugins' credentials Secrets (controller/plugin_roles.py), which go
next to the ExtensionSchemas and so follow the same scope.
*/}}
{{- define "extschema.secretRules" -}}
{{ include "extschema.secretRule" . }}
{{- if .Values.rbac.pluginRoleSecrets }}
{{ include "extschema.pluginRoleSecretRule" . }}
{{- end }}
{{- end }}

{{/*
rbac.pluginRoleSecrets: write the Secret `<ExtensionSchema>-db-credentials` of a DatabaseTarget with
spec.pluginRoles. Exactly the operator's calls: GET it by name (granted by the rule above), POST it when
missing, merge-PATCH its data. Never update (PUT), delete (the ownerReference lets the garbage collector delete
it), list or watch. RBAC cannot narrow create by name, and the names follow the ExtensionSchemas.
*/}}
{{- define "extschema.pluginRoleSecretRule" -}}
# spec.pluginRoles: create the plugin's credentials Secret <ExtensionSchema>-db-credentials next to its
# ExtensionSchema and patch its data (the password is kept). No update, delete, list or watch.
- apiGroups: [""]
  resources: [secrets]
  verbs: [create, patch]
{{- end }}

{{/* The Secret holding the webhook's serving certificate (cert-manager's, or an existing one). */}}
{{- define "extschema.webhookSecret" -}}
{{- if .Values.webhook.certManager.enabled }}
{{- printf "%s-webhook-tls" (include "extschema.fullname" .) }}
{{- else }}
{{- required "webhook.enabled needs webhook.certManager.enabled, or webhook.existingSecret and webhook.caBundle" .Values.webhook.existingSecret }}
{{- end }}
{{- end }}

{{/*
The REST API (api.enabled): its own name and selector, so the operator's Deployment and Service never select
the API's pods (and the other way round).
*/}}
{{- define "extschema.apiName" -}}
{{- printf "%s-api" (include "extschema.fullname" .) }}
{{- end }}

{{- define "extschema.apiSelectorLabels" -}}
app.kubernetes.io/name: {{ include "extschema.name" . }}-api
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "extschema.apiLabels" -}}
helm.sh/chart: {{ include "extschema.chart" . }}
{{ include "extschema.apiSelectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: api
app.kubernetes.io/part-of: extschema
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The Secret and key holding the database URL the API serves: its own, else the operator's default. */}}
{{- define "extschema.apiDatabaseSecret" -}}
{{- required "api.enabled needs a database: set api.database.existingSecret (or database.existingSecret), a Secret holding its URL" (.Values.api.database.existingSecret | default .Values.database.existingSecret) }}
{{- end }}

{{- define "extschema.apiDatabaseKey" -}}
{{- if .Values.api.database.existingSecret }}{{ .Values.api.database.key }}{{ else }}{{ .Values.database.key }}{{ end }}
{{- end }}

{{/* A docs page of this chart's version, as a URL (a packaged chart has no docs/ directory): (list . "page.md"). */}}
{{- define "extschema.docs" -}}
{{- $root := index . 0 -}}
{{ $root.Chart.Home }}/blob/v{{ $root.Chart.AppVersion }}/docs/{{ index . 1 }}
{{- end }}

{{/*
Whether the operator runs with kopf peering (docs/ha.md): one active replica, the others standing by. On with
more than one replica; with one it runs --standalone (no peering objects, no peering RBAC).
*/}}
{{- define "extschema.peering" -}}
{{- if gt (int .Values.replicaCount) 1 }}true{{ end }}
{{- end }}

{{/* The kopf peering object the replicas share: peering.name, else the release's full name. */}}
{{- define "extschema.peeringName" -}}
{{- default (include "extschema.fullname" .) .Values.peering.name }}
{{- end }}

{{/* Install kopf's peering CRDs: only where peering runs, with crds.create and crds.kopfPeering. */}}
{{- define "extschema.installPeeringCrds" -}}
{{- if and .Values.crds.create .Values.crds.kopfPeering (include "extschema.peering" .) }}true{{ end }}
{{- end }}

{{/*
kopf peering's rules, in the ClusterRole (cluster-wide: ClusterKopfPeering) or each watched namespace's Role
(KopfPeering). Only with peering.
*/}}
{{- define "extschema.peeringRules" -}}
{{- if include "extschema.peering" . }}
# kopf peering (replicaCount > 1, docs/ha.md): every replica watches the peering object and patches its own
# keep-alive into its status; `extschema run --peering` creates the object when it is missing. Never deleted.
- apiGroups: [kopf.dev]
  resources: [{{ if include "extschema.clusterWide" . }}clusterkopfpeerings{{ else }}kopfpeerings{{ end }}]
  verbs: [get, list, watch, patch, create]
{{- end }}
{{- end }}

{{/* How many operator Deployments run (sharding.shards; 1: one operator owns every ExtensionSchema). */}}
{{- define "extschema.shards" -}}
{{- max 1 (int .Values.sharding.shards) }}
{{- end }}
