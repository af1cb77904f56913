# Chart values computed from variables only (deploy/tools/tf_stack.py renders them, see ../postgres).
locals {
  db_secret = "temporal-db"
  sql = {
    pluginName      = "postgres12"
    driverName      = "postgres12"
    connectAddr     = "${var.postgres_host}:${var.postgres_port}"
    connectProtocol = "tcp"
    user            = "temporal"
    existingSecret  = local.db_secret
    secretKey       = "password"
    maxConnLifetime = "1h"
    # The databases and the role exist already (CloudNativePG `Database`/managed role): the schema
    # Job only creates and upgrades the schema.
    createDatabase = false
    manageSchema   = true
  }
  visibility_conns = max(2, floor(var.max_conns / 2))

  # Pod Security "restricted": non-root, RuntimeDefault seccomp, no privilege escalation, no
  # capabilities. The images run as uid 1000.
  pod_security = {
    runAsNonRoot   = true
    runAsUser      = 1000
    runAsGroup     = 1000
    fsGroup        = 1000
    seccompProfile = { type = "RuntimeDefault" }
  }
  container_security = {
    runAsNonRoot             = true
    privileged               = false
    allowPrivilegeEscalation = false
    capabilities             = { drop = ["ALL"] }
    seccompProfile           = { type = "RuntimeDefault" }
  }
  small = {
    requests = { cpu = "100m", memory = "128Mi" }
    limits   = { cpu = "500m", memory = "512Mi" }
  }
  server_resources = {
    requests = { cpu = "250m", memory = "512Mi" }
    limits   = { cpu = "2", memory = "2Gi" }
  }
  service = {
    containerSecurityContext = local.container_security
    resources                = local.server_resources
  }
  ui_host = var.web_ingress.host
  web_ingress = {
    enabled   = local.ui_host != ""
    className = var.web_ingress.class_name
    annotations = {
      "nginx.ingress.kubernetes.io/auth-url"              = var.web_ingress.auth_url
      "nginx.ingress.kubernetes.io/auth-signin"           = var.web_ingress.auth_signin
      "nginx.ingress.kubernetes.io/auth-response-headers" = "X-Auth-Request-User,X-Auth-Request-Email"
    }
    hosts = local.ui_host == "" ? [] : [local.ui_host]
    tls   = local.ui_host == "" || var.web_ingress.tls_secret == "" ? [] : [{ hosts = [local.ui_host], secretName = var.web_ingress.tls_secret }]
  }
  monitoring     = var.prometheus_release_label != ""
  release_labels = local.monitoring ? { release = var.prometheus_release_label } : {}

  release = {
    name       = "temporal"
    repository = "https://go.temporal.io/helm-charts"
    chart      = "temporal"
    version    = var.chart_version
    namespace  = var.namespace
    values = [yamlencode({
      server = {
        replicaCount    = var.replicas
        securityContext = local.pod_security
        resources       = local.server_resources
        config = {
          persistence = {
            defaultStore     = "default"
            visibilityStore  = "visibility"
            numHistoryShards = var.num_history_shards
            datastores = {
              default = { sql = merge(local.sql, {
                databaseName = "temporal", maxConns = var.max_conns, maxIdleConns = var.max_conns
              }) }
              visibility = { sql = merge(local.sql, {
                databaseName = "temporal_visibility"
                maxConns     = local.visibility_conns, maxIdleConns = local.visibility_conns
              }) }
            }
          }
          namespaces = {
            create    = true
            namespace = [{ name = var.temporal_namespace, retention = var.retention }]
          }
        }
        metrics = {
          serviceMonitor = { enabled = local.monitoring, additionalLabels = local.release_labels }
        }
        frontend = local.service
        history  = local.service
        matching = local.service
        worker   = local.service
      }
      # Terraform applies a release without Helm hook ordering: the schema Job runs as a plain Job
      # and the server pods retry until the schema is there.
      schema = {
        useHelmHooks             = false
        resources                = local.small
        securityContext          = local.pod_security
        containerSecurityContext = local.container_security
      }
      # Temporal >= 1.30 images need neither shim.
      shims = { dockerize = false, elasticsearchTool = false }
      web = {
        enabled                  = true
        ingress                  = local.web_ingress
        resources                = local.small
        securityContext          = local.pod_security
        containerSecurityContext = local.container_security
      }
      admintools = {
        enabled                  = true
        resources                = local.small
        securityContext          = local.pod_security
        containerSecurityContext = local.container_security
      }
    })]
  }
}

output "releases" {
  value = [local.release]
}

output "address" {
  description = "host:port of the Temporal frontend for CONNECTOR_TEMPORAL__ADDRESS."
  value       = "temporal-frontend.${var.namespace}.svc.cluster.local:7233"
}

output "connection_budget" {
  description = "Most Postgres connections the server pods open: 4 services x replicas x (default + visibility)."
  value       = 4 * var.replicas * (var.max_conns + local.visibility_conns)
}
