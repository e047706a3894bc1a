terraform {
  # Provider-free: CIDR arithmetic only, tested fully with `terraform test`.
  required_version = ">= 1.9"
}
