//! The cluster side of a workspace: the subnets and security groups its clusters run in, as the
//! VPC checks (`readiness`) and the egress warnings (`egress`) both read it. A leaf of `resource`.

/// The cluster side of one workspace about to be switched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    pub workspace_id: i64,
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
}
