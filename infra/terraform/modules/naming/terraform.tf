terraform {
  # Provider-free: pure functions over the inputs, so `terraform test` runs it fully without any provider.
  required_version = ">= 1.9"
}
