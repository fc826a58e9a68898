"""The Pulumi program of fedeploy: one stack per site, configured by stacks/Pulumi.<site>.yaml."""

from fedeploy.program import main

main()
