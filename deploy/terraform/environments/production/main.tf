# production environment: `terraform init -backend-config=backend.hcl && terraform apply`.
module "stack" {
  source = "../../stack"

  environment                        = var.environment
  namespace                          = var.namespace
  instance_name                      = var.instance_name
  database_name                      = var.database_name
  database_username                  = var.database_username
  database_storage_size              = var.database_storage_size
  redis_storage_size                 = var.redis_storage_size
  image_repository                   = var.image_repository
  image_tag                          = var.image_tag
  ingress_host                       = var.ingress_host
  tls_secret_name                    = var.tls_secret_name
  storage_class                      = var.storage_class
  temporal_self_hosted               = var.temporal_self_hosted
  temporal_address                   = var.temporal_address
  temporal_namespace                 = var.temporal_namespace
  temporal_retention                 = var.temporal_retention
  temporal_ui                        = var.temporal_ui
  control_plane_replicas             = var.control_plane_replicas
  management_port                    = var.management_port
  data_plane_replicas                = var.data_plane_replicas
  control_plane_cpu_request          = var.control_plane_cpu_request
  control_plane_memory_request       = var.control_plane_memory_request
  control_plane_cpu_limit            = var.control_plane_cpu_limit
  control_plane_memory_limit         = var.control_plane_memory_limit
  data_plane_cpu_request             = var.data_plane_cpu_request
  data_plane_memory_request          = var.data_plane_memory_request
  data_plane_cpu_limit               = var.data_plane_cpu_limit
  data_plane_memory_limit            = var.data_plane_memory_limit
  database_password                  = var.database_password
  temporal_database_password         = var.temporal_database_password
  redis_password                     = var.redis_password
  management_api_keys                = var.management_api_keys
  temporal_api_key                   = var.temporal_api_key
  identity_key_pem                   = var.identity_key_pem
  install_cnpg_operator              = var.install_cnpg_operator
  postgres_max_connections           = var.postgres_max_connections
  pooler_default_pool_size           = var.pooler_default_pool_size
  pooler_max_client_conn             = var.pooler_max_client_conn
  backup_bucket                      = var.backup_bucket
  backup_region                      = var.backup_region
  backup_endpoint_url                = var.backup_endpoint_url
  backup_service_account_annotations = var.backup_service_account_annotations
  prometheus_release_label           = var.prometheus_release_label
  backup_s3_access_key_id            = var.backup_s3_access_key_id
  backup_s3_secret_access_key        = var.backup_s3_secret_access_key
}

output "temporal_address" {
  value = module.stack.temporal_address
}

output "connector_release" {
  value = module.stack.connector_release
}
