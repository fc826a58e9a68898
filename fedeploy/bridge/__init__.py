"""The SLURM bridge: its node configuration (rendered templates) and the client services use.

The client (`fedeploy.bridge.client`) needs only httpx and pydantic, so the services' images
import it without Pulumi.
"""
