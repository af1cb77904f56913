variable "namespace" {
  type = string
}

variable "password" {
  type      = string
  sensitive = true
}

variable "storage_size" {
  type = string
}

variable "storage_class" {
  type = string
}

variable "resources" {
  type = object({
    requests = object({ cpu = string, memory = string })
    limits   = object({ cpu = string, memory = string })
  })
  default = {
    requests = { cpu = "100m", memory = "256Mi" }
    limits   = { cpu = "1", memory = "1Gi" }
  }
}

variable "maxmemory" {
  description = "Valkey maxmemory (below the memory limit, so Valkey evicts before the OOM killer)."
  type        = string
  default     = "800mb"
}
