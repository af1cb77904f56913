# Valkey (official image, our small chart in ../../charts/valkey). Chart values: values.tf.
# A managed Redis/Valkey instead: leave the module out and pass its URL to the connector module.
resource "kubernetes_secret" "config" {
  metadata {
    name      = local.config_secret
    namespace = var.namespace
  }
  data = {
    "valkey.conf" = "requirepass ${var.password}\n"
  }
}

resource "helm_release" "valkey" {
  name      = local.release.name
  chart     = "${path.module}/../../charts/valkey"
  namespace = local.release.namespace
  atomic    = true
  wait      = true
  timeout   = 600
  values    = local.release.values

  depends_on = [kubernetes_secret.config]
}
