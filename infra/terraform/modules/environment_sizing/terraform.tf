terraform {
  # Provider-free: per-environment sizing and the policy each environment must meet, tested with `terraform test`.
  required_version = ">= 1.9"
}
