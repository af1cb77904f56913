variable "name" {
  description = "Namespace name."
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

variable "part_of" {
  description = "app.kubernetes.io/name label: connector, or temporal for the Temporal server's namespace."
  type        = string
  default     = "connector"
}
