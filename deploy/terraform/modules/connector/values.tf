# Chart values computed from variables only (deploy/tools/tf_stack.py renders them, see ../postgres).
locals {
  values_file = {
    dev        = "values-dev.yaml"
    staging    = "values-staging.yaml"
    production = "values-prod.yaml"
  }[var.environment]
  chart_dir   = "${path.module}/../../../helm/connector"
  secret_name = "connector-secrets"
  s3_backup   = var.backup.bucket != ""
  # Whether a secret is set is not itself secret (the values go to Helm, not the secrets).
  temporal_cloud = nonsensitive(var.temporal_api_key != "")
  s3_keys        = nonsensitive(var.backup_s3_access_key_id != "")
  release_label  = var.prometheus_release_label != "" ? var.prometheus_release_label : null

  release = {
    name       = "connector"
    repository = null
    chart      = "deploy/helm/connector"
    version    = null
    namespace  = var.namespace
    values = [
      file("${local.chart_dir}/${local.values_file}"),
      yamlencode({
        image = {
          repository = var.image_repository
          tag        = var.image_tag
        }
        serviceAccount = { annotations = var.backup.service_account_annotations }
        secrets        = { existingSecret = local.secret_name }
        temporal = {
          address   = var.temporal_address
          namespace = var.temporal_namespace
          tls       = local.temporal_cloud
          apiKey    = { enabled = local.temporal_cloud }
        }
        config = {
          publicUrl          = "https://${var.ingress_host}"
          dataPlanePublicUrl = "https://${var.ingress_host}/public"
        }
        backup = {
          target            = local.s3_backup ? "s3" : "local"
          schedule          = var.backup.schedule
          verifyDatabase    = var.verify_database
          directDatabaseUrl = true
          s3 = {
            bucket                = var.backup.bucket
            prefix                = var.backup.prefix
            region                = var.backup.region
            endpointUrl           = var.backup.endpoint_url
            credentialsFromSecret = local.s3_keys
          }
        }
        controlPlane = {
          replicaCount   = var.control_plane_replicas
          autoscaling    = { minReplicas = var.control_plane_replicas }
          resources      = var.control_plane_resources
          managementPort = var.management_port
        }
        dataPlane = {
          replicaCount = var.data_plane_replicas
          autoscaling  = { minReplicas = var.data_plane_replicas }
          resources    = var.data_plane_resources
        }
        ingress = {
          host = var.ingress_host
          tls  = { secretName = var.tls_secret_name }
        }
        # kube-prometheus-stack selects on `release`; null drops the chart's default label.
        metrics = {
          serviceMonitor = { labels = { release = local.release_label } }
          prometheusRule = { labels = { release = local.release_label } }
        }
      }),
    ]
  }
}

output "releases" {
  value = [local.release]
}

output "release" {
  value = { name = local.release.name, namespace = local.release.namespace }
}
