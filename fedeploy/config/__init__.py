"""The typed model of a stack file's `fedeploy:site` object and its loader."""

# The site models first: the openstack and ovh models build on its base class.
from fedeploy.config import site as _site  # noqa: E402, F401
