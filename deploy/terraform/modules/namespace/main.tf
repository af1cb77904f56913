terraform {
  required_version = ">= 1.5"
  required_providers {
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "~> 2.35"
    }
  }
}

variable "name" {
  description = "Namespace of the connector, its databases and (self-hosted) Temporal."
  type        = string
}

variable "instance_name" {
  description = "app.kubernetes.io/instance label."
  type        = string
}

variable "environment" {
  description = "dev, staging or production."
  type        = string
}

resource "kubernetes_namespace" "this" {
  metadata {
    name = var.name
    labels = {
      "app.kubernetes.io/name"                     = "connector"
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
