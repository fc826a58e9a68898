"""`fedeploy secrets`: the pending secrets of each stack file as the `pulumi config set` commands
that set them (`command`)."""
