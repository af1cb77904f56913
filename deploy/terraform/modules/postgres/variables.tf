variable "namespace" {
  description = "Namespace of the Cluster, its Pooler and the role Secrets (the connector's namespace)."
  type        = string
}

variable "cluster_name" {
  description = "Helm release name of the cloudnative-pg `cluster` chart (prefix of every service)."
  type        = string
  default     = "postgres"
}

variable "install_operator" {
  description = "Install the CloudNativePG operator (one per Kubernetes cluster; false when it is already there)."
  type        = bool
  default     = true
}

variable "operator_namespace" {
  type    = string
  default = "cnpg-system"
}

variable "operator_chart_version" {
  description = "cloudnative-pg/charts `cloudnative-pg` (operator 1.30)."
  type        = string
  default     = "0.29.0"
}

variable "cluster_chart_version" {
  description = "cloudnative-pg/charts `cluster`."
  type        = string
  default     = "0.8.1"
}

variable "postgres_major" {
  description = "PostgreSQL major version: not newer than the worker image's pg_dump/pg_restore (15, deploy/docker/Dockerfile; tests/deploy/test_terraform_stack.py ties them)."
  type        = string
  default     = "15"
}

variable "instances" {
  description = "Postgres instances: 1 primary + (n-1) streaming replicas with automated failover."
  type        = number
  default     = 3
}

variable "database_name" {
  type = string
}

variable "database_username" {
  type = string
}

variable "database_password" {
  description = "Password of the connector database user."
  type        = string
  sensitive   = true
}

variable "temporal_password" {
  description = "Password of the temporal database user (databases temporal and temporal_visibility)."
  type        = string
  sensitive   = true
}

variable "storage_size" {
  type = string
}

variable "storage_class" {
  type = string
}

variable "resources" {
  description = "Requests/limits of each Postgres instance."
  type = object({
    requests = object({ cpu = string, memory = string })
    limits   = object({ cpu = string, memory = string })
  })
  default = {
    requests = { cpu = "250m", memory = "512Mi" }
    limits   = { cpu = "2", memory = "2Gi" }
  }
}

variable "max_connections" {
  description = "Postgres max_connections (tests/deploy/test_pool_arithmetic.py checks every client fits)."
  type        = number
  default     = 200
}

variable "pooler" {
  description = "PgBouncer Pooler (transaction mode) in front of the primary: the connector's only way in."
  type = object({
    instances         = number
    default_pool_size = number
    max_client_conn   = number
  })
  default = {
    instances         = 2
    default_pool_size = 40
    max_client_conn   = 1000
  }
}

variable "backup" {
  description = <<-EOT
    Continuous backup (base backups + WAL) of the whole Postgres cluster -- the connector's database
    and Temporal's -- to object storage with barman-cloud. destination_path: s3://bucket/prefix.
    Credentials: backup_access_key_id/backup_secret_access_key, or (both empty) workload identity
    (IRSA, GKE Workload Identity) through service_account_annotations. schedule has six fields
    (seconds first).
  EOT
  type = object({
    enabled                     = bool
    destination_path            = string
    endpoint_url                = string
    region                      = string
    service_account_annotations = map(string)
    schedule                    = string
    retention                   = string
  })
  default = {
    enabled                     = false
    destination_path            = ""
    endpoint_url                = ""
    region                      = ""
    service_account_annotations = {}
    schedule                    = "0 0 2 * * *"
    retention                   = "30d"
  }
}

variable "prometheus_release_label" {
  description = "`release` label of the PodMonitors/PrometheusRule (kube-prometheus-stack selects on it); empty: no monitoring objects."
  type        = string
  default     = "kube-prometheus-stack"
}

variable "backup_access_key_id" {
  description = "Static S3 credentials of the Postgres backups (empty: workload identity)."
  type        = string
  sensitive   = true
  default     = ""
}

variable "backup_secret_access_key" {
  type      = string
  sensitive = true
  default   = ""
}
