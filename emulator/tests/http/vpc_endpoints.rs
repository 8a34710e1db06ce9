//! VPC endpoint registrations: validation, acceptance, derived fields, isolation, deletion.

use reqwest::Method;
use serde_json::json;

use crate::support::{ACCOUNT, Harness, OTHER_ACCOUNT, REGION, RELAY_SERVICE, REST_SERVICE, id};

#[tokio::test]
async fn registration_starts_pending_and_becomes_available_after_reads() {
    let h = Harness::start().await;
    let created = h.register("vpce-0123456789abcdef0", REST_SERVICE).await;
    assert_eq!(created["state"], "pendingAcceptance");
    assert_eq!(created["account_id"], ACCOUNT);
    assert_eq!(created["aws_vpc_endpoint_id"], "vpce-0123456789abcdef0");
    assert_eq!(created["region"], REGION);
    assert_eq!(created["use_case"], "GENERAL_ACCESS");
    assert_eq!(created["aws_endpoint_service_id"], REST_SERVICE);
    let registration = id(&created, "vpc_endpoint_id");
    assert!(uuid::Uuid::parse_str(&registration).is_ok());

    let first = h
        .get(&format!("/vpc-endpoints/{registration}"))
        .await
        .json();
    assert_eq!(first["state"], "pendingAcceptance");
    let second = h
        .get(&format!("/vpc-endpoints/{registration}"))
        .await
        .json();
    assert_eq!(second["state"], "available");
}

#[tokio::test]
async fn list_reads_count_too_and_zero_reads_means_available_at_once() {
    let h = Harness::start().await;
    h.emulator.state().set_accept_after_reads(2);
    h.register("vpce-00000001", REST_SERVICE).await;
    let states = |reply: crate::support::Reply| reply.json()[0]["state"].clone();
    assert_eq!(states(h.get("/vpc-endpoints").await), "pendingAcceptance");
    assert_eq!(states(h.get("/vpc-endpoints").await), "pendingAcceptance");
    assert_eq!(states(h.get("/vpc-endpoints").await), "available");

    h.emulator.state().set_accept_after_reads(0);
    let created = h.register("vpce-00000002", REST_SERVICE).await;
    assert_eq!(created["state"], "available");
}

#[tokio::test]
async fn relay_endpoints_get_the_relay_use_case() {
    let h = Harness::start().await;
    h.emulator.state().register_aws_endpoint_owned_by(
        "vpce-00000003",
        RELAY_SERVICE,
        Some("111122223333"),
    );
    let created = h
        .post(
            "/vpc-endpoints",
            json!({"vpc_endpoint_name": "relay", "aws_vpc_endpoint_id": "vpce-00000003", "region": REGION}),
        )
        .await
        .json();
    assert_eq!(created["use_case"], "DATAPLANE_RELAY_ACCESS");
    assert_eq!(created["aws_endpoint_service_id"], RELAY_SERVICE);
    assert_eq!(created["aws_account_id"], "111122223333");
}

#[tokio::test]
async fn unknown_endpoints_default_to_general_access_without_service() {
    let h = Harness::start().await;
    let created = h
        .post(
            "/vpc-endpoints",
            json!({"vpc_endpoint_name": "mystery", "aws_vpc_endpoint_id": "vpce-0000000a", "region": REGION}),
        )
        .await
        .json();
    assert_eq!(created["use_case"], "GENERAL_ACCESS");
    assert!(created.get("aws_endpoint_service_id").is_none());
}

