# The root module of every environment (decision 0027): providers, backend and the cluster it
# applies to. Only here, so deploy/tools/tf_stack.py can evaluate the rest without providers.
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
  }
  # Partial configuration: bucket, key, region and lock table of the environment's state come from
  # `terraform init -backend-config=backend.hcl` (CI writes it from environment secrets).
  backend "s3" {
    encrypt = true
  }
}

variable "kubeconfig_path" {
  description = "kubeconfig of the target cluster (CI: written by the cloud login step)."
  type        = string
  default     = "~/.kube/config"
}

variable "kube_context" {
  type    = string
  default = null
}

provider "kubernetes" {
  config_path    = var.kubeconfig_path
  config_context = var.kube_context
}

provider "helm" {
  kubernetes {
    config_path    = var.kubeconfig_path
    config_context = var.kube_context
  }
}
