//! Creating an object exactly once: the account API's POSTs carry no idempotency token, so a
//! create whose answer was lost is looked for before it is sent again. Knows no object kind.

use std::time::Duration;

use tokio::time::Instant;

use crate::databricks::{AccountClient, DatabricksError};

/// Creates one object. The account API's POSTs carry no idempotency token, so a create whose
/// answer was lost may have been carried out: before trying again, `find` looks for the object
/// by what only this request's create has (the endpoint and name it sent, or its stamped name),
/// so the request ends with exactly one object. Tries until the client's deadline.
pub async fn create_once<T, Create, Created, Find, Found>(
    client: &AccountClient,
    what: &'static str,
    create: Create,
    find: Find,
) -> Result<T, DatabricksError>
where
    Create: Fn() -> Created,
    Created: std::future::Future<Output = Result<T, DatabricksError>>,
    Find: Fn() -> Found,
    Found: std::future::Future<Output = Result<Option<T>, DatabricksError>>,
{
    let mut delay = Duration::from_millis(250);
    loop {
        match create().await {
            Err(lost) if lost.is_answer_lost() => {
                if let Some(found) = find().await? {
                    tracing::info!(
                        operation = what,
                        "the create whose answer was lost had been carried out; using what it made"
                    );
                    return Ok(found);
                }
                let left = client.deadline().saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(DatabricksError::DeadlineExceeded {
                        operation: what,
                        last_error: lost.to_string(),
                    });
                }
                tracing::info!(
                    operation = what,
                    "the create whose answer was lost was not carried out; trying again"
                );
                tokio::time::sleep(delay.min(left)).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}
