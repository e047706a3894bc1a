# A root module that needs no provider download (only Terraform's built-in `terraform_data`), so the runner's
# init → plan → apply → output → destroy cycle runs against a real Terraform here.
variable "name" {
  type        = string
  description = "Anything; changing it replaces the resource."
}

resource "terraform_data" "this" {
  input = var.name
}

output "greeting" {
  value = "hello ${terraform_data.this.output}"
}

output "token" {
  value     = "not-for-printing"
  sensitive = true
}
