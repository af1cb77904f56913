terraform {
  required_version = ">= 1.5"
  required_providers {
    helm = {
      source  = "hashicorp/helm"
      version = "~> 2.17"
    }
  }
}

variable "namespace" {
  type = string
}

variable "chart_version" {
  description = "bitnami/redis chart version (review on upgrade)."
  type        = string
  default     = "20.13.4"
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

variable "replicas" {
  description = "Read replicas (0 = standalone)."
  type        = number
  default     = 0
}

resource "helm_release" "redis" {
  name       = "redis"
  repository = "oci://registry-1.docker.io/bitnamicharts"
  chart      = "redis"
  version    = var.chart_version
  namespace  = var.namespace
  atomic     = true
  timeout    = 600

  values = [yamlencode({
    architecture = var.replicas > 0 ? "replication" : "standalone"
    master = {
      persistence = {
        size         = var.storage_size
        storageClass = var.storage_class
      }
      resources = {
        requests = { cpu = "100m", memory = "256Mi" }
        limits   = { cpu = "1", memory = "1Gi" }
      }
    }
    replica = { replicaCount = var.replicas }
    metrics = { enabled = true, serviceMonitor = { enabled = true } }
  })]

  set_sensitive {
    name  = "auth.password"
    value = var.password
  }
}

output "host" {
  value = "${helm_release.redis.name}-master.${var.namespace}.svc.cluster.local"
}

output "port" {
  value = 6379
}
