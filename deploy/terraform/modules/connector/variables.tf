variable "environment" {
  description = "dev, staging or production (selects the chart's values file)."
  type        = string
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

variable "image_repository" {
  type = string
}

variable "image_tag" {
  description = "Release tag (vX.Y.Z) or sha-<commit>; the chart appends -<target>."
  type        = string
}

variable "ingress_host" {
  type = string
}

variable "tls_secret_name" {
  type = string
}

variable "temporal_address" {
  description = "host:port of the Temporal frontend."
  type        = string
}

variable "temporal_namespace" {
  type = string
}

variable "control_plane_replicas" {
  type = number
}

variable "data_plane_replicas" {
  type = number
}

variable "control_plane_resources" {
  type = object({
    requests = object({ cpu = string, memory = string })
    limits   = object({ cpu = string, memory = string })
  })
}

variable "data_plane_resources" {
  type = object({
    requests = object({ cpu = string, memory = string })
    limits   = object({ cpu = string, memory = string })
  })
}

variable "database_url" {
  description = "postgresql://user:password@host:5432/db"
  type        = string
  sensitive   = true
}

variable "redis_url" {
  description = "redis://:password@host:6379/0"
  type        = string
  sensitive   = true
}

variable "management_api_keys" {
  description = "API keys accepted by the management API (X-Api-Key)."
  type        = list(string)
  sensitive   = true
}

variable "temporal_api_key" {
  description = "Temporal Cloud API key (empty for a self-hosted server)."
  type        = string
  sensitive   = true
  default     = ""
}

variable "identity_key_pem" {
  description = "PEM private key of the connector identity (empty: mounted from elsewhere)."
  type        = string
  sensitive   = true
  default     = ""
}
