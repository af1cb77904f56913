# production environment (no secrets here: pass TF_VAR_database_password, TF_VAR_temporal_database_password,
# TF_VAR_redis_password, TF_VAR_management_api_keys and optionally TF_VAR_identity_key_pem).
environment   = "production"
namespace     = "connector-prod"
instance_name = "connector-prod"

# Database configuration
database_name         = "connector"
database_username     = "connector"
database_storage_size = "100Gi"

# Redis configuration
redis_storage_size = "20Gi"

# Application configuration
image_tag    = "v1.0.0"
ingress_host = "connector.example.com"

# Temporal (self-hosted in the namespace; set false + temporal_address for Temporal Cloud)
temporal_self_hosted = true
temporal_namespace   = "connector"

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
