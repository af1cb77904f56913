# Chart values and service names, computed from variables only: deploy/tools/tf_stack.py evaluates
# this file (with variables.tf) with the real Terraform to render the charts exactly as applied.
locals {
  app_secret      = "${var.cluster_name}-app"
  temporal_secret = "${var.cluster_name}-temporal"
  # The connector's backup verification restores into this pre-created database, so its role
  # needs no CREATEDB (backup.verify_database of the connector settings).
  verify_database = "${var.database_name}_verify"
  backup_secret   = nonsensitive(var.backup_access_key_id != "") ? "${var.cluster_name}-backup-s3" : ""
  monitoring      = var.prometheus_release_label != ""
  release_labels  = local.monitoring ? { release = var.prometheus_release_label } : {}

  operator_release = {
    name       = "cnpg"
    repository = "https://cloudnative-pg.github.io/charts"
    chart      = "cloudnative-pg"
    version    = var.operator_chart_version
    namespace  = var.operator_namespace
    values = [yamlencode({
      replicaCount = 1
      resources = {
        requests = { cpu = "100m", memory = "128Mi" }
        limits   = { cpu = "500m", memory = "512Mi" }
      }
      monitoring = {
        podMonitorEnabled          = local.monitoring
        podMonitorAdditionalLabels = local.release_labels
      }
    })]
  }

  cluster_release = {
    name       = "postgres"
    repository = "https://cloudnative-pg.github.io/charts"
    chart      = "cluster"
    version    = var.cluster_chart_version
    namespace  = var.namespace
    values = [yamlencode({
      fullnameOverride = var.cluster_name
      type             = "postgresql"
      version          = { postgresql = var.postgres_major }
      mode             = "standalone"
      cluster = {
        instances = var.instances
        storage   = { size = var.storage_size, storageClass = var.storage_class }
        resources = var.resources
        postgresql = {
          parameters = { max_connections = tostring(var.max_connections) }
        }
        initdb = {
          database = var.database_name
          owner    = var.database_username
          secret   = { name = local.app_secret }
          # PgBouncer cannot pass the pool's startup `statement_timeout` on (the Pooler ignores it),
          # so the role carries the connector's default (database.statement_timeout_seconds = 1).
          postInitApplicationSQL = [
            "ALTER ROLE \"${var.database_username}\" SET statement_timeout = '1s'",
          ]
        }
        roles = [{
          name           = "temporal"
          ensure         = "present"
          login          = true
          passwordSecret = { name = local.temporal_secret }
        }]
        # Workload identity for barman-cloud when no credentials Secret is given.
        serviceAccountTemplate = {
          metadata = { annotations = var.backup.service_account_annotations }
        }
        monitoring = {
          enabled        = local.monitoring
          podMonitor     = { enabled = local.monitoring, labels = local.release_labels }
          prometheusRule = { enabled = local.monitoring, additionalLabels = local.release_labels }
        }
        enableSuperuserAccess = false
      }
      databases = [
        { name = "temporal", owner = "temporal" },
        { name = "temporal_visibility", owner = "temporal" },
        { name = local.verify_database, owner = var.database_username },
      ]
      poolers = [{
        name      = "rw"
        type      = "rw"
        poolMode  = "transaction"
        instances = var.pooler.instances
        parameters = {
          default_pool_size = tostring(var.pooler.default_pool_size)
          max_client_conn   = tostring(var.pooler.max_client_conn)
          # asyncpg prepares statements; PgBouncer >= 1.21 keeps them per server connection.
          max_prepared_statements   = "1000"
          ignore_startup_parameters = "extra_float_digits,options,statement_timeout"
        }
        monitoring = {
          enabled    = local.monitoring
          podMonitor = { enabled = local.monitoring, labels = local.release_labels }
        }
        template = {
          metadata = {}
          spec = {
            containers = [{
              name = "pgbouncer"
              resources = {
                requests = { cpu = "100m", memory = "64Mi" }
                limits   = { cpu = "1", memory = "256Mi" }
              }
            }]
          }
        }
      }]
      backups = {
        enabled         = var.backup.enabled
        method          = "barmanObjectStore"
        provider        = "s3"
        destinationPath = var.backup.destination_path
        endpointURL     = var.backup.endpoint_url
        s3 = {
          region             = var.backup.region
          inheritFromIAMRole = local.backup_secret == ""
        }
        secret = { create = false, name = local.backup_secret }
        scheduledBackups = [{
          name                 = "daily"
          schedule             = var.backup.schedule
          backupOwnerReference = "self"
          method               = "barmanObjectStore"
        }]
        retentionPolicy = var.backup.retention
      }
    })]
  }
}

output "releases" {
  description = "The Helm releases of this module, as applied (tests render them)."
  value       = var.install_operator ? [local.operator_release, local.cluster_release] : [local.cluster_release]
}

output "pooler_host" {
  description = "PgBouncer (transaction mode) in front of the primary: the connector's database host."
  value       = "${var.cluster_name}-pooler-rw.${var.namespace}.svc.cluster.local"
}

output "direct_host" {
  description = "The primary itself: Temporal, pg_dump/pg_restore of the connector's backups."
  value       = "${var.cluster_name}-rw.${var.namespace}.svc.cluster.local"
}

output "port" {
  value = 5432
}

output "verify_database" {
  value = local.verify_database
}

output "connection_budget" {
  description = "What tests/deploy/test_pool_arithmetic.py checks: server limit and pooler sizing."
  value = {
    instances         = var.instances
    max_connections   = var.max_connections
    pooler_instances  = var.pooler.instances
    default_pool_size = var.pooler.default_pool_size
    max_client_conn   = var.pooler.max_client_conn
  }
}
