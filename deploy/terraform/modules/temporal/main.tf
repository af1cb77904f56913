# Self-hosted Temporal server (frontend, history, matching, worker, web UI) from temporalio/helm-charts.
# The chart installs server components only; persistence is the Postgres of modules/postgres.
# numHistoryShards is fixed after the first install: choose it once per cluster.
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
  description = "temporalio/helm-charts `temporal` chart version."
  type        = string
  default     = "1.6.0"
}

variable "postgres_host" {
  type = string
}

variable "postgres_port" {
  type    = number
  default = 5432
}

variable "postgres_password" {
  description = "Password of the temporal database user."
  type        = string
  sensitive   = true
}

variable "temporal_namespace" {
  description = "Temporal namespace used by the connector (retention is set by `connector temporal-bootstrap` too)."
  type        = string
}

variable "retention" {
  type    = string
  default = "30d"
}

variable "num_history_shards" {
  type    = number
  default = 512
}

variable "replicas" {
  description = "Replicas per server service."
  type        = number
  default     = 1
}

resource "kubernetes_secret" "temporal_db" {
  metadata {
    name      = "temporal-db"
    namespace = var.namespace
  }
  data = {
    password = var.postgres_password
  }
}

locals {
  sql = {
    pluginName      = "postgres12"
    driverName      = "postgres12"
    connectAddr     = "${var.postgres_host}:${var.postgres_port}"
    connectProtocol = "tcp"
    user            = "temporal"
    existingSecret  = kubernetes_secret.temporal_db.metadata[0].name
    secretKey       = "password"
    maxConns        = 20
    maxIdleConns    = 20
    maxConnLifetime = "1h"
  }
}

resource "helm_release" "temporal" {
  name       = "temporal"
  repository = "https://go.temporal.io/helm-charts"
  chart      = "temporal"
  version    = var.chart_version
  namespace  = var.namespace
  atomic     = true
  timeout    = 900

  values = [yamlencode({
    server = {
      replicaCount = var.replicas
      config = {
        persistence = {
          defaultStore     = "default"
          visibilityStore  = "visibility"
          numHistoryShards = var.num_history_shards
          datastores = {
            default    = { sql = merge(local.sql, { databaseName = "temporal" }) }
            visibility = { sql = merge(local.sql, { databaseName = "temporal_visibility" }) }
          }
        }
        namespaces = {
          create    = true
          namespace = [{ name = var.temporal_namespace, retention = var.retention }]
        }
      }
      metrics = { serviceMonitor = { enabled = true } }
    }
    schema = {
      # Terraform applies releases without Helm hooks semantics for ordering: run schema jobs as plain Jobs.
      useHelmHooks   = false
      createDatabase = { enabled = false }
      manageSchema   = { enabled = true }
    }
    web        = { enabled = true }
    admintools = { enabled = true }
  })]
}

output "address" {
  description = "host:port of the Temporal frontend for CONNECTOR_TEMPORAL__ADDRESS."
  value       = "${helm_release.temporal.name}-frontend.${var.namespace}.svc.cluster.local:7233"
}
