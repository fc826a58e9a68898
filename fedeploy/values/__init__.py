"""What turns a validated site into its services' values: the charts' values (`services`), the
catalog's exposure and asset endpoint (`exposure`), storage credentials files, workload access
policies and the site's tags and labels. Plain functions, tested without the Pulumi runtime;
`components/` feeds their mappings to Helm releases and cloud resources."""
