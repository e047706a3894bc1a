# Per-environment sizing of the AKS environments (PostgreSQL Flexible Server, Key Vault, alert thresholds) and
# the policy each environment must keep whatever its overrides say. The policy lives in the output
# preconditions (outputs.tf), so a plan fails before anything reaches Azure. No resources.
#
# Policy:
#   staging, prod  the external PostgreSQL is on (dev may use the chart's in-cluster PostgreSQL)
#   prod           zone-redundant or same-zone HA, >= 14 days of backups, Key Vault purge protection
#   any            HA needs a General Purpose or Memory Optimized SKU (Azure offers none on Burstable)
