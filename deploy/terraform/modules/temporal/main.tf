# Self-hosted Temporal server (frontend, history, matching, worker, web UI, admin tools) from
# temporalio/helm-charts, in its own namespace; persistence is the CloudNativePG cluster of
# modules/postgres. numHistoryShards is fixed after the first install: choose it once per cluster.
# Chart values: values.tf.
resource "kubernetes_secret" "temporal_db" {
  metadata {
    name      = local.db_secret
    namespace = var.namespace
  }
  data = {
    password = var.postgres_password
  }
}

resource "helm_release" "temporal" {
  name       = local.release.name
  repository = local.release.repository
  chart      = local.release.chart
  version    = local.release.version
  namespace  = local.release.namespace
  atomic     = true
  timeout    = 900
  values     = local.release.values

  depends_on = [kubernetes_secret.temporal_db]
}
