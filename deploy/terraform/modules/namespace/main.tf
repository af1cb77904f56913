# A namespace that enforces Pod Security "restricted" (variables.tf).
terraform {
  required_version = ">= 1.5"
  required_providers {
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "~> 2.35"
    }
  }
}

resource "kubernetes_namespace" "this" {
  metadata {
    name = var.name
    labels = {
      "app.kubernetes.io/name"                     = var.part_of
      "app.kubernetes.io/instance"                 = var.instance_name
      "connector.io/environment"                   = var.environment
      "pod-security.kubernetes.io/enforce"         = "restricted"
      "pod-security.kubernetes.io/enforce-version" = "latest"
      "pod-security.kubernetes.io/warn"            = "restricted"
    }
  }
}

output "name" {
  description = "The namespace name (depends on its creation)."
  value       = kubernetes_namespace.this.metadata[0].name
}
