# Prometheus alert rules of the iots6 environments, evaluated by Azure Monitor managed Prometheus against the
# metrics the ingest and the config server export. One rule group per environment (namespace). No resources.
#
#   Iots6IngestDown            no ingest scraped (pods gone, /metrics unanswered) for N minutes
#   Iots6IngestNoRowsStored    no row committed to sensor_data for N minutes
#   Iots6IngestCommitLagHigh   consumer lag: p99 receive -> commit above a threshold
#   Iots6IngestDatabaseErrors  batch writes failing (retried)
#   Iots6DeadLettersRising     dead letters per reason above a threshold per 15 minutes
#   Iots6DevicesOffline        received traffic below a fraction of the same time yesterday
#   Iots6IngestNotConnected    an ingest worker runs but is not connected to the broker for N minutes
#   Iots6ConfigServerDown      no config server scraped for N minutes
