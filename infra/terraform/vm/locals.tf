locals {
  names = module.naming.names
  tags  = module.naming.tags

  # LUN of the data disk: Ansible finds it as /dev/disk/azure/scsi1/lun0 (udev rules of Debian's Azure image).
  data_disk_lun = 0

  nsg_rules = { for rule in module.nsg_rules.rules : rule.name => rule }
}
