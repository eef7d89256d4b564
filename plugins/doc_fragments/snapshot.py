# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """The O(snapshot) option: of M(dataprotection.databases.backup) (what to snapshot) and of M(dataprotection.databases.restore) (where)."""

    DOCUMENTATION = r"""
options:
  snapshot:
    description:
      - With O(method=volume-snapshot), the volume snapshot provider and what it snapshots. Only the keys of the chosen
        O(snapshot.provider) apply.
      - "C(btrfs): a read-only snapshot of the subvolume that holds the server's data directory, on this host."
      - "C(lvm): an C(lvcreate --snapshot) of the logical volume that holds the data directory, on this host."
      - "C(aws_ebs): EBS snapshots of volumes named by id or by instance and device names; credentials like amazon.aws
        (options, else E(AWS_ACCESS_KEY_ID)/E(AWS_SECRET_ACCESS_KEY), profiles or the instance role)."
      - "C(kubernetes): CSI C(VolumeSnapshot)s of PersistentVolumeClaims, by name or label selector; authentication like
        kubernetes.core (kubeconfig and context, host and api_key, or in-cluster)."
    type: dict
    suboptions:
      provider:
        description: The snapshot provider.
        type: str
        required: true
        choices: [btrfs, lvm, aws_ebs, kubernetes]
      stream:
        description:
          - C(btrfs) and C(lvm) - also stream the snapshot's copy of the data directory into the repository (one tar
            object, compressed and encrypted as any backup), so the backup survives the loss of the volume.
        type: bool
        default: false
      keep:
        description:
          - Keep the snapshot after the backup. V(false) is only accepted with O(snapshot.stream=true) - the streamed copy
            is then the backup, and the snapshot is deleted once it is stored (the usual way with C(lvm), whose
            classic snapshots slow down writes to the origin while they exist).
        type: bool
        default: true
      subvolume:
        description: C(btrfs) - the subvolume to snapshot. Default - the subvolume that holds the data directory.
        type: path
      snapshot_dir:
        description: C(btrfs) - where the snapshots go, on the same file system. Default - C(.dataprotection-snapshots) next to the subvolume.
        type: path
      data_dir:
        description:
          - Qdrant and Weaviate, with C(btrfs) or C(lvm) - the server's storage directory on this host (their snapshots are
            crash-consistent and the server is not contacted, so nothing else tells where the data is).
        type: path
      logical_volume:
        description: C(lvm) - the logical volume, as C(vg/lv). Default - the one that holds the data directory; another one is refused.
        type: str
      size:
        description:
          - C(lvm) - the size of a classic (thick) snapshot, in lvcreate's syntax (C(5G), C(512M), C(20%ORIGIN)); not used
            for thin volumes. A snapshot that fills up becomes invalid, and with it the backup.
        type: str
      mount_options:
        description: C(lvm) - options to mount the snapshot read-only with, for O(snapshot.stream). Default - by file system type.
        type: str
      snapshot_name:
        description: C(lvm) - the snapshot LV's name pattern; must contain C({backup_id}) (C({vg}) and C({lv}) may be used too).
        type: str
      volume_ids:
        description: C(aws_ebs) - the EBS volumes to snapshot.
        type: list
        elements: str
      instance_id:
        description: C(aws_ebs) - the instance whose O(snapshot.device_names) name the volumes.
        type: str
      device_names:
        description: C(aws_ebs) - device names of O(snapshot.instance_id) (C(/dev/sdf) and C(/dev/xvdf) name the same device).
        type: list
        elements: str
      region:
        description: C(aws_ebs) - the region. Default - E(AWS_REGION) or E(AWS_DEFAULT_REGION).
        type: str
      access_key:
        description: C(aws_ebs) - access key id. Default - boto3's credential chain.
        type: str
      secret_key:
        description: C(aws_ebs) - secret access key.
        type: str
      session_token:
        description: C(aws_ebs) - session token of temporary credentials.
        type: str
      endpoint_url:
        description: C(aws_ebs) - another EC2 endpoint (a private endpoint, a test server).
        type: str
      ca_bundle:
        description: C(aws_ebs) - CA certificates to verify the endpoint with.
        type: path
      validate_certs:
        description: C(aws_ebs), C(kubernetes) - verify TLS certificates. Default - true.
        type: bool
      tags:
        description:
          - C(aws_ebs) - tags set on every snapshot (the backup id, device and O(labels) are added).
          - C(lvm) - LVM tags (C(key=value)) added to the snapshot LV.
        type: dict
      wait_timeout:
        description: C(aws_ebs), C(kubernetes) - seconds to wait for the snapshots to complete or become ready (1800, 600).
        type: int
      max_attempts:
        description: C(aws_ebs) - attempts per request, the first included, for throttling and transient errors.
        type: int
      namespace:
        description: C(kubernetes) - the namespace of the PersistentVolumeClaims.
        type: str
      pvc_names:
        description: C(kubernetes) - the PersistentVolumeClaims to snapshot. Mutually exclusive with O(snapshot.pvc_selector).
        type: list
        elements: str
      pvc_selector:
        description: C(kubernetes) - a label selector choosing the PersistentVolumeClaims, for example C(app=pg,role=primary).
        type: str
      volume_snapshot_class:
        description: C(kubernetes) - the VolumeSnapshotClass. Default - the default class of the PVCs' CSI driver.
        type: str
      kubeconfig:
        description: C(kubernetes) - path to a kubeconfig file, or its content as a dict. Default - in-cluster, else C(~/.kube/config).
        type: raw
      context:
        description: C(kubernetes) - the kubeconfig context.
        type: str
      host:
        description: C(kubernetes) - the API server URL, with O(snapshot.api_key).
        type: str
      api_key:
        description: C(kubernetes) - a bearer token.
        type: str
      ca_cert:
        description: C(kubernetes) - CA certificate of the API server.
        type: path
      client_cert:
        description: C(kubernetes) - client certificate.
        type: path
      client_key:
        description: C(kubernetes) - client key.
        type: path
      proxy:
        description: C(kubernetes) - an HTTP proxy URL.
        type: str
"""

    RESTORE = r"""
options:
  source:
    description:
      - Where a restore of a volume-snapshot backup takes the files from.
      - V(auto) - the snapshot when it still exists, else the copy streamed into the repository.
      - V(snapshot) - the snapshot. C(btrfs) makes a writable subvolume at O(data_dir) (instant, on the same file
        system); C(lvm) a new logical volume; C(aws_ebs) new volumes, C(kubernetes) new PersistentVolumeClaims, as
        O(snapshot) says - for these two the data directory is then finished with V(mounted).
      - V(repository) - the streamed copy, extracted into O(data_dir).
      - V(mounted) - the files are already at O(data_dir) (a volume restored from the snapshot and mounted there); only the
        engine's finishing steps run (PostgreSQL - C(backup_label), WAL, recovery settings).
      - Ignored for other backups.
    type: str
    default: auto
    choices: [auto, snapshot, repository, mounted]
  snapshot:
    description:
      - Where and how a restore from a snapshot makes the new volumes, and the provider's credentials (the keys of
        O(dataprotection.databases.backup#module:snapshot) with the same names apply).
    type: dict
    suboptions:
      availability_zone:
        description: C(aws_ebs) - the zone of the new volumes (required for C(aws_ebs)).
        type: str
      volume_type:
        description: C(aws_ebs) - the new volumes' type (default C(gp3)).
        type: str
      iops:
        description: C(aws_ebs) - provisioned IOPS (C(gp3), C(io1), C(io2)).
        type: int
      throughput:
        description: C(aws_ebs) - provisioned throughput in MiB/s (C(gp3)).
        type: int
      instance_id:
        description: C(aws_ebs) - attach the new volume to this instance, at O(snapshot.device_name).
        type: str
      device_name:
        description: C(aws_ebs) - the device name to attach at.
        type: str
      tags:
        description: C(aws_ebs) - tags of the new volumes.
        type: dict
      wait_timeout:
        description: Seconds to wait for the new volumes (C(aws_ebs)) or PVCs (C(kubernetes)).
        type: int
      access_key:
        description: C(aws_ebs) - access key id.
        type: str
      secret_key:
        description: C(aws_ebs) - secret access key.
        type: str
      session_token:
        description: C(aws_ebs) - session token.
        type: str
      endpoint_url:
        description: C(aws_ebs) - another EC2 endpoint.
        type: str
      ca_bundle:
        description: C(aws_ebs) - CA certificates to verify the endpoint with.
        type: path
      validate_certs:
        description: Verify TLS certificates (C(aws_ebs), C(kubernetes)).
        type: bool
      max_attempts:
        description: C(aws_ebs) - attempts per request.
        type: int
      namespace:
        description: C(kubernetes) - the namespace of the new PVCs. Default - the snapshots'.
        type: str
      pvc_name:
        description: C(kubernetes) - the new PVC's name, for a backup of one PVC. Default - derived from the source PVC and the backup.
        type: str
      pvc_names:
        description: C(kubernetes) - new PVC names by source PVC name.
        type: dict
      storage_class:
        description: C(kubernetes) - the new PVCs' StorageClass. Default - the source's.
        type: str
      access_modes:
        description: C(kubernetes) - the new PVCs' access modes. Default - the source's.
        type: list
        elements: str
      size:
        description: C(kubernetes) - the new PVCs' size (at least the snapshot's restore size); C(lvm) - the new volume's size.
        type: str
      labels:
        description: C(kubernetes) - labels of the new PVCs.
        type: dict
      wait:
        description: C(kubernetes) - wait until the new PVCs are bound (not for WaitForFirstConsumer classes).
        type: bool
      kubeconfig:
        description: C(kubernetes) - path to a kubeconfig file, or its content as a dict.
        type: raw
      context:
        description: C(kubernetes) - the kubeconfig context.
        type: str
      host:
        description: C(kubernetes) - the API server URL.
        type: str
      api_key:
        description: C(kubernetes) - a bearer token.
        type: str
      ca_cert:
        description: C(kubernetes) - CA certificate of the API server.
        type: path
      client_cert:
        description: C(kubernetes) - client certificate.
        type: path
      client_key:
        description: C(kubernetes) - client key.
        type: path
      proxy:
        description: C(kubernetes) - an HTTP proxy URL.
        type: str
      name:
        description: C(lvm) - the new logical volume's name.
        type: str
      vg:
        description: C(lvm) - the volume group of the new logical volume. Default - the snapshot's.
        type: str
      mount_point:
        description: C(lvm) - mount the new volume here. Default - O(data_dir).
        type: path
"""
