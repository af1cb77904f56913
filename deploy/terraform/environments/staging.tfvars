# staging environment (no secrets here: pass TF_VAR_database_password, TF_VAR_temporal_database_password,
# TF_VAR_redis_password, TF_VAR_management_api_keys and optionally TF_VAR_identity_key_pem,
# TF_VAR_backup_s3_access_key_id/TF_VAR_backup_s3_secret_access_key).
environment   = "staging"
namespace     = "connector-staging"
instance_name = "connector-staging"

# Database configuration
database_name         = "connector"
database_username     = "connector"
database_storage_size = "20Gi"

# PgBouncer and the server limit (tests/deploy/test_pool_arithmetic.py adds every client up)
postgres_max_connections = 200
pooler_default_pool_size = 30

# Redis configuration
redis_storage_size = "5Gi"

# Application configuration
image_tag    = "develop"
ingress_host = "connector.staging.example.com"

# Temporal (self-hosted in the namespace; set false + temporal_address for Temporal Cloud)
temporal_self_hosted = true
temporal_namespace   = "connector-staging"

# Infrastructure
storage_class   = "standard"
tls_secret_name = "connector-staging-tls"

# Scaling
control_plane_replicas = 2
data_plane_replicas    = 2

# Resources
control_plane_cpu_request    = "250m"
control_plane_memory_request = "512Mi"
control_plane_cpu_limit      = "1000m"
control_plane_memory_limit   = "1Gi"

data_plane_cpu_request    = "500m"
data_plane_memory_request = "1Gi"
data_plane_cpu_limit      = "2000m"
data_plane_memory_limit   = "2Gi"
