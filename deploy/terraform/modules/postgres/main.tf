# HA Postgres with CloudNativePG: the operator (optional, once per Kubernetes cluster), one `Cluster`
# holding the connector's database and Temporal's two, a PgBouncer `Pooler` in front of the primary,
# and continuous backups of all of them to object storage. Chart values: values.tf.
resource "kubernetes_secret" "app" {
  metadata {
    name      = local.app_secret
    namespace = var.namespace
  }
  type = "kubernetes.io/basic-auth"
  data = {
    username = var.database_username
    password = var.database_password
  }
}

resource "kubernetes_secret" "temporal" {
  metadata {
    name      = local.temporal_secret
    namespace = var.namespace
  }
  type = "kubernetes.io/basic-auth"
  data = {
    username = "temporal"
    password = var.temporal_password
  }
}

resource "kubernetes_secret" "backup" {
  count = local.backup_secret == "" ? 0 : 1
  metadata {
    name      = local.backup_secret
    namespace = var.namespace
  }
  data = {
    ACCESS_KEY_ID     = var.backup_access_key_id
    ACCESS_SECRET_KEY = var.backup_secret_access_key
  }
}

resource "helm_release" "operator" {
  count            = var.install_operator ? 1 : 0
  name             = local.operator_release.name
  repository       = local.operator_release.repository
  chart            = local.operator_release.chart
  version          = local.operator_release.version
  namespace        = local.operator_release.namespace
  create_namespace = true
  atomic           = true
  wait             = true
  timeout          = 600
  values           = local.operator_release.values
}

resource "helm_release" "cluster" {
  name       = local.cluster_release.name
  repository = local.cluster_release.repository
  chart      = local.cluster_release.chart
  version    = local.cluster_release.version
  namespace  = local.cluster_release.namespace
  atomic     = true
  wait       = true
  timeout    = 900
  values     = local.cluster_release.values

  depends_on = [
    helm_release.operator, kubernetes_secret.app, kubernetes_secret.temporal, kubernetes_secret.backup
  ]
}
