# Identical to ../../stack/variables.tf (tests/deploy checks): edit both.
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

# --- redis
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
