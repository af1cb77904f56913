# dev environment (no secrets here: pass TF_VAR_database_password, TF_VAR_temporal_database_password,
# TF_VAR_redis_password, TF_VAR_management_api_keys and optionally TF_VAR_identity_key_pem,
# TF_VAR_backup_s3_access_key_id/TF_VAR_backup_s3_secret_access_key).
environment   = "dev"
namespace     = "connector-dev"
instance_name = "connector-dev"

# Database configuration
database_name         = "connector"
database_username     = "connector"
database_storage_size = "5Gi"

# PgBouncer and the server limit (tests/deploy/test_pool_arithmetic.py adds every client up)
postgres_max_connections = 150
pooler_default_pool_size = 20

# Redis configuration
redis_storage_size = "1Gi"

# Application configuration
image_tag    = "dev"
ingress_host = "connector.dev.example.com"

# Temporal (self-hosted in the namespace; set false + temporal_address for Temporal Cloud)
temporal_self_hosted = true
temporal_namespace   = "connector-dev"

# Infrastructure
storage_class   = "standard"
tls_secret_name = "connector-dev-tls"

# Scaling
control_plane_replicas = 1
data_plane_replicas    = 1

# Resources
control_plane_cpu_request    = "100m"
control_plane_memory_request = "256Mi"
control_plane_cpu_limit      = "500m"
control_plane_memory_limit   = "512Mi"

data_plane_cpu_request    = "100m"
data_plane_memory_request = "256Mi"
data_plane_cpu_limit      = "500m"
data_plane_memory_limit   = "1Gi"
