//! The `Access` service on the coordinator's mutual-TLS listener: who the caller is and what it
//! may do (`status`, `identity`), and the member's invites for its admin (`invite list`).

use crate::coordinator::Coordinator;
use crate::coordinator::grants::{self, Role};
use crate::transport::member_caller;
use collective_proto::bootstrap::{
    HeldGrant, InviteInfo, ListInvitesRequest, ListInvitesResponse, WhoAmIRequest, WhoAmIResponse,
    access_server::Access,
};
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct AccessService {
    coordinator: Arc<Coordinator>,
}

impl AccessService {
    pub fn new(coordinator: Arc<Coordinator>) -> AccessService {
        AccessService { coordinator }
    }

    fn same_member<T>(&self, request: &Request<T>) -> Result<crate::transport::Caller, Status> {
        member_caller(request, &self.coordinator.config.member_domain)
    }
}

#[tonic::async_trait]
impl Access for AccessService {
    async fn who_am_i(&self, request: Request<WhoAmIRequest>) -> Result<Response<WhoAmIResponse>, Status> {
        let caller = self.same_member(&request)?;
        let role = Role::of(&caller);
        let all = grants::load(&self.coordinator.store)?;
        let held = grants::held_by(&all, &caller.address, crate::coordinator::now_unix_ms());
        Ok(Response::new(WhoAmIResponse {
            address: caller.address.clone(),
            member_domain: caller.member_domain.clone(),
            component: format!("{:?}", caller.component).to_ascii_lowercase(),
            role: role.as_str().to_string(),
            grants: held
                .into_iter()
                .map(|(grant_id, grant)| HeldGrant {
                    grant_id,
                    grant: Some(grant),
                })
                .collect(),
            bootstrap_endpoints: self.coordinator.config.bootstrap_endpoint().into_iter().collect(),
        }))
    }

    async fn list_invites(
        &self,
        request: Request<ListInvitesRequest>,
    ) -> Result<Response<ListInvitesResponse>, Status> {
        let caller = self.same_member(&request)?;
        grants::require_admin(&caller, "list invites")?;
        let invites = self
            .coordinator
            .store
            .invites()
            .map_err(|e| Status::internal(format!("coordinator storage failure: {e}")))?
            .into_iter()
            .filter_map(|record| {
                let issued = record.issued?;
                Some(InviteInfo {
                    invite_id: issued.invite_id,
                    code_hash: issued.code_hash,
                    kind: issued.kind,
                    grants: issued.grants,
                    max_uses: issued.max_uses,
                    uses: record.uses,
                    expires_at_unix_ms: issued.expires_at_unix_ms,
                    revoked: record.revoked,
                    issued_by: record.issued_by,
                    issued_at_unix_ms: record.issued_at_unix_ms,
                    member: issued.member,
                })
            })
            .collect();
        Ok(Response::new(ListInvitesResponse { invites }))
    }
}
