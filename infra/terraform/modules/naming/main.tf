# Naming and tagging for every iots6 resource in Azure: one place that knows Azure's name rules (length,
# characters, global uniqueness), so the roots never spell a name themselves. No resources: see locals.tf.
#
# The limits enforced here (and asserted in tests/naming.tftest.hcl):
#   Key Vault            3-24, letters/digits/hyphens, starts with a letter, globally unique   -> kv-…-<hash6>
#   Container Registry   5-50, letters/digits only, globally unique                             -> acr…<hash6>
#   PostgreSQL flexible  3-63, lower-case letters/digits/hyphens, globally unique (DNS)         -> psql-…-<hash6>
#   Public IP DNS label  3-63, lower-case, starts with a letter, unique in the region            -> <workload>-<env>-<hash6>
#   Managed Grafana      2-23, letters/digits/hyphens                                           -> amg-…-<hash6>
#   Linux computer name  at most 15 here (NetBIOS-safe), AKS DNS prefix at most 54.
