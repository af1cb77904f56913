# The whole connector topology of one environment: namespace, Postgres, Redis, Temporal (self-hosted
# or Cloud) and the connector release. Environments call this module with their tfvars.
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
    tls = {
      source  = "hashicorp/tls"
      version = "~> 4.0"
    }
  }
}

module "namespace" {
  source        = "../modules/namespace"
  name          = var.namespace
  instance_name = var.instance_name
  environment   = var.environment
}

module "postgres" {
  source            = "../modules/postgres"
  namespace         = module.namespace.name
  database_name     = var.database_name
  database_username = var.database_username
  database_password = var.database_password
  temporal_password = var.temporal_database_password
  storage_size      = var.database_storage_size
  storage_class     = var.storage_class
  high_availability = var.environment == "production"
}

module "redis" {
  source        = "../modules/redis"
  namespace     = module.namespace.name
  password      = var.redis_password
  storage_size  = var.redis_storage_size
  storage_class = var.storage_class
  replicas      = var.environment == "production" ? 2 : 0
}

module "temporal" {
  count              = var.temporal_self_hosted ? 1 : 0
  source             = "../modules/temporal"
  namespace          = module.namespace.name
  postgres_host      = module.postgres.host
  postgres_port      = module.postgres.port
  postgres_password  = var.temporal_database_password
  temporal_namespace = var.temporal_namespace
  retention          = var.temporal_retention
  replicas           = var.environment == "production" ? 2 : 1
}

locals {
  temporal_address = var.temporal_self_hosted ? module.temporal[0].address : var.temporal_address
  database_url     = "postgresql://${var.database_username}:${urlencode(var.database_password)}@${module.postgres.host}:${module.postgres.port}/${var.database_name}"
  redis_url        = "redis://:${urlencode(var.redis_password)}@${module.redis.host}:${module.redis.port}/0"
}

module "connector" {
  source             = "../modules/connector"
  environment        = var.environment
  namespace          = module.namespace.name
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
  redis_url           = local.redis_url
  management_api_keys = var.management_api_keys
  temporal_api_key    = var.temporal_api_key
  identity_key_pem    = var.identity_key_pem

  depends_on = [module.postgres, module.redis, module.temporal]
}

output "temporal_address" {
  value = local.temporal_address
}

output "connector_release" {
  value = module.connector.release
}
