"""Kubeflow integration: pipelines and the multi-node Kubeflow Trainer TrainJob launcher."""
