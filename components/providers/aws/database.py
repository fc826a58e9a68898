"""The catalog's PostgreSQL on aws sites: RDS, encrypted, private, TLS-only."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
from pulumi_command import local

from fedeploy.config.services import RdsDatabase


class RdsPostgres(pulumi.ComponentResource):
    """An RDS PostgreSQL reachable only from the site's VPC; its password is a Pulumi secret."""

    address: pulumi.Output[str]
    port: pulumi.Output[int]
    ca_bundle: pulumi.Output[str]
    username: str = "pgstac_admin"
    database: str = "pgstac"
    # Clients check the certificate and that it names the instance's address.
    ssl_mode: str = "verify-full"

    def __init__(
        self,
        name: str,
        *,
        config: RdsDatabase,
        vpc_id: pulumi.Input[str],
        vpc_cidr: pulumi.Input[str],
        subnet_ids: pulumi.Input[list[str]],
        password: pulumi.Input[str],
        production: bool,
        tags: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("fedeploy:catalog:RdsPostgres", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        subnets = aws.rds.SubnetGroup(
            f"{name}-subnets", subnet_ids=subnet_ids, tags=tags, opts=child
        )
        group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            description="PostgreSQL from inside the site's VPC only",
            vpc_id=vpc_id,
            ingress=[
                {"protocol": "tcp", "from_port": 5432, "to_port": 5432, "cidr_blocks": [vpc_cidr]}
            ],
            tags=tags,
            opts=child,
        )
        major = config.engine_version.split(".")[0]
        parameters = aws.rds.ParameterGroup(
            f"{name}-params",
            family=f"postgres{major}",
            parameters=[{"name": "rds.force_ssl", "value": "1"}],
            tags=tags,
            opts=child,
        )
        instance = aws.rds.Instance(
            name,
            engine="postgres",
            engine_version=config.engine_version,
            instance_class=config.instance_class,
            allocated_storage=config.allocated_storage_gib,
            max_allocated_storage=config.max_allocated_storage_gib,
            db_name=self.database,
            username=self.username,
            password=password,
            db_subnet_group_name=subnets.name,
            vpc_security_group_ids=[group.id],
            parameter_group_name=parameters.name,
            storage_encrypted=True,
            publicly_accessible=False,
            multi_az=config.multi_az,
            backup_retention_period=config.backup_retention_days,
            deletion_protection=production,
            skip_final_snapshot=not production,
            final_snapshot_identifier=f"{name}-final" if production else None,
            copy_tags_to_snapshot=True,
            auto_minor_version_upgrade=True,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=production),
        )
        # verify-full against the region's RDS CA bundle, fetched over https from AWS's trust
        # store by the machine that runs `pulumi up` (curl checks it against the system's CAs).
        region = instance.arn.apply(lambda arn: str(arn).split(":")[3])
        bundle = local.Command(
            f"{name}-ca-bundle",
            create=region.apply(
                lambda r: (
                    "curl --fail --silent --show-error --proto =https --tlsv1.2 "
                    f"https://truststore.pki.rds.amazonaws.com/{r}/{r}-bundle.pem"
                )
            ),
            opts=child,
        )
        self.ca_bundle = bundle.stdout
        self.address = instance.address
        self.port = instance.port
        self.register_outputs({"address": self.address})
