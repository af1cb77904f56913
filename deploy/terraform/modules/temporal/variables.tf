variable "namespace" {
  description = "Kubernetes namespace of the Temporal server (its own, Pod Security restricted)."
  type        = string
}

variable "chart_version" {
  description = "temporalio/helm-charts `temporal` chart version."
  type        = string
  default     = "1.6.0"
}

variable "postgres_host" {
  description = "The Postgres primary (not the PgBouncer pooler: Temporal keeps its own bounded pool)."
  type        = string
}

variable "postgres_port" {
  type    = number
  default = 5432
}

variable "postgres_password" {
  description = "Password of the temporal database user."
  type        = string
  sensitive   = true
}

variable "temporal_namespace" {
  description = "Temporal namespace used by the connector (retention is set by `connector temporal-bootstrap` too)."
  type        = string
}

variable "retention" {
  type    = string
  default = "30d"
}

variable "num_history_shards" {
  type    = number
  default = 512
}

variable "replicas" {
  description = "Replicas per server service (frontend, history, matching, worker)."
  type        = number
  default     = 1
}

variable "max_conns" {
  description = "Per server pod: connections to the `temporal` database; visibility gets half (tests/deploy/test_pool_arithmetic.py adds them up)."
  type        = number
  default     = 10
}

variable "prometheus_release_label" {
  description = "`release` label of the ServiceMonitors (kube-prometheus-stack selects on it); empty: none."
  type        = string
  default     = "kube-prometheus-stack"
}

variable "web_ingress" {
  description = <<-EOT
    Expose the Temporal UI through an Ingress behind OIDC: ingress-nginx external authentication
    against an oauth2-proxy (auth_url, auth_signin). The UI has no login of its own, so an Ingress
    without auth_url is refused. host empty: no Ingress; reach the UI with
    `kubectl -n <namespace> port-forward svc/temporal-web 8080:8080` (docs/deploy.md).
  EOT
  type = object({
    host        = string
    class_name  = string
    tls_secret  = string
    auth_url    = string
    auth_signin = string
  })
  default = {
    host        = ""
    class_name  = "nginx"
    tls_secret  = ""
    auth_url    = ""
    auth_signin = ""
  }
  validation {
    condition     = var.web_ingress.host == "" || (var.web_ingress.auth_url != "" && var.web_ingress.auth_signin != "")
    error_message = "The Temporal UI has no login of its own: an Ingress needs auth_url and auth_signin (oauth2-proxy)."
  }
}
