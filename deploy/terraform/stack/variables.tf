# Variables of one environment: ../environments/<env>.tfvars sets them, secrets come from TF_VAR_*.
variable "environment" {
  type = string
  validation {
    condition     = contains(["dev", "staging", "production"], var.environment)
    error_message = "environment must be dev, staging or production."
  }
}

variable "namespace" {
  type = string
}

variable "instance_name" {
  type = string
}

# --- database
variable "database_name" {
  type    = string
  default = "connector"
}

variable "database_username" {
  type    = string
  default = "connector"
}

variable "database_storage_size" {
  type = string
}

variable "install_cnpg_operator" {
  description = "Install the CloudNativePG operator (once per Kubernetes cluster: false in all but one environment sharing a cluster)."
  type        = bool
  default     = true
}

variable "postgres_max_connections" {
  description = "Postgres max_connections: must hold the PgBouncer pools, Temporal and direct backup sessions (tests/deploy/test_pool_arithmetic.py)."
  type        = number
  default     = 200
}

variable "pooler_default_pool_size" {
  description = "PgBouncer server connections per pooler instance (connector database)."
  type        = number
  default     = 20
}

variable "pooler_max_client_conn" {
  description = "PgBouncer client connections per pooler instance: must hold every connector pod's pool."
  type        = number
  default     = 1000
}

# --- backups (object storage; empty bucket: Postgres is not backed up by CloudNativePG and the
# connector keeps its logical backups in the ops worker's volume)
variable "backup_bucket" {
  type    = string
  default = ""
}

variable "backup_region" {
  type    = string
  default = ""
}

variable "backup_endpoint_url" {
  description = "S3-compatible endpoint (MinIO, Ceph); empty: AWS S3 of backup_region."
  type        = string
  default     = ""
}

variable "backup_service_account_annotations" {
  description = "Workload identity for the backups (e.g. eks.amazonaws.com/role-arn) when no static keys are given."
  type        = map(string)
  default     = {}
}

# --- redis (Valkey)
variable "redis_storage_size" {
  type = string
}

# --- application
variable "image_repository" {
  type    = string
  default = "ghcr.io/example/lightweight-dataspace-connector"
}

variable "image_tag" {
  type = string
}

variable "ingress_host" {
  type = string
}

variable "tls_secret_name" {
  type = string
}

# --- infrastructure
variable "storage_class" {
  type = string
}

variable "prometheus_release_label" {
  description = "`release` label on ServiceMonitors/PodMonitors/PrometheusRules (kube-prometheus-stack's default selector is its release name)."
  type        = string
  default     = "kube-prometheus-stack"
}

# --- Temporal
variable "temporal_self_hosted" {
  description = "Install temporalio/helm-charts in the namespace; false = Temporal Cloud (temporal_address + API key)."
  type        = bool
  default     = true
}

variable "temporal_address" {
  description = "Temporal Cloud endpoint host:port (only when temporal_self_hosted = false)."
  type        = string
  default     = ""
}

variable "temporal_namespace" {
  type    = string
  default = "connector"
}

variable "temporal_retention" {
  type    = string
  default = "30d"
}

variable "temporal_ui" {
  description = "Temporal UI Ingress behind oauth2-proxy (modules/temporal web_ingress); host empty: port-forward only."
  type = object({
    host        = string
    class_name  = string
    tls_secret  = string
    auth_url    = string
    auth_signin = string
  })
  default = {
    host        = ""
    class_name  = "nginx"
    tls_secret  = ""
    auth_url    = ""
    auth_signin = ""
  }
}

# --- scaling
variable "control_plane_replicas" {
  type = number
}

variable "management_port" {
  description = "Own port for the management API (management.port); null: served on the control-plane port"
  type        = number
  default     = null
}

variable "data_plane_replicas" {
  type = number
}

# --- resources
variable "control_plane_cpu_request" {
  type = string
}

variable "control_plane_memory_request" {
  type = string
}

variable "control_plane_cpu_limit" {
  type = string
}

variable "control_plane_memory_limit" {
  type = string
}

variable "data_plane_cpu_request" {
  type = string
}

variable "data_plane_memory_request" {
  type = string
}

variable "data_plane_cpu_limit" {
  type = string
}

variable "data_plane_memory_limit" {
  type = string
}

# --- secrets: never in tfvars; pass TF_VAR_<name> (CI: environment secrets)
variable "database_password" {
  type      = string
  sensitive = true
}

variable "temporal_database_password" {
  type      = string
  sensitive = true
}

variable "redis_password" {
  type      = string
  sensitive = true
}

variable "management_api_keys" {
  type      = list(string)
  sensitive = true
}

variable "temporal_api_key" {
  type      = string
  sensitive = true
  default   = ""
}

variable "identity_key_pem" {
  type      = string
  sensitive = true
  default   = ""
}

variable "backup_s3_access_key_id" {
  description = "Static S3 credentials of the backups (empty: workload identity)."
  type        = string
  sensitive   = true
  default     = ""
}

variable "backup_s3_secret_access_key" {
  type      = string
  sensitive = true
  default   = ""
}
