# The address plan of a deployment: which subnet gets which range, computed from one address space so the
# platform root and every environment root derive the same plan from the same inputs. No resources.
