# The whole connector topology of one environment: namespaces, CloudNativePG Postgres (+ PgBouncer,
# backups), Valkey, Temporal (self-hosted in its own namespace, or Cloud) and the connector release.
# The root module of every environment: `-var-file=../environments/<env>.tfvars` picks one
# (decision 0027). Everything a chart receives is computed from variables (the modules'
# values.tf), so deploy/tools/tf_stack.py renders each environment offline.
locals {
  production = var.environment == "production"
  # Not `connector-*`: Temporal's pods are hardened to Pod Security "restricted" (enforced by the
  # namespace label) but do not fit the connector's own Kyverno policy (read-only root filesystem).
  temporal_kube_namespace = "temporal-${var.environment}"
  backup_to_s3            = var.backup_bucket != ""
}

module "namespace" {
  source        = "../modules/namespace"
  name          = var.namespace
  instance_name = var.instance_name
  environment   = var.environment
}

module "temporal_namespace" {
  count         = var.temporal_self_hosted ? 1 : 0
  source        = "../modules/namespace"
  name          = local.temporal_kube_namespace
  instance_name = var.instance_name
  environment   = var.environment
  part_of       = "temporal"
}

module "postgres" {
  source                   = "../modules/postgres"
  namespace                = var.namespace
  install_operator         = var.install_cnpg_operator
  instances                = local.production ? 3 : (var.environment == "staging" ? 2 : 1)
  database_name            = var.database_name
  database_username        = var.database_username
  database_password        = var.database_password
  temporal_password        = var.temporal_database_password
  storage_size             = var.database_storage_size
  storage_class            = var.storage_class
  max_connections          = var.postgres_max_connections
  prometheus_release_label = var.prometheus_release_label
  pooler = {
    instances         = local.production ? 2 : 1
    default_pool_size = var.pooler_default_pool_size
    max_client_conn   = var.pooler_max_client_conn
  }
  backup = {
    enabled                     = local.backup_to_s3
    destination_path            = local.backup_to_s3 ? "s3://${var.backup_bucket}/cnpg/${var.namespace}" : ""
    endpoint_url                = var.backup_endpoint_url
    region                      = var.backup_region
    service_account_annotations = var.backup_service_account_annotations
    schedule                    = "0 0 1 * * *"
    retention                   = "30d"
  }
  backup_access_key_id     = var.backup_s3_access_key_id
  backup_secret_access_key = var.backup_s3_secret_access_key

  depends_on = [module.namespace]
}

module "valkey" {
  source        = "../modules/valkey"
  namespace     = var.namespace
  password      = var.redis_password
  storage_size  = var.redis_storage_size
  storage_class = var.storage_class

  depends_on = [module.namespace]
}

module "temporal" {
  count                    = var.temporal_self_hosted ? 1 : 0
  source                   = "../modules/temporal"
  namespace                = local.temporal_kube_namespace
  postgres_host            = module.postgres.direct_host
  postgres_port            = module.postgres.port
  postgres_password        = var.temporal_database_password
  temporal_namespace       = var.temporal_namespace
  retention                = var.temporal_retention
  replicas                 = local.production ? 2 : 1
  prometheus_release_label = var.prometheus_release_label
  web_ingress              = var.temporal_ui

  depends_on = [module.temporal_namespace, module.postgres]
}

locals {
  temporal_address = var.temporal_self_hosted ? module.temporal[0].address : var.temporal_address
  db_credentials   = "${var.database_username}:${urlencode(var.database_password)}"
  database_url     = "postgresql://${local.db_credentials}@${module.postgres.pooler_host}:${module.postgres.port}/${var.database_name}"
  backup_db_url    = "postgresql://${local.db_credentials}@${module.postgres.direct_host}:${module.postgres.port}/${var.database_name}"
  redis_url        = "redis://:${urlencode(var.redis_password)}@${module.valkey.host}:${module.valkey.port}/0"
}

module "connector" {
  source             = "../modules/connector"
  environment        = var.environment
  namespace          = var.namespace
  instance_name      = var.instance_name
  image_repository   = var.image_repository
  image_tag          = var.image_tag
  ingress_host       = var.ingress_host
  tls_secret_name    = var.tls_secret_name
  temporal_address   = local.temporal_address
  temporal_namespace = var.temporal_namespace

  control_plane_replicas = var.control_plane_replicas
  management_port        = var.management_port
  data_plane_replicas    = var.data_plane_replicas
  control_plane_resources = {
    requests = { cpu = var.control_plane_cpu_request, memory = var.control_plane_memory_request }
    limits   = { cpu = var.control_plane_cpu_limit, memory = var.control_plane_memory_limit }
  }
  data_plane_resources = {
    requests = { cpu = var.data_plane_cpu_request, memory = var.data_plane_memory_request }
    limits   = { cpu = var.data_plane_cpu_limit, memory = var.data_plane_memory_limit }
  }

  database_url        = local.database_url
  backup_database_url = local.backup_db_url
  verify_database     = module.postgres.verify_database
  redis_url           = local.redis_url
  management_api_keys = var.management_api_keys
  temporal_api_key    = var.temporal_api_key
  identity_key_pem    = var.identity_key_pem
  backup = {
    bucket                      = var.backup_bucket
    prefix                      = "connector-backups/${var.namespace}/"
    region                      = var.backup_region
    endpoint_url                = var.backup_endpoint_url
    schedule                    = "0 2 * * *"
    service_account_annotations = var.backup_service_account_annotations
  }
  backup_s3_access_key_id     = var.backup_s3_access_key_id
  backup_s3_secret_access_key = var.backup_s3_secret_access_key
  prometheus_release_label    = var.prometheus_release_label

  depends_on = [module.postgres, module.valkey, module.temporal]
}

output "temporal_address" {
  value = local.temporal_address
}

output "connector_release" {
  value = module.connector.release
}

output "releases" {
  description = "Every Helm release of the stack with the values it is installed with (deploy/tools/tf_stack.py)."
  value = concat(
    module.postgres.releases,
    module.valkey.releases,
    var.temporal_self_hosted ? module.temporal[0].releases : [],
    module.connector.releases,
  )
}

output "connection_budget" {
  description = "Postgres connection limits and the Temporal server's share (tests/deploy/test_pool_arithmetic.py)."
  value = merge(module.postgres.connection_budget, {
    temporal = var.temporal_self_hosted ? module.temporal[0].connection_budget : 0
  })
}
