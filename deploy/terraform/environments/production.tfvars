# production environment (no secrets here: pass TF_VAR_database_password, TF_VAR_temporal_database_password,
# TF_VAR_redis_password, TF_VAR_management_api_keys and optionally TF_VAR_identity_key_pem,
# TF_VAR_backup_s3_access_key_id/TF_VAR_backup_s3_secret_access_key).
environment   = "production"
namespace     = "connector-prod"
instance_name = "connector-prod"

# Database configuration
database_name         = "connector"
database_username     = "connector"
database_storage_size = "100Gi"

# PgBouncer and the server limit (tests/deploy/test_pool_arithmetic.py adds every client up)
postgres_max_connections = 300
pooler_default_pool_size = 40

# Redis configuration
redis_storage_size = "20Gi"

# Application configuration
image_tag    = "v1.0.0"
ingress_host = "connector.example.com"

# Temporal (self-hosted in the namespace; set false + temporal_address for Temporal Cloud)
temporal_self_hosted = true
temporal_namespace   = "connector"
# The Temporal UI for operators, behind the organisation's oauth2-proxy (OIDC)
temporal_ui = {
  host        = "temporal.connector.example.com"
  class_name  = "nginx"
  tls_secret  = "temporal-ui-tls"
  auth_url    = "https://oauth2.example.com/oauth2/auth"
  auth_signin = "https://oauth2.example.com/oauth2/start?rd=$scheme://$host$escaped_request_uri"
}

# Backups: CloudNativePG base backups + WAL of every database (Temporal's included) and the
# connector's own encrypted logical backups, to this bucket (workload identity: set
# backup_service_account_annotations, or TF_VAR_backup_s3_access_key_id/_secret_access_key)
backup_bucket = "example-connector-prod-backups"
backup_region = "eu-central-1"

# Infrastructure
storage_class   = "fast-ssd"
tls_secret_name = "connector-tls"

# Scaling
control_plane_replicas = 3
management_port        = 3100
data_plane_replicas    = 2

# Resources
control_plane_cpu_request    = "500m"
control_plane_memory_request = "1Gi"
control_plane_cpu_limit      = "2000m"
control_plane_memory_limit   = "4Gi"

data_plane_cpu_request    = "1000m"
data_plane_memory_request = "2Gi"
data_plane_cpu_limit      = "4000m"
data_plane_memory_limit   = "8Gi"
