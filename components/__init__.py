"""Pulumi ComponentResources of fedeploy, and nothing else."""
