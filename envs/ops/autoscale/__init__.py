"""Service autoscaling: replicas, queues and latency objectives under diurnal and bursty load."""