#[tokio::test]
async fn same_aws_endpoint_twice_in_one_account_conflicts_but_other_accounts_may_register_it() {
    let mut h = Harness::start().await;
    h.register("vpce-00000004", REST_SERVICE).await;
    let again = h
        .post(
            "/vpc-endpoints",
            json!({"vpc_endpoint_name": "again", "aws_vpc_endpoint_id": "vpce-00000004", "region": REGION}),
        )
        .await;
    let message = again.expect_error(409, "RESOURCE_ALREADY_EXISTS");
    assert!(message.contains("vpce-00000004"), "{message}");

    h.account = OTHER_ACCOUNT.to_owned();
    h.token = h.fetch_token(OTHER_ACCOUNT).await;
    assert_eq!(h.get("/vpc-endpoints").await.json(), json!([]));
    let elsewhere = h
        .post(
            "/vpc-endpoints",
            json!({"vpc_endpoint_name": "shared", "aws_vpc_endpoint_id": "vpce-00000004", "region": REGION}),
        )
        .await;
    assert_eq!(elsewhere.status, 200, "{}", elsewhere.text);
    assert_eq!(
        h.get("/vpc-endpoints")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn invalid_registrations_are_refused_with_a_reason() {
    let h = Harness::start().await;
    let cases = [
        (
            json!({"vpc_endpoint_name": "abc", "aws_vpc_endpoint_id": "vpce-00000005", "region": REGION}),
            "vpc_endpoint_name",
        ),
        (
            json!({"aws_vpc_endpoint_id": "vpce-00000005", "region": REGION}),
            "vpc_endpoint_name",
        ),
        (
            json!({"vpc_endpoint_name": "name", "aws_vpc_endpoint_id": "vpce-123", "region": REGION}),
            "aws_vpc_endpoint_id",
        ),
        (
            json!({"vpc_endpoint_name": "name", "aws_vpc_endpoint_id": "vpce-00000005"}),
            "region",
        ),
    ];
    for (body, field) in cases {
        let reply = h.post("/vpc-endpoints", body.clone()).await;
        let message = reply.expect_error(400, "INVALID_PARAMETER_VALUE");
        assert!(message.contains(field), "{body}: {message}");
    }
    let long_name = "n".repeat(257);
    h.post(
        "/vpc-endpoints",
        json!({"vpc_endpoint_name": long_name, "aws_vpc_endpoint_id": "vpce-00000005", "region": REGION}),
    )
    .await
    .expect_error(400, "INVALID_PARAMETER_VALUE");

    h.emulator
        .state()
        .register_aws_endpoint("vpce-00000006", REST_SERVICE);
    let wrong_region = h
        .post(
            "/vpc-endpoints",
            json!({"vpc_endpoint_name": "name", "aws_vpc_endpoint_id": "vpce-00000006", "region": "eu-west-1"}),
        )
        .await;
    let message = wrong_region.expect_error(400, "INVALID_PARAMETER_VALUE");
    assert!(message.contains("us-east-1"), "{message}");
    assert_eq!(h.get("/vpc-endpoints").await.json(), json!([]));
}

#[tokio::test]
async fn forced_aws_state_is_reported() {
    let h = Harness::start().await;
    let created = h.register("vpce-00000007", REST_SERVICE).await;
    h.emulator
        .state()
        .set_endpoint_state("vpce-00000007", Some("rejected"));
    let path = format!("/vpc-endpoints/{}", id(&created, "vpc_endpoint_id"));
    for _ in 0..3 {
        assert_eq!(h.get(&path).await.json()["state"], "rejected");
    }
    h.emulator.state().set_endpoint_state("vpce-00000007", None);
    assert_eq!(h.get(&path).await.json()["state"], "available");
}

#[tokio::test]
async fn delete_returns_the_object_and_then_it_is_gone() {
    let h = Harness::start().await;
    let created = h.register("vpce-00000008", REST_SERVICE).await;
    let path = format!("/vpc-endpoints/{}", id(&created, "vpc_endpoint_id"));
    let deleted = h.delete(&path).await;
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.json()["aws_vpc_endpoint_id"], "vpce-00000008");
    h.get(&path)
        .await
        .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
    h.delete(&path)
        .await
        .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
}

#[tokio::test]
async fn malformed_bodies_get_the_plain_text_error() {
    let h = Harness::start().await;
    let reply = h
        .http
        .post(h.url(&format!("/api/2.0/accounts/{ACCOUNT}/vpc-endpoints")))
        .bearer_auth(&h.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 400);
    assert!(
        reply.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(
        reply.text().await.unwrap(),
        "MALFORMED_REQUEST: Cannot parse request body"
    );
    let wrong_type = h
        .post(
            "/networks",
            json!({"network_name": "name", "subnet_ids": "subnet-1"}),
        )
        .await;
    assert_eq!(wrong_type.status, 400);
    assert_eq!(
        wrong_type.text,
        "MALFORMED_REQUEST: Cannot parse request body"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_endpoint_not_found() {
    let h = Harness::start().await;
    let reply = h.api(Method::GET, "/credentialz", None).await;
    let message = reply.expect_error(404, "ENDPOINT_NOT_FOUND");
    assert_eq!(
        message,
        format!("No API found for 'GET /accounts/{ACCOUNT}/credentialz'")
    );
}
