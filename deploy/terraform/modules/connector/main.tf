# The connector: the `connector-secrets` Secret (URLs, API keys, identity key, data key ring) and
# the Helm release of deploy/helm/connector with the environment's values file plus Terraform-driven
# overrides (values.tf).
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
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
}

# Every pod of the release signs with one EC P-256 identity key. Without an operator-provided PEM,
# Terraform generates one (kept in the encrypted state) so the key survives re-deploys.
resource "tls_private_key" "identity" {
  count       = var.identity_key_pem == "" ? 1 : 0
  algorithm   = "ECDSA"
  ecdsa_curve = "P256"
}

locals {
  identity_key_pem = var.identity_key_pem != "" ? var.identity_key_pem : tls_private_key.identity[0].private_key_pem
}

# Every pod encrypts Temporal payloads, backups and EDRs with one data key ring (docs/security.md
# §6b). Without an operator-provided ring, Terraform generates one 256-bit key (kept in the
# encrypted state); to rotate, pass the ring with a new current key as data_keys_json.
resource "random_bytes" "data_key" {
  count  = var.data_keys_json == "" ? 1 : 0
  length = 32
}

resource "random_id" "data_key" {
  count       = var.data_keys_json == "" ? 1 : 0
  byte_length = 8
}

locals {
  generated_data_keys = var.data_keys_json != "" ? "" : jsonencode({
    version = 1
    current = "dk-${random_id.data_key[0].hex}"
    keys = [{
      kid        = "dk-${random_id.data_key[0].hex}"
      created_at = "2000-01-01T00:00:00+00:00"
      secret     = random_bytes.data_key[0].base64
    }]
  })
}

resource "kubernetes_secret" "connector" {
  metadata {
    name      = local.secret_name
    namespace = var.namespace
    labels = {
      "app.kubernetes.io/name"     = "connector"
      "app.kubernetes.io/instance" = var.instance_name
    }
  }
  type = "Opaque"
  data = merge(
    {
      "database-url"        = var.database_url
      "redis-url"           = var.redis_url
      "management-api-keys" = jsonencode(var.management_api_keys)
    },
    { "identity-key.pem" = local.identity_key_pem },
    { "data-keys.json" = var.data_keys_json != "" ? var.data_keys_json : local.generated_data_keys },
    { "backup-database-url" = var.backup_database_url },
    var.temporal_api_key == "" ? {} : { "temporal-api-key" = var.temporal_api_key },
    var.backup_s3_access_key_id == "" ? {} : {
      "backup-s3-access-key-id"     = var.backup_s3_access_key_id
      "backup-s3-secret-access-key" = var.backup_s3_secret_access_key
    },
  )
}

resource "helm_release" "connector" {
  name      = local.release.name
  chart     = local.chart_dir
  namespace = local.release.namespace
  atomic    = true
  wait      = true
  timeout   = 900

  values = local.release.values

  # The values name the Secret only by string: without this the release (and its pre-install
  # migrations hook, which reads the Secret) could start before the Secret exists.
  depends_on = [kubernetes_secret.connector]
}
