terraform {
  required_version = ">= 1.5"
  required_providers {
    helm = {
      source  = "hashicorp/helm"
      version = "~> 2.17"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "~> 2.35"
    }
  }
}

variable "namespace" {
  type = string
}

variable "chart_version" {
  description = "bitnami/postgresql chart version (review on upgrade)."
  type        = string
  default     = "16.7.27"
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

variable "high_availability" {
  description = "Streaming replica for read failover (staging/production)."
  type        = bool
  default     = false
}

resource "helm_release" "postgresql" {
  name       = "postgresql"
  repository = "oci://registry-1.docker.io/bitnamicharts"
  chart      = "postgresql"
  version    = var.chart_version
  namespace  = var.namespace
  atomic     = true
  timeout    = 600

  values = [yamlencode({
    architecture = var.high_availability ? "replication" : "standalone"
    auth = {
      database = var.database_name
      username = var.database_username
    }
    primary = {
      persistence = {
        size         = var.storage_size
        storageClass = var.storage_class
      }
      initdb = {
        # Temporal keeps its own databases and user next to the connector's.
        scripts = {
          "10-temporal.sh" = <<-SH
            #!/bin/sh
            set -e
            psql -v ON_ERROR_STOP=1 -U postgres <<SQL
            CREATE USER temporal WITH PASSWORD '$TEMPORAL_DB_PASSWORD';
            CREATE DATABASE temporal OWNER temporal;
            CREATE DATABASE temporal_visibility OWNER temporal;
            SQL
          SH
        }
      }
      extraEnvVarsSecret = "postgresql-temporal"
      resources = {
        requests = { cpu = "250m", memory = "512Mi" }
        limits   = { cpu = "2", memory = "2Gi" }
      }
    }
    metrics = { enabled = true, serviceMonitor = { enabled = true } }
  })]

  set_sensitive {
    name  = "auth.password"
    value = var.database_password
  }

  set_sensitive {
    name  = "auth.postgresPassword"
    value = var.database_password
  }

  depends_on = [kubernetes_secret.temporal_password]
}

resource "kubernetes_secret" "temporal_password" {
  metadata {
    name      = "postgresql-temporal"
    namespace = var.namespace
  }
  data = {
    TEMPORAL_DB_PASSWORD = var.temporal_password
  }
}

output "host" {
  description = "In-cluster service name of the primary."
  value       = "${helm_release.postgresql.name}.${var.namespace}.svc.cluster.local"
}

output "port" {
  value = 5432
}
