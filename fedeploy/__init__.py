"""fedeploy: deploys a federated Earth-observation platform, one Pulumi stack per site."""

__version__ = "0.1.0"
