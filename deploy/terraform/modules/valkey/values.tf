# Chart values computed from variables only (deploy/tools/tf_stack.py renders them, see ../postgres).
locals {
  config_secret = "valkey-config"
  release = {
    name       = "valkey"
    repository = null
    chart      = "deploy/terraform/charts/valkey"
    version    = null
    namespace  = var.namespace
    values = [yamlencode({
      configSecret = local.config_secret
      persistence  = { size = var.storage_size, storageClass = var.storage_class }
      resources    = var.resources
      maxmemory    = var.maxmemory
    })]
  }
}

output "releases" {
  value = [local.release]
}

output "host" {
  value = "valkey.${var.namespace}.svc.cluster.local"
}

output "port" {
  value = 6379
}
