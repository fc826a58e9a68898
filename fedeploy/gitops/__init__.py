"""GitOps support: which stacks a change affects, in which waves, for pipelines to deploy.

`fedeploy.affected.find` is the entry point; the modules here hold its parts: reading git
(`git_tree`), deciding what a changed path touches (`path_rules`), which files the Pulumi
program loads (`program_files`), what the offline plan says about each site (`planned_sites`),
the pure closure and waves (`closure`) and the output formats (`formats`)."""
